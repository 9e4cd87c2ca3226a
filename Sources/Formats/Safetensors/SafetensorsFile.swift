import Foundation

extension FormatError.Code {
    /// The safetensors header length is above the 100 MB limit the reference reader enforces.
    public static let headerTooLarge: Self = "headerTooLarge"
    /// The safetensors header is JSON but not the expected schema (not an object, an entry that
    /// is not an object or lacks `dtype`/`shape`/`data_offsets`).
    public static let invalidHeader: Self = "invalidHeader"
    /// A tensor's `dtype` is not one the format defines.
    public static let unknownDType: Self = "unknownDType"
    /// A tensor's `shape` is not an array of non-negative 64-bit integers.
    public static let invalidShape: Self = "invalidShape"
    /// A tensor's `data_offsets` is not two non-negative integers in order.
    public static let invalidOffsets: Self = "invalidOffsets"
    /// `__metadata__` is not an object of strings.
    public static let invalidMetadata: Self = "invalidMetadata"
    /// The same tensor name appears twice (in one header, or in two shards of a checkpoint).
    public static let duplicateTensor: Self = "duplicateTensor"
    /// A tensor's byte range does not equal its element count times its dtype size.
    public static let sizeMismatch: Self = "sizeMismatch"
    /// Tensor data leaves unused bytes between tensors (or before the first).
    public static let offsetGap: Self = "offsetGap"
    /// Two tensors' byte ranges overlap.
    public static let offsetOverlap: Self = "offsetOverlap"
    /// An offset is beyond the 48-bit limit of the format's schema.
    public static let offsetOutOfRange: Self = "offsetOutOfRange"
    /// Bytes follow the last tensor's data (refused as the reference reader does: anti-polyglot).
    public static let trailingBytes: Self = "trailingBytes"
    /// A sub-byte dtype (F4, F6) tensor does not fill a whole number of bytes.
    public static let misalignedSubByte: Self = "misalignedSubByte"
}

/// One tensor of a safetensors file, as its header describes it (formats.md §1.1).
public struct SafetensorsTensor: Sendable, Hashable {
    /// The tensor's name.
    public let name: String
    /// The element type.
    public let dtype: DType
    /// The logical shape, outermost first (an F4 shape counts elements, not packed bytes).
    public let shape: [Int]
    /// The byte range of the data, relative to the start of the data buffer (``SafetensorsFile/dataStart``).
    public let dataOffsets: Range<Int>
    /// The number of elements (1 for a 0-rank tensor, 0 when a dimension is 0).
    public let elementCount: Int
    /// Bytes the data occupies (`dataOffsets.count`).
    public var byteCount: Int { dataOffsets.count }

    /// Creates a description; the caller guarantees the sizes agree.
    public init(name: String, dtype: DType, shape: [Int], dataOffsets: Range<Int>, elementCount: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
        self.elementCount = elementCount
    }
}

/// A safetensors file mapped read-only and validated at least as strictly as the reference Rust
/// reader (formats.md §1.2); tensor data is never copied.
///
/// Checks, in order: Git LFS pointer, length field (file ≥ 8 bytes, header ≤ 100 MB, header
/// inside the file — nothing is allocated from the length before that), UTF-8 and strict JSON
/// (duplicate keys refused), schema, sizes (overflow-checked), then the data offsets, which must
/// tile the buffer from 0 to the end of the file exactly.
public final class SafetensorsFile: @unchecked Sendable {
    /// The path the file was opened from.
    public let path: String
    /// The mapped file.
    public let file: MappedFile
    /// The header length N stored in the first 8 bytes (padding included).
    public let headerByteCount: Int
    /// The offset of the data buffer, `8 + N`.
    public let dataStart: Int
    /// The tensors, sorted by data offset (then by name, for zero-size tensors at one offset).
    public let tensors: [SafetensorsTensor]
    /// The string map under `__metadata__`, or nil when the header has none.
    public let metadata: [String: String]?

    private let indexByName: NameTable
    private let sortedPositionOfEntry: [Int]

    /// The largest header the reference reader accepts (`MAX_HEADER_SIZE`).
    public static let maxHeaderByteCount = 100_000_000
    /// The largest offset or dimension the format's JSON schema allows (48 bits).
    public static let maxOffset = 281_474_976_710_655

    /// Maps and validates the file at `path`.
    /// - Throws: ``FormatError`` with a specific code (see the `FormatError.Code` extension in
    ///   this file) naming the byte offset or tensor, and a remedy.
    public convenience init(path: String) throws(FormatError) {
        try self.init(file: MappedFile(path: path))
    }

    /// Validates the safetensors file `file` holds (mapped from disk, or an in-memory copy).
    /// - Throws: as ``init(path:)``.
    package init(file: MappedFile) throws(FormatError) {
        let path = file.path
        self.path = path
        self.file = file
        let bytes = file.bytes
        if let size = GitLFSPointer.declaredSize(in: bytes) {
            throw GitLFSPointer.error(path: path, declaredSize: size)
        }
        if bytes.count == 0 {
            throw FormatError(.notThisFormat, path: path, offset: 0,
                              message: "the file is empty, not a safetensors file",
                              remedy: "download or copy the file again")
        }
        // Another format is named only when the bytes cannot be safetensors, since any 8 bytes
        // are a valid length field.
        func otherFormat() -> FormatError? {
            guard let other = SafetensorsFile.recogniseOtherFormat(bytes) else { return nil }
            return FormatError(.notThisFormat, path: path, offset: 0,
                               message: "this is \(other), not a safetensors file",
                               remedy: "open it with the matching reader, or convert it to safetensors first")
        }
        if bytes.count < 8 {
            throw FormatError(.truncated, path: path, offset: 0,
                              message: "the file is \(bytes.count) bytes, shorter than the 8-byte header length field",
                              remedy: "the file is truncated; download or copy it again")
        }
        let declared = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        // The length is compared with the limit and the file size before anything uses it.
        if declared > UInt64(SafetensorsFile.maxHeaderByteCount) {
            if let error = otherFormat() { throw error }
            throw FormatError(.headerTooLarge, path: path, offset: 0,
                              message: "the header length field says \(describeSize(declared)), above the 100 MB limit of the format; the whole file is \(describeSize(UInt64(bytes.count)))",
                              remedy: "this is not a safetensors file, or its first 8 bytes are damaged; download it again")
        }
        let headerLength = Int(declared)
        guard 8 + headerLength <= bytes.count else {
            if let error = otherFormat() { throw error }
            throw FormatError(.truncated, path: path, offset: 8,
                              message: "the file is \(describeSize(UInt64(bytes.count))) but its header alone says it needs \(describeSize(UInt64(8 + headerLength))): it is truncated",
                              remedy: "download or copy the file again")
        }
        headerByteCount = headerLength
        dataStart = 8 + headerLength
        let header = UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart])
        let bufferSize = bytes.count - dataStart

        var parser = JSONParser(bytes: header, path: path, baseOffset: 8, maxDepth: JSONValue.defaultMaxDepth)
        var entries: [SafetensorsTensor] = []
        // A well-formed entry takes at least ~50 header bytes and typically ~100; sizing for the
        // typical size (the header is known to be inside the file) avoids most rehashing.
        var indexByName = NameTable(expectedCount: header.count / 100)
        var metadata: [String: String]? = nil
        var metadataSeen = false
        let isObject: Bool
        do {
            isObject = try parser.parseTopLevelObject { (parser, key, keyOffset) throws(FormatError) in
                if key == "__metadata__" {
                    if metadataSeen {
                        throw FormatError(.duplicateKey, path: path, offset: keyOffset,
                                          message: "the header has two __metadata__ entries",
                                          remedy: "the file is ambiguous; regenerate it")
                    }
                    metadataSeen = true
                    let value = try parser.parseValue(depth: 1)
                    metadata = try SafetensorsFile.parseMetadata(value, path: path, offset: keyOffset)
                    return
                }
                // One hash per name: insert, and learn about a duplicate from the old value.
                if let previous = indexByName.insert(key) {
                    throw FormatError(.duplicateTensor, path: path, offset: keyOffset, tensor: key,
                                      message: "the tensor name appears twice in the header (first with data_offsets [\(entries[previous].dataOffsets.lowerBound), \(entries[previous].dataOffsets.upperBound)])",
                                      remedy: "the file is ambiguous; regenerate it with a writer that does not repeat names")
                }
                // The common well-formed entry is read straight from the bytes; anything unusual
                // is re-read as a generic JSON value, whose checks give the precise error.
                let start = parser.index
                let tensor: SafetensorsTensor
                if let fast = parser.parseWellFormedTensorEntry() {
                    tensor = try SafetensorsFile.validatedTensor(key, dtype: fast.dtype, shape: fast.shape, begin: fast.begin,
                                                                 end: fast.end, path: path, offset: keyOffset)
                } else {
                    parser.index = start
                    let value = try parser.parseValue(depth: 1)
                    tensor = try SafetensorsFile.parseEntry(key, value, path: path, offset: keyOffset)
                }
                entries.append(tensor)
            }
        } catch {
            if error.code == .invalidJSON || error.code == .invalidUTF8, let other = otherFormat() { throw other }
            throw error
        }
        if !isObject {
            var whitespace = 0
            while whitespace < header.count, [0x20, 0x09, 0x0A, 0x0D].contains(header[whitespace]) { whitespace += 1 }
            // Say "not an object" only for valid JSON of another type; otherwise the syntax error.
            let value = try JSONValue.parse(header, path: path, baseOffset: 8)
            throw FormatError(.invalidHeader, path: path, offset: 8 + whitespace,
                              message: "the header is \(value.kindDescription), not a JSON object of tensors",
                              remedy: "the file is damaged or not a safetensors file; download it again")
        }

        // The reference reader sorts by offsets, then requires the ranges to tile the buffer.
        func precedes(_ a: Int, _ b: Int) -> Bool {
            let x = entries[a].dataOffsets, y = entries[b].dataOffsets
            if x.lowerBound != y.lowerBound { return x.lowerBound < y.lowerBound }
            if x.upperBound != y.upperBound { return x.upperBound < y.upperBound }
            return entries[a].name.utf8.lexicographicallyPrecedes(entries[b].name.utf8)
        }
        // Writers list tensors in offset order, so sorting is usually unnecessary.
        var alreadySorted = true
        for position in entries.indices.dropFirst() where !precedes(position - 1, position) {
            alreadySorted = false
            break
        }
        let order = alreadySorted ? Array(entries.indices) : entries.indices.sorted(by: precedes)
        let sorted = alreadySorted ? entries : order.map { entries[$0] }
        var end = 0
        for position in sorted.indices {
            let range = sorted[position].dataOffsets
            if range.lowerBound > end {
                let tensor = sorted[position]
                let message: String
                if position > 0 {
                    let previous = sorted[position - 1]
                    message = "\(range.lowerBound - end) unused bytes lie between tensor '\(previous.name)' (data_offsets [\(previous.dataOffsets.lowerBound), \(previous.dataOffsets.upperBound)]) and tensor '\(tensor.name)' (data_offsets [\(range.lowerBound), \(range.upperBound)])"
                } else {
                    message = "the first tensor's data begins at \(range.lowerBound), not 0 (data_offsets [\(range.lowerBound), \(range.upperBound)]): \(range.lowerBound) bytes before it belong to no tensor"
                }
                throw FormatError(.offsetGap, path: path, offset: dataStart + end, tensor: tensor.name, message: message,
                                  remedy: "the header is inconsistent; regenerate the file")
            }
            if range.lowerBound < end, position > 0 {
                let tensor = sorted[position], previous = sorted[position - 1]
                throw FormatError(.offsetOverlap, path: path, offset: dataStart + range.lowerBound, tensor: tensor.name,
                                  message: "the data of tensor '\(tensor.name)' (data_offsets [\(range.lowerBound), \(range.upperBound)]) overlaps tensor '\(previous.name)' (data_offsets [\(previous.dataOffsets.lowerBound), \(previous.dataOffsets.upperBound)])",
                                  remedy: "the header is inconsistent; regenerate the file")
            }
            end = range.upperBound
        }
        if end < bufferSize {
            throw FormatError(.trailingBytes, path: path, offset: dataStart + end,
                              message: "\(bufferSize - end) bytes follow the end of the last tensor's data (the header accounts for \(describeSize(UInt64(dataStart + end))), the file is \(describeSize(UInt64(bytes.count)))); the format forbids trailing bytes",
                              remedy: "the file was appended to or is not a plain safetensors file; regenerate it")
        }
        if end > bufferSize {
            let first = sorted.first { $0.dataOffsets.upperBound > bufferSize }
            let name = first?.name ?? ""
            throw FormatError(.truncated, path: path, offset: bytes.count, tensor: name,
                              message: "the file is \(describeSize(UInt64(bytes.count))) but its header says \(describeSize(UInt64(dataStart + end))); the data of tensor '\(name)' runs past the end: it is truncated",
                              remedy: "download or copy the file again")
        }
        // Names map to header positions; one permutation maps those to sorted positions, so the
        // names are hashed only once.
        var sortedPosition = order
        if !alreadySorted {
            for (position, entry) in order.enumerated() { sortedPosition[entry] = position }
        }
        self.tensors = sorted
        self.indexByName = indexByName
        self.sortedPositionOfEntry = sortedPosition
        self.metadata = metadata
    }

    /// The tensor called `name`, if the file has it.
    public func tensor(named name: String) -> SafetensorsTensor? {
        guard let entry = indexByName.position(of: name) else { return nil }
        return tensors[sortedPositionOfEntry[entry]]
    }

    /// The tensor's bytes in the mapped file (no copy; valid while this object lives).
    public func data(for tensor: SafetensorsTensor) -> UnsafeRawBufferPointer {
        let lower = dataStart + tensor.dataOffsets.lowerBound
        let upper = dataStart + tensor.dataOffsets.upperBound
        precondition(lower >= dataStart && upper <= file.count, "tensor '\(tensor.name)' does not belong to \(path)")
        file.loadForView(lower..<upper)
        return UnsafeRawBufferPointer(rebasing: file.bytes[lower..<upper])
    }

    /// The tensor's bytes, as ``data(for:)``, decompressing a compressed file's chunks first.
    /// - Throws: ``FormatError`` `.checksumMismatch` naming the tensor when a chunk is damaged.
    public func readData(for tensor: SafetensorsTensor) throws(FormatError) -> UnsafeRawBufferPointer {
        try file.load((dataStart + tensor.dataOffsets.lowerBound)..<(dataStart + tensor.dataOffsets.upperBound))
        return data(for: tensor)
    }

    /// The tensors as format-neutral records with absolute file offsets, in data order.
    public func records(fileIndex: Int) -> [TensorRecord] {
        tensors.map { tensor in
            TensorRecord(name: tensor.name, type: .dtype(tensor.dtype), shape: tensor.shape,
                         elementCount: tensor.elementCount, byteCount: tensor.byteCount,
                         fileOffset: dataStart + tensor.dataOffsets.lowerBound, fileIndex: fileIndex)
        }
    }

    /// Total bytes of tensor data (the file size minus the header).
    public var dataByteCount: Int { file.count - dataStart }

    // MARK: Header parsing

    private static func recogniseOtherFormat(_ bytes: UnsafeRawBufferPointer) -> String? {
        if bytes.starts(with: "GGUF".utf8) { return "a GGUF file" }
        if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return "a ZIP archive (a PyTorch .bin/.pt checkpoint?)" }
        if bytes.starts(with: [0x80]) && bytes.count > 1 && (2...5).contains(bytes[1]) { return "a Python pickle (a PyTorch .bin checkpoint?)" }
        if let first = bytes.first, first == UInt8(ascii: "{") { return "a JSON text file" }
        return nil
    }

    private static func parseMetadata(_ value: JSONValue, path: String, offset: Int) throws(FormatError) -> [String: String] {
        guard case .object(let members) = value else {
            throw FormatError(.invalidMetadata, path: path, offset: offset,
                              message: "__metadata__ is \(value.kindDescription), but it must be an object of strings",
                              remedy: "regenerate the file; the format allows only string→string metadata")
        }
        var result: [String: String] = [:]
        for member in members {
            guard case .string(let text) = member.value else {
                throw FormatError(.invalidMetadata, path: path, offset: offset,
                                  message: "__metadata__ value of \"\(member.key)\" is \(member.value.kindDescription), but metadata values must be strings",
                                  remedy: "regenerate the file; the format allows only string→string metadata")
            }
            result[member.key] = text
        }
        return result
    }

    private static func parseEntry(_ name: String, _ value: JSONValue, path: String, offset: Int) throws(FormatError) -> SafetensorsTensor {
        func schema(_ code: FormatError.Code, _ message: String) -> FormatError {
            FormatError(code, path: path, offset: offset, tensor: name, message: message,
                        remedy: "the header is damaged or was not written by a safetensors writer; regenerate or download the file again")
        }
        guard case .object = value else {
            throw schema(.invalidHeader, "the entry is \(value.kindDescription), but it must be an object with dtype, shape and data_offsets")
        }
        guard let dtypeValue = value["dtype"] else { throw schema(.invalidHeader, "the entry has no \"dtype\"") }
        guard let dtypeName = dtypeValue.string else {
            throw schema(.invalidHeader, "\"dtype\" is \(dtypeValue.kindDescription), not a string")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            let known = DType.allCases.map(\.rawValue).joined(separator: ", ")
            throw FormatError(.unknownDType, path: path, offset: offset, tensor: name,
                              message: "unknown dtype \"\(dtypeName)\" (known: \(known))",
                              remedy: "the file uses a dtype this tool does not know; convert it with a newer safetensors, or report it")
        }
        guard let shapeValue = value["shape"] else { throw schema(.invalidHeader, "the entry has no \"shape\"") }
        guard case .array(let dims) = shapeValue else {
            throw schema(.invalidShape, "\"shape\" is \(shapeValue.kindDescription), not an array of dimensions")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for (axis, dim) in dims.enumerated() {
            guard case .number(let number) = dim else {
                throw schema(.invalidShape, "dimension \(axis) of the shape is \(dim.kindDescription), not a non-negative integer")
            }
            guard number.isIntegerLiteral else {
                throw schema(.invalidShape, "dimension \(axis) of the shape is \(number), not a non-negative integer")
            }
            guard let size = number.int else {
                throw schema(.invalidShape, "dimension \(axis) of the shape is \(number), too large for a 64-bit size")
            }
            guard size >= 0 else {
                throw schema(.invalidShape, "dimension \(axis) of the shape is negative (\(size))")
            }
            shape.append(size)
        }
        guard let offsetsValue = value["data_offsets"] else { throw schema(.invalidHeader, "the entry has no \"data_offsets\"") }
        guard case .array(let offsets) = offsetsValue, offsets.count == 2 else {
            throw schema(.invalidOffsets, "\"data_offsets\" must be an array of two integers [begin, end]")
        }
        var bounds: [Int] = []
        for (position, item) in offsets.enumerated() {
            let label = position == 0 ? "begin" : "end"
            guard case .number(let number) = item, number.isIntegerLiteral else {
                throw schema(.invalidOffsets, "data_offsets \(label) is \(item.kindDescription == "an integer" ? "\(item)" : item.kindDescription), not a non-negative integer")
            }
            if number.double < 0 {
                throw schema(.invalidOffsets, "data_offsets \(label) is negative (\(number))")
            }
            guard let offsetValue = number.int, offsetValue <= SafetensorsFile.maxOffset else {
                throw FormatError(.offsetOutOfRange, path: path, offset: offset, tensor: name,
                                  message: "data_offsets \(label) is \(number), beyond the format's 48-bit limit (\(SafetensorsFile.maxOffset)) and any real file",
                                  remedy: "the header is damaged; download or regenerate the file")
            }
            bounds.append(offsetValue)
        }
        return try validatedTensor(name, dtype: dtype, shape: shape, begin: bounds[0], end: bounds[1], path: path, offset: offset)
    }

    /// The size and offset rules of formats.md §1.2 for one entry whose fields are well-typed.
    private static func validatedTensor(_ name: String, dtype: DType, shape: [Int], begin: Int, end: Int,
                                        path: String, offset: Int) throws(FormatError) -> SafetensorsTensor {
        func schema(_ code: FormatError.Code, _ message: String) -> FormatError {
            FormatError(code, path: path, offset: offset, tensor: name, message: message,
                        remedy: "the header is damaged or was not written by a safetensors writer; regenerate or download the file again")
        }
        for (label, value) in [("begin", begin), ("end", end)] where value > SafetensorsFile.maxOffset {
            throw FormatError(.offsetOutOfRange, path: path, offset: offset, tensor: name,
                              message: "data_offsets \(label) is \(value), beyond the format's 48-bit limit (\(SafetensorsFile.maxOffset)) and any real file",
                              remedy: "the header is damaged; download or regenerate the file")
        }
        guard begin <= end else {
            throw schema(.invalidOffsets, "data_offsets [\(begin), \(end)] are reversed: the end is before the beginning")
        }
        guard let elementCount = CheckedSize.product(shape) else {
            throw FormatError(.overflow, path: path, offset: offset, tensor: name,
                              message: "the shape \(shape) has more elements than 64-bit arithmetic can count",
                              remedy: "the header is damaged; download or regenerate the file")
        }
        guard let bits = CheckedSize.multiply(elementCount, dtype.bitWidth) else {
            throw FormatError(.overflow, path: path, offset: offset, tensor: name,
                              message: "\(elementCount) elements of \(dtype.rawValue) is more bits than 64-bit arithmetic can count",
                              remedy: "the header is damaged; download or regenerate the file")
        }
        guard bits % 8 == 0 else {
            throw FormatError(.misalignedSubByte, path: path, offset: offset, tensor: name,
                              message: "\(elementCount) elements of \(dtype.rawValue) (\(dtype.bitWidth) bits each) is \(bits) bits, not a whole number of bytes",
                              remedy: "sub-byte tensors must fill whole bytes; the file is damaged or was written incorrectly")
        }
        guard bits / 8 == end - begin else {
            throw FormatError(.sizeMismatch, path: path, offset: offset, tensor: name,
                              message: "\(dtype.rawValue) \(shape) needs \(bits / 8) bytes but data_offsets [\(begin), \(end)] span \(end - begin) bytes",
                              remedy: "the header is inconsistent; regenerate or download the file again")
        }
        return SafetensorsTensor(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end, elementCount: elementCount)
    }
}

/// "232 bytes", or "52.0 MB (52000000 bytes)" / "4.61 EB (4611686018427387904 bytes)" for
/// larger sizes, so messages give both the readable and the exact size.
func describeSize(_ bytes: UInt64) -> String {
    if bytes < 1_000 { return "\(bytes) bytes" }
    let units = ["kB", "MB", "GB", "TB", "PB", "EB"]
    var value = Double(bytes) / 1_000
    var unit = 0
    while value >= 1_000, unit < units.count - 1 { value /= 1_000; unit += 1 }
    let digits = unit < 2 ? "%.1f" : "%.2f"
    return String(format: digits, value) + " " + units[unit] + " (\(bytes) bytes)"
}

extension JSONParser {
    /// Reads a tensor entry written the usual way — `{"dtype":"…","shape":[…],"data_offsets":[…,…]}`
    /// in any key order, no escapes, non-negative integer literals — directly from the bytes,
    /// without building JSON values. Returns nil (with the position undefined) for anything else,
    /// so the caller can re-read the entry generically for a precise error or an unusual form.
    mutating func parseWellFormedTensorEntry() -> (dtype: DType, shape: [Int], begin: Int, end: Int)? {
        guard peek() == UInt8(ascii: "{") else { return nil }
        index += 1
        var dtype: DType? = nil
        var shape: [Int]? = nil
        var offsets: [Int]? = nil
        while true {
            skipWhitespace()
            guard let key = rawASCIIString() else { return nil }
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { return nil }
            index += 1
            skipWhitespace()
            switch key.count {
            case 5 where JSONParser.equals(key, "dtype"):
                guard dtype == nil, let name = rawASCIIString(), let value = DType(utf8: name) else { return nil }
                dtype = value
            case 5 where JSONParser.equals(key, "shape"):
                guard shape == nil, let value = unsignedIntegerArray() else { return nil }
                shape = value
            case 12 where JSONParser.equals(key, "data_offsets"):
                guard offsets == nil, let value = unsignedIntegerArray(), value.count == 2 else { return nil }
                offsets = value
            default:
                return nil
            }
            skipWhitespace()
            guard let next = peek() else { return nil }
            index += 1
            if next == UInt8(ascii: ",") { continue }
            guard next == UInt8(ascii: "}"), let dtype, let shape, let offsets else { return nil }
            return (dtype, shape, offsets[0], offsets[1])
        }
    }

    /// A string literal of printable ASCII without escapes, as the bytes between the quotes.
    private mutating func rawASCIIString() -> UnsafeRawBufferPointer? {
        guard peek() == UInt8(ascii: "\"") else { return nil }
        let start = index + 1
        var position = start
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                index = position + 1
                return UnsafeRawBufferPointer(rebasing: bytes[start..<position])
            }
            if byte == UInt8(ascii: "\\") || byte < 0x20 || byte >= 0x80 { return nil }
            position += 1
        }
        return nil
    }

    /// `[d, d, …]` of integer literals without sign, fraction or exponent that fit `Int`.
    private mutating func unsignedIntegerArray() -> [Int]? {
        guard peek() == UInt8(ascii: "[") else { return nil }
        index += 1
        skipWhitespace()
        var values: [Int] = []
        if peek() == UInt8(ascii: "]") { index += 1; return values }
        while true {
            skipWhitespace()
            guard let first = peek(), first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else { return nil }
            var value = 0
            var digits = 0
            while let digit = peek(), digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") {
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (next, o2) = times10.addingReportingOverflow(Int(digit - UInt8(ascii: "0")))
                if o1 || o2 { return nil }
                value = next
                digits += 1
                index += 1
            }
            if first == UInt8(ascii: "0"), digits > 1 { return nil }
            if let after = peek(), after == UInt8(ascii: ".") || after == UInt8(ascii: "e") || after == UInt8(ascii: "E") { return nil }
            values.append(value)
            skipWhitespace()
            guard let next = peek() else { return nil }
            index += 1
            if next == UInt8(ascii: ",") { continue }
            if next == UInt8(ascii: "]") { return values }
            return nil
        }
    }
}

extension JSONParser {
    /// Whether `bytes` are exactly the UTF-8 of `literal`.
    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        bytes.count == literal.utf8CodeUnitCount
            && (bytes.count == 0 || memcmp(bytes.baseAddress!, literal.utf8Start, bytes.count) == 0)
    }
}

extension DType {
    /// The names as UTF-8 bytes, for matching header bytes without making strings.
    private static let utf8Names: [(bytes: [UInt8], dtype: DType)] = DType.allCases.map { (Array($0.rawValue.utf8), $0) }

    /// The dtype whose safetensors name is exactly these UTF-8 bytes.
    init?(utf8 name: UnsafeRawBufferPointer) {
        guard let base = name.baseAddress else { return nil }
        for candidate in DType.utf8Names where candidate.bytes.count == name.count {
            let same = candidate.bytes.withUnsafeBytes { memcmp($0.baseAddress!, base, name.count) == 0 }
            if same {
                self = candidate.dtype
                return
            }
        }
        return nil
    }
}
