import Foundation

/// A single `.safetensors` file as a sink: one ``SafetensorsWriter`` staged in a transaction.
/// A lone file has no config.json, so a layout description (say `quantization_config`) goes in its
/// `__metadata__`.
public final class SafetensorsFileSink: CheckpointSink {
    /// The staging transaction.
    public let transaction: OutputTransaction
    /// The tensors in write order.
    public var writeOrder: [String] { writer.tensors.map(\.name) }

    private let writer: SafetensorsWriter
    private let fileName: String

    /// Stages `target` with these tensors and metadata, laid out in `order`.
    /// - Throws: ``FormatError`` from ``OutputTransaction/init(target:)`` and ``SafetensorsWriter``.
    public init(target: String, tensors: [SafetensorsEntry], metadata: [String: String]? = ["format": "pt"],
                order: SafetensorsWriter.Order = .given) throws(FormatError) {
        transaction = try OutputTransaction(target: target)
        fileName = URL(fileURLWithPath: target).lastPathComponent
        do {
            writer = try SafetensorsWriter(path: transaction.path(fileName), tensors: tensors, metadata: metadata, order: order)
        } catch { throw transaction.publicError(error) }
    }

    /// Appends bytes of the next tensor.
    public func write(_ chunk: UnsafeRawBufferPointer, for name: String) throws(FormatError) {
        do { try writer.write(chunk, for: name) } catch { throw transaction.publicError(error) }
    }

    /// Completes the file in the staging directory.
    public func finishTensors() throws(FormatError) -> [String] {
        do { try writer.finish() } catch { throw transaction.publicError(error) }
        return [transaction.path(fileName)]
    }

    /// Moves the file into place.
    public func commit() throws(FormatError) { try transaction.commit(.file(named: fileName)) }
}
