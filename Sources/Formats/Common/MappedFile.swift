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
public final class MappedFile: @unchecked Sendable {
    /// The path the file was opened from.
    public let path: String
    /// The whole file. Empty for a zero-length file. Valid as long as this object lives.
    public let bytes: UnsafeRawBufferPointer
    /// The file's size in bytes.
    public var count: Int { bytes.count }

    private let base: UnsafeMutableRawPointer?
    private let descriptor: Int32

    /// Opens and maps `path` read-only.
    /// - Throws: ``FormatError`` with code `.io` when the file cannot be opened or mapped.
    public init(path: String) throws(FormatError) {
        self.path = path
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
    }

    /// Tells the kernel the given byte range will be read sequentially soon (read-ahead), or is
    /// no longer needed, so streaming a large file keeps resident memory flat.
    public func advise(_ range: Range<Int>, willNeed: Bool) {
        guard let base, !range.isEmpty else { return }
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
        if let base { munmap(base, bytes.count) }
        close(descriptor)
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
