import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file written atomically: bytes go to a temporary file in the destination's directory, and
/// only ``commit()`` renames it into place, so an interrupted run leaves nothing half-written.
///
/// Writes are gathered into chunks of ``chunkBytes``. A file that fills more than one chunk is
/// written behind the producer: each full chunk is written to the kernel on one thread and hashed
/// on another while the caller fills the next (``WriteBehind``: at most 8 chunks in flight, the
/// disk's writeback started as the file grows so the final fsync is short). A smaller file is
/// written and hashed at ``commit()``. If the object is released without ``commit()``, the
/// temporary file is removed.
public final class OutputFile {
    /// The final path.
    public let path: String
    /// The temporary path the bytes are written to until ``commit()``.
    public let temporaryPath: String
    /// Bytes written so far (the offset of the next byte).
    public private(set) var position: Int = 0
    /// The SHA-256 of the whole file as 64 lowercase hex digits, once ``commit()`` has put it in
    /// place; computed while the bytes stream through ``write(_:)-(UnsafeRawBufferPointer)``, so
    /// an integrity manifest needs no second read.
    public private(set) var sha256: String?

    /// The size of the chunks bytes are gathered into before they are written (4 MiB).
    public static let chunkBytes = 4 << 20

    /// The digest of the bytes written inline (before a ``WriteBehind`` stage takes over).
    private var hasher = Crypto.SHA256()
    /// The background writer and digest, made when the first chunk fills.
    private var stage: WriteBehind?

    private var descriptor: Int32
    private var buffer: UnsafeMutableRawBufferPointer
    private var buffered = 0
    /// Bytes handed to the kernel or to ``stage`` (the file offset of ``buffer``'s first byte).
    private var handedOver = 0
    private var finished = false

    /// Creates the temporary file next to `path`.
    /// - Parameter overwrite: when false, an existing file at `path` is an error.
    public init(path: String, overwrite: Bool = false) throws(FormatError) {
        self.path = path
        if !overwrite, FileManager.default.fileExists(atPath: path) {
            throw FormatError(.writeFailed, path: path, message: "the output already exists",
                              remedy: "choose another output path or pass --force to replace it")
        }
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        temporaryPath = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if descriptor < 0 {
            let reason = String(cString: strerror(errno))
            buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 64)
            finished = true
            throw FormatError(.writeFailed, path: path, message: "cannot create a temporary file in \(directory) (\(reason))",
                              remedy: "check that the directory exists and is writable")
        }
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: OutputFile.chunkBytes, alignment: 4096)
    }

    /// Appends raw bytes.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(FormatError) {
        var done = 0
        while done < bytes.count {
            let piece = min(buffer.count - buffered, bytes.count - done)
            (buffer.baseAddress! + buffered).copyMemory(from: bytes.baseAddress! + done, byteCount: piece)
            buffered += piece
            done += piece
            if buffered == buffer.count { try handOverChunk() }
        }
        position += bytes.count
    }

    /// Hands the full buffer to the write-behind stage (made on the first call) and takes a free one.
    private func handOverChunk() throws(FormatError) {
        let stage: WriteBehind
        if let existing = self.stage {
            stage = existing
        } else {
            stage = WriteBehind(descriptor: descriptor, path: path, hasher: hasher, firstBuffer: buffer)
            self.stage = stage
        }
        try stage.checkFailure()
        stage.submit(buffer, count: buffered, at: handedOver)
        handedOver += buffered
        buffered = 0
        buffer = stage.takeBuffer()
    }

    /// Appends the bytes of an array.
    public func write(_ bytes: [UInt8]) throws(FormatError) {
        var failure: FormatError?
        bytes.withUnsafeBytes { raw in
            do throws(FormatError) { try write(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Appends a little-endian fixed-width integer.
    public func write<T: FixedWidthInteger>(integer value: T) throws(FormatError) {
        var little = value.littleEndian
        var failure: FormatError?
        withUnsafeBytes(of: &little) { raw in
            do throws(FormatError) { try write(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Appends every byte of `file`, read through the SIGBUS guard in 4 MiB pieces (a file cut
    /// short while it is copied is an error, not a crash).
    /// - Throws: ``FormatError`` `.truncated` naming `file` when it shrank, or a write error.
    public func write(contentsOf file: MappedFile) throws(FormatError) {
        let piece = 4 << 20
        let bounce = UnsafeMutableRawPointer.allocate(byteCount: piece, alignment: 64)
        defer { bounce.deallocate() }
        var offset = 0
        while offset < file.count {
            let end = min(file.count, offset + piece)
            try file.copyGuarded(offset..<end, into: bounce)
            try write(UnsafeRawBufferPointer(start: bounce, count: end - offset))
            offset = end
        }
    }

    /// Appends `count` zero bytes (padding).
    public func writeZeros(_ count: Int) throws(FormatError) {
        precondition(count >= 0)
        var left = count
        while left > 0 {
            let chunk = min(left, 4096)
            try write(UnsafeRawBufferPointer(start: OutputFile.zeroPage, count: chunk))
            left -= chunk
        }
    }

    nonisolated(unsafe) private static let zeroPage: UnsafeRawPointer = {
        let page = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
        page.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        return UnsafeRawPointer(page)
    }()

    /// Writes buffered bytes to the kernel (waiting for the chunks still being written behind).
    public func flush() throws(FormatError) {
        if let stage {
            if buffered > 0 {
                try stage.checkFailure()
                stage.submit(buffer, count: buffered, at: handedOver)
                handedOver += buffered
                buffered = 0
                buffer = stage.takeBuffer()
            }
            try stage.drain()
            return
        }
        guard buffered > 0 else { return }
        let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<buffered])
        try OutputFile.writeFully(bytes, descriptor: descriptor, at: handedOver, path: path)
        hasher.update(bufferPointer: bytes)
        handedOver += buffered
        buffered = 0
    }

    /// Flushes, syncs and renames the temporary file to ``path``.
    public func commit() throws(FormatError) {
        guard !finished else { return }
        try flush()
        if fsync(descriptor) != 0 {
            throw FormatError(.writeFailed, path: path, message: "cannot sync the output to disk (\(String(cString: strerror(errno))))")
        }
        let identity = IntegrityLedger.identity(descriptor: descriptor)
        close(descriptor)
        finished = true
        if rename(temporaryPath, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporaryPath)
            throw FormatError(.writeFailed, path: path, message: "cannot move the finished output into place (\(reason))")
        }
        let digest = stage?.digest() ?? IntegrityManifest.hex(hasher.finalize())
        sha256 = digest
        // For the manifest of the transaction this file is staged in (no second read).
        if let identity { IntegrityLedger.record(identity, sha256: digest) }
    }

    /// Abandons the output: closes and removes the temporary file. Safe to call more than once.
    public func discard() {
        guard !finished else { return }
        finished = true
        try? stage?.drain()  // nothing may still write to the descriptor
        close(descriptor)
        unlink(temporaryPath)
    }

    /// Writes all of `bytes` at `offset` of `descriptor` (`pwrite`, retried on EINTR and short writes).
    static func writeFully(_ bytes: UnsafeRawBufferPointer, descriptor: Int32, at offset: Int, path: String) throws(FormatError) {
        var done = 0
        while done < bytes.count {
            let n = FaultInjection.beforeWrite() ? -1 : pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                let reason = String(cString: strerror(code))
                throw FormatError(.writeFailed, path: path, offset: offset + done,
                                  message: "cannot write the output (\(reason))",
                                  remedy: code == ENOSPC ? "free disk space and run again" : nil)
            }
            done += n
        }
    }

    deinit {
        discard()
        // After the first chunk the stage owns every buffer (this one included) and frees them.
        if stage == nil { buffer.deallocate() }
    }
}

/// Test hooks for fault injection in the writers, read once from the environment (a test runs
/// the command line with them set; they cost one load per write when unset):
/// - `QUANTIZE_FAULT_FAIL_WRITE=N`: the Nth `write(2)` of output bytes in this process fails
///   with `ENOSPC` (a disk that fills exactly there).
/// - `QUANTIZE_FAULT_PAUSE_WRITE=N`: the Nth write first sleeps 60 seconds (to interrupt a run
///   while it writes).
enum FaultInjection {
    private static let failAt = ProcessInfo.processInfo.environment["QUANTIZE_FAULT_FAIL_WRITE"].flatMap(Int.init)
    private static let pauseAt = ProcessInfo.processInfo.environment["QUANTIZE_FAULT_PAUSE_WRITE"].flatMap(Int.init)
    private static let isActive = failAt != nil || pauseAt != nil
    nonisolated(unsafe) private static var writes = 0
    private static let lock = NSLock()

    /// Counts a write; true (with `errno` set) when this one must fail.
    static func beforeWrite() -> Bool {
        guard isActive else { return false }
        lock.lock()
        writes += 1
        let n = writes
        lock.unlock()
        if n == pauseAt { sleep(60) }
        if n == failAt {
            errno = ENOSPC
            return true
        }
        return false
    }
}
