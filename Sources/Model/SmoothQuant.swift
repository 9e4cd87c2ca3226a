import Foundation
import Quantize

/// SmoothQuant's closed-form per-channel smoothing, as llm-compressor's SmoothQuantModifier computes
/// it (modifiers/transform/smoothquant/base.py, `_apply_smoothing` and `_calculate_smoothing_scales`):
///
/// - the activation scale of input channel j is the dynamic range max_j − min_j of the smoothing
///   layer's output (the balance layers' shared input) over every calibration token;
/// - the weight scale is 2 · max |W[:, j]| over every row of every balance layer;
/// - s_j = range_j^α / weight_j^(1−α) (range_j where the weight scale is 0), clamped at 1e-5;
/// - the smoothing layer (a norm's weight) is divided by s, the balance layers' columns multiplied.
///
/// The folding leaves the float model's function unchanged; it moves the activations' outliers into
/// the weights, where per-channel weight quantization absorbs them, so that dynamic per-token INT8
/// activations lose less.
public enum SmoothQuant {
    /// llm-compressor's `MINIMUM_SMOOTHING_SCALE`.
    public static let minimumScale: Float = 1e-5

    /// Per-channel minimum and maximum of the activations seen so far (the forward hook's
    /// `SmoothQuantScale`): starts at +∞ / −∞, so a channel no token reached has a range of −∞.
    public struct ChannelRange: Sendable, Equatable {
        /// The smallest value seen per channel.
        public private(set) var minimums: [Float]
        /// The largest value seen per channel.
        public private(set) var maximums: [Float]
        /// Rows (tokens) seen.
        public private(set) var rowCount = 0

        /// An empty range for `columns` channels.
        public init(columns: Int) {
            minimums = [Float](repeating: .infinity, count: columns)
            maximums = [Float](repeating: -.infinity, count: columns)
        }

        /// Channels.
        public var columns: Int { minimums.count }

        /// Folds in `rows` rows of `columns` values (row-major).
        public mutating func add(_ x: UnsafeBufferPointer<Float>, rows: Int) {
            let n = columns
            guard rows > 0, x.count >= rows * n else { return }
            minimums.withUnsafeMutableBufferPointer { lo in
                maximums.withUnsafeMutableBufferPointer { hi in
                    for r in 0..<rows {
                        let row = r * n
                        for c in 0..<n {
                            let v = x[row + c]
                            if v < lo[c] { lo[c] = v }
                            if v > hi[c] { hi[c] = v }
                        }
                    }
                }
            }
            rowCount += rows
        }

        /// max − min per channel (llm-compressor's `activation_scales`).
        public var ranges: [Float] { zip(maximums, minimums).map { $0 - $1 } }
    }

    /// 2 · max |W[:, j]| over the rows of every balance layer (row-major, `columns` columns each).
    public static func weightScales(_ layers: [[Float]], columns: Int) -> [Float] {
        var maxima = [Float](repeating: 0, count: columns)
        for weights in layers {
            weights.withUnsafeBufferPointer { w in
                maxima.withUnsafeMutableBufferPointer { m in
                    for r in 0..<(w.count / columns) {
                        for c in 0..<columns { m[c] = max(m[c], abs(w[r * columns + c])) }
                    }
                }
            }
        }
        return maxima.map { 2 * $0 }
    }

    /// The smoothing scales of one mapping: s_j = range_j^α / weight_j^(1−α), range_j where
    /// weight_j is 0, then at least ``minimumScale`` (FP32 throughout, as torch on FP32 tensors).
    /// - Parameters:
    ///   - ranges: the activations' max − min per input channel.
    ///   - weightScales: ``weightScales(_:columns:)`` of the balance layers.
    ///   - strength: α, in [0, 1].
    public static func scales(ranges: [Float], weightScales: [Float], strength: Double) -> [Float] {
        precondition(ranges.count == weightScales.count)
        let alpha = Float(strength)
        return zip(ranges, weightScales).map { x, w in
            let s = w > 0 ? powf(x, alpha) / powf(w, 1 - alpha) : x
            // torch.maximum propagates NaN; a NaN scale would poison the norm: refused by the caller.
            return s.isNaN ? s : max(s, minimumScale)
        }
    }

    /// The scales of one mapping from its recorded activation range and balance weights.
    /// - Throws: ``ModelError/invalidInput(reason:)`` naming the mapping when a channel's scale is
    ///   not a finite positive number (no calibration token reached it, or the activations hold NaN/∞).
    public static func scales(range: ChannelRange, balance: [(name: String, weights: [Float])], columns: Int, strength: Double,
                              smoothName: String) throws -> [Float] {
        let s = scales(ranges: range.ranges, weightScales: weightScales(balance.map(\.weights), columns: columns), strength: strength)
        if let bad = s.firstIndex(where: { !($0.isFinite && $0 > 0) }) {
            throw ModelError.invalidInput(reason: "SmoothQuant found no finite scale for channel \(bad) of \(smoothName) → \(balance.map(\.name).joined(separator: ", ")) (activation range \(range.ranges[bad]) over \(range.rowCount) calibration tokens); the calibration activations are empty or not finite — give more calibration text, or leave out --smooth")
        }
        return s
    }
}
