import Foundation

extension FormatError.Code {
    /// The GGUF version is 0, 1 (dropped by ggml), newer than 3, or looks byte-swapped.
    public static let ggufUnsupportedVersion: Self = "ggufUnsupportedVersion"
    /// A metadata key is the empty string.
    public static let ggufEmptyKey: Self = "ggufEmptyKey"
    /// A metadata key appears more than once.
    public static let ggufDuplicateKey: Self = "ggufDuplicateKey"
    /// A metadata value or array element has a type id GGUF does not define.
    public static let ggufUnknownValueType: Self = "ggufUnknownValueType"
    /// An array's elements are arrays (the spec allows it, ggml rejects it).
    public static let ggufNestedArray: Self = "ggufNestedArray"
    /// Two tensors have the same name.
    public static let ggufDuplicateTensorName: Self = "ggufDuplicateTensorName"
    /// A tensor name is 64 bytes or longer (ggml's `GGML_MAX_NAME` is 64 including the NUL).
    public static let ggufTensorNameTooLong: Self = "ggufTensorNameTooLong"
    /// A tensor has more than 4 dimensions (`GGML_MAX_DIMS`).
    public static let ggufTooManyDimensions: Self = "ggufTooManyDimensions"
    /// A tensor dimension, read as a signed 64-bit integer, is negative.
    public static let ggufNegativeDimension: Self = "ggufNegativeDimension"
    /// A tensor's ggml type id is unknown or belongs to a type ggml removed.
    public static let ggufUnknownTensorType: Self = "ggufUnknownTensorType"
    /// A tensor's row length (dims[0]) is not a multiple of its type's block size.
    public static let ggufBlockSizeMismatch: Self = "ggufBlockSizeMismatch"
    /// `general.alignment` is not a u32, or not a power of two, or 0, or above 1 MiB.
    public static let ggufBadAlignment: Self = "ggufBadAlignment"
    /// A tensor's data offset is not where ggml requires it (right after the previous tensor, padded).
    public static let ggufOffsetMismatch: Self = "ggufOffsetMismatch"
}

/// One tensor as a GGUF tensor-info entry describes it (formats.md §2.1).
public struct GGUFTensorInfo: Sendable, Hashable {
    /// The tensor's name (at most 63 bytes of UTF-8).
    public var name: String
    /// The dimensions in ggml order: `dimensions[0]` (ne0) is the contiguous row length.
    public var dimensions: [Int]
    /// The storage type.
    public var type: GGMLType
    /// The offset of the first data byte, relative to the start of the data section.
    public var offset: Int
    /// The number of elements (the product of `dimensions`; 1 for zero dimensions).
    public var elementCount: Int
    /// Bytes the data occupies, without padding.
    public var byteCount: Int

    /// The shape outermost first, as numpy and PyTorch write it (`dimensions` reversed).
    public var shape: [Int] { dimensions.reversed() }

    /// Creates a tensor info.
    public init(name: String, dimensions: [Int], type: GGMLType, offset: Int, elementCount: Int, byteCount: Int) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.offset = offset
        self.elementCount = elementCount
        self.byteCount = byteCount
    }
}

/// A GGUF file (version 2 or 3), mapped read-only and validated as strictly as ggml's own reader
/// (`gguf_init_from_reader` in ggml src/gguf.cpp; formats.md §2.2), plus overflow checks.
///
/// The header is parsed once at `init`; tensor data is never copied: ``data(for:)`` returns a view
/// into the mapping. Every count and length read from the file is bounded by the bytes left in
/// the file before anything is allocated from it, so a corrupt or hostile header fails fast.
/// Every tensor's data must lie inside the file; the zero padding after the last tensor may be
/// missing, as llama.cpp's loader allows (its bounds check is per tensor, unpadded).
public final class GGUFFile: @unchecked Sendable {
    /// The path the file was opened from.
    public let path: String
    /// The mapped file.
    public let file: MappedFile
    /// The format version (2 or 3).
    public let version: UInt32
    /// The data alignment in bytes: `general.alignment`, or 32 when absent.
    public let alignment: Int
    /// The metadata entries in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    /// The tensors in file order.
    public let tensors: [GGUFTensorInfo]
    /// The absolute offset of the data section (the end of the tensor infos, padded to ``alignment``).
    public let dataStart: Int

    private let keyIndex: [String: Int]
    private let tensorIndex: [String: Int]

    /// The alignment ggml uses when a file has no `general.alignment` (`GGUF_DEFAULT_ALIGNMENT`).
    public static let defaultAlignment = 32
    /// The largest alignment ggml accepts (1 MiB).
    public static let maximumAlignment = 1 << 20
    /// The longest tensor name ggml accepts, in bytes (`GGML_MAX_NAME` − 1).
    public static let maximumNameLength = 63
    /// The most dimensions a tensor may have (`GGML_MAX_DIMS`).
    public static let maximumDimensions = 4

    /// Opens, maps and validates the GGUF file at `path`.
    /// - Throws: ``FormatError`` with a code naming the first problem found (`.truncated`,
    ///   `.notThisFormat`, `.ggufUnsupportedVersion`, …), the byte offset and, where it applies, the tensor.
    public convenience init(path: String) throws(FormatError) {
        try self.init(file: MappedFile(path: path))
    }

    /// Validates an already mapped file as GGUF.
    public init(file: MappedFile) throws(FormatError) {
        self.file = file
        self.path = file.path
        var parser = GGUFParser(bytes: file.bytes, path: file.path)
        let header = try parser.parse()
        version = header.version
        alignment = header.alignment
        metadata = header.metadata
        tensors = header.tensors
        dataStart = header.dataStart
        keyIndex = header.keyIndex
        tensorIndex = Dictionary(uniqueKeysWithValues: header.tensors.enumerated().map { ($1.name, $0) })
    }

    /// The value stored under `key`, or nil.
    public subscript(key: String) -> GGUFValue? {
        keyIndex[key].map { metadata[$0].value }
    }

    /// The tensor named `name`, or nil.
    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The data bytes of `tensor` (one of ``tensors``), viewed in the mapping without copying; valid
    /// while this object lives. Empty for a tensor that does not lie inside this file.
    public func data(for tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        guard let start = CheckedSize.sum(dataStart, tensor.offset),
              let end = CheckedSize.sum(start, tensor.byteCount),
              tensor.offset >= 0, tensor.byteCount >= 0, end <= file.bytes.count
        else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        file.loadForView(start..<end)
        return UnsafeRawBufferPointer(rebasing: file.bytes[start..<end])
    }

    /// The tensor's bytes, as ``data(for:)``, decompressing a compressed file's chunks first.
    /// - Throws: ``FormatError`` `.checksumMismatch` naming the tensor when a chunk is damaged.
    public func readData(for tensor: GGUFTensorInfo) throws(FormatError) -> UnsafeRawBufferPointer {
        if let start = CheckedSize.sum(dataStart, tensor.offset), let end = CheckedSize.sum(start, tensor.byteCount),
           tensor.offset >= 0, tensor.byteCount >= 0, end <= file.bytes.count {
            try file.load(start..<end)
        }
        return data(for: tensor)
    }

    /// The tensors as checkpoint records: row-major shapes, absolute offsets, `.ggml` types.
    /// - Parameter fileIndex: the index of this file in the checkpoint the records belong to.
    public func records(fileIndex: Int) -> [TensorRecord] {
        tensors.map { tensor in
            TensorRecord(name: tensor.name, type: .ggml(tensor.type), shape: tensor.shape,
                         elementCount: tensor.elementCount, byteCount: tensor.byteCount,
                         fileOffset: dataStart + tensor.offset, fileIndex: fileIndex)
        }
    }
}

/// The parsed header of a GGUF file.
struct GGUFHeader {
    var version: UInt32
    var alignment: Int
    var metadata: [(key: String, value: GGUFValue)]
    var keyIndex: [String: Int]
    var tensors: [GGUFTensorInfo]
    var dataStart: Int
}

/// The GGUF header parser (formats.md §2.1–2.2). Each check throws its own error code.
struct GGUFParser {
    private var reader: ByteReader
    private let path: String
    private var fileSize: Int { reader.bytes.count }

    private static let magic: [UInt8] = Array("GGUF".utf8)
    /// The least bytes one key-value entry takes: key length, a 1-byte key, type, a 1-byte value.
    private static let minimumEntrySize = 8 + 1 + 4 + 1
    /// The least bytes one tensor info takes: name length, an empty name, n_dims, type, offset.
    private static let minimumTensorInfoSize = 8 + 4 + 4 + 8

    init(bytes: UnsafeRawBufferPointer, path: String) {
        reader = ByteReader(bytes, path: path)
        self.path = path
    }

    mutating func parse() throws(FormatError) -> GGUFHeader {
        try checkMagic()
        let version = try readVersion()

        let tensorCountOffset = reader.offset
        let rawTensorCount = try reader.read(UInt64.self, "the tensor count")
        let rawKVCount = try reader.read(UInt64.self, "the metadata key-value count")
        let tensorCount = try bound(rawTensorCount, eachAtLeast: Self.minimumTensorInfoSize, what: "the tensor count",
                                    contents: "the \(rawTensorCount) tensor infos the tensor count announces",
                                    at: tensorCountOffset)
        let kvCount = try bound(rawKVCount, eachAtLeast: Self.minimumEntrySize, what: "the metadata key-value count",
                                contents: "the \(rawKVCount) metadata entries the key-value count announces",
                                at: tensorCountOffset + 8)

        var metadata: [(key: String, value: GGUFValue)] = []
        var keyIndex: [String: Int] = [:]
        var alignmentOffset: Int?
        metadata.reserveCapacity(kvCount)
        keyIndex.reserveCapacity(kvCount)
        for index in 0..<kvCount {
            let entryOffset = reader.offset
            let key = try readString("key \(index)")
            if key.isEmpty {
                throw FormatError(.ggufEmptyKey, path: path, offset: entryOffset,
                                  message: "metadata key \(index) is empty",
                                  remedy: "the file is corrupt; regenerate it with a current converter")
            }
            if let previous = keyIndex[key] {
                throw FormatError(.ggufDuplicateKey, path: path, offset: entryOffset,
                                  message: "metadata key '\(key)' appears twice (entries \(previous) and \(index))",
                                  remedy: "the file is corrupt; regenerate it with a current converter")
            }
            let value = try readValue(of: "key '\(key)'")
            keyIndex[key] = metadata.count
            metadata.append((key, value))
            if key == "general.alignment" { alignmentOffset = entryOffset }
        }

        let alignment = try readAlignment(metadata: metadata, keyIndex: keyIndex, at: alignmentOffset)

        var tensors: [GGUFTensorInfo] = []
        var rawOffsets: [UInt64] = []
        var infoOffsets: [Int] = []
        var names: [String: Int] = [:]
        tensors.reserveCapacity(tensorCount)
        rawOffsets.reserveCapacity(tensorCount)
        for index in 0..<tensorCount {
            infoOffsets.append(reader.offset)
            let (info, rawOffset) = try readTensorInfo(index: index, names: names)
            names[info.name] = index
            tensors.append(info)
            rawOffsets.append(rawOffset)
        }

        let headerEnd = reader.offset
        guard let dataStart = CheckedSize.align(headerEnd, to: alignment) else {
            throw overflow("the start of the data section", at: headerEnd)
        }
        if tensorCount > 0, dataStart > fileSize {
            throw FormatError(
                .truncated, path: path, offset: headerEnd,
                message: "the file ends inside the padding before the tensor data: the tensor infos end at byte "
                    + "\(headerEnd) and the data section would start at byte \(dataStart), but the file is \(fileSize) bytes",
                remedy: "the file is truncated; download it again")
        }
        try checkOffsets(tensors: tensors, rawOffsets: rawOffsets, infoOffsets: infoOffsets, alignment: alignment,
                         dataStart: dataStart)
        return GGUFHeader(version: version, alignment: alignment, metadata: metadata, keyIndex: keyIndex,
                          tensors: tensors, dataStart: dataStart)
    }

    // MARK: Magic and version

    private mutating func checkMagic() throws(FormatError) {
        let bytes = reader.bytes
        if bytes.isEmpty {
            throw FormatError(.notThisFormat, path: path, offset: 0, message: "the file is empty (0 bytes), not a GGUF file",
                              remedy: "download or copy the file again")
        }
        if let size = GitLFSPointer.declaredSize(in: bytes) {
            throw GitLFSPointer.error(path: path, declaredSize: size)
        }
        if bytes.count < 4, bytes.elementsEqual(Self.magic.prefix(bytes.count)) {
            try reader.require(4, for: "the magic 'GGUF'")
        }
        if bytes.count >= 4, bytes.prefix(4).elementsEqual(Self.magic) {
            reader = ByteReader(bytes, path: path, offset: 4)
            return
        }
        if looksLikeSafetensors(bytes) {
            throw FormatError(.notThisFormat, path: path, offset: 0,
                              message: "this looks like a safetensors file, not a GGUF file",
                              remedy: "open it as safetensors (or rename it to .safetensors)")
        }
        let found = bytes.prefix(4).map { byte in
            (0x20..<0x7F).contains(byte) ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
        }.joined()
        throw FormatError(.notThisFormat, path: path, offset: 0,
                          message: "the file does not start with the GGUF magic 'GGUF' (found '\(found)')",
                          remedy: "check that this is a .gguf file")
    }

    /// Whether the bytes start like a safetensors file: a u64 header length that fits, then '{'.
    private func looksLikeSafetensors(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 10 else { return false }
        let length = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        return length >= 2 && length <= UInt64(bytes.count - 8) && bytes[8] == UInt8(ascii: "{")
    }

    private mutating func readVersion() throws(FormatError) -> UInt32 {
        let offset = reader.offset
        let version = try reader.read(UInt32.self, "the version")
        func fail(_ message: String, _ remedy: String) -> FormatError {
            FormatError(.ggufUnsupportedVersion, path: path, offset: offset, message: message, remedy: remedy)
        }
        if version == 0 {
            throw fail("GGUF version 0 is not a valid version", "the file is corrupt; download it again")
        }
        if version & 0xFFFF == 0 {
            throw fail("the GGUF version reads as \(version) (0x\(String(version, radix: 16))), which is implausibly "
                       + "large: the file was probably written for the other byte order (big-endian)",
                       "convert it to a little-endian GGUF file (gguf-py's gguf_convert_endian.py)")
        }
        if version == 1 {
            throw fail("GGUF version 1 is no longer supported (ggml dropped GGUFv1)",
                       "convert it to a current GGUF file with llama.cpp's tools")
        }
        if version > 3 {
            throw fail("GGUF version \(version) is newer than the versions this tool reads (2 and 3)",
                       "use a newer version of this tool")
        }
        return version
    }

    // MARK: Counts, strings and values

    /// Converts a count read at `offset` into an `Int` after checking that `count` items of at
    /// least `size` bytes each fit in the bytes left. Nothing is allocated before this check.
    ///
    /// A count up to 2^30 (ggml's historical cap on strings and arrays) that the rest of the file
    /// cannot hold means the file was cut short (`.truncated`, naming `contents`); a larger one
    /// cannot come from a real file (`.implausibleSize`).
    private func bound(_ count: UInt64, eachAtLeast size: Int, what: String, contents: @autoclosure () -> String,
                       at offset: Int) throws(FormatError) -> Int {
        let left = max(reader.remaining, 0)
        if count <= UInt64(left / size) { return Int(count) }
        if count <= Self.plausibleCount {
            try reader.require(Int(count) * size, for: contents())
        }
        throw FormatError(
            .implausibleSize, path: path, offset: offset,
            message: "\(what) is \(count), but only \(left) bytes are left in the file, room for at most \(left / size)",
            remedy: "the file is corrupt or not a GGUF file; download it again")
    }

    /// The largest count treated as a plausible value in a truncated file (2^30).
    private static let plausibleCount: UInt64 = 1 << 30

    private mutating func readString(_ what: @autoclosure () -> String) throws(FormatError) -> String {
        let offset = reader.offset
        let length = try reader.read(UInt64.self, "the length of \(what())")
        let count = try bound(length, eachAtLeast: 1, what: "the byte length of \(what())", contents: what(), at: offset)
        let bytes = try reader.take(count, what())
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw FormatError(.invalidUTF8, path: path, offset: offset + 8,
                              message: "\(what()) is not valid UTF-8",
                              remedy: "the file is corrupt; download or regenerate it")
        }
        return string
    }

    private mutating func readType(_ what: String, role: String = "value type") throws(FormatError) -> GGUFValueType {
        let offset = reader.offset
        let raw = try reader.read(UInt32.self, "the \(role) of \(what)")
        guard let type = GGUFValueType(rawValue: raw) else {
            throw FormatError(.ggufUnknownValueType, path: path, offset: offset,
                              message: "\(what) has \(role) \(raw), which GGUF does not define (0–12)",
                              remedy: "the file is corrupt or from an incompatible writer")
        }
        return type
    }

    private mutating func readValue(of what: String) throws(FormatError) -> GGUFValue {
        let type = try readType(what)
        guard type == .array else { return try readScalar(type, "the value of \(what)") }
        let elementOffset = reader.offset
        let elementType = try readType("the array of \(what)", role: "element type")
        if elementType == .array {
            throw FormatError(.ggufNestedArray, path: path, offset: elementOffset,
                              message: "\(what) holds an array of arrays, which ggml does not accept",
                              remedy: "flatten the value into one array")
        }
        let countOffset = reader.offset
        let rawCount = try reader.read(UInt64.self, "the element count of \(what)")
        let count = try bound(rawCount, eachAtLeast: elementType.minimumEncodedSize,
                              what: "the element count of \(what)",
                              contents: "the \(rawCount) elements of the array of \(what)", at: countOffset)
        var elements: [GGUFValue] = []
        elements.reserveCapacity(count)
        for index in 0..<count {
            elements.append(try readScalar(elementType, "element \(index) of the array of \(what)"))
        }
        return .array(elementType, elements)
    }

    private mutating func readScalar(_ type: GGUFValueType, _ what: @autoclosure () -> String) throws(FormatError) -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try reader.read(UInt8.self, what()))
        case .int8: return .int8(try reader.read(Int8.self, what()))
        case .uint16: return .uint16(try reader.read(UInt16.self, what()))
        case .int16: return .int16(try reader.read(Int16.self, what()))
        case .uint32: return .uint32(try reader.read(UInt32.self, what()))
        case .int32: return .int32(try reader.read(Int32.self, what()))
        case .float32: return .float32(try reader.readFloat(what()))
        case .bool: return .bool(try reader.read(UInt8.self, what()) != 0)  // ggml: any non-zero byte is true
        case .string: return .string(try readString(what()))
        case .uint64: return .uint64(try reader.read(UInt64.self, what()))
        case .int64: return .int64(try reader.read(Int64.self, what()))
        case .float64: return .float64(try reader.readDouble(what()))
        case .array:
            // Unreachable: callers reject nested arrays first. Kept as an error, never a trap.
            throw FormatError(.ggufNestedArray, path: path, offset: reader.offset,
                              message: "\(what()) is an array inside an array, which ggml does not accept")
        }
    }

    // MARK: Alignment

    private func readAlignment(metadata: [(key: String, value: GGUFValue)], keyIndex: [String: Int],
                               at offset: Int?) throws(FormatError) -> Int {
        guard let index = keyIndex["general.alignment"] else { return GGUFFile.defaultAlignment }
        let value = metadata[index].value
        guard case .uint32(let raw) = value else {
            throw FormatError(.ggufBadAlignment, path: path, offset: offset,
                              message: "general.alignment is stored as \(value.type) (\(value.summary)); ggml requires a uint32",
                              remedy: "rewrite the file with general.alignment as a uint32")
        }
        let alignment = Int(raw)
        guard alignment > 0, alignment & (alignment - 1) == 0 else {
            throw FormatError(.ggufBadAlignment, path: path, offset: offset,
                              message: "general.alignment is \(alignment), which is not a power of two",
                              remedy: "the file is corrupt; regenerate it")
        }
        guard alignment <= GGUFFile.maximumAlignment else {
            throw FormatError(.ggufBadAlignment, path: path, offset: offset,
                              message: "general.alignment is \(alignment), above the 1 MiB ggml accepts",
                              remedy: "the file is corrupt; regenerate it")
        }
        return alignment
    }

    // MARK: Tensor infos

    private mutating func readTensorInfo(index: Int, names: [String: Int]) throws(FormatError) -> (GGUFTensorInfo, UInt64) {
        let start = reader.offset
        let name = try readString("the name in tensor info \(index)")
        let label = "tensor info \(index) ('\(name)')"
        func fail(_ code: FormatError.Code, _ message: String, _ remedy: String? = "the file is corrupt; regenerate it") -> FormatError {
            FormatError(code, path: path, offset: start, tensor: name, message: message, remedy: remedy)
        }
        if name.utf8.count > GGUFFile.maximumNameLength {
            throw fail(.ggufTensorNameTooLong,
                       "the name of \(label) is \(name.utf8.count) bytes; ggml accepts at most \(GGUFFile.maximumNameLength)",
                       "rename the tensor to 63 bytes or fewer")
        }
        if let previous = names[name] {
            throw fail(.ggufDuplicateTensorName, "tensors \(previous) and \(index) are both named '\(name)'")
        }
        let dimensionCount = try reader.read(UInt32.self, "the dimension count of \(label)")
        if dimensionCount > UInt32(GGUFFile.maximumDimensions) {
            throw fail(.ggufTooManyDimensions,
                       "\(label) has \(dimensionCount) dimensions; ggml supports at most \(GGUFFile.maximumDimensions)")
        }
        var dimensions: [Int] = []
        dimensions.reserveCapacity(Int(dimensionCount))
        for axis in 0..<Int(dimensionCount) {
            let raw = try reader.read(Int64.self, "dimension \(axis) of \(label)")
            if raw < 0 {
                throw fail(.ggufNegativeDimension, "dimension \(axis) of \(label) is \(raw), which is negative")
            }
            dimensions.append(Int(raw))
        }
        guard let elementCount = CheckedSize.product(dimensions) else {
            throw fail(.overflow, "the element count of \(label) with dimensions \(dimensions) overflows 64 bits")
        }
        let typeOffset = reader.offset
        let typeID = try reader.read(UInt32.self, "the type of \(label)")
        guard let type = GGMLType.named(id: typeID) else {
            let why = typeID < GGMLType.count ? "a type ggml has removed" : "not a type ggml defines (ids 0–\(GGMLType.count - 1))"
            throw FormatError(.ggufUnknownTensorType, path: path, offset: typeOffset, tensor: name,
                              message: "\(label) has ggml type id \(typeID), \(why)",
                              remedy: "convert the model again with a current llama.cpp")
        }
        let rowLength = dimensions.first ?? 1
        if rowLength % type.blockSize != 0 {
            throw fail(.ggufBlockSizeMismatch,
                       "\(label) has type \(type.name) with rows of \(rowLength) elements (dims[0]), "
                       + "not a multiple of its block size \(type.blockSize)")
        }
        guard let byteCount = type.byteCount(elementCount: elementCount) else {
            throw fail(.overflow, "the byte size of \(label) (\(elementCount) elements of \(type.name)) overflows 64 bits")
        }
        let rawOffset = try reader.read(UInt64.self, "the data offset of \(label)")
        let info = GGUFTensorInfo(name: name, dimensions: dimensions, type: type,
                                  offset: Int(clamping: rawOffset), elementCount: elementCount, byteCount: byteCount)
        return (info, rawOffset)
    }

    /// Checks ggml's layout rule: tensor i starts where tensor i−1 ends, padded to `alignment`; and
    /// that every tensor's data lies inside the file.
    private func checkOffsets(tensors: [GGUFTensorInfo], rawOffsets: [UInt64], infoOffsets: [Int], alignment: Int,
                              dataStart: Int) throws(FormatError) {
        var expected = 0
        for (index, tensor) in tensors.enumerated() {
            if rawOffsets[index] != UInt64(expected) {
                throw FormatError(
                    .ggufOffsetMismatch, path: path, offset: infoOffsets[index], tensor: tensor.name,
                    message: "tensor \(index) ('\(tensor.name)') has data offset \(rawOffsets[index]), expected \(expected): "
                        + "ggml requires each tensor to follow the previous one, padded to \(alignment) bytes",
                    remedy: "rewrite the file with a GGUF writer that lays tensors out in order")
            }
            guard let padded = CheckedSize.align(tensor.byteCount, to: alignment),
                  let next = CheckedSize.sum(expected, padded) else {
                throw overflow("the data section size at tensor '\(tensor.name)'", at: dataStart)
            }
            expected = next
        }
        guard let last = tensors.last else { return }
        guard let end = CheckedSize.sum(dataStart, last.offset).flatMap({ CheckedSize.sum($0, last.byteCount) }) else {
            throw overflow("the end of the tensor data", at: dataStart)
        }
        if end > fileSize {
            let first = tensors.first { dataStart + $0.offset + $0.byteCount > fileSize } ?? last
            throw FormatError(
                .truncated, path: path, offset: dataStart + first.offset, tensor: first.name,
                message: "the file is \(Self.size(fileSize)) but its header places tensors up to \(Self.size(end)): it is truncated",
                remedy: "download it again")
        }
    }

    /// "52.0 MB (52034816 bytes)", or "352 bytes" where the exact count adds nothing.
    private static func size(_ bytes: Int) -> String {
        bytes < 1000 ? "\(bytes) bytes" : "\(formatByteCount(bytes)) (\(bytes) bytes)"
    }

    private func overflow(_ what: String, at offset: Int) -> FormatError {
        FormatError(.overflow, path: path, offset: offset, message: "\(what) overflows 64-bit arithmetic",
                    remedy: "the file is corrupt; download it again")
    }
}
