import Dispatch
import Formats
import Foundation

/// The byte-plane zstd codec (formats/compressed.md) on real files, per element type: stored size,
/// compress and decompress speed on one core and on all cores, against memcpy of the same bytes.
///
/// The files come from `QUANTIZE_BENCH_FILES` (paths separated by `:`), as tools/bench_compress.py
/// passes them; each file's tensors are grouped by type and cut into the chunks `quantize compress`
/// uses. Prints one JSON object per (file, type) after the table, for the script to merge with the
/// ZipNN and `zstd -3` figures it measures on the same bytes.
func runCompressBenchmarks(_ options: BenchmarkOptions) throws {
    let list = ProcessInfo.processInfo.environment["QUANTIZE_BENCH_FILES"] ?? ""
    let files = list.split(separator: ":").map(String.init)
    if files.isEmpty {
        print("(no files: set QUANTIZE_BENCH_FILES=FILE[:FILE…], as tools/bench_compress.py does)")
        return
    }
    let cores = ProcessInfo.processInfo.activeProcessorCount
    var rows: [[String]] = []
    var lines: [String] = []
    for path in files {
        let plan = try CompressedContainer.plan(forFileAt: path)
        let source = try MappedFile(uncompressedPath: path)
        var typeOf: [String: String] = [:]
        if plan.format == .gguf {
            for tensor in try GGUFFile(path: path).tensors { typeOf[tensor.name] = tensor.type.name }
        } else {
            for tensor in try SafetensorsFile(path: path).tensors { typeOf[tensor.name] = tensor.dtype.rawValue }
        }
        var groups: [String: [CompressedContainer.RegionPlan]] = [:]
        for region in plan.regions where !region.name.isEmpty {
            groups[typeOf[region.name] ?? "?", default: []].append(region)
        }
        for (type, regions) in groups.sorted(by: { $0.key < $1.key }) {
            let chunkBytes = CompressedFormat.defaultChunkByteCount
            var chunks: [(range: Range<Int>, layout: PlaneLayout)] = []
            for region in regions {
                var start = region.range.lowerBound
                let step = max(region.layout.width, chunkBytes / region.layout.width * region.layout.width)
                while start < region.range.upperBound {
                    let end = min(region.range.upperBound, start + step)
                    chunks.append((start..<end, region.layout))
                    start = end
                }
            }
            let total = chunks.reduce(0) { $0 + $1.range.count }
            guard total > 0 else { continue }
            let bound = ChunkCodecPool.storedBound(byteCount: chunkBytes, layout: PlaneLayout(transform: .planes, width: 8)) + 64
            let stored = UnsafeMutableRawBufferPointer.allocate(byteCount: bound * chunks.count, alignment: 64)
            let decoded = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 64)
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 64)
            defer { stored.deallocate(); decoded.deallocate(); copy.deallocate() }
            var offsets = [Int](repeating: 0, count: chunks.count)
            for index in chunks.indices.dropFirst() { offsets[index] = offsets[index - 1] + chunks[index - 1].range.count }
            let pool = ChunkCodecPool()
            var planes = [[StoredPlane]](repeating: [], count: chunks.count)
            var sizes = [Int](repeating: 0, count: chunks.count)
            let shared = UncheckedSendable(value: (source.bytes, stored, decoded, chunks, offsets))
            let planesBox = UncheckedSendable(value: UnsafeMutableBufferPointer<[StoredPlane]>.allocate(capacity: chunks.count))
            let sizesBox = UncheckedSendable(value: UnsafeMutableBufferPointer<Int>.allocate(capacity: chunks.count))
            planesBox.value.initialize(repeating: [])
            defer { planesBox.value.deallocate(); sizesBox.value.deallocate() }
            @Sendable func encode(_ index: Int) {
                let (bytes, stored, _, chunks, _) = shared.value
                let target = UnsafeMutableRawBufferPointer(rebasing: stored[(index * bound)..<((index + 1) * bound)])
                let result = pool.encode(UnsafeRawBufferPointer(rebasing: bytes[chunks[index].range]), layout: chunks[index].layout, into: target)
                _ = CompressedFormat.checksum(UnsafeRawBufferPointer(rebasing: target[0..<result.byteCount]))
                planesBox.value[index] = result.planes
                sizesBox.value[index] = result.byteCount
            }
            @Sendable func decode(_ index: Int) {
                let (_, stored, decoded, chunks, offsets) = shared.value
                let input = UnsafeRawBufferPointer(rebasing: stored[(index * bound)..<(index * bound + sizesBox.value[index])])
                _ = CompressedFormat.checksum(input)
                let target = UnsafeMutableRawBufferPointer(rebasing: decoded[offsets[index]..<(offsets[index] + chunks[index].range.count)])
                _ = pool.decode(input, planes: planesBox.value[index][...], layout: chunks[index].layout, into: target)
            }
            let times = medianSeconds(repeats: options.repeats, [
                { for index in chunks.indices { encode(index) } },
                { DispatchQueue.concurrentPerform(iterations: chunks.count, execute: encode) },
                { for index in chunks.indices { decode(index) } },
                { DispatchQueue.concurrentPerform(iterations: chunks.count, execute: decode) },
                {
                    let (bytes, _, _, chunks, offsets) = shared.value
                    for index in chunks.indices {
                        (copy.baseAddress! + offsets[index]).copyMemory(from: bytes.baseAddress! + chunks[index].range.lowerBound,
                                                                         byteCount: chunks[index].range.count)
                    }
                },
            ])
            for index in chunks.indices { planes[index] = planesBox.value[index]; sizes[index] = sizesBox.value[index] }
            // The decoded bytes must equal the input, or the figures mean nothing.
            var same = true
            for index in chunks.indices where memcmp(decoded.baseAddress! + offsets[index], source.bytes.baseAddress! + chunks[index].range.lowerBound,
                                                     chunks[index].range.count) != 0 { same = false }
            guard same else { throw BenchmarkOptions.UsageError(description: "\(path) \(type): decoded bytes differ from the input") }
            let storedTotal = sizes.reduce(0, +) + chunks.count * 21  // + index records (formats/compressed.md §2)
            let rates = times.map { Double(total) / $0 / 1e9 }
            let name = (path as NSString).lastPathComponent
            rows.append([name, type, String(format: "%.1f MB", Double(total) / 1e6), String(format: "%.2f %%", 100 * Double(storedTotal) / Double(total)),
                         String(format: "%.2f", rates[0]), String(format: "%.2f", rates[1]), String(format: "%.2f", rates[2]),
                         String(format: "%.2f", rates[3]), String(format: "%.2f", rates[4])])
            lines.append("{\"file\": \"\(path)\", \"dtype\": \"\(type)\", \"bytes\": \(total), \"stored\": \(storedTotal), \"cores\": \(cores), "
                         + "\"compress1\": \(rates[0]), \"compressN\": \(rates[1]), \"decompress1\": \(rates[2]), \"decompressN\": \(rates[3]), \"memcpy\": \(rates[4])}")
        }
    }
    print(markdownTable(["file", "type", "bytes", "stored", "compress GB/s 1 core", "compress GB/s \(cores) cores",
                         "decompress GB/s 1 core", "decompress GB/s \(cores) cores", "memcpy GB/s"], rows))
    print("")
    for line in lines { print("RESULT " + line) }
}
