import CKernels
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file mapped read-only into memory, unmapped when the last reference goes away.
///
/// Tensor data is read through ``bytes`` without copying: the kernel pages it in on demand, so a
/// checkpoint of hundreds of GB costs only the header pages until its tensors are touched.
///
/// A compressed container (formats/compressed.md) opens transparently: ``bytes`` are then the
/// original file's, its header readable at once and each range decompressed by ``load(_:)``
/// (which the readers' `data(for:)` call) into memory this object owns.
public final class MappedFile: @unchecked Sendable {
    /// The path the file was opened from.
    public let path: String
    /// The whole file (the original file's bytes for a container). Empty for a zero-length file.
    /// Valid as long as this object lives.
    public let bytes: UnsafeRawBufferPointer
    /// The file's size in bytes (the original size for a container).
    public var count: Int { bytes.count }
    /// The container behind ``bytes`` when the file is compressed, else nil.
    public let compressed: CompressedFile?

    private let base: UnsafeMutableRawPointer?
    private let descriptor: Int32
    /// Whether `base` is a heap copy (``init(copying:path:)``) rather than a mapping.
    private let ownsCopy: Bool

    /// Whether ``bytes`` are a mapping of a file on disk (which another program can truncate
    /// under it), rather than a container's decoded bytes or an in-memory copy.
    public var isMapping: Bool { descriptor >= 0 && compressed == nil && !ownsCopy }

    /// Opens and maps `path` read-only; a compressed container is opened as its original file.
    /// - Throws: ``FormatError`` with code `.io` when the file cannot be opened or mapped, or the
    ///   container's error when a compressed file's headers are damaged.
    public convenience init(path: String) throws(FormatError) {
        if CompressedFormat.isContainer(atPath: path) {
            try self.init(container: CompressedFile(path: path))
        } else {
            try self.init(uncompressedPath: path)
        }
    }

    /// Presents an opened container as its original file.
    package init(container: CompressedFile) {
        path = container.path
        compressed = container
        base = nil
        descriptor = -1
        ownsCopy = false
        bytes = container.bytes
    }

    /// A copy of `bytes` held in memory, presented as a file named `path` (for the in-memory entry
    /// points the fuzz targets and their corpus replay use); nothing is read from disk. A container
    /// is not recognised here: open it with ``CompressedFile/init(container:)``.
    package init(copying source: UnsafeRawBufferPointer, path: String) {
        self.path = path
        compressed = nil
        descriptor = -1
        if source.isEmpty {
            base = nil
            ownsCopy = false
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        // Exactly `count` bytes, so an address sanitizer sees any read past the end.
        let copy = UnsafeMutableRawPointer.allocate(byteCount: source.count, alignment: 16)
        copy.copyMemory(from: source.baseAddress!, byteCount: source.count)
        base = copy
        ownsCopy = true
        bytes = UnsafeRawBufferPointer(start: copy, count: source.count)
    }

    /// Decompresses `range` of a compressed file into ``bytes`` if it is not there yet; nothing for
    /// a plain file.
    /// - Throws: ``FormatError`` `.checksumMismatch` naming the tensor when a chunk is damaged.
    public func load(_ range: Range<Int>) throws(FormatError) {
        try compressed?.materialize(range)
    }

    /// ``load(_:)`` for the non-throwing `data(for:)` accessors: a damaged chunk's bytes read as
    /// 0xFF (NaN in every float type, so later non-finite checks refuse them) and the error is kept
    /// in ``lastLoadError``. Callers that can throw use the readers' `readData(for:)` instead.
    func loadForView(_ range: Range<Int>) {
        guard let compressed else { return }
        do throws(FormatError) {
            try compressed.materialize(range)
        } catch {
            errorLock.lock()
            storedError = error
            errorLock.unlock()
            compressed.poison(range)
        }
    }

    /// The last error a non-throwing accessor met while decompressing, if any.
    public var lastLoadError: FormatError? {
        errorLock.lock()
        defer { errorLock.unlock() }
        return storedError
    }
    private let errorLock = NSLock()
    private var storedError: FormatError?

    /// Maps `path` read-only as it is on disk, without recognising compressed containers.
    /// - Throws: ``FormatError`` with code `.io` when the file cannot be opened or mapped.
    public init(uncompressedPath path: String) throws(FormatError) {
        self.path = path
        compressed = nil
        ownsCopy = false
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw FormatError(.io, path: path, message: "cannot open the file (\(reason))",
                              remedy: "check the path and its permissions")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw FormatError(.io, path: path, message: "cannot read the file's size")
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw FormatError(.io, path: path, message: "this is a directory, not a file")
        }
        descriptor = fd
        let size = Int(info.st_size)
        if size == 0 {
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw FormatError(.io, path: path, message: "cannot map the file into memory (\(reason))")
        }
        base = mapped
        bytes = UnsafeRawBufferPointer(start: mapped, count: size)
        MappedFile.register(self)
    }

    /// The live mappings by address, so that a bus error outside a guarded copy can be traced back
    /// to the file whose mapping it touched (``file(containing:)``).
    private static let mappingsLock = NSLock()
    nonisolated(unsafe) private static var mappings: [ObjectIdentifier: (start: UInt, end: UInt, path: String)] = [:]

    private static func register(_ file: MappedFile) {
        guard let start = file.bytes.baseAddress else { return }
        let begin = UInt(bitPattern: start)
        mappingsLock.withLock { mappings[ObjectIdentifier(file)] = (begin, begin + UInt(file.bytes.count), file.path) }
    }

    /// Hands a bus error outside a guarded copy (a mapped input truncated while it is read) on as
    /// `signal` to the process, whose handler can then clean up and name the file
    /// (``lastBusErrorAddress``, ``file(containing:)``); the faulting thread never resumes.
    public static func handOnBusErrors(as signal: Int32) { qk_sigbus_notify(signal) }

    /// The address of the last bus error handed on by ``handOnBusErrors(as:)``, nil when none.
    public static var lastBusErrorAddress: UnsafeRawPointer? { qk_sigbus_fault_address() }

    /// The mapped file whose pages hold `address`, and the byte offset in it; nil when no mapping
    /// of this process's ``MappedFile``s does.
    public static func file(containing address: UnsafeRawPointer?) -> (path: String, offset: Int)? {
        guard let address else { return nil }
        let value = UInt(bitPattern: address)
        return mappingsLock.withLock {
            mappings.values.first { value >= $0.start && value < $0.end }.map { ($0.path, Int(value - $0.start)) }
        }
    }

    /// Tells the kernel the given byte range will be read sequentially soon (read-ahead), or is
    /// no longer needed, so streaming a large file keeps resident memory flat.
    public func advise(_ range: Range<Int>, willNeed: Bool) {
        if let compressed {
            if !willNeed { compressed.release(range) }
            return
        }
        // MADV_DONTNEED would zero a heap copy's pages.
        guard let base, !ownsCopy, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page
        let end = min(count, range.upperBound)
        guard end > start else { return }
        _ = madvise(base + start, end - start, willNeed ? MADV_WILLNEED : MADV_DONTNEED)
    }

    /// Checks that the file still holds `range` (it was not truncated since it was mapped):
    /// reading mapped pages past a shortened file's end raises SIGBUS, so a reader calls this
    /// before and after touching a tensor. A truncation while the pages are being read is not
    /// caught (formats/reliability.md).
    /// - Throws: ``FormatError`` `.truncated` naming the file and its new size.
    public func checkIntact(_ range: Range<Int>) throws(FormatError) {
        guard descriptor >= 0 else { return }  // a compressed container: its own reader checks its chunks
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw FormatError(.io, path: path, message: "cannot read the file's size while reading it (\(String(cString: strerror(errno))))")
        }
        let size = Int(info.st_size)
        if size < range.upperBound || size < count {
            throw FormatError(.truncated, path: path, offset: min(size, range.upperBound),
                              message: "the file shrank from \(count) to \(size) bytes while it was being read (another program truncated or rewrote it)",
                              remedy: "nothing was written; let the download or copy finish and run again")
        }
    }

    deinit {
        if let base {
            if !ownsCopy { _ = MappedFile.mappingsLock.withLock { MappedFile.mappings.removeValue(forKey: ObjectIdentifier(self)) } }
            if ownsCopy { base.deallocate() } else { munmap(base, bytes.count) }
        }
        if descriptor >= 0 { close(descriptor) }
    }
}

/// Recognises the text files Git LFS leaves in place of the real weights when a repository is
/// cloned without `git lfs pull`.
public enum GitLFSPointer {
    /// The declared size of the real object, if `bytes` is an LFS pointer file; otherwise nil.
    public static func declaredSize(in bytes: UnsafeRawBufferPointer) -> Int? {
        let prefix = "version https://git-lfs.github.com/spec/"
        guard bytes.count < 1024, bytes.count >= prefix.utf8.count,
              bytes.starts(with: prefix.utf8) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("size ") {
            return Int(line.dropFirst(5).trimmingCharacters(in: .whitespaces))
        }
        return 0
    }

    /// The error to throw for an LFS pointer found at `path`.
    public static func error(path: String, declaredSize: Int) -> FormatError {
        let size = declaredSize > 0 ? " (the real file is \(formatByteCount(declaredSize)))" : ""
        return FormatError(
            .gitLFSPointer, path: path, offset: 0,
            message: "this is a Git LFS pointer file, not the weights\(size)",
            remedy: "run `git lfs install && git lfs pull` in the repository, or download the file directly")
    }
}
