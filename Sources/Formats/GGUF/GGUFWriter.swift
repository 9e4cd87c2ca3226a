import Foundation

/// Writes a GGUF v3 file as a stream, atomically: the header goes out at `init`, then each tensor's
/// bytes in order (in as many chunks as convenient), and ``finish()`` renames the file into place.
///
/// The layout is the one gguf-py's `GGUFWriter` and ggml's `gguf_write_to_buf` produce (formats.md
/// §2.1, §2.10): metadata in the given order, tensor infos with dims reversed into ggml order,
/// zero padding to the alignment after the infos and after every tensor including the last, and
/// offsets that follow the tensor order. For the same metadata and tensors the bytes are identical
/// to gguf-py's. Nothing is added implicitly (not even `general.architecture`); a
/// `general.alignment` entry in the metadata sets the alignment, otherwise it is 32.
/// If the writer is released or ``discard()``ed before ``finish()``, no output file appears.
public final class GGUFWriter {
    /// A tensor to write: its name, storage type and shape, outermost dimension first.
    public struct Tensor: Sendable, Hashable {
        /// The name (at most 63 bytes of UTF-8, unique in the file).
        public var name: String
        /// The storage type.
        public var type: GGMLType
        /// The shape in row-major order (numpy/PyTorch); the last entry is the row length, which
        /// must be a multiple of the type's block size. At most 4 dimensions.
        public var shape: [Int]

        /// Creates a tensor description.
        public init(name: String, type: GGMLType, shape: [Int]) {
            self.name = name
            self.type = type
            self.shape = shape
        }
    }

    /// The final path of the output.
    public let path: String
    /// The data alignment in bytes.
    public let alignment: Int
    /// The tensors as they are laid out: ggml-order dimensions, offsets relative to ``dataStart``.
    public let tensors: [GGUFTensorInfo]
    /// The absolute offset of the data section.
    public let dataStart: Int
    /// The size the finished file will have, in bytes.
    public let fileSize: Int

    private let output: OutputFile
    private var current = 0
    private var writtenInCurrent = 0
    private var finished = false

    /// Validates the metadata and tensors, creates the temporary output next to `path` and writes
    /// the header.
    /// - Parameters:
    ///   - metadata: the key-value entries, written in this order.
    ///   - tensors: the tensors, whose data must then be written in this order.
    ///   - overwrite: when false, an existing file at `path` is an error.
    /// - Throws: ``FormatError`` `.invalidArgument` for an empty or duplicate key, a nested or
    ///   mixed-type array, a bad `general.alignment`, a tensor name of 64 bytes or more or used
    ///   twice, more than 4 dimensions, a negative dimension, a row length that is not a multiple of
    ///   the block size, or a size that overflows; `.writeFailed` when the output cannot be created.
    public init(path: String, metadata: [(key: String, value: GGUFValue)], tensors: [Tensor],
                overwrite: Bool = false) throws(FormatError) {
        self.path = path
        alignment = try Self.validate(metadata: metadata, path: path)
        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(tensors.count)
        var names = Set<String>()
        var offset = 0
        for tensor in tensors {
            let info = try Self.validate(tensor, offset: offset, names: names, path: path)
            names.insert(tensor.name)
            infos.append(info)
            guard let padded = CheckedSize.align(info.byteCount, to: alignment),
                  let next = CheckedSize.sum(offset, padded) else {
                throw FormatError(.invalidArgument, path: path, tensor: tensor.name,
                                  message: "the data section size overflows 64 bits at tensor '\(tensor.name)'")
            }
            offset = next
        }
        self.tensors = infos

        var header: [UInt8] = []
        Self.append(header: &header, metadata: metadata, tensors: infos)
        guard let start = CheckedSize.align(header.count, to: alignment),
              let size = CheckedSize.sum(start, offset) else {
            throw FormatError(.invalidArgument, path: path, message: "the file size overflows 64 bits")
        }
        header.append(contentsOf: repeatElement(0, count: start - header.count))
        dataStart = start
        fileSize = size

        output = try OutputFile(path: path, overwrite: overwrite)
        do {
            try output.write(header)
        } catch {
            output.discard()
            throw error
        }
        skipEmptyTensors()
    }

    /// The tensor whose bytes are expected next, or nil once all tensors are written.
    public var nextTensor: GGUFTensorInfo? { current < tensors.count ? tensors[current] : nil }

    /// Appends `chunk` to the data of the current tensor (``nextTensor``). When the tensor's bytes
    /// are complete, its padding is written and the next tensor becomes current.
    /// - Throws: `.invalidArgument` if the chunk is longer than what the current tensor still
    ///   needs, or if every tensor is already written; `.writeFailed` on an I/O error.
    public func write(_ chunk: UnsafeRawBufferPointer) throws(FormatError) {
        guard !finished, current < tensors.count else {
            throw FormatError(.invalidArgument, path: path,
                              message: "\(chunk.count) more bytes were given after all \(tensors.count) tensors were written")
        }
        let tensor = tensors[current]
        let left = tensor.byteCount - writtenInCurrent
        guard chunk.count <= left else {
            throw FormatError(.invalidArgument, path: path, tensor: tensor.name,
                              message: "a chunk of \(chunk.count) bytes was given for tensor '\(tensor.name)', which needs "
                                  + "only \(left) more (\(tensor.byteCount) in all for \(tensor.type.name) \(tensor.shape))")
        }
        try output.write(chunk)
        writtenInCurrent += chunk.count
        if writtenInCurrent == tensor.byteCount {
            try completeCurrent()
        }
    }

    /// Appends `chunk` (an array of bytes) to the data of the current tensor; see ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write(_ chunk: [UInt8]) throws(FormatError) {
        var failure: FormatError?
        chunk.withUnsafeBytes { raw in
            do throws(FormatError) { try write(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Writes the complete data of the current tensor in one call.
    /// - Throws: `.invalidArgument` unless no bytes of the current tensor were written yet and
    ///   `bytes.count` equals its byte count.
    public func writeTensor(_ bytes: UnsafeRawBufferPointer) throws(FormatError) {
        guard let tensor = nextTensor, !finished else {
            throw FormatError(.invalidArgument, path: path, message: "all \(tensors.count) tensors were already written")
        }
        guard writtenInCurrent == 0, bytes.count == tensor.byteCount else {
            throw FormatError(.invalidArgument, path: path, tensor: tensor.name,
                              message: "tensor '\(tensor.name)' (\(tensor.type.name) \(tensor.shape)) takes \(tensor.byteCount) "
                                  + "bytes, but \(bytes.count) were given" + (writtenInCurrent > 0 ? " after \(writtenInCurrent) already written" : ""))
        }
        try write(bytes)
    }

    /// Writes the complete data of the current tensor from an array; see ``writeTensor(_:)-(UnsafeRawBufferPointer)``.
    public func writeTensor(_ bytes: [UInt8]) throws(FormatError) {
        var failure: FormatError?
        bytes.withUnsafeBytes { raw in
            do throws(FormatError) { try writeTensor(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Finishes the file: checks every tensor was written, flushes, syncs and renames it into place.
    /// - Throws: `.invalidArgument` (and discards the output) if some tensor's data is missing;
    ///   `.writeFailed` on an I/O error.
    public func finish() throws(FormatError) {
        guard !finished else { return }
        if let tensor = nextTensor {
            discard()
            throw FormatError(.invalidArgument, path: path, tensor: tensor.name,
                              message: "the output was finished after \(writtenInCurrent) of \(tensor.byteCount) bytes of tensor "
                                  + "\(current) ('\(tensor.name)') with \(tensors.count - current - 1) more tensors to come",
                              remedy: "write every tensor's data before finishing; the incomplete output was removed")
        }
        finished = true
        try output.commit()
    }

    /// Abandons the output: the temporary file is removed and nothing appears at ``path``.
    public func discard() {
        finished = true
        output.discard()
    }

    private func completeCurrent() throws(FormatError) {
        let tensor = tensors[current]
        let padded = CheckedSize.align(tensor.byteCount, to: alignment) ?? tensor.byteCount
        try output.writeZeros(padded - tensor.byteCount)
        current += 1
        writtenInCurrent = 0
        skipEmptyTensors()
    }

    /// Tensors with no elements have no bytes to wait for.
    private func skipEmptyTensors() {
        while current < tensors.count, tensors[current].byteCount == 0 {
            current += 1
        }
    }

    // MARK: Validation

    private static func validate(metadata: [(key: String, value: GGUFValue)], path: String) throws(FormatError) -> Int {
        var keys = Set<String>()
        var alignment = GGUFFile.defaultAlignment
        for (index, entry) in metadata.enumerated() {
            func fail(_ message: String) -> FormatError {
                FormatError(.invalidArgument, path: path, message: message)
            }
            if entry.key.isEmpty { throw fail("metadata key \(index) is empty") }
            if !keys.insert(entry.key).inserted { throw fail("metadata key '\(entry.key)' is given twice") }
            if case .array(let elementType, let elements) = entry.value {
                if elementType == .array {
                    throw fail("metadata key '\(entry.key)' holds an array of arrays, which ggml does not accept")
                }
                if let bad = elements.firstIndex(where: { $0.type != elementType }) {
                    throw fail("element \(bad) of the \(elementType) array '\(entry.key)' is a \(elements[bad].type)")
                }
            }
            if entry.key == "general.alignment" {
                guard case .uint32(let raw) = entry.value else {
                    throw fail("general.alignment must be a uint32, not \(entry.value.type)")
                }
                let value = Int(raw)
                guard value > 0, value & (value - 1) == 0, value <= GGUFFile.maximumAlignment else {
                    throw fail("general.alignment \(value) is not a power of two between 1 and 1 MiB")
                }
                alignment = value
            }
        }
        return alignment
    }

    private static func validate(_ tensor: Tensor, offset: Int, names: Set<String>, path: String) throws(FormatError) -> GGUFTensorInfo {
        func fail(_ message: String) -> FormatError {
            FormatError(.invalidArgument, path: path, tensor: tensor.name, message: message)
        }
        let nameLength = tensor.name.utf8.count
        if nameLength > GGUFFile.maximumNameLength {
            throw fail("tensor name '\(tensor.name)' is \(nameLength) bytes; ggml accepts at most \(GGUFFile.maximumNameLength)")
        }
        if names.contains(tensor.name) { throw fail("tensor name '\(tensor.name)' is used twice") }
        if tensor.shape.count > GGUFFile.maximumDimensions {
            throw fail("tensor '\(tensor.name)' has \(tensor.shape.count) dimensions; GGUF allows at most \(GGUFFile.maximumDimensions)")
        }
        if tensor.shape.contains(where: { $0 < 0 }) { throw fail("tensor '\(tensor.name)' has a negative dimension: \(tensor.shape)") }
        guard let elementCount = CheckedSize.product(tensor.shape) else {
            throw fail("the element count of tensor '\(tensor.name)' \(tensor.shape) overflows 64 bits")
        }
        let rowLength = tensor.shape.last ?? 1
        if rowLength % tensor.type.blockSize != 0 {
            throw fail("tensor '\(tensor.name)' has rows of \(rowLength) elements, not a multiple of the "
                       + "\(tensor.type.name) block size \(tensor.type.blockSize)")
        }
        guard let byteCount = tensor.type.byteCount(elementCount: elementCount) else {
            throw fail("the byte size of tensor '\(tensor.name)' \(tensor.shape) overflows 64 bits")
        }
        return GGUFTensorInfo(name: tensor.name, dimensions: tensor.shape.reversed(), type: tensor.type,
                              offset: offset, elementCount: elementCount, byteCount: byteCount)
    }

    // MARK: Encoding

    private static func append(header: inout [UInt8], metadata: [(key: String, value: GGUFValue)], tensors: [GGUFTensorInfo]) {
        header.append(contentsOf: Array("GGUF".utf8))
        append(UInt32(3), to: &header)
        append(UInt64(tensors.count), to: &header)
        append(UInt64(metadata.count), to: &header)
        for entry in metadata {
            append(string: entry.key, to: &header)
            append(UInt32(entry.value.type.rawValue), to: &header)
            append(value: entry.value, to: &header)
        }
        for tensor in tensors {
            append(string: tensor.name, to: &header)
            append(UInt32(tensor.dimensions.count), to: &header)
            for dimension in tensor.dimensions { append(UInt64(dimension), to: &header) }
            append(tensor.type.id, to: &header)
            append(UInt64(tensor.offset), to: &header)
        }
    }

    private static func append(value: GGUFValue, to bytes: inout [UInt8]) {
        switch value {
        case .uint8(let v): bytes.append(v)
        case .int8(let v): append(v, to: &bytes)
        case .uint16(let v): append(v, to: &bytes)
        case .int16(let v): append(v, to: &bytes)
        case .uint32(let v): append(v, to: &bytes)
        case .int32(let v): append(v, to: &bytes)
        case .float32(let v): append(v.bitPattern, to: &bytes)
        case .bool(let v): bytes.append(v ? 1 : 0)
        case .string(let v): append(string: v, to: &bytes)
        case .uint64(let v): append(v, to: &bytes)
        case .int64(let v): append(v, to: &bytes)
        case .float64(let v): append(v.bitPattern, to: &bytes)
        case .array(let elementType, let elements):
            append(elementType.rawValue, to: &bytes)
            append(UInt64(elements.count), to: &bytes)
            for element in elements { append(value: element, to: &bytes) }
        }
    }

    private static func append(string: String, to bytes: inout [UInt8]) {
        append(UInt64(string.utf8.count), to: &bytes)
        bytes.append(contentsOf: string.utf8)
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
}
