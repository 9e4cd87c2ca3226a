import Formats

/// Tensors encoded before a ``QuantizeJob`` runs, by a calibrated method (GPTQ) that needs the
/// whole model's forward pass, which Quantize does not know: the job writes them in place of its
/// own round-to-nearest encoding, and records the method in the output's config.
///
/// The job above Quantize that runs the calibration (the Model module's `GPTQCalibration`, wired by
/// the command line) fills it; Quantize only copies the bytes after checking them against the
/// scheme's layout.
public struct CalibratedWeights: Sendable {
    /// The method's name as written to the config (`gptq`).
    public var method: String
    /// The weights' `actorder` for `quantization_config` (`static`), nil when columns ran in order.
    public var activationOrder: String?
    /// The method's parameters, written as config.json's ``configKey`` (and a lone file's metadata
    /// entry of the same name): which method, its settings, the calibration data.
    public var record: JSONValue
    /// The encoded tensor for an input tensor name, nil for a tensor the method did not produce
    /// (it is then encoded round-to-nearest).
    public var tensor: @Sendable (_ name: String) -> QuantizedTensor?
    /// The FP32 values a method changed a tensor to before encoding it (AWQ's smoothed weights and
    /// the norms its scales were folded into), nil for a tensor it left as it was. A quantized
    /// tensor's accuracy check compares against them instead of the input's values; a kept tensor
    /// is written with them, in its own float type.
    public var smoothed: @Sendable (_ name: String) -> [Float]?

    /// Creates the hand-over.
    public init(method: String, activationOrder: String?, record: JSONValue, tensor: @escaping @Sendable (_ name: String) -> QuantizedTensor?,
                smoothed: @escaping @Sendable (_ name: String) -> [Float]? = { _ in nil }) {
        self.method = method
        self.activationOrder = activationOrder
        self.record = record
        self.tensor = tensor
        self.smoothed = smoothed
    }

    /// The config.json key holding ``record`` (beside `quantization_config`, which compressed-tensors
    /// validates and would refuse unknown keys in once it forbids extras).
    public static let configKey = "quantize_calibration"

    /// Copies `tensor` into the job's output buffers after checking that its parts are the
    /// layout's (suffixes, types, shapes, byte counts).
    func copy(_ tensor: QuantizedTensor, into buffers: [UnsafeMutableRawBufferPointer], layouts: [TensorQuantizer.PartLayout],
              name: String) throws(QuantizeError) {
        guard tensor.parts.count == layouts.count, buffers.count == layouts.count,
              zip(tensor.parts, layouts).allSatisfy({ $0.suffix == $1.suffix && $0.type == $1.type && $0.shape == $1.shape && $0.data.count == $1.byteCount })
        else {
            throw .unsupportedLayout(tensor: name, found: "\(method) produced parts \(tensor.parts.map { "\($0.suffix) \($0.shape)" }) where the scheme's layout is \(layouts.map { "\($0.suffix) \($0.shape)" })")
        }
        for (part, buffer) in zip(tensor.parts, buffers) {
            part.data.withUnsafeBytes { buffer.copyMemory(from: $0) }
        }
    }
}
