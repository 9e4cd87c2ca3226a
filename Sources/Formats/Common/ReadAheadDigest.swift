import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The SHA-256 of one input file computed on a thread of its own, which reads the file from its
/// first byte to its last with `pread(2)` while the job works (formats/integrity.md).
///
/// The digest runs in file order whatever order the job reads its tensors in, so every byte is
/// hashed once and the job never waits for the hash. It stays at most ``lead`` bytes ahead of the
/// furthest offset the job has asked for (``allow(through:)``), so on a cold cache it is the
/// job's readahead (the pages it reads are in the page cache when the job copies them) without
/// pushing them out again on an input larger than memory. `pread` needs no SIGBUS guard: a file
/// that shrinks gives a short read, reported as `.truncated`.
public final class ReadAheadDigest: @unchecked Sendable {
    /// The file's path as the job names it.
    public let path: String
    /// The file's size when the job opened it (the digest covers exactly these bytes).
    public let byteCount: Int
    /// How far the digest may read past the furthest byte the job has asked for, by default.
    public static let defaultLead = 256 << 20
    /// How far this digest may read past the furthest byte the job has asked for.
    public let lead: Int
    /// The size of each read.
    static let readBytes = 4 << 20

    private let descriptor: Int32
    private let condition = NSCondition()
    private var allowedThrough = 0
    private var cancelled = false
    private var outcome: Result<IntegrityManifest.FileEntry, FormatError>?
    /// Bytes hashed so far (read on any thread under the lock).
    private var hashed = 0

    /// Opens `path` (of `byteCount` bytes) and starts hashing it on its own thread, at most `lead`
    /// bytes ahead of ``allow(through:)``.
    /// - Throws: ``FormatError`` `.io` when the file cannot be opened.
    public init(path: String, byteCount: Int, lead: Int = ReadAheadDigest.defaultLead) throws(FormatError) {
        self.path = path
        self.byteCount = byteCount
        self.lead = max(lead, ReadAheadDigest.readBytes)
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        if descriptor < 0 {
            throw FormatError(.io, path: path, message: "cannot open the input to hash it (\(String(cString: strerror(errno))))")
        }
        #if canImport(Glibc)
        _ = posix_fadvise(descriptor, 0, 0, POSIX_FADV_SEQUENTIAL)
        #endif
        let thread = Thread { [self] in run() }
        thread.name = "quantize.input-digest"
        thread.start()
    }

    /// The job is about to read the file up to `offset` (exclusive): the digest may read up to
    /// ``lead`` bytes beyond it.
    public func allow(through offset: Int) {
        condition.lock()
        if offset > allowedThrough {
            allowedThrough = offset
            condition.broadcast()
        }
        condition.unlock()
    }

    /// Bytes hashed so far.
    public var bytesHashed: Int {
        condition.lock()
        defer { condition.unlock() }
        return hashed
    }

    /// Lets the digest read to the end, waits for it and returns the file's entry.
    /// - Throws: ``FormatError`` `.truncated` when the file shrank while it was read, `.io`.
    public func finish() throws(FormatError) -> IntegrityManifest.FileEntry {
        allow(through: Int.max - lead)
        condition.lock()
        while outcome == nil { condition.wait() }
        let outcome = self.outcome!
        condition.unlock()
        return try outcome.get()
    }

    /// Stops the digest (a job that failed); ``finish()`` must not be called afterwards.
    public func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }

    private func run() {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: ReadAheadDigest.readBytes, alignment: 4096)
        defer { buffer.deallocate() }
        var hasher = Crypto.SHA256()
        var position = 0
        var failure: FormatError? = nil
        reading: while position < byteCount {
            condition.lock()
            while !cancelled && position >= allowedThrough &+ lead { condition.wait() }
            let stop = cancelled
            condition.unlock()
            if stop {
                failure = FormatError(.io, path: path, message: "the digest was stopped before the end of the file")
                break reading
            }
            let want = min(ReadAheadDigest.readBytes, byteCount - position)
            let n = pread(descriptor, buffer, want, off_t(position))
            if n < 0 {
                if errno == EINTR { continue }
                failure = FormatError(.io, path: path, offset: position, message: "cannot read the input (\(String(cString: strerror(errno))))")
                break reading
            }
            if n == 0 {
                failure = FormatError(.truncated, path: path, offset: position,
                                      message: "the file shrank while it was being read (it is \(position) bytes now, it was \(byteCount))",
                                      remedy: "nothing was written; let the download or copy finish and run again")
                break reading
            }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(start: buffer, count: n))
            position += n
            condition.lock()
            hashed = position
            condition.unlock()
        }
        close(descriptor)
        let result: Result<IntegrityManifest.FileEntry, FormatError>
        if let failure {
            result = .failure(failure)
        } else {
            result = .success(IntegrityManifest.FileEntry(name: path, bytes: byteCount, sha256: IntegrityManifest.hex(hasher.finalize())))
        }
        condition.lock()
        outcome = result
        condition.broadcast()
        condition.unlock()
    }
}
