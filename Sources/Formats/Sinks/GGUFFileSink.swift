import Foundation

/// A `.gguf` file as a sink: its metadata (with `general.file_type` and
/// `general.quantization_version` set as asked) and tensors through one ``GGUFWriter`` staged in a
/// transaction.
public final class GGUFFileSink: CheckpointSink {
    /// The staging transaction.
    public let transaction: OutputTransaction
    /// The tensors in write order.
    public let writeOrder: [String]
    /// The metadata written, in order.
    public let metadata: [(key: String, value: GGUFValue)]

    private let writer: GGUFWriter
    private let fileName: String

    /// Stages `target` with `metadata` (keys in order; `quantizationVersion` and then `fileType`,
    /// when given, are moved to the end with their new values, as llama-quantize does) and
    /// `tensors` in the order given.
    /// - Parameters:
    ///   - fileType: llama.cpp's `llama_ftype` for `general.file_type`.
    ///   - quantizationVersion: `general.quantization_version` (2 for files with quantized blocks).
    /// - Throws: ``FormatError`` from ``OutputTransaction/init(target:)`` and ``GGUFWriter``.
    /// `trailing` keys are set last, the same way (llama-quantize's KV overrides, such as its
    /// `quantize.imatrix.*` keys).
    public init(target: String, metadata: [(key: String, value: GGUFValue)], tensors: [GGUFWriter.Tensor],
                fileType: UInt32? = nil, quantizationVersion: UInt32? = nil,
                trailing: [(key: String, value: GGUFValue)] = []) throws(FormatError) {
        // A split input's shard keys describe the input's split, not this one file (llama-quantize
        // removes them the same way).
        var metadata = metadata.filter { !$0.key.hasPrefix("split.") }
        func set(_ key: String, _ value: GGUFValue) {
            metadata.removeAll { $0.key == key }
            metadata.append((key, value))
        }
        // llama-quantize's order (gguf_set_val_* removes a key and appends it): the input's keys,
        // then the quantization version, then the file type.
        if let quantizationVersion { set("general.quantization_version", .uint32(quantizationVersion)) }
        if let fileType { set("general.file_type", .uint32(fileType)) }
        for (key, value) in trailing { set(key, value) }
        self.metadata = metadata
        writeOrder = tensors.map(\.name)
        transaction = try OutputTransaction(target: target)
        fileName = URL(fileURLWithPath: target).lastPathComponent
        do {
            writer = try GGUFWriter(path: transaction.path(fileName), metadata: metadata, tensors: tensors)
        } catch { throw transaction.publicError(error) }
    }

    /// Appends bytes of the next tensor (GGUF data is one stream; `name` is for the caller's bookkeeping).
    public func write(_ chunk: UnsafeRawBufferPointer, for name: String) throws(FormatError) {
        do { try writer.write(chunk) } catch { throw transaction.publicError(error) }
    }

    /// Completes the file in the staging directory.
    public func finishTensors() throws(FormatError) -> [String] {
        do { try writer.finish() } catch { throw transaction.publicError(error) }
        return [transaction.path(fileName)]
    }

    /// Moves the file into place.
    public func commit() throws(FormatError) { try transaction.commit(.file(named: fileName)) }
}
