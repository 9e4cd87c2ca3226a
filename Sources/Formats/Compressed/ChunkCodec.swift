import CKernels
import CZstd
import Foundation

/// How one plane of a chunk is stored (formats/compressed.md §4).
public enum PlaneCodec: UInt8, Sendable {
    /// The plane's bytes as they are.
    case raw = 0
    /// One zstd frame whose declared content size is the plane's size.
    case zstd = 1
}

/// One plane of an encoded chunk: its stored size and codec.
public struct StoredPlane: Sendable, Hashable {
    /// Bytes the plane occupies in the container.
    public var byteCount: Int
    /// How it is stored.
    public var codec: PlaneCodec
}

/// The zstd contexts and scratch memory one thread uses to encode or decode chunks; taken from a
/// ``ChunkCodecPool`` so contexts are reused across chunks and tensors.
final class ChunkWorker {
    let literals: OpaquePointer
    let matching: OpaquePointer
    let decoder: OpaquePointer
    private(set) var planes: UnsafeMutableRawBufferPointer
    private(set) var trial: UnsafeMutableRawBufferPointer

    init() {
        literals = ZSTD_createCCtx()
        // Literals only: no match search, Huffman-coded literals (the entropy coding ZipNN uses),
        // which on weight planes is both smaller and several times faster than LZ matching.
        ZSTD_CCtx_setParameter(literals, ZSTD_c_compressionLevel, 3)
        ZSTD_CCtx_setParameter(literals, ZSTD_c_experimentalParam5,  // ZSTD_c_literalCompressionMode
                                Int32(ZSTD_ps_enable.rawValue))
        ZSTD_CCtx_setParameter(literals, ZSTD_c_experimentalParam11,  // ZSTD_c_blockDelimiters
                                Int32(ZSTD_sf_noBlockDelimiters.rawValue))
        ZSTD_CCtx_setParameter(literals, ZSTD_c_contentSizeFlag, 1)
        matching = ZSTD_createCCtx()
        ZSTD_CCtx_setParameter(matching, ZSTD_c_compressionLevel, 3)
        ZSTD_CCtx_setParameter(matching, ZSTD_c_contentSizeFlag, 1)
        decoder = ZSTD_createDCtx()
        planes = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 64)
        trial = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 64)
    }

    deinit {
        ZSTD_freeCCtx(literals)
        ZSTD_freeCCtx(matching)
        ZSTD_freeDCtx(decoder)
        planes.deallocate()
        trial.deallocate()
    }

    func planeScratch(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if planes.count < count {
            planes.deallocate()
            planes = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 64)
        }
        return planes
    }

    func trialScratch(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if trial.count < count {
            trial.deallocate()
            trial = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 64)
        }
        return trial
    }
}

/// A pool of ``ChunkWorker``s shared by the threads of one compression or decompression.
public final class ChunkCodecPool: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [ChunkWorker] = []

    /// Creates an empty pool; workers are made on demand.
    public init() {}

    func withWorker<T>(_ body: (ChunkWorker) throws -> T) rethrows -> T {
        lock.lock()
        let worker = idle.popLast() ?? ChunkWorker()
        lock.unlock()
        defer {
            lock.lock()
            idle.append(worker)
            lock.unlock()
        }
        return try body(worker)
    }

    /// The most bytes encoding `byteCount` original bytes of `layout` can take.
    public static func storedBound(byteCount: Int, layout: PlaneLayout) -> Int {
        let planeBytes = layout.transform == .none ? byteCount : byteCount / max(1, layout.width)
        return layout.planeCount * max(planeBytes, ZSTD_compressBound(planeBytes))
    }

    /// Encodes one chunk: splits it into planes, compresses each (literals-only zstd; LZ zstd as
    /// well when literals alone leave it under a sixth of its size; raw when zstd saves under 1 %),
    /// and writes the planes one after another into `output`.
    /// - Parameters:
    ///   - source: the chunk's original bytes (a multiple of the layout's width).
    ///   - output: at least ``storedBound(byteCount:layout:)`` bytes.
    /// - Returns: the planes as stored and the total bytes written.
    public func encode(_ source: UnsafeRawBufferPointer, layout: PlaneLayout,
                       into output: UnsafeMutableRawBufferPointer) -> (planes: [StoredPlane], byteCount: Int) {
        withWorker { worker in
            let planeCount = layout.planeCount
            let planeBytes = source.count / planeCount
            let planeData: UnsafeRawBufferPointer
            if layout.transform == .none || source.isEmpty {
                planeData = source
            } else {
                let scratch = worker.planeScratch(source.count)
                qk_planes_split(source.baseAddress, planeBytes, Int32(layout.width),
                                layout.transform == .signRotatedPlanes ? 1 : 0, scratch.baseAddress!.assumingMemoryBound(to: UInt8.self))
                planeData = UnsafeRawBufferPointer(scratch)
            }
            var planes: [StoredPlane] = []
            planes.reserveCapacity(planeCount)
            var written = 0
            for plane in 0..<planeCount {
                let input = UnsafeRawBufferPointer(rebasing: planeData[(plane * planeBytes)..<((plane + 1) * planeBytes)])
                let destination = output.baseAddress! + written
                let capacity = output.count - written
                let stored = ChunkCodecPool.encodePlane(input, worker: worker, destination: destination, capacity: capacity)
                planes.append(stored)
                written += stored.byteCount
            }
            return (planes, written)
        }
    }

    private static func encodePlane(_ input: UnsafeRawBufferPointer, worker: ChunkWorker,
                                    destination: UnsafeMutableRawPointer, capacity: Int) -> StoredPlane {
        func raw() -> StoredPlane {
            if input.count > 0 { destination.copyMemory(from: input.baseAddress!, byteCount: input.count) }
            return StoredPlane(byteCount: input.count, codec: .raw)
        }
        // Below 64 bytes a frame's header outweighs any saving; a plane whose sampled byte entropy
        // is near 8 bits (mantissa bytes) cannot save 1 %, so zstd is not even tried on it.
        guard input.count >= 64, !looksIncompressible(input) else { return raw() }
        var sequence = ZSTD_Sequence()
        let size = ZSTD_compressSequences(worker.literals, destination, capacity, &sequence, 0, input.baseAddress, input.count)
        var best = ZSTD_isError(size) != 0 ? Int.max : size
        if best < input.count / 6 {
            // Very low entropy (zeros, repeats): LZ matching may do much better than Huffman.
            let trial = worker.trialScratch(ZSTD_compressBound(input.count))
            let lz = ZSTD_compress2(worker.matching, trial.baseAddress, trial.count, input.baseAddress, input.count)
            if ZSTD_isError(lz) == 0, lz < best, lz <= capacity {
                destination.copyMemory(from: trial.baseAddress!, byteCount: lz)
                best = lz
            }
        }
        if best == Int.max || best >= input.count - input.count / 100 { return raw() }
        return StoredPlane(byteCount: best, codec: .zstd)
    }

    /// Whether the order-0 entropy of a 16 KiB sample (spread over the plane) is above 7.9 bits per
    /// byte, where zstd's Huffman coding cannot save the 1 % a zstd plane must save.
    private static func looksIncompressible(_ input: UnsafeRawBufferPointer) -> Bool {
        guard input.count >= 64 << 10 else { return false }
        let pieces = 16, pieceBytes = 1024
        let stride = input.count / pieces
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 256) { counts in
            counts.initialize(repeating: 0)
            for piece in 0..<pieces {
                let start = piece * stride
                for offset in start..<(start + pieceBytes) { counts[Int(input[offset])] &+= 1 }
            }
            let total = Double(pieces * pieceBytes)
            var entropy = 0.0
            for symbol in 0..<256 where counts[symbol] > 0 {
                let p = Double(counts[symbol]) / total
                entropy -= p * log2(p)
            }
            // A sample of 16 Ki bytes underestimates the entropy by about 0.01 bit.
            return entropy > 7.9
        }
    }

    /// Why a stored chunk could not be decoded.
    public enum DecodeFailure: Error, Sendable {
        /// A zstd plane is not one frame declaring the expected size, or zstd refused it.
        case badFrame(plane: Int, reason: String)
    }

    /// Decodes one chunk whose stored planes lie one after another in `stored` into `destination`
    /// (the chunk's original bytes).
    public func decode(_ stored: UnsafeRawBufferPointer, planes: ArraySlice<StoredPlane>, layout: PlaneLayout,
                       into destination: UnsafeMutableRawBufferPointer) -> DecodeFailure? {
        withWorker { worker in
            let planeCount = layout.planeCount
            let planeBytes = destination.count / planeCount
            let direct = layout.transform == .none || planeCount == 1
            let scratch = direct ? UnsafeMutableRawBufferPointer(start: nil, count: 0) : worker.planeScratch(destination.count)
            var pointers: [UnsafePointer<UInt8>?] = []
            pointers.reserveCapacity(planeCount)
            var offset = 0
            for (plane, entry) in planes.enumerated() {
                let input = UnsafeRawBufferPointer(rebasing: stored[offset..<(offset + entry.byteCount)])
                offset += entry.byteCount
                switch entry.codec {
                case .raw:
                    if direct {
                        if planeBytes > 0 { destination.baseAddress!.copyMemory(from: input.baseAddress!, byteCount: planeBytes) }
                    } else {
                        pointers.append(input.baseAddress?.assumingMemoryBound(to: UInt8.self))
                    }
                case .zstd:
                    let target = direct ? destination.baseAddress! : scratch.baseAddress! + plane * planeBytes
                    let declared = ZSTD_getFrameContentSize(input.baseAddress, input.count)
                    guard declared == UInt64(planeBytes) else {
                        let what = declared == ZSTD_CONTENTSIZE_ERROR ? "is not a zstd frame" :
                            declared == ZSTD_CONTENTSIZE_UNKNOWN ? "does not declare its size" : "declares \(declared) bytes instead of \(planeBytes)"
                        return .badFrame(plane: plane, reason: what)
                    }
                    let frame = ZSTD_findFrameCompressedSize(input.baseAddress, input.count)
                    guard ZSTD_isError(frame) == 0, frame == input.count else {
                        return .badFrame(plane: plane, reason: "is not exactly one zstd frame")
                    }
                    let result = ZSTD_decompressDCtx(worker.decoder, target, planeBytes, input.baseAddress, input.count)
                    if ZSTD_isError(result) != 0 {
                        return .badFrame(plane: plane, reason: "does not decode (\(String(cString: ZSTD_getErrorName(result))))")
                    }
                    if result != planeBytes { return .badFrame(plane: plane, reason: "decodes to \(result) bytes instead of \(planeBytes)") }
                    if !direct { pointers.append(UnsafePointer(target.assumingMemoryBound(to: UInt8.self))) }
                }
            }
            if !direct, planeBytes > 0 {
                pointers.withUnsafeBufferPointer { list in
                    qk_planes_join(list.baseAddress, planeBytes, Int32(layout.width),
                                   layout.transform == .signRotatedPlanes ? 1 : 0, destination.baseAddress)
                }
            }
            return nil
        }
    }
}
