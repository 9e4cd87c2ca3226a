import CKernels
import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension MappedFile {
    /// Copies `range` of the file into `destination` (memory the caller owns), surviving a file
    /// that another program truncates meanwhile: the copy runs under a SIGBUS guard
    /// (`qk_guarded_copy`), so a page past the new end becomes this error instead of a crash, and
    /// everything read afterwards comes from `destination`, which cannot fault.
    /// - Throws: ``FormatError`` `.truncated` naming the file and its new size, or the
    ///   decompression error of a damaged compressed chunk.
    public func copyGuarded(_ range: Range<Int>, into destination: UnsafeMutableRawPointer) throws(FormatError) {
        guard !range.isEmpty else { return }
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        if compressed != nil || !isMapping {
            // Decompressed chunks and in-memory copies live in memory this process owns.
            try load(range)
            destination.copyMemory(from: bytes.baseAddress! + range.lowerBound, byteCount: range.count)
            return
        }
        try checkIntact(range)
        let copied = qk_guarded_copy(destination, bytes.baseAddress! + range.lowerBound, range.count)
        if copied < range.count {
            try checkIntact(range)  // names the new size
            throw FormatError(.truncated, path: path, offset: range.lowerBound + copied,
                              message: "the file shrank while it was being read (a page past its new end could not be read)",
                              remedy: "nothing was written; let the download or copy finish and run again")
        }
    }
}

extension MappedFile {
    /// The guarded copy alone, without the size check before it (for the test of the guard):
    /// the bytes copied before a fault.
    func guardedCopyWithoutSizeCheck(_ range: Range<Int>, into destination: UnsafeMutableRawPointer) -> Int {
        qk_guarded_copy(destination, bytes.baseAddress! + range.lowerBound, range.count)
    }
}

/// The SHA-256 of one input file computed in the same pass as the job's reads (formats/integrity.md).
///
/// The digest runs over the file in file order. The job hands it the bytes it has just copied out
/// of the mapping (``consume(_:at:)``); when those are the next bytes in file order they are
/// hashed from the job's own copy, so a job that reads its tensors in file order (every
/// safetensors job, a GGUF job of one type) reads each input byte once. Bytes the job does not
/// read, or reads later out of order (the header, alignment padding, a llama.cpp mixture's tensor
/// order), are hashed from the mapping when the digest passes them, through a small guarded
/// buffer: ``bytesHashedFromMapping`` counts them. ``finish()`` hashes what is left up to the end
/// of the file.
public final class InputDigest {
    /// The file hashed.
    public let file: MappedFile
    /// The file's path as the job names it.
    public var path: String { file.path }
    /// Bytes hashed so far, from the start of the file.
    public private(set) var position = 0
    /// Bytes hashed from the job's copies (read once).
    public private(set) var bytesHashedFromJob = 0
    /// Bytes hashed from the mapping (the header, padding, and bytes the job reads out of file order).
    public private(set) var bytesHashedFromMapping = 0

    private var hasher = Crypto.SHA256()
    private var result: IntegrityManifest.FileEntry?
    private static let bounceBytes = 1 << 20

    /// A digest of `file`, from its first byte.
    public init(file: MappedFile) {
        self.file = file
    }

    /// Hashes the file up to `offset` (exclusive), reading what the job has not handed over from
    /// the mapping under the SIGBUS guard.
    /// - Throws: ``FormatError`` `.truncated` when the file shrank.
    public func advance(to offset: Int) throws(FormatError) {
        let end = min(offset, file.count)
        guard end > position else { return }
        let bounce = UnsafeMutableRawBufferPointer.allocate(byteCount: min(InputDigest.bounceBytes, end - position), alignment: 64)
        defer { bounce.deallocate() }
        while position < end {
            let piece = min(bounce.count, end - position)
            try file.copyGuarded(position..<(position + piece), into: bounce.baseAddress!)
            // Drop the pages just read from this process's resident set (they stay in the page
            // cache for the job's later read), so hashing ahead of an out-of-order job keeps
            // memory flat instead of holding the whole input mapped.
            file.advise(position..<(position + piece), willNeed: false)
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bounce[0..<piece]))
            position += piece
            bytesHashedFromMapping += piece
        }
    }

    /// The job copied the file's bytes at `offset` into `bytes`: hashes them from that copy when
    /// they come next in file order (after hashing any gap before them from the mapping); bytes
    /// already hashed are skipped.
    public func consume(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(FormatError) {
        let end = offset + bytes.count
        guard end > position else { return }
        if offset > position { try advance(to: offset) }
        let skip = position - offset
        hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[skip...]))
        bytesHashedFromJob += bytes.count - skip
        position = end
    }

    /// Hashes the rest of the file and returns its entry (the path as the job names it).
    public func finish() throws(FormatError) -> IntegrityManifest.FileEntry {
        if let result { return result }
        try advance(to: file.count)
        let entry = IntegrityManifest.FileEntry(name: path, bytes: file.count, sha256: IntegrityManifest.hex(hasher.finalize()))
        result = entry
        return entry
    }
}

extension IntegrityManifest {
    /// A checksum an input carries, and what records it.
    public struct ExpectedChecksum: Sendable, Equatable {
        /// SHA-256, 64 lowercase hex digits.
        public var sha256: String
        /// The size recorded with it, when one is.
        public var bytes: Int?
        /// What records it, for messages (`model.safetensors.sha256`, `quantize-manifest.json`,
        /// `the Hugging Face cache's blob name`).
        public var source: String
    }

    /// The checksum recorded for the input file `path`, if anything records one: its `.sha256`
    /// sidecar, the manifest of the quantize output it belongs to (`DIR/quantize-manifest.json`
    /// for a file in a directory output, `FILE.quantize-manifest.json` for a file output), or,
    /// for a file of a Hugging Face cache snapshot, the name of the blob its link points to
    /// (`…/blobs/SHA256`, how the hub stores files tracked by Git LFS).
    /// - Throws: ``FormatError`` `.invalidManifest` for a sidecar or manifest that cannot be read.
    public static func expectedChecksum(forInput path: String) throws(FormatError) -> ExpectedChecksum? {
        let fm = FileManager.default
        let sidecar = path + ".sha256"
        if fm.fileExists(atPath: sidecar) {
            return ExpectedChecksum(sha256: try sidecarDigest(sidecar), bytes: nil, source: (sidecar as NSString).lastPathComponent)
        }
        let name = (path as NSString).lastPathComponent
        let directory = (path as NSString).deletingLastPathComponent
        for manifestPath in [path + fileSuffix, (directory.isEmpty ? "." : directory) + "/" + directoryFileName] where fm.fileExists(atPath: manifestPath) {
            let manifest = try read(manifestPath)
            if let entry = manifest.files.first(where: { $0.name == name }) {
                return ExpectedChecksum(sha256: entry.sha256, bytes: entry.bytes, source: (manifestPath as NSString).lastPathComponent)
            }
        }
        if let destination = try? fm.destinationOfSymbolicLink(atPath: path) {
            let blob = (destination as NSString).lastPathComponent
            let parent = ((destination as NSString).deletingLastPathComponent as NSString).lastPathComponent
            if parent == "blobs", blob.utf8.count == 64, blob.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) {
                return ExpectedChecksum(sha256: blob, bytes: nil, source: "the Hugging Face cache's blob name")
            }
        }
        return nil
    }

    /// Checks a digest computed while reading an input against what the input carries.
    /// - Throws: ``FormatError`` `.checksumDiffers` naming the file, both digests and the record.
    public static func check(input entry: FileEntry, against expected: ExpectedChecksum) throws(FormatError) {
        if let bytes = expected.bytes, bytes != entry.bytes {
            throw FormatError(.checksumDiffers, path: entry.name,
                              message: "the input is \(entry.bytes) bytes but \(expected.source) records \(bytes): it was changed, truncated or replaced since",
                              remedy: "nothing was written; copy or download the input again (or, if you changed it on purpose, remove or regenerate \(expected.source))")
        }
        guard entry.sha256 == expected.sha256.lowercased() else {
            throw FormatError(.checksumDiffers, path: entry.name,
                              message: "the input's SHA-256 is \(entry.sha256) but \(expected.source) records \(expected.sha256.lowercased()): its bytes changed",
                              remedy: "nothing was written; copy or download the input again (or, if you changed it on purpose, remove or regenerate \(expected.source))")
        }
    }
}

extension InputDigest {
    /// The entry of a whole input file hashed in one sequential pass (through the SIGBUS guard),
    /// checked against what it carries (``IntegrityManifest/expectedChecksum(forInput:)``); for
    /// inputs that a job reads in an order or through views that the digest cannot follow (the
    /// forward pass of `imatrix`), hashed before the job so that its own read finds the pages cached.
    /// A compressed container is hashed as it is on disk.
    /// - Throws: ``FormatError`` `.checksumDiffers` naming the file, `.io`, `.truncated`.
    public static func checkedEntry(ofFileAt path: String) throws(FormatError) -> IntegrityManifest.FileEntry {
        let digest = InputDigest(file: try MappedFile(uncompressedPath: path))
        let entry = try digest.finish()
        if let expected = try IntegrityManifest.expectedChecksum(forInput: path) { try IntegrityManifest.check(input: entry, against: expected) }
        return entry
    }
}
