import Formats

/// Tensors a calibrated method changed before encoding (``CalibratedWeights/smoothed``): AWQ's
/// folded norms are written in their own float type, and its smoothed weights are what the
/// accuracy check compares the encoded tensor against.
extension QuantizeJob {
    /// Writes `values` as the kept tensor `planned`, converted to its float type (F32, F16, BF16).
    func writeSmoothed(_ values: [Float], planned: PlannedTensor, write: (OutputTensor, UnsafeRawBufferPointer) throws -> Void) throws {
        let name = planned.source.name
        guard values.count == planned.source.elementCount, case .dtype(let dtype) = planned.source.type,
              ElementConversion.canConvertFromFloat32(dtype) else {
            throw QuantizeError.unsupportedLayout(tensor: name, found: "\(settings.calibrated?.method ?? "the method") changed it to \(values.count) FP32 values, which cannot be written as its \(planned.source.type) of \(planned.source.elementCount) elements")
        }
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: planned.source.byteCount, alignment: 64)
        defer { bytes.deallocate() }
        try values.withUnsafeBufferPointer { try ElementConversion.fromFloat32($0, to: dtype, into: bytes) }
        try write(planned.outputs[0], UnsafeRawBufferPointer(bytes))
    }

    /// Copies the rows `rows` (all when nil) of the row-major `values` into `weights`, where the
    /// accuracy check reads the tensor's reference values.
    static func copy(_ values: [Float], rows: [Int]?, columns: Int, into weights: UnsafeMutableBufferPointer<Float>, name: String) throws {
        let selected = rows ?? Array(0..<(weights.count / max(1, columns)))
        guard selected.count * columns == weights.count, (selected.max() ?? -1) * columns + columns <= values.count else {
            throw QuantizeError.unsupportedLayout(tensor: name, found: "the calibrated method's \(values.count) reference values do not cover the \(weights.count) checked weights")
        }
        for (i, row) in selected.enumerated() {
            for c in 0..<columns { weights[i * columns + c] = values[row * columns + c] }
        }
    }
}
