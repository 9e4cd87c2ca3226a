import CKernels
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A byte-plane zstd container (formats/compressed.md) opened for reading, presenting the original
/// file's bytes: its header at once, each chunk of tensor data decompressed on first access.
///
/// The original bytes live in an anonymous mapping of the original size that this object owns;
/// pages are committed only when a chunk is decoded into them, and ``release(_:)`` gives them back,
/// so reading one tensor touches that tensor's chunks alone and streaming a model keeps memory flat.
/// Opening validates the start header, the footer and the whole index (every size overflow-checked
/// against the file before anything is allocated from it); chunks are checked (XXH64) when decoded.
public final class CompressedFile: @unchecked Sendable {
    /// The container's path.
    public let path: String
    /// The container file, mapped as it is on disk.
    public let container: MappedFile
    /// What the original file was.
    public let originalFormat: CompressedFormat.OriginalFormat
    /// Bytes of the original file.
    public let originalByteCount: Int
    /// Bytes at the start of the original kept verbatim (its header).
    public let prefixByteCount: Int
    /// The regions, in original order; they tile `prefixByteCount..<originalByteCount`.
    public let regions: [CompressedRegion]
    /// The original file's bytes (valid while this object lives); a chunk's bytes are defined only
    /// after ``materialize(_:)`` covered them.
    public let bytes: UnsafeRawBufferPointer

    /// Each chunk's stored offset, checksum and first plane (index into `planes`).
    struct Chunk {
        var storedOffset: Int
        var checksum: UInt64
        var firstPlane: Int
        var storedByteCount: Int
        var region: Int
    }
    let chunks: [Chunk]
    let planes: [StoredPlane]
    private let state: UnsafeMutablePointer<UInt8>
    private let condition = NSCondition()
    private let pool = ChunkCodecPool()
    private let mapping: UnsafeMutableRawPointer?

    private static let absent: UInt8 = 0, decoding: UInt8 = 1, ready: UInt8 = 2

    /// Opens and validates the container at `path`.
    /// - Throws: ``FormatError``: `.truncated` (file shorter than its headers, footer missing),
    ///   `.invalidContainer` (bad version, inconsistent sizes, damaged index), `.io`.
    public convenience init(path: String) throws(FormatError) {
        try self.init(container: MappedFile(uncompressedPath: path))
    }

    /// Validates the container held by `file` (mapped from disk, or an in-memory copy).
    /// - Throws: as ``init(path:)``.
    package init(container file: MappedFile) throws(FormatError) {
        let path = file.path
        self.path = path
        container = file
        let bytes = file.bytes
        let start = CompressedFormat.startHeaderByteCount, footer = CompressedFormat.footerByteCount
        func invalid(_ message: String, offset: Int? = nil, tensor: String? = nil) -> FormatError {
            FormatError(.invalidContainer, path: path, offset: offset, tensor: tensor, message: message,
                        remedy: "the compressed file is damaged; copy it again or recompress it from the original")
        }
        guard CompressedFormat.hasMagic(bytes) else {
            throw FormatError(.notThisFormat, path: path, offset: 0, message: "this is not a compressed container (no QZBP magic)",
                              remedy: "open it as a plain safetensors or GGUF file")
        }
        guard bytes.count >= start else {
            throw FormatError(.truncated, path: path, offset: bytes.count,
                              message: "the file is \(bytes.count) bytes, shorter than the container's \(start)-byte start header",
                              remedy: "the file is truncated; copy it again")
        }
        func u64(_ offset: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
        func u32(_ offset: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        let headerSum = CompressedFormat.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<40]))
        guard u64(40) == headerSum else { throw invalid("the start header fails its checksum", offset: 0) }
        let version = u32(8)
        guard version == CompressedFormat.version else {
            throw FormatError(.invalidContainer, path: path, offset: 8,
                              message: "the container is version \(version); this build reads version \(CompressedFormat.version)",
                              remedy: "decompress it with the quantize that wrote it, or update quantize")
        }
        originalFormat = CompressedFormat.OriginalFormat(rawValue: u32(12)) ?? .other
        let declaredOriginal = u64(16), declaredPrefix = u64(24)
        guard declaredOriginal <= UInt64(CompressedFormat.maxOriginalByteCount), declaredPrefix <= declaredOriginal else {
            throw invalid("the start header declares an original of \(declaredOriginal) bytes with a \(declaredPrefix)-byte header, beyond the format's limits", offset: 16)
        }
        originalByteCount = Int(declaredOriginal)
        prefixByteCount = Int(declaredPrefix)
        let dataStart = start + prefixByteCount
        guard bytes.count >= dataStart + footer else {
            throw FormatError(.truncated, path: path, offset: bytes.count,
                              message: "the file is \(bytes.count) bytes but its header alone needs \(dataStart + footer): it is truncated",
                              remedy: "copy the file again")
        }
        guard CompressedFormat.checksum(UnsafeRawBufferPointer(rebasing: bytes[start..<dataStart])) == u64(32) else {
            throw invalid("the original header kept in the container fails its checksum", offset: start)
        }
        let footerStart = bytes.count - footer
        guard UnsafeRawBufferPointer(rebasing: bytes[(footerStart + 24)..<bytes.count]).elementsEqual(CompressedFormat.footerMagic) else {
            throw FormatError(.truncated, path: path, offset: bytes.count,
                              message: "the file does not end with the container footer: it is truncated (or was not finished writing)",
                              remedy: "copy the file again, or recompress it from the original")
        }
        let indexOffset = u64(footerStart), indexCount = u64(footerStart + 8), indexSum = u64(footerStart + 16)
        guard indexOffset >= UInt64(dataStart), indexCount <= UInt64(footerStart), indexOffset == UInt64(footerStart) - indexCount else {
            throw invalid("the footer places the index at \(indexOffset) (\(indexCount) bytes), which does not end where the footer begins (\(footerStart))", offset: footerStart)
        }
        let index = UnsafeRawBufferPointer(rebasing: bytes[Int(indexOffset)..<footerStart])
        guard CompressedFormat.checksum(index) == indexSum else {
            throw invalid("the index fails its checksum", offset: Int(indexOffset))
        }
        let parsed = try CompressedFile.parseIndex(index, indexOffset: Int(indexOffset), dataStart: dataStart,
                                                   prefix: prefixByteCount, original: originalByteCount, invalid: invalid)
        regions = parsed.regions
        chunks = parsed.chunks
        planes = parsed.planes

        state = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, chunks.count))
        state.initialize(repeating: CompressedFile.absent, count: max(1, chunks.count))
        if originalByteCount > 0 {
            let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
            let mapped = mmap(nil, originalByteCount, PROT_READ | PROT_WRITE, flags, -1, 0)
            guard let mapped, mapped != MAP_FAILED else {
                state.deallocate()
                throw FormatError(.io, path: path, message: "cannot reserve \(formatByteCount(originalByteCount)) of address space for the decompressed file (\(String(cString: strerror(errno))))")
            }
            mapping = mapped
            if prefixByteCount > 0 { mapped.copyMemory(from: bytes.baseAddress! + start, byteCount: prefixByteCount) }
            self.bytes = UnsafeRawBufferPointer(start: mapped, count: originalByteCount)
        } else {
            mapping = nil
            self.bytes = UnsafeRawBufferPointer(start: nil, count: 0)
        }
    }

    deinit {
        if let mapping { munmap(mapping, originalByteCount) }
        state.deallocate()
    }

    /// Bytes the container occupies on disk.
    public var storedByteCount: Int { container.count }

    /// The number of chunks.
    public var chunkCount: Int { chunks.count }

    /// The container offset and stored size of chunk `index` (for tests and tools).
    public func storedRange(ofChunk index: Int) -> Range<Int> {
        chunks[index].storedOffset..<(chunks[index].storedOffset + chunks[index].storedByteCount)
    }

    /// The original bytes chunk `index` holds.
    public func originalRange(ofChunk index: Int) -> Range<Int> {
        let chunk = chunks[index]
        return regions[chunk.region].chunkRange(index - regions[chunk.region].firstChunk)
    }

    /// The chunks whose original bytes overlap `range`.
    public func chunks(overlapping range: Range<Int>) -> Range<Int> {
        let lower = max(range.lowerBound, prefixByteCount), upper = min(range.upperBound, originalByteCount)
        guard lower < upper, !regions.isEmpty else { return 0..<0 }
        var low = 0, high = regions.count
        while low < high {
            let middle = (low + high) / 2
            if regions[middle].originalRange.upperBound <= lower { low = middle + 1 } else { high = middle }
        }
        var first = -1, last = -1
        var position = low
        while position < regions.count, regions[position].originalRange.lowerBound < upper {
            let region = regions[position]
            if region.chunkCount > 0 {
                let from = max(lower, region.originalRange.lowerBound) - region.originalRange.lowerBound
                let to = min(upper, region.originalRange.upperBound) - region.originalRange.lowerBound
                let a = region.firstChunk + from / region.chunkByteCount
                let b = region.firstChunk + (to - 1) / region.chunkByteCount
                if first < 0 { first = a }
                last = b
            }
            position += 1
        }
        return first < 0 ? 0..<0 : first..<(last + 1)
    }

    /// Decodes every chunk overlapping `range` that is not decoded yet into ``bytes``, on all cores.
    /// - Throws: ``FormatError`` `.checksumMismatch` naming the tensor and chunk when a chunk is damaged.
    public func materialize(_ range: Range<Int>) throws(FormatError) {
        let wanted = chunks(overlapping: range)
        guard !wanted.isEmpty else { return }
        while true {
            var mine: [Int] = []
            var waiting = false
            condition.lock()
            for index in wanted {
                switch state[index] {
                case CompressedFile.absent:
                    state[index] = CompressedFile.decoding
                    mine.append(index)
                case CompressedFile.decoding:
                    waiting = true
                default:
                    break
                }
            }
            condition.unlock()
            if mine.isEmpty && !waiting { return }
            var failure: FormatError? = nil
            if !mine.isEmpty {
                let destination = UnsafeMutableRawPointer(mutating: bytes.baseAddress!)
                failure = decodeChunks(mine) { index in
                    let range = self.originalRange(ofChunk: index)
                    return UnsafeMutableRawBufferPointer(start: destination + range.lowerBound, count: range.count)
                }
                condition.lock()
                for index in mine { state[index] = failure == nil ? CompressedFile.ready : CompressedFile.absent }
                condition.broadcast()
                condition.unlock()
                if let failure { throw failure }
            }
            if waiting {
                condition.lock()
                while wanted.contains(where: { state[$0] == CompressedFile.decoding }) { condition.wait() }
                condition.unlock()
            }
        }
    }

    /// Decodes chunks `indices` into the buffers `destination` gives, in parallel; the first error, if any.
    func decodeChunks(_ indices: [Int], destination: (Int) -> UnsafeMutableRawBufferPointer) -> FormatError? {
        let targets = SendableBox(indices.map(destination))
        let errors = ErrorSlot()
        if indices.count == 1 {
            if let error = decodeChunk(indices[0], into: targets.value[0]) { errors.set(error) }
        } else {
            DispatchQueue.concurrentPerform(iterations: indices.count) { position in
                if let error = self.decodeChunk(indices[position], into: targets.value[position]) { errors.set(error) }
            }
        }
        return errors.first
    }

    /// Decodes one chunk into `destination` (its original size), verifying its checksum first.
    public func decodeChunk(_ index: Int, into destination: UnsafeMutableRawBufferPointer) -> FormatError? {
        let chunk = chunks[index]
        let region = regions[chunk.region]
        let stored = UnsafeRawBufferPointer(rebasing: container.bytes[chunk.storedOffset..<(chunk.storedOffset + chunk.storedByteCount)])
        let within = index - region.firstChunk
        let original = region.chunkRange(within)
        let tensor = region.name.isEmpty ? nil : region.name
        let place = "chunk \(within + 1) of \(region.chunkCount) of \(tensor.map { "tensor '\($0)'" } ?? "padding") (original bytes \(original.lowerBound)..<\(original.upperBound))"
        let computed = CompressedFormat.checksum(stored)
        if computed != chunk.checksum {
            return FormatError(.checksumMismatch, path: path, offset: chunk.storedOffset, tensor: tensor,
                               message: "\(place) fails its checksum (XXH64 \(hex(chunk.checksum)) recorded, \(hex(computed)) computed): the compressed file is damaged",
                               remedy: "copy the file again, or recompress it from the original")
        }
        let planeSlice = planes[chunk.firstPlane..<(chunk.firstPlane + region.layout.planeCount)]
        if let failure = pool.decode(stored, planes: planeSlice, layout: region.layout, into: destination),
           case .badFrame(let plane, let reason) = failure {
            return FormatError(.checksumMismatch, path: path, offset: chunk.storedOffset, tensor: tensor,
                               message: "\(place): plane \(plane) \(reason), although its checksum matches; the file was written incorrectly",
                               remedy: "recompress the file from the original, and report this")
        }
        return nil
    }

    /// Gives back the memory of every chunk lying wholly inside `range`; they decode again on the
    /// next ``materialize(_:)``. Pages shared with a neighbouring chunk are kept.
    public func release(_ range: Range<Int>) {
        guard let mapping else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        condition.lock()
        defer { condition.unlock() }
        for index in chunks(overlapping: range) {
            let original = originalRange(ofChunk: index)
            guard original.lowerBound >= range.lowerBound, original.upperBound <= range.upperBound,
                  state[index] == CompressedFile.ready else { continue }
            state[index] = CompressedFile.absent
            let first = (original.lowerBound + page - 1) / page * page
            let end = original.upperBound / page * page
            if end > first { _ = madvise(mapping + first, end - first, MADV_DONTNEED) }
        }
    }

    /// Fills `range` with 0xFF and marks its chunks as not decoded, so the next ``materialize(_:)``
    /// decodes (and checks) them again; used when a non-throwing accessor meets a damaged chunk.
    func poison(_ range: Range<Int>) {
        let lower = max(0, range.lowerBound), upper = min(originalByteCount, range.upperBound)
        guard let mapping, upper > lower else { return }
        condition.lock()
        defer { condition.unlock() }
        (mapping + lower).initializeMemory(as: UInt8.self, repeating: 0xFF, count: upper - lower)
        for index in chunks(overlapping: lower..<upper) where state[index] == CompressedFile.ready {
            state[index] = CompressedFile.absent
        }
    }

    /// The number of chunks decoded and resident now (for tests).
    public var residentChunkCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return (0..<chunks.count).reduce(0) { $0 + (state[$1] == CompressedFile.ready ? 1 : 0) }
    }

    // MARK: Index

    private static func parseIndex(_ index: UnsafeRawBufferPointer, indexOffset: Int, dataStart: Int, prefix: Int, original: Int,
                                   invalid: (String, Int?, String?) -> FormatError)
        throws(FormatError) -> (regions: [CompressedRegion], chunks: [Chunk], planes: [StoredPlane]) {
        var cursor = 0
        func need(_ count: Int, _ what: String) throws(FormatError) {
            guard count >= 0, count <= index.count - cursor else {
                throw invalid("the index ends inside \(what)", indexOffset + cursor, nil)
            }
        }
        func u64() -> UInt64 {
            defer { cursor += 8 }
            return UInt64(littleEndian: index.loadUnaligned(fromByteOffset: cursor, as: UInt64.self))
        }
        func u32() -> UInt32 {
            defer { cursor += 4 }
            return UInt32(littleEndian: index.loadUnaligned(fromByteOffset: cursor, as: UInt32.self))
        }
        func u16() -> UInt16 {
            defer { cursor += 2 }
            return UInt16(littleEndian: index.loadUnaligned(fromByteOffset: cursor, as: UInt16.self))
        }
        func u8() -> UInt8 {
            defer { cursor += 1 }
            return index[cursor]
        }
        try need(16, "its counts")
        let regionCount = u64(), chunkCount = u64()
        // Counts are checked against the bytes that must hold their records before any array is sized.
        let regionRecord = 8 + 8 + 4 + 1 + 1 + 2, chunkRecord = 8 + 8 + 5
        guard regionCount <= UInt64(index.count / regionRecord), chunkCount <= UInt64(index.count / chunkRecord) else {
            throw invalid("the index declares \(regionCount) regions and \(chunkCount) chunks, more than its \(index.count) bytes can hold", indexOffset, nil)
        }
        var regions: [CompressedRegion] = []
        regions.reserveCapacity(Int(regionCount))
        var end = prefix
        var chunkTotal = 0
        for number in 0..<Int(regionCount) {
            try need(regionRecord, "region \(number)")
            let offset = u64(), size = u64(), chunkBytes = Int(u32())
            let transformCode = u8(), width = Int(u8()), nameCount = Int(u16())
            try need(nameCount, "the name of region \(number)")
            let nameBytes = UnsafeRawBufferPointer(rebasing: index[cursor..<(cursor + nameCount)])
            cursor += nameCount
            guard let name = String(validating: nameBytes, as: UTF8.self) else {
                throw invalid("region \(number)'s name is not UTF-8", indexOffset + cursor - nameCount, nil)
            }
            let tensor = name.isEmpty ? nil : name
            guard offset == UInt64(end) else {
                throw invalid("region \(number) begins at original byte \(offset), but the previous one ends at \(end)", indexOffset + cursor, tensor)
            }
            guard size <= UInt64(original - end) else {
                throw invalid("region \(number) (\(size) bytes from \(offset)) runs past the original size \(original)", indexOffset + cursor, tensor)
            }
            guard let transform = PlaneTransform(rawValue: transformCode) else {
                throw invalid("region \(number) uses the unknown transform \(transformCode)", indexOffset + cursor, tensor)
            }
            guard transform == .none ? width == 1 : [2, 4, 8].contains(width) else {
                throw invalid("region \(number) has element width \(width), which transform '\(transform)' does not allow", indexOffset + cursor, tensor)
            }
            guard chunkBytes > 0, chunkBytes <= CompressedFormat.maxChunkByteCount, chunkBytes % width == 0, Int(size) % width == 0 else {
                throw invalid("region \(number) has chunks of \(chunkBytes) bytes for \(size) bytes of \(width)-byte elements (chunks must be 1 byte to 64 MiB, both multiples of the width)", indexOffset + cursor, tensor)
            }
            let region = CompressedRegion(name: name, originalRange: end..<(end + Int(size)), chunkByteCount: chunkBytes,
                                          layout: PlaneLayout(transform: transform, width: width), firstChunk: chunkTotal)
            chunkTotal += region.chunkCount
            end += Int(size)
            regions.append(region)
        }
        guard end == original else {
            throw invalid("the regions end at original byte \(end), but the original is \(original) bytes", indexOffset, nil)
        }
        guard chunkTotal == Int(chunkCount) else {
            throw invalid("the regions need \(chunkTotal) chunks, but the index lists \(chunkCount)", indexOffset, nil)
        }
        var chunks: [Chunk] = []
        chunks.reserveCapacity(chunkTotal)
        var planes: [StoredPlane] = []
        for (regionNumber, region) in regions.enumerated() {
            let planeCount = region.layout.planeCount
            for within in 0..<region.chunkCount {
                try need(16 + 5 * planeCount, "chunk \(chunks.count)")
                let storedOffset = u64(), checksum = u64()
                let originalBytes = region.chunkRange(within).count
                let planeBytes = originalBytes / planeCount
                let firstPlane = planes.count
                var stored = 0
                for plane in 0..<planeCount {
                    let size = Int(u32()), codecCode = u8()
                    let tensor = region.name.isEmpty ? nil : region.name
                    guard let codec = PlaneCodec(rawValue: codecCode) else {
                        throw invalid("chunk \(within + 1) of region \(regionNumber), plane \(plane), uses the unknown codec \(codecCode)", indexOffset + cursor, tensor)
                    }
                    if codec == .raw, size != planeBytes {
                        throw invalid("chunk \(within + 1) of region \(regionNumber), plane \(plane), is stored raw in \(size) bytes but holds \(planeBytes)", indexOffset + cursor, tensor)
                    }
                    planes.append(StoredPlane(byteCount: size, codec: codec))
                    stored += size
                }
                guard storedOffset >= UInt64(dataStart), storedOffset <= UInt64(indexOffset),
                      UInt64(stored) <= UInt64(indexOffset) - storedOffset else {
                    throw invalid("chunk \(within + 1) of region \(regionNumber) is stored at \(storedOffset) (\(stored) bytes), outside the chunk area \(dataStart)..<\(indexOffset)",
                                  indexOffset + cursor, region.name.isEmpty ? nil : region.name)
                }
                chunks.append(Chunk(storedOffset: Int(storedOffset), checksum: checksum, firstPlane: firstPlane,
                                    storedByteCount: stored, region: regionNumber))
            }
        }
        guard cursor == index.count else {
            throw invalid("\(index.count - cursor) bytes follow the last chunk record in the index", indexOffset + cursor, nil)
        }
        return (regions, chunks, planes)
    }
}

/// A value handed to parallel workers that only read it, or write disjoint parts of the memory it points to.
struct SendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// The first error recorded by parallel workers.
final class ErrorSlot: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var first: FormatError?
    func set(_ error: FormatError) {
        lock.lock()
        if first == nil { first = error }
        lock.unlock()
    }
}

func hex(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 16 - digits.count)) + digits
}
