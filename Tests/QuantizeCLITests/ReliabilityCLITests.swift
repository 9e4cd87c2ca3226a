import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Interrupts, full disks, concurrent runs, leftovers of killed runs, hostile names and side
/// files, end to end (issue 13; formats/reliability.md). Faults are injected through the writers'
/// test hooks (`QUANTIZE_FAULT_FAIL_WRITE`, `QUANTIZE_FAULT_PAUSE_WRITE`); hostile files are made
/// here, small.
@Suite("reliability: interrupts, faults, locks and hostile input")
struct ReliabilityCLITests {
    /// One run of the executable with extra environment; `during` runs while it is alive.
    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func quantize(_ arguments: [String], environment: [String: String] = [:],
                         during: ((Process) throws -> Void)? = nil) throws -> Run {
        let capture = try Fixtures.temporaryDirectory("rel-capture")
        defer { try? FileManager.default.removeItem(at: capture) }
        let outURL = capture.appendingPathComponent("out"), errURL = capture.appendingPathComponent("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        let process = Process()
        process.executableURL = try CLI.binary()
        process.arguments = arguments
        process.currentDirectoryURL = Fixtures.repositoryRoot
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        do {
            try during?(process)
        } catch {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw error
        }
        process.waitUntilExit()
        try out.close()
        try err.close()
        return Run(status: process.terminationStatus, stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
                   stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    struct Timeout: Error {}

    /// Waits (up to 60 s) until `directory` holds an entry starting with `prefix`.
    static func waitForEntry(_ prefix: String, in directory: URL) throws {
        for _ in 0..<600 {
            if try CLI.listing(directory).contains(where: { $0.hasPrefix(prefix) }) { return }
            usleep(100_000)
        }
        throw Timeout()
    }

    // MARK: Interrupts

    @Test("SIGINT/SIGTERM mid-write remove the staging folder, exit non-zero and say nothing was written",
          arguments: [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")])
    func interruptLeavesNothing(_ signalNumber: Int32, _ name: String) throws {
        let scratch = try Fixtures.temporaryDirectory("rel-int")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out-fp8")
        let run = try Self.quantize(["--to", "fp8", "fixtures/tiny-llama", "-o", output.path],
                                    environment: ["QUANTIZE_FAULT_PAUSE_WRITE": "1"]) { process in
            try Self.waitForEntry(".out-fp8.tmp-", in: scratch)
            kill(process.processIdentifier, signalNumber)
        }
        #expect(run.status == 128 + signalNumber, "stderr: \(run.stderr)")
        #expect(run.stderr.split(separator: "\n").last == "quantize: interrupted (\(name)); nothing was written")
        let left = try CLI.listing(scratch)
        #expect(left == [], "left behind: \(left)")
    }

    @Test("a killed run's staging folder is recognised by the next run (dead owner), removed and reported")
    func staleStagingRemoved() throws {
        let scratch = try Fixtures.temporaryDirectory("rel-stale")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out.gguf")
        let killed = try Self.quantize(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", output.path],
                                       environment: ["QUANTIZE_FAULT_PAUSE_WRITE": "1"]) { process in
            try Self.waitForEntry(".out.gguf.tmp-", in: scratch)
            kill(process.processIdentifier, SIGKILL)
        }
        #expect(killed.status == SIGKILL)
        let debris = try CLI.listing(scratch).filter { $0.hasPrefix(".out.gguf.tmp-") }
        #expect(debris.count == 1, "SIGKILL cannot be handled: the staging folder stays until the next run")
        let next = try Self.quantize(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", output.path])
        #expect(next.status == 0, "stderr: \(next.stderr)")
        #expect(next.stderr.contains("note: removed \(scratch.path)/\(debris[0]), the leftover of an interrupted run"), "stderr: \(next.stderr)")
        #expect(try CLI.listing(scratch) == ["out.gguf", "out.gguf.quantize-manifest.json", "out.gguf.quantize-report.json"])
    }

    @Test("a second run to the same output fails at once while the first holds the lock")
    func concurrentRunRefused() throws {
        let scratch = try Fixtures.temporaryDirectory("rel-lock")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out.gguf")
        var second: Run? = nil
        let first = try Self.quantize(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", output.path],
                                      environment: ["QUANTIZE_FAULT_PAUSE_WRITE": "1"]) { process in
            try Self.waitForEntry(".out.gguf.tmp-", in: scratch)
            let started = Date()
            second = try Self.quantize(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", output.path, "--force"])
            #expect(Date().timeIntervalSince(started) < 30, "the second run waited instead of failing at once")
            kill(process.processIdentifier, SIGTERM)
        }
        #expect(first.status == 128 + SIGTERM)
        let refused = try #require(second)
        #expect(refused.status == 2)
        #expect(refused.stderr == "error: \(output.path): another quantize run is writing this output right now; wait for it to finish, or name another output with -o\n")
        #expect(try CLI.listing(scratch) == [])
    }

    @Test("a report left without its output (interrupt between the two renames) is removed by the next run")
    func orphanedReportRemoved() throws {
        let scratch = try Fixtures.temporaryDirectory("rel-orphan")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out.gguf")
        let report = output.path + ".quantize-report.json"
        try Data("{\"stale\": true}".utf8).write(to: URL(fileURLWithPath: report))
        let run = try Self.quantize(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", output.path, "--no-check"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stderr.contains("note: removed \(report), a report left without its output by an interrupted run"))
        #expect(try CLI.listing(scratch) == ["out.gguf", "out.gguf.quantize-manifest.json"])
    }

    // MARK: Faults

    /// Every Nth write failing (a disk that fills there) until the job needs fewer writes: each
    /// failure exits 2 naming the final file, with nothing under the final names and no staging.
    @Test("disk full at every write of a job leaves nothing and names no staging path",
          arguments: [["--to", "q8_0", "fixtures/tiny-llama.gguf"], ["--to", "fp8", "fixtures/tiny-llama"],
                      ["--to", "fp8", "fixtures/tiny-llama", "--no-check"]])
    func diskFullAtEveryWrite(_ job: [String]) throws {
        let scratch = try Fixtures.temporaryDirectory("rel-enospc")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent(job[2].hasSuffix(".gguf") ? "out.gguf" : "out")
        var failures = 0
        for n in 1...40 {
            let run = try Self.quantize(job + ["-o", output.path, "--quiet"], environment: ["QUANTIZE_FAULT_FAIL_WRITE": "\(n)"])
            if run.status == 0 { break }
            failures += 1
            #expect(run.status == 2, "write \(n): \(run.stderr)")
            #expect(run.stderr.contains("(No space left on device); free disk space and run again"), "write \(n): \(run.stderr)")
            #expect(run.stderr.hasPrefix("error: \(output.path)"), "write \(n) names the final file: \(run.stderr)")
            #expect(!run.stderr.contains(".tmp-") && !run.stderr.contains(".partial-"), "write \(n) names a staging path: \(run.stderr)")
            let left = try CLI.listing(scratch)
            #expect(left == [], "write \(n) left \(left)")
        }
        #expect(failures >= 2, "the job has at least a tensor file and a report or index to write")
        #expect(try !CLI.listing(scratch).isEmpty, "the run with no injected failure wrote the output")
    }

    static let canMount: Bool = {
        guard geteuid() == 0 else { return false }
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("quantize-mount-probe-\(getpid())")
        try? FileManager.default.createDirectory(at: probe, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: probe) }
        guard mount("tmpfs", probe.path, "tmpfs", 0, "size=64k") == 0 else { return false }
        umount(probe.path)
        return true
    }()

    @Test("a read-only destination (a read-only tmpfs) is a clear error that writes nothing", .enabled(if: canMount))
    func readOnlyDestination() throws {
        let mountPoint = try Fixtures.temporaryDirectory("rel-ro")
        defer { umount(mountPoint.path); try? FileManager.default.removeItem(at: mountPoint) }
        #expect(mount("tmpfs", mountPoint.path, "tmpfs", UInt(MS_RDONLY), "size=1m") == 0)
        let output = mountPoint.appendingPathComponent("out.gguf")
        let run = try Self.quantize(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", output.path])
        #expect(run.status == 2)
        #expect(run.stderr.contains("error: \(output.path): cannot create the output's lock file beside it (Read-only file system); the destination is read-only"), "stderr: \(run.stderr)")
        #expect(try CLI.listing(mountPoint) == [])
    }

    @Test("a full small filesystem (a 1 MB tmpfs) fails with a clear error and leaves nothing", .enabled(if: canMount))
    func realFullDisk() throws {
        let mountPoint = try Fixtures.temporaryDirectory("rel-full")
        defer { umount(mountPoint.path); try? FileManager.default.removeItem(at: mountPoint) }
        #expect(mount("tmpfs", mountPoint.path, "tmpfs", 0, "size=1m") == 0)
        let output = mountPoint.appendingPathComponent("out.gguf")
        let run = try Self.quantize(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", output.path])
        #expect(run.status == 2)
        #expect(run.stderr.contains("error: \(output.path)") && run.stderr.contains("No space left on device"), "stderr: \(run.stderr)")
        #expect(try CLI.listing(mountPoint) == [])
    }

    @Test("a destination without write permission is a clear error that writes nothing", .enabled(if: geteuid() != 0))
    func permissionDenied() throws {
        let scratch = try Fixtures.temporaryDirectory("rel-perm")
        defer { chmod(scratch.path, 0o755); try? FileManager.default.removeItem(at: scratch) }
        chmod(scratch.path, 0o555)
        let output = scratch.appendingPathComponent("out.gguf")
        let run = try Self.quantize(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", output.path])
        #expect(run.status == 2)
        #expect(run.stderr.contains("error: \(output.path): cannot create the output's lock file beside it (Permission denied)"), "stderr: \(run.stderr)")
        #expect(try CLI.listing(scratch) == [])
    }

    // MARK: Outputs

    @Test("a GGUF output named without .gguf is refused before any work, naming the fix")
    func ggufOutputName() throws {
        let scratch = try Fixtures.temporaryDirectory("rel-name")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = try Self.quantize(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", scratch.appendingPathComponent("out.bin").path])
        #expect(run.status == 2)
        #expect(run.stderr == "error: the output out.bin is a GGUF file but its name does not end in .gguf; llama.cpp, transformers and quantize itself recognise the format by it. Name it with -o NAME.gguf\n")
        #expect(try CLI.listing(scratch) == [])
    }

    @Test("--force onto a directory with the user's own files is refused; onto our earlier output it replaces it")
    func forceSparesForeignFiles() throws {
        let scratch = try Fixtures.temporaryDirectory("rel-force")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let notes = output.appendingPathComponent("my-notes.txt")
        try Data("mine".utf8).write(to: notes)
        let refused = try Self.quantize(["--to", "fp8", "fixtures/tiny-llama", "-o", output.path, "--force", "--no-check"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--force would replace the directory \(output.path), which holds 'my-notes.txt' that quantize did not write"), "stderr: \(refused.stderr)")
        #expect(FileManager.default.fileExists(atPath: notes.path))
        try FileManager.default.removeItem(at: notes)
        let first = try Self.quantize(["--to", "fp8", "fixtures/tiny-llama", "-o", output.path, "--force", "--no-check"])
        #expect(first.status == 0, "an empty directory is replaceable: \(first.stderr)")
        let again = try Self.quantize(["--to", "fp8", "fixtures/tiny-llama", "-o", output.path, "--force"])
        #expect(again.status == 0, "our own output is replaceable: \(again.stderr)")
    }

    @Test("symlinked side files: Hugging Face cache links are copied as files, a link out of the model (to /etc/passwd) is skipped with a warning")
    func symlinkedSideFiles() throws {
        let scratch = try Fixtures.temporaryDirectory("rel-links")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let fm = FileManager.default
        let repo = scratch.appendingPathComponent("hub/models--org--tiny")
        let blobs = repo.appendingPathComponent("blobs"), snapshot = repo.appendingPathComponent("snapshots/abc123")
        try fm.createDirectory(at: blobs, withIntermediateDirectories: true)
        try fm.createDirectory(at: snapshot, withIntermediateDirectories: true)
        for name in try fm.contentsOfDirectory(atPath: Fixtures.path("tiny-llama")) {
            let blob = blobs.appendingPathComponent("blob-" + name)
            try fm.copyItem(atPath: Fixtures.path("tiny-llama/" + name), toPath: blob.path)
            try fm.createSymbolicLink(atPath: snapshot.appendingPathComponent(name).path, withDestinationPath: "../../blobs/blob-" + name)
        }
        try fm.createSymbolicLink(atPath: snapshot.appendingPathComponent("evil.txt").path, withDestinationPath: "/etc/passwd")
        let output = scratch.appendingPathComponent("out")
        let run = try Self.quantize(["--to", "fp8", snapshot.path, "-o", output.path, "--no-check"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stderr.contains("note: skipped the side file evil.txt: it is a symbolic link to /etc/passwd, outside the input model and its Hugging Face cache"), "stderr: \(run.stderr)")
        let tokenizer = output.appendingPathComponent("tokenizer.json").path
        #expect((try? fm.destinationOfSymbolicLink(atPath: tokenizer)) == nil, "copied as a file, not a link")
        #expect(try Data(contentsOf: URL(fileURLWithPath: tokenizer)) == Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-llama/tokenizer.json"))))
        #expect(!fm.fileExists(atPath: output.appendingPathComponent("evil.txt").path))
    }

    // MARK: Hostile names

    /// A safetensors file with one tensor named by `nameLength` characters; `dataBytes` of data.
    static func longNameFile(at path: String, nameLength: Int, dataBytes: Int) throws {
        let name = String(repeating: "n", count: nameLength)
        var header = Array("{\"\(name)\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
        bytes += [UInt8](repeating: 0, count: dataBytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test("a 1 MB tensor name is shortened in inspect's table and in an error about it")
    func longNamesShortened() throws {
        let scratch = try Fixtures.temporaryDirectory("rel-longname")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let valid = scratch.appendingPathComponent("long.safetensors").path
        try Self.longNameFile(at: valid, nameLength: 1 << 20, dataBytes: 16)
        let inspect = try Self.quantize(["inspect", valid])
        #expect(inspect.status == 0, "stderr: \(inspect.stderr.prefix(300))")
        #expect(inspect.stdout.utf8.count < 20_000, "inspect printed \(inspect.stdout.utf8.count) bytes")
        #expect(inspect.stdout.contains("…(1048576 characters)…"))
        let broken = scratch.appendingPathComponent("broken.safetensors").path
        try Self.longNameFile(at: broken, nameLength: 1 << 20, dataBytes: 8)
        let error = try Self.quantize(["inspect", broken])
        #expect(error.status == 2)
        #expect(error.stderr.utf8.count < 2_000, "the error line is \(error.stderr.utf8.count) bytes")
        #expect(error.stderr.contains("…(1048576 characters)…"), "stderr: \(error.stderr.prefix(300))")
    }

    // MARK: Determinism

    @Test("output bytes are identical across runs and --threads counts",
          arguments: [["--to", "q4_k", "fixtures/tiny-llama.gguf"], ["--to", "int4", "fixtures/tiny-llama"],
                      ["--to", "fp8", "fixtures/tiny-llama", "--granularity", "block"]])
    func deterministicAcrossThreads(_ job: [String]) throws {
        let scratch = try Fixtures.temporaryDirectory("rel-threads")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let gguf = job[2].hasSuffix(".gguf")
        var digests: [[String: Data]] = []
        for (i, threads) in [nil, "1", "3", nil].enumerated() {
            let output = scratch.appendingPathComponent("out\(i)" + (gguf ? ".gguf" : ""))
            let run = try Self.quantize(job + ["-o", output.path, "--no-check", "--quiet"] + (threads.map { ["--threads", $0] } ?? []))
            #expect(run.status == 0, "stderr: \(run.stderr)")
            var files: [String: Data] = [:]
            if gguf {
                files["model"] = try Data(contentsOf: output)
            } else {
                for name in try FileManager.default.contentsOfDirectory(atPath: output.path) {
                    files[name] = try Data(contentsOf: output.appendingPathComponent(name))
                }
            }
            digests.append(files)
        }
        #expect(!digests[0].isEmpty)
        for other in digests.dropFirst() { #expect(other == digests[0], "bytes differ between runs or thread counts") }
    }

    @Test("--threads 0 is a usage error")
    func threadsValidated() throws {
        let run = try Self.quantize(["--to", "q8_0", "fixtures/tiny-llama.gguf", "--threads", "0", "--dry-run"])
        #expect(run.status == 2)
        #expect(run.stderr.contains("--threads must be positive"))
    }
}
