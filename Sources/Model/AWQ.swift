import Foundation
import Quantize

/// The settings of AWQ's scale search (llm-compressor's AWQModifier defaults).
public struct AWQSettings: Sendable {
    /// Grid points per mapping (`n_grid`, 20).
    public var gridPoints: Int
    /// Whether the scales divide by the weights' mean magnitude as well (`duo_scaling`, true): the
    /// grid is then the identity (ratio 0 without it) plus `gridPoints − 1` ratios in [0, 1].
    public var duoScaling: Bool

    /// Creates settings; `gridPoints` below 2 is raised to 2.
    public init(gridPoints: Int = 20, duoScaling: Bool = true) {
        self.gridPoints = max(2, gridPoints)
        self.duoScaling = duoScaling
    }
}

/// Activation-aware weight quantization's per-input-channel scale search, as llm-compressor's
/// AWQModifier does it (modifiers/transform/awq/base.py, `_compute_best_scale`): for each ratio r of
/// a grid, s = x̄^r / (w̄^(1−r) + 1e-4) clamped at 1e-4 and divided by √(max s · min s); the balance
/// layers' weights become Q(W·s)/s; the parent module is rerun on the calibration inputs, and the
/// scales with the lowest mean squared output error win. The caller folds them in: the balance
/// layers' columns are multiplied by s, the smoothing layer (a norm's weight, or the previous
/// linear layer's rows) divided by it.
public enum AWQ {
    /// One grid point.
    public struct GridPoint: Sendable, Equatable {
        /// The exponent of the activation means.
        public var ratio: Double
        /// Whether the weight means divide the scales.
        public var duoScaling: Bool
    }

    /// The outcome of one mapping's search.
    public struct Search: Sendable {
        /// The grid searched, in order.
        public var grid: [GridPoint]
        /// The parent's output MSE at each grid point.
        public var losses: [Double]
        /// Index of the winning grid point (the first with the lowest loss).
        public var best: Int
        /// The winning scales, one per input channel of the balance layers.
        public var scales: [Float]
        /// The loss at the first grid point (the identity scales), for the report.
        public var initialLoss: Double { losses.first ?? .nan }
        /// The lowest loss.
        public var bestLoss: Double { losses[best] }
    }

    /// llm-compressor's grid: with duo scaling, (0, without) then (i / (n − 2), with) for i < n − 1;
    /// without, (i / (n − 1), without) for i < n.
    public static func grid(_ settings: AWQSettings) -> [GridPoint] {
        let n = settings.gridPoints
        if settings.duoScaling {
            return [GridPoint(ratio: 0, duoScaling: false)] + (0..<(n - 1)).map { GridPoint(ratio: Double($0) / Double(n - 2), duoScaling: true) }
        }
        return (0..<n).map { GridPoint(ratio: Double($0) / Double(n - 1), duoScaling: false) }
    }

    /// The mean over all rows of the balance layers of |w| / (max |w| of its quantization chunk + 1e-6),
    /// per column (`_compute_layer_means`): `chunk` is the group size (per-group schemes), the row
    /// length (per-channel) or the whole tensor (per-tensor).
    /// - Parameter layers: each layer's row-major weights; all have `columns` columns.
    public static func weightMeans(_ layers: [[Float]], columns: Int, chunk: Int) -> [Double] {
        var sums = [Double](repeating: 0, count: columns)
        var rowCount = 0
        for weights in layers {
            let rows = weights.count / columns
            rowCount += rows
            if chunk >= weights.count {  // per-tensor
                let maximum = Double(weights.reduce(0) { max($0, abs($1)) }) + 1e-6
                for r in 0..<rows { for c in 0..<columns { sums[c] += Double(abs(weights[r * columns + c])) / maximum } }
                continue
            }
            weights.withUnsafeBufferPointer { w in
                for r in 0..<rows {
                    var c0 = 0
                    while c0 < columns {
                        let c1 = min(columns, c0 + chunk)
                        var maximum: Float = 0
                        for c in c0..<c1 { maximum = max(maximum, abs(w[r * columns + c])) }
                        // torch divides in the weight's dtype (FP32 here) before summing in FP64.
                        let divisor = maximum + 1e-6
                        for c in c0..<c1 { sums[c] += Double(abs(w[r * columns + c]) / divisor) }
                        c0 = c1
                    }
                }
            }
        }
        return sums.map { $0 / Double(max(1, rowCount)) }
    }

    /// The scales of one grid point, normalised by √(max · min); non-finite entries become 1.
    public static func scales(activationMeans: [Double], weightMeans: [Double]?, point: GridPoint) -> [Float] {
        var s = activationMeans.indices.map { c -> Double in
            // torch raises the FP32 means to the ratio in FP32, then divides in FP64.
            let x = Double(Float(pow(activationMeans[c], point.ratio)))
            if point.duoScaling, let weightMeans {
                return max(x / (pow(weightMeans[c], 1 - point.ratio) + 1e-4), 1e-4)
            }
            return max(x, 1e-4)
        }
        let norm = ((s.max() ?? 1) * (s.min() ?? 1)).squareRoot()
        s = s.map { $0 / norm }
        return s.map { $0.isFinite ? Float($0) : 1 }
    }

    /// Q(W·s)/s: `weights` (row-major, `rows × columns`) with its columns multiplied by `scales`,
    /// quantized round-to-nearest with `scheme` (the observer's min-max), decoded, and divided back.
    public static func scaledRoundTrip(_ weights: [Float], rows: Int, columns: Int, scales: [Float], scheme: Scheme,
                                       options: QuantizeOptions, tensorName: String) throws -> [Float] {
        var scaled = weights
        scaleColumns(&scaled, columns: columns, by: scales)
        let encoded = try scaled.withUnsafeBufferPointer {
            try quantized($0, rows: rows, columns: columns, scheme: scheme, tensorName: tensorName, options: options)
        }
        var decoded = try dequantized(encoded, tensorName: tensorName)
        decoded.withUnsafeMutableBufferPointer { d in
            for r in 0..<rows { for c in 0..<columns { d[r * columns + c] /= scales[c] } }
        }
        return decoded
    }

    /// Multiplies column c of the row-major `weights` by `scales[c]`.
    public static func scaleColumns(_ weights: inout [Float], columns: Int, by scales: [Float]) {
        weights.withUnsafeMutableBufferPointer { w in
            let rows = w.count / columns
            for r in 0..<rows { for c in 0..<columns { w[r * columns + c] *= scales[c] } }
        }
    }

    /// Divides row r of the row-major `weights` by `scales[r]` (a linear smoothing layer's outputs).
    public static func divideRows(_ weights: inout [Float], columns: Int, by scales: [Float]) {
        weights.withUnsafeMutableBufferPointer { w in
            for r in 0..<scales.count { for c in 0..<columns { w[r * columns + c] /= scales[r] } }
        }
    }

    /// Σ (a − b)², accumulated in FP64.
    public static func squaredError(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        return a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in
                var total = 0.0
                var i = 0
                while i < x.count {
                    let end = min(x.count, i + 4096)
                    var partial: Float = 0
                    for j in i..<end { let d = x[j] - y[j]; partial += d * d }
                    total += Double(partial)
                    i = end
                }
                return total
            }
        }
    }

    /// Searches the grid for one mapping.
    /// - Parameters:
    ///   - activationMeans: mean |x| per input channel of the balance layers, over the calibration tokens.
    ///   - balance: the balance layers' current weights (row-major, `columns` columns each) and names.
    ///   - loss: the parent's output MSE against its unquantized output, given the balance layers'
    ///     candidate weights Q(W·s)/s in the order of `balance`.
    /// - Throws: ``ModelError/invalidInput(reason:)`` when no grid point gives a finite loss; the
    ///   quantizer's and `loss`'s errors.
    public static func search(activationMeans: [Double], balance: [(name: String, weights: [Float])], columns: Int, scheme: Scheme,
                              options: QuantizeOptions, settings: AWQSettings, loss: ([[Float]]) throws -> Double) throws -> Search {
        let chunk: Int
        switch scheme.granularity {
        case .group(let size): chunk = size
        case .channel: chunk = columns
        default: chunk = Int.max
        }
        let means = settings.duoScaling ? weightMeans(balance.map(\.weights), columns: columns, chunk: chunk) : nil
        let points = grid(settings)
        return try search(points, candidates: points.map { scales(activationMeans: activationMeans, weightMeans: means, point: $0) },
                          balance: balance, columns: columns, scheme: scheme, options: options, loss: loss)
    }

    /// Scores the candidate scales of each grid point (``scales(activationMeans:weightMeans:point:)``)
    /// and keeps the first with the lowest finite loss.
    /// - Throws: ``ModelError/invalidInput(reason:)`` when no candidate gives a finite loss.
    public static func search(_ points: [GridPoint], candidates: [[Float]], balance: [(name: String, weights: [Float])], columns: Int,
                              scheme: Scheme, options: QuantizeOptions, loss: ([[Float]]) throws -> Double) throws -> Search {
        var losses: [Double] = []
        var best = -1
        for s in candidates {
            let weights = try balance.map { item in
                try scaledRoundTrip(item.weights, rows: item.weights.count / columns, columns: columns, scales: s, scheme: scheme,
                                    options: options, tensorName: item.name)
            }
            let value = try loss(weights)
            losses.append(value)
            if value.isFinite, best < 0 || value < losses[best] { best = losses.count - 1 }
        }
        guard best >= 0 else {
            throw ModelError.invalidInput(reason: "AWQ found no finite output error for \(balance.map(\.name).joined(separator: ", ")) at any of the \(candidates.count) grid points; the calibration activations give NaN or infinity in the forward pass")
        }
        return Search(grid: points, losses: losses, best: best, scales: candidates[best])
    }
}
