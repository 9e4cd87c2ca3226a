import Foundation

/// A tensor to be written: its name, element type and logical shape (the data comes later).
public struct SafetensorsEntry: Sendable, Hashable {
    /// The tensor's name.
    public var name: String
    /// The element type.
    public var dtype: DType
    /// The logical shape, outermost first (F4/F6 shapes count elements, not bytes).
    public var shape: [Int]

    /// Creates an entry.
    public init(name: String, dtype: DType, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    /// The bytes the data occupies, or nil when a dimension is negative, the size overflows, or a
    /// sub-byte dtype does not fill whole bytes.
    public var byteCount: Int? {
        guard let count = CheckedSize.product(shape) else { return nil }
        return dtype.byteCount(elementCount: count)
    }
}

/// Writes one safetensors file as a stream, atomically: the header is built up front exactly as
/// the reference writer builds it (formats.md §1.3), tensor bytes are then appended in
/// ``tensors`` order (in as many chunks as wanted), and only ``finish()`` moves the file into
/// place. A writer released or failed before `finish()` leaves nothing behind.
///
/// For the same tensors and a single metadata key the bytes equal `safetensors.numpy.save_file`'s
/// (metadata keys are written sorted; the reference writer's order for several keys is its hash
/// map's and so not reproducible).
public final class SafetensorsWriter {
    /// The order tensors are laid out in.
    public enum Order: Sendable {
        /// The reference writer's: dtype descending in enum order, then name (byte-identical output).
        case reference
        /// The order given, so a producer can stream tensors as it makes them (a quantized
        /// weight next to its scale) instead of holding all of one dtype back.
        case given
    }

    /// The final path.
    public let path: String
    /// The tensors in the order their bytes must be written, with their data offsets: sorted by
    /// dtype descending in the reference enum order (``DType/order``), then by name (UTF-8 bytes).
    public let tensors: [SafetensorsTensor]
    /// The metadata written under `__metadata__`, or nil for none.
    public let metadata: [String: String]?
    /// The header length N (a multiple of 8; the JSON is padded with spaces).
    public let headerByteCount: Int
    /// The size of the finished file: 8 + N + all tensor bytes.
    public let fileByteCount: Int

    private let output: OutputFile
    private var current = 0
    private var writtenInCurrent = 0
    private var finished = false

    /// The tensor whose bytes are expected next, or nil when all have been written.
    public var nextTensor: SafetensorsTensor? { current < tensors.count ? tensors[current] : nil }

    /// Plans the header and creates the temporary output next to `path`, writing the header.
    /// - Parameters:
    ///   - tensors: every tensor the file will hold, in any order; names must be unique.
    ///   - metadata: the `__metadata__` map; transformers refuses files whose `format` is not
    ///     `pt`/`tf`/`flax`/`mlx`, hence the default. Pass nil to write none.
    ///   - overwrite: whether an existing file at `path` may be replaced.
    /// - Throws: ``FormatError`` `.invalidArgument` for duplicate or reserved names, negative
    ///   dimensions, sizes that overflow or do not fill whole bytes, or a header over 100 MB;
    ///   `.writeFailed` when the output cannot be created.
    public init(path: String, tensors: [SafetensorsEntry], metadata: [String: String]? = ["format": "pt"],
                order: Order = .reference, overwrite: Bool = false) throws(FormatError) {
        let plan = try SafetensorsWriter.plan(tensors, metadata: metadata, order: order, path: path)
        self.path = path
        self.tensors = plan.tensors
        self.metadata = metadata
        self.headerByteCount = plan.header.count - 8
        self.fileByteCount = plan.header.count + (plan.tensors.last?.dataOffsets.upperBound ?? 0)
        output = try OutputFile(path: path, overwrite: overwrite)
        do {
            try output.write(plan.header)
        } catch {
            output.discard()
            throw error
        }
    }

    /// The header bytes (length field, JSON, padding) and the tensors in write order, exactly as
    /// the reference writer lays them out (formats.md §1.3).
    /// - Throws: ``FormatError`` `.invalidArgument` as ``init(path:tensors:metadata:overwrite:)``.
    public static func plan(_ entries: [SafetensorsEntry], metadata: [String: String]?, order: Order = .reference,
                            path: String = "<safetensors>")
        throws(FormatError) -> (header: [UInt8], tensors: [SafetensorsTensor])
    {
        var names = Set<String>()
        var sized: [(entry: SafetensorsEntry, bytes: Int, elements: Int)] = []
        sized.reserveCapacity(entries.count)
        for entry in entries {
            if entry.name == "__metadata__" {
                throw FormatError(.invalidArgument, path: path, tensor: entry.name,
                                  message: "\"__metadata__\" is reserved for the metadata and cannot name a tensor",
                                  remedy: "rename the tensor")
            }
            guard names.insert(entry.name).inserted else {
                throw FormatError(.invalidArgument, path: path, tensor: entry.name,
                                  message: "the tensor name is given twice", remedy: "give every tensor a unique name")
            }
            guard let elements = CheckedSize.product(entry.shape) else {
                throw FormatError(.invalidArgument, path: path, tensor: entry.name,
                                  message: "the shape \(entry.shape) has a negative dimension or too many elements",
                                  remedy: "pass a valid shape")
            }
            guard let bytes = entry.dtype.byteCount(elementCount: elements) else {
                throw FormatError(.invalidArgument, path: path, tensor: entry.name,
                                  message: "\(elements) elements of \(entry.dtype.rawValue) do not fill a whole number of bytes (or overflow)",
                                  remedy: "sub-byte tensors need an element count that fills whole bytes")
            }
            sized.append((entry, bytes, elements))
        }
        // Reference order: dtype descending in enum order, then name ascending (byte order).
        if order == .reference { sized.sort { a, b in
            if a.entry.dtype != b.entry.dtype { return a.entry.dtype.order > b.entry.dtype.order }
            return a.entry.name.utf8.lexicographicallyPrecedes(b.entry.name.utf8)
        } }
        var tensors: [SafetensorsTensor] = []
        tensors.reserveCapacity(sized.count)
        var json: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        if let metadata {
            json.append(contentsOf: "\"__metadata__\":{".utf8)
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (position, key) in keys.enumerated() {
                if position > 0 { json.append(UInt8(ascii: ",")) }
                JSONValue.writeString(key, into: &json)
                json.append(UInt8(ascii: ":"))
                JSONValue.writeString(metadata[key] ?? "", into: &json)
            }
            json.append(UInt8(ascii: "}"))
            first = false
        }
        var offset = 0
        for item in sized {
            guard let end = CheckedSize.sum(offset, item.bytes) else {
                throw FormatError(.invalidArgument, path: path, tensor: item.entry.name,
                                  message: "the total size of the tensors overflows 64-bit arithmetic")
            }
            if !first { json.append(UInt8(ascii: ",")) }
            first = false
            JSONValue.writeString(item.entry.name, into: &json)
            json.append(contentsOf: ":{\"dtype\":\"".utf8)
            json.append(contentsOf: item.entry.dtype.rawValue.utf8)
            json.append(contentsOf: "\",\"shape\":[".utf8)
            for (axis, dim) in item.entry.shape.enumerated() {
                if axis > 0 { json.append(UInt8(ascii: ",")) }
                json.append(contentsOf: String(dim).utf8)
            }
            json.append(contentsOf: "],\"data_offsets\":[".utf8)
            json.append(contentsOf: "\(offset),\(end)]}".utf8)
            tensors.append(SafetensorsTensor(name: item.entry.name, dtype: item.entry.dtype, shape: item.entry.shape,
                                             dataOffsets: offset..<end, elementCount: item.elements))
            offset = end
        }
        json.append(UInt8(ascii: "}"))
        let padding = (8 - json.count % 8) % 8
        json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))
        if json.count > SafetensorsFile.maxHeaderByteCount {
            throw FormatError(.invalidArgument, path: path,
                              message: "the header would be \(formatByteCount(json.count)), above the format's 100 MB limit",
                              remedy: "split the tensors over several files (a sharded checkpoint)")
        }
        var header: [UInt8] = []
        header.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { header.append(contentsOf: $0) }
        header.append(contentsOf: json)
        return (header, tensors)
    }

    /// Appends the next chunk of the bytes of tensor `name`, which must be ``nextTensor`` (a
    /// tensor may arrive in any number of chunks; zero-size tensors need no call).
    /// - Throws: ``FormatError`` `.invalidArgument` when `name` is not the tensor expected next or
    ///   the chunk runs past its size (the output is then discarded), `.writeFailed` on I/O errors.
    public func write(_ chunk: UnsafeRawBufferPointer, for name: String) throws(FormatError) {
        guard !finished else {
            throw FormatError(.invalidArgument, path: path, tensor: name, message: "the writer is already finished or discarded")
        }
        // An empty chunk for the tensor just completed (a zero-byte tensor, or an empty last
        // chunk) is harmless.
        if chunk.isEmpty, writtenInCurrent == 0, current > 0, tensors[current - 1].name == name { return }
        skipCompletedEmptyTensors(before: name)
        guard current < tensors.count else {
            fail()
            throw FormatError(.invalidArgument, path: path, tensor: name,
                              message: "all tensors are already written; no bytes are expected for '\(name)'",
                              remedy: "write each tensor once, in the writer's order")
        }
        let tensor = tensors[current]
        guard tensor.name == name else {
            fail()
            let detail = writtenInCurrent > 0
                ? "tensor '\(tensor.name)' got only \(writtenInCurrent) of its \(tensor.byteCount) bytes before '\(name)' started"
                : "the next tensor to write is '\(tensor.name)', not '\(name)'"
            throw FormatError(.invalidArgument, path: path, tensor: name, message: detail,
                              remedy: "write tensors in the writer's `tensors` order, each completely")
        }
        guard chunk.count <= tensor.byteCount - writtenInCurrent else {
            fail()
            throw FormatError(.invalidArgument, path: path, tensor: name,
                              message: "\(writtenInCurrent + chunk.count) bytes given but \(tensor.dtype.rawValue) \(tensor.shape) holds \(tensor.byteCount)",
                              remedy: "pass exactly the tensor's bytes")
        }
        do {
            try output.write(chunk)
        } catch {
            fail()
            throw error
        }
        writtenInCurrent += chunk.count
        if writtenInCurrent == tensor.byteCount {
            current += 1
            writtenInCurrent = 0
        }
    }

    /// Appends the next chunk of tensor `name` from an array (same rules as the raw-buffer form).
    public func write(_ chunk: [UInt8], for name: String) throws(FormatError) {
        var failure: FormatError?
        chunk.withUnsafeBytes { raw in
            do throws(FormatError) { try write(raw, for: name) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Checks every tensor got all its bytes, then syncs and renames the file into place.
    /// - Throws: ``FormatError`` `.invalidArgument` naming the first incomplete tensor (the output
    ///   is discarded), `.writeFailed` on I/O errors.
    public func finish() throws(FormatError) {
        guard !finished else {
            throw FormatError(.invalidArgument, path: path, message: "the writer is already finished or discarded")
        }
        skipCompletedEmptyTensors(before: nil)
        if current < tensors.count {
            let tensor = tensors[current]
            fail()
            throw FormatError(.invalidArgument, path: path, tensor: tensor.name,
                              message: "tensor '\(tensor.name)' got \(writtenInCurrent) of its \(tensor.byteCount) bytes (\(tensors.count - current) tensors incomplete)",
                              remedy: "write every tensor's bytes before finishing")
        }
        finished = true
        do {
            try output.commit()
        } catch {
            output.discard()
            throw error
        }
    }

    /// Abandons the output; nothing is left on disk. Safe to call more than once.
    public func discard() { fail() }

    private func fail() {
        finished = true
        output.discard()
    }

    /// Zero-byte tensors complete as soon as they are reached.
    private func skipCompletedEmptyTensors(before name: String?) {
        while current < tensors.count, writtenInCurrent == 0, tensors[current].byteCount == 0,
              tensors[current].name != name {
            current += 1
        }
    }
}
