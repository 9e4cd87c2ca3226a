import CKernels
import Foundation

extension FormatError.Code {
    /// A chunk of a compressed container fails its checksum or does not decode (formats/compressed.md §4).
    public static let checksumMismatch: Self = "checksumMismatch"
    /// The container's start header, index or footer is inconsistent (formats/compressed.md §2–3).
    public static let invalidContainer: Self = "invalidContainer"
    /// The input of `compress` is already a compressed container.
    public static let alreadyCompressed: Self = "alreadyCompressed"
}

/// How the bytes of one region are rearranged before compression (formats/compressed.md §3).
public enum PlaneTransform: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// The bytes as they are, compressed as one plane.
    case none = 0
    /// Elements of `width` bytes split into `width` planes (plane k holds byte k of every element).
    case planes = 1
    /// As ``planes``, after rotating each little-endian element left by one bit, so that a float's
    /// sign moves to bit 0 and its exponent fills the top plane.
    case signRotatedPlanes = 2

    /// The name used in benchmark tables and the spec.
    public var description: String {
        switch self {
        case .none: return "none"
        case .planes: return "planes"
        case .signRotatedPlanes: return "sign-rotated planes"
        }
    }
}

/// The transform and element width a region is compressed with.
public struct PlaneLayout: Sendable, Hashable {
    /// The rearrangement.
    public var transform: PlaneTransform
    /// Bytes per element (1, 2, 4 or 8); 1 for ``PlaneTransform/none``.
    public var width: Int

    /// Creates a layout; `width` is forced to 1 for ``PlaneTransform/none``.
    public init(transform: PlaneTransform, width: Int) {
        self.transform = transform
        self.width = transform == .none ? 1 : width
    }

    /// The number of planes a chunk of this layout is stored as.
    public var planeCount: Int { transform == .none ? 1 : width }

    /// Bytes as they are.
    public static let bytes = PlaneLayout(transform: .none, width: 1)

    /// The layout that measured best for a safetensors element type (tools/bench_compress.py):
    /// floats of 2, 4 or 8 bytes as sign-rotated byte planes, wider integers as byte planes, and
    /// one-byte and sub-byte types (FP8, I8, U8, packed FP4) as they are.
    public static func forDType(_ dtype: DType) -> PlaneLayout {
        switch dtype {
        case .bf16, .f16: return PlaneLayout(transform: .signRotatedPlanes, width: 2)
        case .f32, .c64: return PlaneLayout(transform: .signRotatedPlanes, width: 4)
        case .f64: return PlaneLayout(transform: .signRotatedPlanes, width: 8)
        case .i16, .u16: return PlaneLayout(transform: .planes, width: 2)
        case .i32, .u32: return PlaneLayout(transform: .planes, width: 4)
        case .i64, .u64: return PlaneLayout(transform: .planes, width: 8)
        default: return .bytes
        }
    }

    /// The layout for a GGUF tensor type: F32/F16/BF16 and the integer types as for safetensors;
    /// block-quantized types as they are.
    public static func forGGML(_ type: GGMLType) -> PlaneLayout {
        switch type.name {
        case "F32": return forDType(.f32)
        case "F16": return forDType(.f16)
        case "BF16": return forDType(.bf16)
        case "F64": return forDType(.f64)
        case "I16": return forDType(.i16)
        case "I32": return forDType(.i32)
        case "I64": return forDType(.i64)
        default: return .bytes
        }
    }
}

/// One contiguous range of the original file and how it is compressed: a tensor's data, or bytes
/// that belong to no tensor (GGUF alignment padding).
public struct CompressedRegion: Sendable, Hashable {
    /// The tensor the bytes belong to, or "" for padding.
    public var name: String
    /// The bytes of the original file this region holds.
    public var originalRange: Range<Int>
    /// Original bytes per chunk (the last chunk may be shorter); a multiple of the width.
    public var chunkByteCount: Int
    /// The transform and element width.
    public var layout: PlaneLayout
    /// The index of the region's first chunk in the container's chunk table.
    public var firstChunk: Int

    /// The number of chunks the region is stored in.
    public var chunkCount: Int {
        originalRange.isEmpty ? 0 : (originalRange.count + chunkByteCount - 1) / chunkByteCount
    }

    /// The original bytes chunk `index` (counted within the region) holds.
    public func chunkRange(_ index: Int) -> Range<Int> {
        let start = originalRange.lowerBound + index * chunkByteCount
        return start..<min(originalRange.upperBound, start + chunkByteCount)
    }
}

/// The fixed numbers of the container format (formats/compressed.md §2).
public enum CompressedFormat {
    /// The first 8 bytes of every container: `QZBP\r\n\x1a\n`.
    public static let magic: [UInt8] = [0x51, 0x5A, 0x42, 0x50, 0x0D, 0x0A, 0x1A, 0x0A]
    /// The last 8 bytes of a complete container: `QZBPEND\n`.
    public static let footerMagic: [UInt8] = [0x51, 0x5A, 0x42, 0x50, 0x45, 0x4E, 0x44, 0x0A]
    /// The version this code writes and reads.
    public static let version: UInt32 = 1
    /// Bytes of the start header.
    public static let startHeaderByteCount = 48
    /// Bytes of the footer.
    public static let footerByteCount = 32
    /// The suffix a compressed file adds to the original's name (`model.safetensors.bpz`).
    public static let fileExtension = "bpz"
    /// The default original bytes per chunk (1 MiB).
    public static let defaultChunkByteCount = 1 << 20
    /// The largest chunk a reader accepts (64 MiB), so a hostile index cannot make one decode huge.
    public static let maxChunkByteCount = 64 << 20
    /// The largest original size a reader accepts (2^48 bytes, the safetensors offset limit).
    public static let maxOriginalByteCount = 1 << 48

    /// What the original file was, as the start header records it.
    public enum OriginalFormat: UInt32, Sendable {
        /// Not recorded.
        case other = 0
        /// A safetensors file.
        case safetensors = 1
        /// A GGUF file.
        case gguf = 2
    }

    /// Whether `bytes` begin with the container magic.
    public static func hasMagic(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= magic.count && bytes.starts(with: magic)
    }

    /// Whether the file at `path` begins with the container magic (reads 8 bytes; false when unreadable).
    public static func isContainer(atPath path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: magic.count)) ?? Data()
        return head.count == magic.count && Array(head) == magic
    }

    /// The original format recorded in the container at `path`, or nil when it is not a container.
    public static func originalFormat(atPath path: String) -> OriginalFormat? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let head = Array((try? handle.read(upToCount: 16)) ?? Data())
        guard head.count == 16, Array(head[0..<8]) == magic else { return nil }
        let raw = UInt32(head[12]) | UInt32(head[13]) << 8 | UInt32(head[14]) << 16 | UInt32(head[15]) << 24
        return OriginalFormat(rawValue: raw) ?? .other
    }

    /// The file names a reader looks for: `name` itself, then `name.bpz`.
    public static func existingPath(_ path: String) -> String? {
        if FileManager.default.fileExists(atPath: path) { return path }
        let compressed = path + "." + fileExtension
        return FileManager.default.fileExists(atPath: compressed) ? compressed : nil
    }

    /// `name` without a trailing `.bpz`.
    public static func originalName(_ name: String) -> String {
        name.hasSuffix("." + fileExtension) ? String(name.dropLast(fileExtension.count + 1)) : name
    }

    /// XXH64 of `bytes` with seed 0, the checksum every part of the container carries.
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        qk_xxh64(bytes.baseAddress, bytes.count, 0)
    }
}
