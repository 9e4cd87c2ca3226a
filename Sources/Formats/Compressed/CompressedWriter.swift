import CKernels
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one compression or decompression did.
public struct CompressionSummary: Sendable, Hashable {
    /// Bytes read (all input files).
    public var inputByteCount: Int = 0
    /// Bytes written (all output files).
    public var outputByteCount: Int = 0
    /// Weight files compressed or decompressed.
    public var weightFileCount: Int = 0
    /// Other files copied as they are (a model directory's config, tokenizer, …).
    public var copiedFileCount: Int = 0
    /// Wall-clock seconds.
    public var seconds: Double = 0

    /// Creates an empty summary.
    public init() {}

    mutating func add(_ other: CompressionSummary) {
        inputByteCount += other.inputByteCount
        outputByteCount += other.outputByteCount
        weightFileCount += other.weightFileCount
        copiedFileCount += other.copiedFileCount
    }
}

/// Writes and unpacks byte-plane zstd containers (formats/compressed.md): one safetensors or GGUF
/// file, or a model directory whose weight files are compressed and other files copied.
///
/// Every output is written beside its final path, synced, and renamed into place, so a failure
/// leaves nothing; inputs are only read. Work runs on all cores in batches of chunks, and memory
/// stays bounded by a few chunks per core whatever the file size.
public enum CompressedContainer {
    /// A region of the original file to compress, before chunking.
    public struct RegionPlan: Sendable, Hashable {
        /// The tensor's name, or "" for padding.
        public var name: String
        /// Its bytes in the original file.
        public var range: Range<Int>
        /// The transform and width.
        public var layout: PlaneLayout

        /// Creates a plan entry.
        public init(name: String, range: Range<Int>, layout: PlaneLayout) {
            self.name = name
            self.range = range
            self.layout = layout
        }
    }

    /// The layout of a weight file: its format, header size and regions.
    public struct FilePlan: Sendable {
        /// The original format.
        public var format: CompressedFormat.OriginalFormat
        /// Bytes kept verbatim at the start (the header).
        public var prefixByteCount: Int
        /// The regions tiling the rest of the file.
        public var regions: [RegionPlan]
    }

    /// The default output for `input`: `input.bpz`, or for a container, its name without `.bpz`.
    public static func defaultOutput(for input: String, compressing: Bool) -> String? {
        let trimmed = input.hasSuffix("/") ? String(input.dropLast()) : input
        if compressing { return trimmed + "." + CompressedFormat.fileExtension }
        let original = CompressedFormat.originalName(trimmed)
        return original == trimmed ? nil : original
    }

    /// Plans the regions of the safetensors or GGUF file at `path`.
    /// - Throws: `.alreadyCompressed`, `.notThisFormat`, or the reader's error for a malformed file.
    public static func plan(forFileAt path: String) throws(FormatError) -> FilePlan {
        if CompressedFormat.isContainer(atPath: path) {
            throw FormatError(.alreadyCompressed, path: path, offset: 0, message: "the file is already a compressed container",
                              remedy: "decompress it first (quantize decompress), or leave it as it is")
        }
        let isGGUF: Bool = {
            guard let handle = FileHandle(forReadingAtPath: path) else { return false }
            defer { try? handle.close() }
            return (try? handle.read(upToCount: 4)) == Data("GGUF".utf8)
        }()
        if isGGUF {
            let file = try GGUFFile(path: path)
            var regions: [RegionPlan] = []
            var end = file.dataStart
            for tensor in file.tensors.sorted(by: { $0.offset < $1.offset }) {
                let start = file.dataStart + tensor.offset
                if start > end { regions.append(RegionPlan(name: "", range: end..<start, layout: .bytes)) }
                guard start >= end else {
                    throw FormatError(.invalidArgument, path: path, tensor: tensor.name,
                                      message: "the tensor's data overlaps the previous tensor's", remedy: "the file is inconsistent; regenerate it")
                }
                if tensor.byteCount > 0 {
                    let layout = PlaneLayout.forGGML(tensor.type)
                    let fits = tensor.byteCount % layout.width == 0
                    regions.append(RegionPlan(name: tensor.name, range: start..<(start + tensor.byteCount), layout: fits ? layout : .bytes))
                }
                end = start + tensor.byteCount
            }
            if end < file.file.count { regions.append(RegionPlan(name: "", range: end..<file.file.count, layout: .bytes)) }
            return FilePlan(format: .gguf, prefixByteCount: min(file.dataStart, file.file.count), regions: regions)
        }
        let file = try SafetensorsFile(path: path)
        var regions: [RegionPlan] = []
        for tensor in file.tensors where tensor.byteCount > 0 {
            let range = (file.dataStart + tensor.dataOffsets.lowerBound)..<(file.dataStart + tensor.dataOffsets.upperBound)
            let layout = PlaneLayout.forDType(tensor.dtype)
            regions.append(RegionPlan(name: tensor.name, range: range, layout: range.count % layout.width == 0 ? layout : .bytes))
        }
        return FilePlan(format: .safetensors, prefixByteCount: file.dataStart, regions: regions)
    }

    // MARK: Files

    /// Compresses the safetensors or GGUF file `input` into the container `output`.
    /// - Parameters:
    ///   - overwrite: replace an existing output (never the input).
    ///   - chunkByteCount: original bytes per chunk (rounded down to a multiple of 8).
    public static func compressFile(_ input: String, to output: String, overwrite: Bool = false,
                                    chunkByteCount: Int = CompressedFormat.defaultChunkByteCount) throws(FormatError) -> CompressionSummary {
        let start = Date()
        try refuseSamePath(input, output)
        let plan = try plan(forFileAt: input)
        let source = try MappedFile(uncompressedPath: input)
        let out = try OutputFile(path: output, overwrite: overwrite)
        defer { out.discard() }
        try write(source: source, plan: plan, chunkByteCount: chunkByteCount, to: out)
        try out.commit()
        var summary = CompressionSummary()
        summary.inputByteCount = source.count
        summary.outputByteCount = out.position
        summary.weightFileCount = 1
        summary.seconds = Date().timeIntervalSince(start)
        return summary
    }

    /// Writes the container of `source` laid out by `plan` into `out` (not committed).
    public static func write(source: MappedFile, plan: FilePlan, chunkByteCount requested: Int = CompressedFormat.defaultChunkByteCount,
                             to out: OutputFile) throws(FormatError) {
        let chunkBytes = max(8, min(CompressedFormat.maxChunkByteCount, requested) / 8 * 8)
        let bytes = source.bytes
        let prefix = UnsafeRawBufferPointer(rebasing: bytes[0..<plan.prefixByteCount])
        var header = [UInt8](repeating: 0, count: CompressedFormat.startHeaderByteCount)
        header.replaceSubrange(0..<8, with: CompressedFormat.magic)
        store(CompressedFormat.version, in: &header, at: 8)
        store(plan.format.rawValue, in: &header, at: 12)
        store(UInt64(bytes.count), in: &header, at: 16)
        store(UInt64(plan.prefixByteCount), in: &header, at: 24)
        store(CompressedFormat.checksum(prefix), in: &header, at: 32)
        let headerSum = header.withUnsafeBytes { CompressedFormat.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<40])) }
        store(headerSum, in: &header, at: 40)
        try out.write(header)
        try out.write(prefix)

        // Regions and their chunks, in order.
        var regions: [CompressedRegion] = []
        var work: [(region: Int, chunk: Int)] = []
        var end = plan.prefixByteCount
        for entry in plan.regions {
            guard entry.range.lowerBound == end else {
                throw FormatError(.invalidArgument, path: out.path, tensor: entry.name.isEmpty ? nil : entry.name,
                                  message: "the compression plan leaves a gap or overlap at original byte \(end)")
            }
            let width = entry.layout.width
            let regionChunk = max(width, chunkBytes / width * width)
            let region = CompressedRegion(name: entry.name, originalRange: entry.range, chunkByteCount: regionChunk,
                                          layout: entry.layout, firstChunk: work.count)
            for index in 0..<region.chunkCount { work.append((regions.count, index)) }
            regions.append(region)
            end = entry.range.upperBound
        }
        guard end == bytes.count else {
            throw FormatError(.invalidArgument, path: out.path, message: "the compression plan ends at byte \(end) of a \(bytes.count)-byte file")
        }

        let pool = ChunkCodecPool()
        let batch = max(4, 4 * ProcessInfo.processInfo.activeProcessorCount)
        let bound = ChunkCodecPool.storedBound(byteCount: chunkBytes, layout: PlaneLayout(transform: .planes, width: 8)) + 64
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bound * min(batch, max(1, work.count)), alignment: 64)
        defer { buffer.deallocate() }
        var records: [(offset: Int, checksum: UInt64, planes: [StoredPlane])] = []
        records.reserveCapacity(work.count)
        var done = 0
        while done < work.count {
            let count = min(batch, work.count - done)
            var results = [(planes: [StoredPlane], byteCount: Int, checksum: UInt64)](repeating: ([], 0, 0), count: count)
            let batchWork = Array(work[done..<(done + count)]).map { (regions[$0.region], $0.chunk) }
            results.withUnsafeMutableBufferPointer { slots in
                let shared = SendableBox((slots.baseAddress!, buffer, bytes, batchWork))
                DispatchQueue.concurrentPerform(iterations: count) { position in
                    let (slotsBase, buffer, bytes, batchWork) = shared.value
                    let (region, chunk) = batchWork[position]
                    let range = region.chunkRange(chunk)
                    let target = UnsafeMutableRawBufferPointer(rebasing: buffer[(position * bound)..<((position + 1) * bound)])
                    let encoded = pool.encode(UnsafeRawBufferPointer(rebasing: bytes[range]), layout: region.layout, into: target)
                    let sum = CompressedFormat.checksum(UnsafeRawBufferPointer(rebasing: target[0..<encoded.byteCount]))
                    (slotsBase + position).pointee = (encoded.planes, encoded.byteCount, sum)
                }
            }
            for position in 0..<count {
                records.append((out.position, results[position].checksum, results[position].planes))
                try out.write(UnsafeRawBufferPointer(rebasing: buffer[(position * bound)..<(position * bound + results[position].byteCount)]))
            }
            // The input's pages are not needed again: keep resident memory flat on large files.
            let first = regions[work[done].region].chunkRange(work[done].chunk)
            let last = regions[work[done + count - 1].region].chunkRange(work[done + count - 1].chunk)
            source.advise(first.lowerBound..<last.upperBound, willNeed: false)
            done += count
        }

        // Index, then footer.
        var index: [UInt8] = []
        index.reserveCapacity(16 + regions.count * 64 + records.count * 60)
        append(UInt64(regions.count), to: &index)
        append(UInt64(records.count), to: &index)
        for region in regions {
            let name = Array(region.name.utf8)
            guard name.count <= Int(UInt16.max) else {
                throw FormatError(.invalidArgument, path: out.path, tensor: region.name, message: "the tensor name is longer than 65535 bytes")
            }
            append(UInt64(region.originalRange.lowerBound), to: &index)
            append(UInt64(region.originalRange.count), to: &index)
            append(UInt32(region.chunkByteCount), to: &index)
            index.append(region.layout.transform.rawValue)
            index.append(UInt8(region.layout.width))
            append(UInt16(name.count), to: &index)
            index += name
        }
        for record in records {
            append(UInt64(record.offset), to: &index)
            append(record.checksum, to: &index)
            for plane in record.planes {
                append(UInt32(plane.byteCount), to: &index)
                index.append(plane.codec.rawValue)
            }
        }
        let indexOffset = out.position
        try out.write(index)
        var footer: [UInt8] = []
        append(UInt64(indexOffset), to: &footer)
        append(UInt64(index.count), to: &footer)
        append(index.withUnsafeBytes { CompressedFormat.checksum($0) }, to: &footer)
        footer += CompressedFormat.footerMagic
        try out.write(footer)
    }

    /// Decompresses the container `input` into the original file `output`, byte for byte.
    public static func decompressFile(_ input: String, to output: String, overwrite: Bool = false) throws(FormatError) -> CompressionSummary {
        let start = Date()
        try refuseSamePath(input, output)
        let file = try CompressedFile(path: input)
        let out = try OutputFile(path: output, overwrite: overwrite)
        defer { out.discard() }
        try out.write(UnsafeRawBufferPointer(rebasing: file.bytes[0..<file.prefixByteCount]))
        let batch = max(4, 4 * ProcessInfo.processInfo.activeProcessorCount)
        let largest = file.regions.map(\.chunkByteCount).max() ?? 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, largest * min(batch, max(1, file.chunkCount))), alignment: 64)
        defer { buffer.deallocate() }
        var done = 0
        while done < file.chunkCount {
            let count = min(batch, file.chunkCount - done)
            let indices = Array(done..<(done + count))
            let failure = file.decodeChunks(indices) { index in
                let position = index - done
                return UnsafeMutableRawBufferPointer(rebasing: buffer[(position * largest)..<(position * largest + file.originalRange(ofChunk: index).count)])
            }
            if let failure { throw failure }
            for index in indices {
                let position = index - done
                try out.write(UnsafeRawBufferPointer(rebasing: buffer[(position * largest)..<(position * largest + file.originalRange(ofChunk: index).count)]))
            }
            file.container.advise(file.storedRange(ofChunk: indices[0]).lowerBound..<file.storedRange(ofChunk: indices[count - 1]).upperBound, willNeed: false)
            done += count
        }
        guard out.position == file.originalByteCount else {
            throw FormatError(.invalidContainer, path: input, message: "the chunks decode to \(out.position) bytes, but the original was \(file.originalByteCount)",
                              remedy: "the compressed file is damaged; copy it again")
        }
        try out.commit()
        var summary = CompressionSummary()
        summary.inputByteCount = file.storedByteCount
        summary.outputByteCount = file.originalByteCount
        summary.weightFileCount = 1
        summary.seconds = Date().timeIntervalSince(start)
        return summary
    }

    // MARK: Files or directories

    /// Compresses a weight file or a model directory (weight files compressed, the rest copied).
    /// - Parameter output: the destination; `input.bpz` when nil.
    /// - Returns: the output path and what was done.
    public static func compress(_ input: String, to output: String? = nil, overwrite: Bool = false,
                                chunkByteCount: Int = CompressedFormat.defaultChunkByteCount) throws(FormatError) -> (output: String, summary: CompressionSummary) {
        let target = output ?? defaultOutput(for: input, compressing: true)!
        if isDirectory(input) {
            let start = Date()
            var summary = try transformDirectory(input, to: target, overwrite: overwrite) { (source, directory) throws(FormatError) in
                let name = (source as NSString).lastPathComponent
                if isWeightFile(name), !CompressedFormat.isContainer(atPath: source) {
                    let destination = (directory as NSString).appendingPathComponent(name + "." + CompressedFormat.fileExtension)
                    return try compressFile(source, to: destination, chunkByteCount: chunkByteCount)
                }
                return try copyFile(source, into: directory, name: name)
            }
            summary.seconds = Date().timeIntervalSince(start)
            return (target, summary)
        }
        return (target, try compressFile(input, to: target, overwrite: overwrite, chunkByteCount: chunkByteCount))
    }

    /// Decompresses a container or a directory of them (other files copied).
    /// - Parameter output: the destination; the input's name without `.bpz` when nil.
    public static func decompress(_ input: String, to output: String? = nil, overwrite: Bool = false) throws(FormatError) -> (output: String, summary: CompressionSummary) {
        guard let target = output ?? defaultOutput(for: input, compressing: false) else {
            throw FormatError(.invalidArgument, path: input, message: "the input's name does not end in .\(CompressedFormat.fileExtension), so there is no default output name",
                              remedy: "name the output with -o")
        }
        if isDirectory(input) {
            let start = Date()
            var summary = try transformDirectory(input, to: target, overwrite: overwrite) { (source, directory) throws(FormatError) in
                let name = (source as NSString).lastPathComponent
                if CompressedFormat.isContainer(atPath: source) {
                    let destination = (directory as NSString).appendingPathComponent(CompressedFormat.originalName(name))
                    return try decompressFile(source, to: destination)
                }
                return try copyFile(source, into: directory, name: name)
            }
            summary.seconds = Date().timeIntervalSince(start)
            return (target, summary)
        }
        return (target, try decompressFile(input, to: target, overwrite: overwrite))
    }

    /// `path` with `.bpz` appended when `compressed` and it does not end in `.bpz` already.
    public static func outputName(_ path: String, compressed: Bool) -> String {
        compressed && !path.hasSuffix("." + CompressedFormat.fileExtension) ? path + "." + CompressedFormat.fileExtension : path
    }

    /// Compresses a staged (not yet committed) weight file in its directory: the container replaces
    /// it, as `path.bpz` when `appendExtension`, else under the same name.
    /// - Returns: the container's path.
    public static func compressStaged(_ path: String, appendExtension: Bool) throws(FormatError) -> String {
        let target = path + "." + CompressedFormat.fileExtension + (appendExtension ? "" : ".partial")
        _ = try compressFile(path, to: target, overwrite: true)
        if appendExtension {
            unlink(path)
            return target
        }
        guard rename(target, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(target)
            throw FormatError(.writeFailed, path: path, message: "cannot move the compressed file into place (\(reason))")
        }
        return path
    }

    /// Whether `name` is a file the container compresses (safetensors or GGUF).
    public static func isWeightFile(_ name: String) -> Bool {
        name.hasSuffix(".safetensors") || name.hasSuffix(".gguf")
    }

    // MARK: Helpers

    private static func isDirectory(_ path: String) -> Bool {
        var flag: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &flag) && flag.boolValue
    }

    private static func refuseSamePath(_ input: String, _ output: String) throws(FormatError) {
        let a = URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath().path
        let b = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath().path
        if a == b {
            throw FormatError(.invalidArgument, path: output, message: "the output is the input", remedy: "choose another output path")
        }
    }

    private static func copyFile(_ source: String, into directory: String, name: String) throws(FormatError) -> CompressionSummary {
        let file = try MappedFile(uncompressedPath: source)
        let out = try OutputFile(path: (directory as NSString).appendingPathComponent(name))
        defer { out.discard() }
        try out.write(file.bytes)
        try out.commit()
        var summary = CompressionSummary()
        summary.inputByteCount = file.count
        summary.outputByteCount = file.count
        summary.copiedFileCount = 1
        return summary
    }

    /// Builds `target` in a hidden directory beside it, one output per non-hidden input file
    /// (sub-directories recursively), then syncs and renames it into place.
    private static func transformDirectory(_ input: String, to target: String, overwrite: Bool,
                                           each: (String, String) throws(FormatError) -> CompressionSummary) throws(FormatError) -> CompressionSummary {
        try refuseSamePath(input, target)
        let fm = FileManager.default
        if fm.fileExists(atPath: target), !overwrite {
            throw FormatError(.writeFailed, path: target, message: "the output already exists",
                              remedy: "choose another output path or pass --force to replace it")
        }
        let targetURL = URL(fileURLWithPath: target)
        let parent = targetURL.deletingLastPathComponent().path
        let staging = parent + "/." + targetURL.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try fm.createDirectory(atPath: staging, withIntermediateDirectories: false)
        } catch {
            throw FormatError(.writeFailed, path: staging, message: "cannot create a working directory beside the output (\(error.localizedDescription))",
                              remedy: "check that the output's directory exists and is writable")
        }
        var committed = false
        defer { if !committed { try? fm.removeItem(atPath: staging) } }
        var summary = CompressionSummary()
        func walk(_ source: String, _ destination: String) throws(FormatError) {
            let names: [String]
            do { names = try fm.contentsOfDirectory(atPath: source) } catch {
                throw FormatError(.io, path: source, message: "cannot list the directory (\(error.localizedDescription))")
            }
            for name in names.sorted() where !name.hasPrefix(".") {
                let path = (source as NSString).appendingPathComponent(name)
                if isDirectory(path) {
                    let sub = (destination as NSString).appendingPathComponent(name)
                    do { try fm.createDirectory(atPath: sub, withIntermediateDirectories: false) } catch {
                        throw FormatError(.writeFailed, path: sub, message: "cannot create the directory (\(error.localizedDescription))")
                    }
                    try walk(path, sub)
                } else {
                    summary.add(try each(path, destination))
                }
            }
            syncDirectory(destination)
        }
        try walk(input, staging)
        if fm.fileExists(atPath: target) {
            let aside = parent + "/." + targetURL.lastPathComponent + ".old-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            guard rename(target, aside) == 0 else {
                throw FormatError(.writeFailed, path: target, message: "cannot move the existing output aside (\(String(cString: strerror(errno))))")
            }
            guard rename(staging, target) == 0 else {
                let reason = String(cString: strerror(errno))
                _ = rename(aside, target)
                throw FormatError(.writeFailed, path: target, message: "cannot move the finished output into place (\(reason))")
            }
            try? fm.removeItem(atPath: aside)
        } else {
            guard rename(staging, target) == 0 else {
                throw FormatError(.writeFailed, path: target, message: "cannot move the finished output into place (\(String(cString: strerror(errno))))")
            }
        }
        committed = true
        syncDirectory(parent)
        return summary
    }

    private static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    private static func store<T: FixedWidthInteger>(_ value: T, in bytes: inout [UInt8], at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for (position, byte) in raw.enumerated() { bytes[offset + position] = byte }
        }
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
}
