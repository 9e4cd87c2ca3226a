import Foundation
import Testing
import TestSupport

/// Runs the built `quantize` binary (built by `swift build --build-tests`, which builds every product).
struct CLIRun {
    var status: Int32
    var stdout: String
    var stderr: String

    static func fit(_ arguments: [String]) throws -> CLIRun {
        let binary = Fixtures.repositoryRoot.appendingPathComponent(".build/debug/quantize")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build the quantize product first")
        let process = Process()
        process.executableURL = binary
        process.arguments = ["fit"] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLIRun(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }
}

@Suite("quantize fit command line", .serialized)
struct FitCLITests {
    @Test("--json on an NVL pair prints one document with the documented keys and exits 0")
    func jsonKeys() throws {
        let run = try CLIRun.fit(["llama-3.1-70b", "--gpu", "h100-nvl", "--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(object["fits"] as? Bool == true)
        let memory = try #require(object["memory"] as? [String: Any])
        for key in ["weights", "kvCache", "overhead", "total", "available"] { #expect(memory[key] is Double || memory[key] is Int, "memory.\(key)") }
        let decode = try #require(object["decode"] as? [String: Any])
        #expect(decode["tokensPerSecondPerUser"] != nil)
        #expect(decode["tokensPerSecondTotal"] != nil)
        let prefill = try #require(object["prefill"] as? [String: Any])
        #expect(prefill["ttftSeconds"] != nil)
        #expect(object["maxConcurrency"] is Int)
        #expect(object["costPerMillionTokens"] is Double)
    }

    @Test("a configuration that does not fit exits 1 and still prints its JSON")
    func doesNotFitExitsOne() throws {
        let run = try CLIRun.fit(["llama-3.1-70b", "--gpu", "h100-sxm-80gb", "--json"])
        #expect(run.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(object["fits"] as? Bool == false)
        #expect(object["offload"] is [Any], "offload plans are listed when the weights do not fit")
    }

    @Test("unknown hardware exits 2 with the known names on stderr and nothing on stdout")
    func unknownHardwareExitsTwo() throws {
        let run = try CLIRun.fit(["llama-3.1-70b", "--gpu", "h1000", "--json"])
        #expect(run.status == 2)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("h100-sxm-80gb"))
    }

    @Test("a config.json-only directory is planned without weights")
    func configDirectory() throws {
        let run = try CLIRun.fit([Fixtures.path("fit/llama-3.1-8b"), "--gpu", "l4", "--variant", "int4", "--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout.contains("\"parameterCount\" : 8030261248"))
    }
}
