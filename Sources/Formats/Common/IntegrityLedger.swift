import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The SHA-256 of every file this process committed through ``OutputFile``, keyed by the file's
/// identity on disk (device, inode, size, modification time), so an ``OutputTransaction`` can
/// list the checksums of its staged files at commit without reading them again and without every
/// writer handing its hash up by hand. A rename keeps the identity, so a file staged under a
/// temporary name and moved (a shard renamed into place, a compressed file replacing its
/// original) is still found; a file changed or replaced by anything else is not, and the
/// transaction then refuses to write a manifest for it (formats/integrity.md).
enum IntegrityLedger {
    /// A file's identity on disk.
    struct Identity: Hashable {
        var device: UInt64
        var inode: UInt64
        var size: Int
        var modifiedSeconds: Int
        var modifiedNanoseconds: Int
    }

    /// What was recorded for one file: its checksum and when it was committed (order of writing).
    struct Record {
        var sha256: String
        var sequence: Int
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var records: [Identity: Record] = [:]
    nonisolated(unsafe) private static var next = 0

    /// The identity of the file open as `descriptor`, or nil when it cannot be read.
    static func identity(descriptor: Int32) -> Identity? {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return nil }
        return identity(info)
    }

    /// The identity of the file at `path` (not following a final symbolic link), or nil.
    static func identity(path: String) -> Identity? {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return identity(info)
    }

    private static func identity(_ info: stat) -> Identity {
        Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int(info.st_size),
                 modifiedSeconds: Int(info.st_mtim.tv_sec), modifiedNanoseconds: Int(info.st_mtim.tv_nsec))
    }

    /// Records the checksum of a committed file.
    static func record(_ identity: Identity, sha256: String) {
        lock.lock(); defer { lock.unlock() }
        next += 1
        records[identity] = Record(sha256: sha256, sequence: next)
    }

    /// The record of the file at `path`, if this process wrote it as it is now.
    static func lookup(path: String) -> Record? {
        guard let identity = identity(path: path) else { return nil }
        lock.lock(); defer { lock.unlock() }
        return records[identity]
    }

    /// Forgets the records of these files (a committed transaction's), so the ledger stays small.
    static func forget(paths: [String]) {
        let identities = paths.compactMap { identity(path: $0) }
        lock.lock(); defer { lock.unlock() }
        for identity in identities { records[identity] = nil }
    }
}
