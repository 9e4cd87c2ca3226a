import Foundation

/// Where a streamed checkpoint goes: one of the layouts Formats writes, staged in an
/// ``OutputTransaction`` until ``commit()``.
///
/// A job (quantize today; the Hugging Face → GGUF conversion or a compressed container next) is a
/// source paired with a sink: it declares every output tensor up front (the sink's initializer),
/// streams their bytes in ``writeOrder`` through ``write(_:for:)``, calls ``finishTensors()``, may
/// inspect or add staged files, and then commits. Releasing a sink before ``commit()`` leaves
/// nothing at the target.
public protocol CheckpointSink: AnyObject {
    /// The staging transaction the sink writes into (add side files or a report through it).
    var transaction: OutputTransaction { get }
    /// The names of the output tensors in the order their bytes must arrive.
    var writeOrder: [String] { get }
    /// Appends the next chunk of tensor `name` (tensors in ``writeOrder``, each in as many chunks as wanted).
    func write(_ chunk: UnsafeRawBufferPointer, for name: String) throws(FormatError)
    /// Completes every tensor file; returns their staged paths (to read back and check).
    func finishTensors() throws(FormatError) -> [String]
    /// Moves the finished output into place (``OutputTransaction/commit(_:)``).
    func commit() throws(FormatError)
}

extension CheckpointSink {
    /// The final path of the output.
    public var target: String { transaction.target }
}
