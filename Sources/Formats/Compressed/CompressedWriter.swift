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
        try compressFile(input, to: output, overwrite: overwrite, chunkByteCount: chunkByteCount, inputEntry: nil)
    }

    /// ``compressFile(_:to:overwrite:chunkByteCount:)``, and when `inputEntry` is given, the
    /// input's SHA-256 computed in the same pass (formats/integrity.md).
    static func compressFile(_ input: String, to output: String, overwrite: Bool, chunkByteCount: Int,
                             inputEntry: UnsafeMutablePointer<IntegrityManifest.FileEntry?>?) throws(FormatError) -> CompressionSummary {
        let start = Date()
        try refuseSamePath(input, output)
        let plan = try plan(forFileAt: input)
        let source = try MappedFile(uncompressedPath: input)
        let out = try OutputFile(path: output, overwrite: overwrite)
        defer { out.discard() }
        let digest = inputEntry == nil ? nil : InputDigest(file: source)
        try write(source: source, plan: plan, chunkByteCount: chunkByteCount, to: out, digest: digest)
        if let digest, let inputEntry {
            var entry = try digest.finish()
            entry.name = input
            inputEntry.pointee = entry
        }
        try out.commit()
        var summary = CompressionSummary()
        summary.inputByteCount = source.count
        summary.outputByteCount = out.position
        summary.weightFileCount = 1
        summary.seconds = Date().timeIntervalSince(start)
        return summary
    }

    /// Writes the container of `source` laid out by `plan` into `out` (not committed).
    /// - Parameter digest: hashes the input as its chunks are compressed (in file order).
    public static func write(source: MappedFile, plan: FilePlan, chunkByteCount requested: Int = CompressedFormat.defaultChunkByteCount,
                             to out: OutputFile, digest: InputDigest? = nil) throws(FormatError) {
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
            let batchStart = regions[work[done].region].chunkRange(work[done].chunk).lowerBound
            let batchEnd = regions[work[done + count - 1].region].chunkRange(work[done + count - 1].chunk).upperBound
            // Reading a page past a truncated file's end raises SIGBUS: check the size before each batch.
            try source.checkIntact(batchStart..<batchEnd)
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
            // Hashed while the batch's pages are still resident (through the SIGBUS guard).
            try digest?.advance(to: batchEnd)
            source.advise(batchStart..<batchEnd, willNeed: false)
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
        try digest?.advance(to: bytes.count)
    }

    /// Decompresses the container `input` into the original file `output`, byte for byte.
    public static func decompressFile(_ input: String, to output: String, overwrite: Bool = false) throws(FormatError) -> CompressionSummary {
        try decompressFile(input, to: output, overwrite: overwrite, inputEntry: nil)
    }

    /// ``decompressFile(_:to:overwrite:)``, and when `inputEntry` is given, the container's
    /// SHA-256 computed in the same pass.
    static func decompressFile(_ input: String, to output: String, overwrite: Bool,
                               inputEntry: UnsafeMutablePointer<IntegrityManifest.FileEntry?>?) throws(FormatError) -> CompressionSummary {
        let start = Date()
        try refuseSamePath(input, output)
        let file = try CompressedFile(path: input)
        let out = try OutputFile(path: output, overwrite: overwrite)
        defer { out.discard() }
        let digest = inputEntry == nil ? nil : InputDigest(file: file.container)
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
            try digest?.advance(to: file.storedRange(ofChunk: indices[count - 1]).upperBound)
            file.container.advise(file.storedRange(ofChunk: indices[0]).lowerBound..<file.storedRange(ofChunk: indices[count - 1]).upperBound, willNeed: false)
            done += count
        }
        guard out.position == file.originalByteCount else {
            throw FormatError(.invalidContainer, path: input, message: "the chunks decode to \(out.position) bytes, but the original was \(file.originalByteCount)",
                              remedy: "the compressed file is damaged; copy it again")
        }
        if let digest, let inputEntry {
            var entry = try digest.finish()
            entry.name = input
            inputEntry.pointee = entry
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
    /// The output is staged in an ``OutputTransaction`` with its integrity manifest (the SHA-256
    /// of every input and output file, computed in the same pass; formats/integrity.md); an input
    /// whose `.sha256` sidecar or quantize manifest records another checksum is refused.
    /// - Parameter output: the destination; `input.bpz` when nil.
    /// - Returns: the output path and what was done.
    public static func compress(_ input: String, to output: String? = nil, overwrite: Bool = false,
                                chunkByteCount: Int = CompressedFormat.defaultChunkByteCount) throws(FormatError) -> (output: String, summary: CompressionSummary) {
        let target = output ?? defaultOutput(for: input, compressing: true)!
        let options = ["operation": "compress", "chunk_bytes": "\(chunkByteCount)"]
        if isDirectory(input) {
            let summary = try transformDirectory(input, to: target, overwrite: overwrite, options: options) { (source, directory, entry) throws(FormatError) in
                let name = (source as NSString).lastPathComponent
                if isWeightFile(name), !CompressedFormat.isContainer(atPath: source) {
                    let destination = (directory as NSString).appendingPathComponent(name + "." + CompressedFormat.fileExtension)
                    return try compressFile(source, to: destination, overwrite: false, chunkByteCount: chunkByteCount, inputEntry: entry)
                }
                return try copyFile(source, into: directory, name: name, inputEntry: entry)
            }
            return (target, summary)
        }
        let summary = try transformFile(input, to: target, overwrite: overwrite, options: options) { (staged, entry) throws(FormatError) in
            try compressFile(input, to: staged, overwrite: true, chunkByteCount: chunkByteCount, inputEntry: entry)
        }
        return (target, summary)
    }

    /// Decompresses a container or a directory of them (other files copied), staged with its
    /// integrity manifest as ``compress(_:to:overwrite:chunkByteCount:)`` is.
    /// - Parameter output: the destination; the input's name without `.bpz` when nil.
    public static func decompress(_ input: String, to output: String? = nil, overwrite: Bool = false) throws(FormatError) -> (output: String, summary: CompressionSummary) {
        guard let target = output ?? defaultOutput(for: input, compressing: false) else {
            throw FormatError(.invalidArgument, path: input, message: "the input's name does not end in .\(CompressedFormat.fileExtension), so there is no default output name",
                              remedy: "name the output with -o")
        }
        let options = ["operation": "decompress"]
        if isDirectory(input) {
            let summary = try transformDirectory(input, to: target, overwrite: overwrite, options: options) { (source, directory, entry) throws(FormatError) in
                let name = (source as NSString).lastPathComponent
                if CompressedFormat.isContainer(atPath: source) {
                    let destination = (directory as NSString).appendingPathComponent(CompressedFormat.originalName(name))
                    return try decompressFile(source, to: destination, overwrite: false, inputEntry: entry)
                }
                return try copyFile(source, into: directory, name: name, inputEntry: entry)
            }
            return (target, summary)
        }
        let summary = try transformFile(input, to: target, overwrite: overwrite, options: options) { (staged, entry) throws(FormatError) in
            try decompressFile(input, to: staged, overwrite: true, inputEntry: entry)
        }
        return (target, summary)
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

    private static func copyFile(_ source: String, into directory: String, name: String,
                                 inputEntry: UnsafeMutablePointer<IntegrityManifest.FileEntry?>) throws(FormatError) -> CompressionSummary {
        let file = try MappedFile(uncompressedPath: source)
        let out = try OutputFile(path: (directory as NSString).appendingPathComponent(name))
        defer { out.discard() }
        try out.write(contentsOf: file)
        try out.commit()
        // The copy's bytes are the source's: one read gives both checksums.
        inputEntry.pointee = IntegrityManifest.FileEntry(name: source, bytes: out.position, sha256: out.sha256 ?? "")
        var summary = CompressionSummary()
        summary.inputByteCount = file.count
        summary.outputByteCount = file.count
        summary.copiedFileCount = 1
        return summary
    }

    /// Checks an input's entry (computed while it was read) against what it carries.
    private static func verified(_ entry: IntegrityManifest.FileEntry?, path: String) throws(FormatError) -> IntegrityManifest.FileEntry? {
        guard let entry else { return nil }
        if let expected = try IntegrityManifest.expectedChecksum(forInput: path) { try IntegrityManifest.check(input: entry, against: expected) }
        return entry
    }

    /// Builds the file `target` in an ``OutputTransaction`` (`make` writes the staged path and
    /// reports the input's entry), with its manifest beside it, then commits it.
    private static func transformFile(_ input: String, to target: String, overwrite: Bool, options: [String: String],
                                      make: (String, UnsafeMutablePointer<IntegrityManifest.FileEntry?>) throws(FormatError) -> CompressionSummary) throws(FormatError) -> CompressionSummary {
        let start = Date()
        try refuseSamePath(input, target)
        try refuseExisting(target, overwrite: overwrite)
        let transaction = try OutputTransaction(target: target)
        transaction.replacesExisting = overwrite
        let name = URL(fileURLWithPath: target).lastPathComponent
        var entry: IntegrityManifest.FileEntry? = nil
        var summary: CompressionSummary
        do {
            summary = try make(transaction.path(name), &entry)
            transaction.manifest = IntegrityManifest(scheme: nil, options: options, files: [], inputs: try verified(entry, path: input).map { [$0] } ?? [])
            try transaction.commit(.file(named: name))
        } catch {
            transaction.discard()
            throw transaction.publicError(error)
        }
        summary.seconds = Date().timeIntervalSince(start)
        return summary
    }

    private static func refuseExisting(_ target: String, overwrite: Bool) throws(FormatError) {
        if !overwrite, FileManager.default.fileExists(atPath: target) {
            throw FormatError(.writeFailed, path: target, message: "the output already exists",
                              remedy: "choose another output path or pass --force to replace it")
        }
    }

    /// Builds `target` in an ``OutputTransaction``'s staging directory, one output per non-hidden
    /// input file (sub-directories recursively; an input `quantize-manifest.json` is not copied:
    /// it checks the input files and the new manifest replaces it), then commits it with its manifest.
    private static func transformDirectory(_ input: String, to target: String, overwrite: Bool, options: [String: String],
                                           each: (String, String, UnsafeMutablePointer<IntegrityManifest.FileEntry?>) throws(FormatError) -> CompressionSummary) throws(FormatError) -> CompressionSummary {
        let start = Date()
        try refuseSamePath(input, target)
        try refuseExisting(target, overwrite: overwrite)
        let fm = FileManager.default
        let transaction = try OutputTransaction(target: target, directory: true)
        transaction.replacesExisting = overwrite
        var summary = CompressionSummary()
        var inputs: [IntegrityManifest.FileEntry] = []
        func walk(_ source: String, _ destination: String, root: Bool) throws(FormatError) {
            let names: [String]
            do { names = try fm.contentsOfDirectory(atPath: source) } catch {
                throw FormatError(.io, path: source, message: "cannot list the directory (\(error.localizedDescription))")
            }
            for name in names.sorted() where !name.hasPrefix(".") && !(root && name == IntegrityManifest.directoryFileName) {
                let path = (source as NSString).appendingPathComponent(name)
                if isDirectory(path) {
                    let sub = (destination as NSString).appendingPathComponent(name)
                    do { try fm.createDirectory(atPath: sub, withIntermediateDirectories: false) } catch {
                        throw FormatError(.writeFailed, path: sub, message: "cannot create the directory (\(error.localizedDescription))")
                    }
                    try walk(path, sub, root: false)
                } else {
                    var entry: IntegrityManifest.FileEntry? = nil
                    summary.add(try each(path, destination, &entry))
                    if let entry = try verified(entry, path: path) { inputs.append(entry) }
                }
            }
            syncDirectory(destination)
        }
        do {
            try walk(input, transaction.stagingDirectory, root: true)
            transaction.manifest = IntegrityManifest(scheme: nil, options: options, files: [], inputs: inputs)
            try transaction.commit(.directory)
        } catch {
            transaction.discard()
            throw transaction.publicError(error)
        }
        summary.seconds = Date().timeIntervalSince(start)
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
