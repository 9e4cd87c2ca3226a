import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The staging/commit transaction every checkpoint output goes through: files are written into a
/// hidden staging directory beside the target, checked there, and only ``commit(_:)`` moves them
/// into place (an existing target is displaced first and restored if the move fails). Released or
/// discarded before that, it removes the staging directory, so a failed or interrupted run leaves
/// nothing at the target.
///
/// Reliability rules (formats/reliability.md):
/// - **Lock.** Opening a transaction takes an exclusive `flock` on `.NAME.lock` beside the target
///   and holds it until commit or discard, so a second concurrent run to the same output fails at
///   once with ``FormatError/Code/outputBusy``.
/// - **Stale staging.** Staging directories are named `.NAME.tmp-PID-RANDOM`; under the lock, the
///   ones whose owner process no longer runs (a killed run) are removed and listed in ``notes``.
/// - **Commit order.** Companion files (a report beside a single-file output) are staged and
///   synced with the output, moved into place first, and the output last; a companion without its
///   output is therefore the only inconsistent state an interrupt can leave, and the next run
///   removes it (``removeOrphanedCompanion(_:)``).
/// - **Interrupts.** Every open transaction is registered; ``discardAll()`` (a signal handler's
///   job) removes their staging directories and makes later commits fail.
/// - **Messages.** ``publicError(_:)`` rewrites staging paths in an error to the final names, so
///   no message names a staging path.
public final class OutputTransaction {
    /// What ``commit(_:)`` moves into place.
    public enum Staged: Sendable, Hashable {
        /// The staging directory itself becomes the target directory.
        case directory
        /// One staged file (by name) becomes the target file; the staging directory is removed.
        case file(named: String)
    }

    /// The final path (a file or a directory).
    public let target: String
    /// The hidden staging directory beside ``target``.
    public let stagingDirectory: String
    /// Whether ``commit(_:)`` has moved the output into place.
    public private(set) var isCommitted = false
    /// Whether ``commit(_:)`` may replace an existing target (checked under the lock, so two runs
    /// without `--force` cannot both write the same output).
    public var replacesExisting = true
    /// What opening the transaction cleaned up (stale staging directories of killed runs), as
    /// sentences for the user.
    public private(set) var notes: [String] = []
    /// The integrity manifest to write with the output (formats/integrity.md), or nil for none:
    /// its tool, scheme, options and inputs as the job sets them; ``commit(_:)`` fills in
    /// ``IntegrityManifest/files`` from the checksums recorded while the staged files were
    /// written (no second read) and stages it with the output — `quantize-manifest.json` inside a
    /// directory output, the companion `NAME.quantize-manifest.json` beside a file output, moved
    /// into place with the other companions, before the output.
    public var manifest: IntegrityManifest?
    /// The manifest written by ``commit(_:)``, once committed.
    public private(set) var writtenManifest: IntegrityManifest?

    private var isClosed = false
    private var companions: [(staged: String, final: String)] = []
    private let lockPath: String
    private let lockDescriptor: Int32
    private let parent: String
    private let isDirectoryOutput: Bool

    /// Creates the target's parent directory when missing, takes the target's lock, removes stale
    /// staging directories of dead runs and creates a fresh staging directory beside the target
    /// (`.NAME.tmp-PID-RANDOM`).
    /// - Parameter directory: whether the staging directory becomes the output (a model
    ///   directory) rather than holding one output file; only changes how ``publicText(_:)`` names
    ///   staged paths.
    /// - Throws: ``FormatError`` `.outputBusy` when another run holds the lock, `.writeFailed`
    ///   when the directories or the lock file cannot be created.
    public init(target: String, directory: Bool = false) throws(FormatError) {
        self.target = target
        self.isDirectoryOutput = directory
        let fm = FileManager.default
        let targetURL = URL(fileURLWithPath: target)
        let parent = targetURL.deletingLastPathComponent().path
        self.parent = parent
        if !fm.fileExists(atPath: parent) {
            do {
                try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw FormatError(.writeFailed, path: target, message: "cannot create the output's directory \(parent) (\(OutputTransaction.reason(error)))",
                                  remedy: "check the path and its permissions")
            }
        }
        let name = targetURL.lastPathComponent
        lockPath = parent + "/." + name + ".lock"
        lockDescriptor = try OutputTransaction.acquireLock(lockPath, target: target)
        notes = OutputTransaction.removeStaleStaging(in: parent, name: name)
        if !directory {
            // A manifest left without its output (an interrupt between the renames of a commit).
            let companion = target + IntegrityManifest.fileSuffix
            if !fm.fileExists(atPath: target), fm.fileExists(atPath: companion), (try? fm.removeItem(atPath: companion)) != nil {
                notes.append("removed \(companion), a manifest left without its output by an interrupted run")
            }
        }
        let staging = parent + "/." + name + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        if mkdir(staging, 0o755) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(lockPath)
            close(lockDescriptor)
            throw FormatError(.writeFailed, path: target, message: "cannot create a working directory beside the output in \(parent) (\(reason))",
                              remedy: errno == EROFS ? "the destination is read-only; choose another output with -o" : "check that \(parent) is writable")
        }
        stagingDirectory = staging
        OutputTransaction.registry.add(ObjectIdentifier(self), staging: staging, lock: lockPath)
    }

    /// The staged path of a file named `name` (a plain file name, no directories).
    public func path(_ name: String) -> String { stagingDirectory + "/" + name }

    /// Writes a whole small file into the staging directory, atomically and synced.
    public func write(_ bytes: [UInt8], named name: String) throws(FormatError) {
        do { try OutputFile.write(bytes, to: path(name)) } catch { throw publicError(error) }
    }

    /// Stages a companion file (say a report beside a single-file output) that ``commit(_:)``
    /// moves to `finalPath` just before the output itself.
    public func writeCompanion(_ bytes: [UInt8], stagedName: String, finalPath: String) throws(FormatError) {
        companions.append((path(stagedName), finalPath))
        try write(bytes, named: stagedName)
    }

    /// Registers a file already written into the staging directory (as `stagedName`) as a companion
    /// that ``commit(_:)`` moves to `finalPath` before the output (the shards of a split GGUF).
    public func addStagedCompanion(_ stagedName: String, finalPath: String) {
        companions.append((path(stagedName), finalPath))
    }

    /// Copies a file's contents into the staging directory under `name` (a symbolic link is
    /// followed: the copy is a regular file).
    /// - Throws: ``FormatError`` `.writeFailed` naming the source when the copy fails.
    /// The bytes stream through an ``OutputFile``, so the copy's SHA-256 (which is also the
    /// source's) is recorded for the manifest in the same pass.
    /// - Returns: the entry of the source (its path as given, size and SHA-256).
    @discardableResult
    public func copy(_ source: String, named name: String) throws(FormatError) -> IntegrityManifest.FileEntry {
        let resolved = URL(fileURLWithPath: source).resolvingSymlinksInPath().path
        let file: MappedFile
        do { file = try MappedFile(uncompressedPath: resolved) } catch {
            throw FormatError(.io, path: source, message: "cannot copy it to the output (\(error.message))", remedy: error.remedy)
        }
        // Errors while reading name the source; errors while writing name the output file.
        do {
            let out = try OutputFile(path: path(name))
            defer { out.discard() }
            try out.write(contentsOf: file)
            try out.commit()
            return IntegrityManifest.FileEntry(name: source, bytes: out.position, sha256: out.sha256 ?? "")
        } catch {
            throw publicError(error)
        }
    }

    /// Moves the staged output into place: an existing target is moved aside first, companions
    /// are moved into place, then the output; the displaced target is put back if a move fails and
    /// removed once the new output is in place.
    /// - Throws: ``FormatError`` `.writeFailed` when a rename fails or the run was interrupted,
    ///   `.outputExists` when the target appeared and ``replacesExisting`` is false.
    public func commit(_ staged: Staged) throws(FormatError) {
        guard !isClosed else {
            throw FormatError(.invalidArgument, path: target, message: "the output transaction is already committed or discarded")
        }
        let fm = FileManager.default
        let source: String
        switch staged {
        case .directory: source = stagingDirectory
        case .file(let name): source = path(name)
        }
        var recorded: [String] = []
        if let manifest { recorded = try stageManifest(manifest, staged) }
        try OutputTransaction.registry.whileOpen(ObjectIdentifier(self), target: target) { () throws(FormatError) in
            var displaced: String? = nil
            if fm.fileExists(atPath: target) || OutputTransaction.isLink(target) {
                guard replacesExisting else {
                    throw FormatError(.outputExists, path: target, message: "the output appeared while this run was writing it (another run finished first)",
                                      remedy: "pass --force to replace it, or name another output with -o")
                }
                displaced = stagingDirectory + ".old"
                try move(target, to: displaced!)
            }
            var placed: [String] = []
            do throws(FormatError) {
                for companion in companions {
                    try move(companion.staged, to: companion.final)
                    placed.append(companion.final)
                }
                try move(source, to: target)
            } catch {
                for path in placed { unlink(path) }
                if let displaced { _ = rename(displaced, target) }
                throw error
            }
            OutputTransaction.syncDirectory(parent)
            if let displaced { try? fm.removeItem(atPath: displaced) }
        }
        isCommitted = true
        isClosed = true
        if case .file = staged { try? fm.removeItem(atPath: stagingDirectory) }
        releaseLock()
        IntegrityLedger.forget(paths: recorded)
    }

    /// Fills in the manifest's files from the checksums recorded while they were written and
    /// stages it; returns the final paths of the files it lists.
    private func stageManifest(_ template: IntegrityManifest, _ staged: Staged) throws(FormatError) -> [String] {
        // (staged path, name in the manifest, final path)
        var listed: [(staged: String, name: String, final: String)] = []
        switch staged {
        case .directory:
            func walk(_ relative: String) {
                let directory = relative.isEmpty ? stagingDirectory : stagingDirectory + "/" + relative
                for entry in ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted() where !entry.hasPrefix(".") {
                    let name = relative.isEmpty ? entry : relative + "/" + entry
                    if name == IntegrityManifest.directoryFileName { continue }
                    var info = stat()
                    guard lstat(stagingDirectory + "/" + name, &info) == 0 else { continue }
                    if (info.st_mode & S_IFMT) == S_IFDIR { walk(name); continue }
                    listed.append((stagingDirectory + "/" + name, name, target + "/" + name))
                }
            }
            walk("")
        case .file(let name):
            let targetName = URL(fileURLWithPath: target).lastPathComponent
            listed.append((path(name), targetName, target))
            for companion in companions {
                listed.append((companion.staged, URL(fileURLWithPath: companion.final).lastPathComponent, companion.final))
            }
        }
        var entries: [(sequence: Int, entry: IntegrityManifest.FileEntry)] = []
        for file in listed {
            guard let record = IntegrityLedger.lookup(path: file.staged), let size = IntegrityLedger.identity(path: file.staged)?.size else {
                throw FormatError(.writeFailed, path: file.final,
                                  message: "no checksum was recorded while this file was written, so the integrity manifest cannot list it (an internal error)",
                                  remedy: "please report it; nothing was written")
            }
            entries.append((record.sequence, IntegrityManifest.FileEntry(name: file.name, bytes: size, sha256: record.sha256)))
        }
        var manifest = template
        manifest.files = entries.sorted { $0.sequence < $1.sequence }.map(\.entry)
        let bytes: [UInt8]
        do { bytes = try manifest.encoded() } catch {
            throw FormatError(.writeFailed, path: target + IntegrityManifest.fileSuffix, message: "cannot encode the integrity manifest (\(error))")
        }
        switch staged {
        case .directory: try write(bytes, named: IntegrityManifest.directoryFileName)
        case .file: try writeCompanion(bytes, stagedName: IntegrityManifest.directoryFileName, finalPath: target + IntegrityManifest.fileSuffix)
        }
        writtenManifest = manifest
        return listed.map(\.final)
    }

    /// Abandons the output: removes the staging directory and everything in it. Safe to call more
    /// than once; does nothing after ``commit(_:)``.
    public func discard() {
        guard !isClosed else { return }
        isClosed = true
        OutputTransaction.registry.remove(ObjectIdentifier(self))
        try? FileManager.default.removeItem(atPath: stagingDirectory)
        releaseLock()
    }

    deinit { discard() }

    /// `error` with every staging path in its path and sentences replaced by the final name (the
    /// staged output file by ``target``, a companion by its final path, the staging directory by
    /// the target for a directory output or its parent otherwise).
    public func publicError(_ error: FormatError) -> FormatError {
        var error = error
        error.path = publicText(error.path)
        error.message = publicText(error.message)
        if let remedy = error.remedy { error.remedy = publicText(remedy) }
        return error
    }

    /// `text` with staging paths replaced by final names (see ``publicError(_:)``).
    public func publicText(_ text: String) -> String {
        guard text.contains(stagingDirectory) else { return text }
        let name = URL(fileURLWithPath: target).lastPathComponent
        var text = text
        for companion in companions { text = text.replacingOccurrences(of: companion.staged, with: companion.final) }
        if !isDirectoryOutput { text = text.replacingOccurrences(of: path(name), with: target) }
        text = text.replacingOccurrences(of: stagingDirectory, with: isDirectoryOutput ? target : parent)
        // Temporary names of the writers inside the staging directory (`.NAME.partial-PID-N`,
        // `.NAME.tmp-PID-N`) read as the file they become.
        let range = NSRange(text.startIndex..., in: text)
        return OutputTransaction.temporaryName.stringByReplacingMatches(in: text, range: range, withTemplate: "/$1")
    }

    /// Removes a companion (say `out.gguf.quantize-report.json`) whose output `target` does not
    /// exist: what an interrupt between the two renames of ``commit(_:)`` leaves. Call it while
    /// the transaction is open (under the lock). Returns a note when something was removed.
    public func removeOrphanedCompanion(_ companion: String) -> String? {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: target), fm.fileExists(atPath: companion) else { return nil }
        guard (try? fm.removeItem(atPath: companion)) != nil else { return nil }
        return "removed \(companion), a report left without its output by an interrupted run"
    }

    // MARK: Interrupts

    /// Discards every open transaction of this process (removes their staging directories and
    /// locks; later commits fail). For a signal handler: safe to call from any thread.
    /// - Returns: how many were discarded.
    @discardableResult
    public static func discardAll() -> Int { registry.discardAll() }

    /// Whether a transaction of this process has committed an output.
    public static var hasCommitted: Bool { registry.hasCommitted }

    // MARK: Helpers

    private func move(_ from: String, to: String) throws(FormatError) {
        if rename(from, to) != 0 {
            let code = errno
            throw FormatError(.writeFailed, path: to, message: "cannot move the finished output into place (\(String(cString: strerror(code))))",
                              remedy: code == ENOSPC ? "free disk space and run again" : nil)
        }
    }

    private func releaseLock() {
        unlink(lockPath)
        close(lockDescriptor)
    }

    private static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }

    private static func isLink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Opens and locks `path`; retries when the file was unlinked by the previous holder between
    /// its open and our lock (the inode at the path is the one locked).
    private static func acquireLock(_ path: String, target: String) throws(FormatError) -> Int32 {
        for _ in 0..<8 {
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            if fd < 0 {
                let code = errno
                throw FormatError(.writeFailed, path: target, message: "cannot create the output's lock file beside it (\(String(cString: strerror(code))))",
                                  remedy: code == EROFS ? "the destination is read-only; choose another output with -o" : "check that the output's directory is writable")
            }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                close(fd)
                throw FormatError(.outputBusy, path: target, message: "another quantize run is writing this output right now",
                                  remedy: "wait for it to finish, or name another output with -o")
            }
            var held = stat(), current = stat()
            if fstat(fd, &held) == 0, stat(path, &current) == 0, held.st_ino == current.st_ino, held.st_dev == current.st_dev {
                return fd
            }
            close(fd)
        }
        throw FormatError(.outputBusy, path: target, message: "another quantize run keeps taking this output's lock",
                          remedy: "wait for it to finish, or name another output with -o")
    }

    /// Whether process `pid` runs (or exists under another user).
    static func processIsAlive(_ pid: Int32) -> Bool {
        pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)
    }

    /// Removes `.NAME.tmp-PID-…` entries in `directory` whose PID no longer runs.
    private static func removeStaleStaging(in directory: String, name: String) -> [String] {
        let prefix = "." + name + ".tmp-"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var notes: [String] = []
        for entry in entries.sorted() where entry.hasPrefix(prefix) {
            guard let pid = Int32(entry.dropFirst(prefix.count).prefix { $0 != "-" }), pid != getpid(), !processIsAlive(pid) else { continue }
            if (try? FileManager.default.removeItem(atPath: directory + "/" + entry)) != nil {
                notes.append("removed \(directory)/\(entry), the leftover of an interrupted run (process \(pid) no longer runs)")
            }
        }
        return notes
    }

    private static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// The open transactions of this process, by staging path, for ``discardAll()``.
    private final class Registry: @unchecked Sendable {
        private let lock = NSLock()
        private var open: [ObjectIdentifier: (staging: String, lock: String)] = [:]
        private var interrupted = false
        private var committed = false

        var hasCommitted: Bool {
            lock.lock(); defer { lock.unlock() }
            return committed
        }

        func add(_ id: ObjectIdentifier, staging: String, lock path: String) {
            lock.lock(); defer { lock.unlock() }
            open[id] = (staging, path)
        }

        func remove(_ id: ObjectIdentifier) {
            lock.lock(); defer { lock.unlock() }
            open[id] = nil
        }

        /// Runs `body` (the renames of a commit) unless the process was interrupted; a signal
        /// arriving meanwhile waits for it.
        func whileOpen(_ id: ObjectIdentifier, target: String, _ body: () throws(FormatError) -> Void) throws(FormatError) {
            lock.lock(); defer { lock.unlock() }
            guard !interrupted, open[id] != nil else {
                throw FormatError(.writeFailed, path: target, message: "the run was interrupted; nothing was written")
            }
            try body()
            open[id] = nil
            committed = true
        }

        func discardAll() -> Int {
            lock.lock(); defer { lock.unlock() }
            interrupted = true
            let count = open.count
            for entry in open.values {
                try? FileManager.default.removeItem(atPath: entry.staging)
                unlink(entry.lock)
            }
            open.removeAll()
            return count
        }
    }

    private static let registry = Registry()
    nonisolated(unsafe) private static let temporaryName = try! NSRegularExpression(pattern: #"/\.([^/\s]+)\.(?:partial|tmp)-[0-9]+-[0-9]+"#)
}

extension FormatError.Code {
    /// Another run holds the output's lock.
    public static let outputBusy: Self = "outputBusy"
    /// The output exists and may not be replaced.
    public static let outputExists: Self = "outputExists"
}

extension OutputFile {
    /// Writes a whole small file atomically (temporary file, sync, rename).
    /// - Parameter overwrite: whether an existing file at `path` may be replaced.
    public static func write(_ bytes: [UInt8], to path: String, overwrite: Bool = false) throws(FormatError) {
        let file = try OutputFile(path: path, overwrite: overwrite)
        try file.write(bytes)
        try file.commit()
    }
}
