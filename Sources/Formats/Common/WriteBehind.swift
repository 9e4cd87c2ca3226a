import CKernels
import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The two stages behind a large ``OutputFile``: one thread writes each filled chunk to the file
/// (and starts its writeback), another hashes it, while the producer fills the next chunk.
///
/// Chunks come from a pool of at most ``slots`` buffers of ``OutputFile/chunkBytes``; a producer
/// that outruns the disk or the digest waits for a buffer, so memory stays flat (32 MiB). Chunks
/// are written at their offsets and hashed in the order they were handed over, so the file and
/// its SHA-256 are those of the bytes in order. Writeback: every chunk's pages are handed to the
/// disk as soon as they are written (`sync_file_range` start), and the writer waits for the pages
/// more than ``writebackWindow`` behind it, so dirty memory stays bounded and the final `fsync`
/// has only the last window (and the metadata) left to do.
final class WriteBehind: @unchecked Sendable {
    /// Buffers in flight at most (each ``OutputFile/chunkBytes``).
    static let slots = 8
    /// Bytes the writer lets the disk fall behind before it waits (`sync_file_range` wait).
    static let writebackWindow = 64 << 20

    private let descriptor: Int32
    private let path: String
    private let condition = NSCondition()
    private var free: [UnsafeMutableRawBufferPointer] = []
    private var owned: [UnsafeMutableRawBufferPointer] = []
    private var pendingStages: [UnsafeMutableRawPointer: Int] = [:]
    private var failure: FormatError?
    private let writeQueue = DispatchQueue(label: "quantize.output-write", qos: .userInitiated)
    private let digestQueue = DispatchQueue(label: "quantize.output-digest", qos: .userInitiated)
    private let group = DispatchGroup()
    /// Touched on the digest queue only, or after ``drain()``.
    private var hasher: Crypto.SHA256
    /// Touched on the write queue only: the offset up to which writeback has been waited for.
    private var waitedUpTo = 0
    /// Touched on the write queue only: whether the descriptor writes around the page cache.
    private var direct = false
    private var finalized: String?

    /// A stage for `descriptor`, continuing the digest `hasher` (of the bytes written before it),
    /// taking over `firstBuffer` (a buffer of ``OutputFile/chunkBytes``) into its pool.
    init(descriptor: Int32, path: String, hasher: Crypto.SHA256, firstBuffer: UnsafeMutableRawBufferPointer) {
        self.descriptor = descriptor
        self.path = path
        self.hasher = hasher
        owned = [firstBuffer]
        // Whole aligned chunks go to the disk by DMA from the chunk buffers (O_DIRECT): the
        // kernel's copy into fresh page-cache pages was the largest single cost of a job here
        // (a quarter of its CPU time on the 1.4 GB q8_0 run). A filesystem without O_DIRECT
        // (tmpfs) refuses the flag and the file stays buffered.
        direct = qk_set_direct_io(descriptor, 1) == 0
    }

    /// A free chunk buffer; waits while all ``slots`` are in flight.
    func takeBuffer() -> UnsafeMutableRawBufferPointer {
        condition.lock()
        defer { condition.unlock() }
        while free.isEmpty {
            if owned.count < WriteBehind.slots {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: OutputFile.chunkBytes, alignment: 4096)
                owned.append(buffer)
                return buffer
            }
            condition.wait()
        }
        return free.removeLast()
    }

    /// Writes the first `count` bytes of `buffer` at `offset` and adds them to the digest, in the
    /// background; `buffer` returns to the pool when both are done.
    func submit(_ buffer: UnsafeMutableRawBufferPointer, count: Int, at offset: Int) {
        condition.lock()
        pendingStages[buffer.baseAddress!] = 2
        condition.unlock()
        let chunk = Chunk(buffer: buffer, bytes: UnsafeRawBufferPointer(rebasing: buffer[0..<count]), offset: offset)
        group.enter()
        group.enter()
        writeQueue.async {
            self.write(chunk)
            self.stageDone(chunk.buffer)
            self.group.leave()
        }
        digestQueue.async {
            self.hasher.update(bufferPointer: chunk.bytes)
            self.stageDone(chunk.buffer)
            self.group.leave()
        }
    }

    /// Throws the first write error met so far, if any.
    func checkFailure() throws(FormatError) {
        condition.lock()
        let failure = self.failure
        condition.unlock()
        if let failure { throw failure }
    }

    /// Waits until every chunk handed over is written and hashed; throws the first write error.
    func drain() throws(FormatError) {
        group.wait()
        try checkFailure()
    }

    /// The SHA-256 of every byte handed over, as 64 lowercase hex digits (after ``drain()``).
    func digest() -> String {
        group.wait()
        if let finalized { return finalized }
        let hex = IntegrityManifest.hex(hasher.finalize())
        finalized = hex
        return hex
    }

    private struct Chunk: @unchecked Sendable {
        var buffer: UnsafeMutableRawBufferPointer
        var bytes: UnsafeRawBufferPointer
        var offset: Int
    }

    private func stageDone(_ buffer: UnsafeMutableRawBufferPointer) {
        condition.lock()
        let left = (pendingStages[buffer.baseAddress!] ?? 1) - 1
        if left == 0 {
            pendingStages[buffer.baseAddress!] = nil
            free.append(buffer)
            condition.signal()
        } else {
            pendingStages[buffer.baseAddress!] = left
        }
        condition.unlock()
    }

    private func write(_ chunk: Chunk) {
        condition.lock()
        let failed = failure != nil
        condition.unlock()
        guard !failed else { return }  // after a failure nothing more is written
        let page = 4096
        if direct, chunk.offset % page != 0 || chunk.bytes.count % page != 0 || Int(bitPattern: chunk.bytes.baseAddress) % page != 0 {
            setBuffered()  // a partial chunk (the file's tail, a flush): through the page cache from here on
        }
        do throws(FormatError) {
            if direct {
                let n = FaultInjection.beforeWrite() ? -1 : pwrite(descriptor, chunk.bytes.baseAddress!, chunk.bytes.count, off_t(chunk.offset))
                let code = errno
                if n < 0, code != EINVAL, code != EINTR {
                    throw FormatError(.writeFailed, path: path, offset: chunk.offset,
                                      message: "cannot write the output (\(String(cString: strerror(code))))",
                                      remedy: code == ENOSPC ? "free disk space and run again" : nil)
                }
                if n != chunk.bytes.count {
                    // EINVAL: the device wants another alignment; a short write: the buffered
                    // path writes the chunk again from its start.
                    setBuffered()
                    try OutputFile.writeFully(chunk.bytes, descriptor: descriptor, at: chunk.offset, path: path)
                }
            } else {
                try OutputFile.writeFully(chunk.bytes, descriptor: descriptor, at: chunk.offset, path: path)
            }
        } catch {
            condition.lock()
            if failure == nil { failure = error }
            condition.unlock()
            return
        }
        guard !direct else { return }  // nothing is left in the page cache to write back
        // Advisory: an error here only means the final fsync does the work.
        let end = chunk.offset + chunk.bytes.count
        _ = qk_writeback_start(descriptor, Int64(chunk.offset), Int64(chunk.bytes.count))
        if end - waitedUpTo >= 2 * WriteBehind.writebackWindow {
            let upTo = end - WriteBehind.writebackWindow
            _ = qk_writeback_wait(descriptor, Int64(waitedUpTo), Int64(upTo - waitedUpTo))
            waitedUpTo = upTo
        }
    }

    private func setBuffered() {
        _ = qk_set_direct_io(descriptor, 0)
        direct = false
    }

    deinit {
        group.wait()
        owned.forEach { $0.deallocate() }
    }
}
