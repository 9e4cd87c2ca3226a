import CKernels

/// An 8-bit float format the FP8 schemes store (formats.md §3.1).
public enum FP8Format: String, Sendable, CaseIterable {
    /// OCP E4M3FN (`torch.float8_e4m3fn`, safetensors `F8_E4M3`): largest finite 448, no infinity.
    case e4m3
    /// OCP E5M2 (`torch.float8_e5m2`, safetensors `F8_E5M2`): largest finite 57344.
    case e5m2

    /// The largest finite value.
    public var largestFinite: Float { self == .e4m3 ? 448 : 57344 }

    /// The byte for `value`: round-to-nearest-even (subnormals included), saturating at
    /// ±``largestFinite`` (so ±inf gives ±max, never NaN); NaN gives the format's NaN with its sign.
    /// Equals ml_dtypes' cast of `value` clamped to the finite range.
    public func encode(_ value: Float) -> UInt8 {
        self == .e4m3 ? qk_quant_f32_to_e4m3(value) : qk_quant_f32_to_e5m2(value)
    }

    /// The value of byte `code` (E4M3 0x7F/0xFF and E5M2 exponent-all-ones codes decode as NaN or ±inf).
    public func decode(_ code: UInt8) -> Float {
        self == .e4m3 ? qk_quant_e4m3_to_f32(code) : qk_quant_e5m2_to_f32(code)
    }

    /// Encodes `values` into `output` (same count) with ``encode(_:)``.
    public func encode(_ values: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<UInt8>) {
        precondition(output.count >= values.count, "output buffer shorter than input")
        guard let x = values.baseAddress, let o = output.baseAddress else { return }
        qk_quant_fp8_encode(x, o, values.count, self == .e5m2 ? 1 : 0)
    }
}
