import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The staging/commit transaction every checkpoint output goes through: files are written into a
/// hidden staging directory beside the target, checked there, and only ``commit(_:)`` moves them
/// into place with one rename (an existing target is displaced first and restored if the move
/// fails). Released or discarded before that, it removes the staging directory, so a failed or
/// interrupted run leaves nothing at the target.
///
/// Sinks (``CheckpointSink``) stage their files in a transaction; the caller may add its own files
/// (a report) before committing.
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

    private var isClosed = false

    /// Creates the target's parent directory when missing and a fresh staging directory beside
    /// the target (`.NAME.tmp-PID-RANDOM`).
    /// - Throws: ``FormatError`` `.writeFailed` when either cannot be created.
    public init(target: String) throws(FormatError) {
        self.target = target
        let fm = FileManager.default
        let targetURL = URL(fileURLWithPath: target)
        let parent = targetURL.deletingLastPathComponent().path
        if !fm.fileExists(atPath: parent) {
            do {
                try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw FormatError(.writeFailed, path: target, message: "cannot create the output's directory \(parent) (\(error.localizedDescription))",
                                  remedy: "check the path and its permissions")
            }
        }
        let staging = parent + "/." + targetURL.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try fm.createDirectory(atPath: staging, withIntermediateDirectories: false)
        } catch {
            throw FormatError(.writeFailed, path: staging, message: "cannot create a working directory beside the output (\(error.localizedDescription))")
        }
        stagingDirectory = staging
    }

    /// The staged path of a file named `name` (a plain file name, no directories).
    public func path(_ name: String) -> String { stagingDirectory + "/" + name }

    /// Writes a whole small file into the staging directory, atomically.
    public func write(_ bytes: [UInt8], named name: String) throws(FormatError) {
        try OutputFile.write(bytes, to: path(name))
    }

    /// Copies a file into the staging directory under `name`.
    /// - Throws: ``FormatError`` `.writeFailed` naming the source when the copy fails.
    public func copy(_ source: String, named name: String) throws(FormatError) {
        do {
            try FileManager.default.copyItem(atPath: source, toPath: path(name))
        } catch {
            throw FormatError(.writeFailed, path: source, message: "cannot copy it to the output (\(error.localizedDescription))")
        }
    }

    /// Moves the staged output into place: an existing target is moved aside first, put back if
    /// the move fails, and removed once the new output is in place.
    /// - Throws: ``FormatError`` `.writeFailed` when a rename fails (nothing is left at the target
    ///   that was not there before).
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
        var displaced: String? = nil
        if fm.fileExists(atPath: target) {
            displaced = stagingDirectory + ".old"
            try OutputTransaction.move(target, to: displaced!)
        }
        do {
            try OutputTransaction.move(source, to: target)
        } catch {
            if let displaced { try? OutputTransaction.move(displaced, to: target) }
            throw error
        }
        isCommitted = true
        isClosed = true
        if let displaced { try? fm.removeItem(atPath: displaced) }
        if case .file = staged { try? fm.removeItem(atPath: stagingDirectory) }
    }

    /// Abandons the output: removes the staging directory and everything in it. Safe to call more
    /// than once; does nothing after ``commit(_:)``.
    public func discard() {
        guard !isClosed else { return }
        isClosed = true
        try? FileManager.default.removeItem(atPath: stagingDirectory)
    }

    deinit { discard() }

    private static func move(_ from: String, to: String) throws(FormatError) {
        if rename(from, to) != 0 {
            throw FormatError(.writeFailed, path: to, message: "cannot move \(from) into place (\(String(cString: strerror(errno))))")
        }
    }
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
