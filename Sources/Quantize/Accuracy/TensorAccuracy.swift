import CBLAS
import Formats
import Foundation

/// How the accuracy check runs: how much of a tensor it looks at and how many BLAS threads it uses.
///
/// Sampling is deterministic (no timing decides it), so the same input always gives the same report.
public struct AccuracyOptions: Sendable, Hashable {
    /// The fewest rows a sampled tensor is checked on (all rows of a smaller tensor).
    public static let minimumSampledRows = 64

    /// The most weights (rows × columns) checked per tensor; a larger tensor is checked on an
    /// evenly spaced subset of its rows (output channels) and flagged as sampled. nil: no cap.
    public var maxCheckedWeights: Int?
    /// The share of each tensor's rows to check (0 < fraction ≤ 1), never fewer than
    /// ``minimumSampledRows``; nil checks every row. The check costs a fixed time per checked
    /// weight, as quantizing does per weight, so a fixed fraction keeps the check's share of the
    /// run's time constant — the way to hold it under a budget such as 25 %.
    public var rowFraction: Double?
    /// Rows of W processed per step; bounds the scratch memory to about
    /// `blockRows × columns × 4` bytes (8 MiB for 512 × 4096 weights) whatever the tensor's size.
    public var blockRows: Int
    /// OpenBLAS threads for the check (a process-wide setting, restored afterwards), also the
    /// number of threads of the difference pass; nil uses OpenBLAS's current setting. Use 1 when
    /// several checks run at the same time on different threads.
    public var blasThreads: Int?

    /// Creates options; the defaults check every row in blocks of 512 with OpenBLAS's own thread
    /// count.
    public init(
        maxCheckedWeights: Int? = nil, rowFraction: Double? = nil, blockRows: Int = 512, blasThreads: Int? = nil
    ) {
        self.maxCheckedWeights = maxCheckedWeights
        self.rowFraction = rowFraction
        self.blockRows = max(blockRows, 1)
        self.blasThreads = blasThreads
    }

    /// The rows of a `rows` × `columns` weight that are checked, nil meaning all of them.
    ///
    /// k = the smaller of max(1, maxCheckedWeights / columns) and
    /// max(⌈rowFraction · rows⌉, min(rows, ``minimumSampledRows``)); when k < rows the rows are
    /// `⌊(2i + 1) · rows / 2k⌋` for i in 0..<k — the centres of k equal slices, so every part of
    /// the tensor (every head, every expert) is represented.
    public func checkedRows(rows: Int, columns: Int) -> [Int]? {
        guard rows > 0, columns > 0 else { return nil }
        var k = rows
        if let limit = maxCheckedWeights { k = min(k, max(1, limit / columns)) }
        if let fraction = rowFraction, fraction > 0, fraction < 1 {
            let share = Int((fraction * Double(rows)).rounded(.up))
            k = min(k, max(share, min(rows, AccuracyOptions.minimumSampledRows)))
        }
        guard k < rows else { return nil }
        return (0..<k).map { ((2 * $0 + 1) * rows) / (2 * k) }
    }
}

/// Control of OpenBLAS's global thread pool.
public enum OpenBLAS {
    /// The number of threads OpenBLAS uses for the next call (global to the process).
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(clamping: max(newValue, 1))) }
    }

    /// OpenBLAS's build configuration string (version, target core, threading), for reports.
    public static var configuration: String {
        guard let text = openblas_get_config() else { return "unknown" }
        return String(cString: text)
    }
}

/// How well a decoded weight Ŵ reproduces the original W on probe inputs X, from Y = X·Wᵀ and
/// Ŷ = X·Ŵᵀ in FP32 (OpenBLAS `cblas_sgemm`), with every sum accumulated in Double.
///
/// The output error is computed directly as D = Ŷ − Y = X·(Ŵ − W)ᵀ, one sgemm on the weight
/// difference, beside the sgemm for Y. That costs the same two matrix products as computing Ŷ and
/// subtracting, but is more accurate: Ŵ − W is exact in FP32 whenever Ŵ and W are within a factor
/// two (Sterbenz), so D carries rounding error relative to ‖D‖ rather than to ‖Y‖ — it matters
/// for f16/bf16, whose errors (1e-4…1e-3) are close to the FP32 rounding of a 4096-long dot
/// product. The difference pass also yields the weight error, which is needed anyway.
///
/// Non-finite values anywhere (a NaN scale, an overflowing decode) make the errors infinite, so
/// such a tensor always fails its threshold.
public struct TensorAccuracy: Sendable, Hashable {
    /// Output channels of the weight (W has `rows` × `columns` elements).
    public var rows: Int
    /// Input channels of the weight.
    public var columns: Int
    /// How many rows were checked (less than `rows` when sampled).
    public var checkedRows: Int
    /// How many probe rows (n) X had.
    public var probeRows: Int
    /// Where the probe came from.
    public var probe: ProbeKind
    /// ‖Ŷ − Y‖ / ‖Y‖ (Frobenius). 0 when both are zero; +∞ when only Y is zero or values are not
    /// finite.
    public var relativeError: Double
    /// 10·log10(‖Y‖² / ‖Ŷ − Y‖²) in decibels: +∞ for an exact match, −∞ when Y is zero and Ŷ not.
    public var sqnrDecibels: Double
    /// ⟨Y, Ŷ⟩ / (‖Y‖‖Ŷ‖) over all entries: 1 when both are zero, 0 when exactly one is.
    public var cosineSimilarity: Double
    /// max |Ŷ − Y| over all entries (+∞ if not finite).
    public var maxAbsoluteError: Double
    /// ‖Ŵ − W‖ / ‖W‖ over the checked rows (same conventions as `relativeError`).
    public var relativeWeightError: Double
    /// Bits per weight the scheme actually stores for this tensor (scales and zero points
    /// included), when the caller knows it.
    public var bitsPerWeight: Double?

    /// Whether only a subset of rows was checked.
    public var isSampled: Bool { checkedRows < rows }

    /// Creates a metrics record from its fields (as decoded from a report).
    public init(
        rows: Int, columns: Int, checkedRows: Int, probeRows: Int, probe: ProbeKind, relativeError: Double,
        sqnrDecibels: Double, cosineSimilarity: Double, maxAbsoluteError: Double, relativeWeightError: Double,
        bitsPerWeight: Double? = nil
    ) {
        self.rows = rows
        self.columns = columns
        self.checkedRows = checkedRows
        self.probeRows = probeRows
        self.probe = probe
        self.relativeError = relativeError
        self.sqnrDecibels = sqnrDecibels
        self.cosineSimilarity = cosineSimilarity
        self.maxAbsoluteError = maxAbsoluteError
        self.relativeWeightError = relativeWeightError
        self.bitsPerWeight = bitsPerWeight
    }

    /// Measures how well `decoded` reproduces `original`, both `rows` × `columns` row-major FP32
    /// (out × in), on `activations` (n × columns).
    ///
    /// - Parameters:
    ///   - original: W, `rows * columns` values.
    ///   - decoded: Ŵ, the quantized weight decoded back to FP32, same layout.
    ///   - storedByteCount: bytes the scheme stores for this tensor, giving ``bitsPerWeight``.
    ///   - tensorName: used in error messages only.
    /// - Throws: `FormatError` with code ``FormatError/Code/accuracyShapeMismatch`` when a buffer
    ///   does not hold `rows * columns` values or a dimension exceeds BLAS's 32-bit sizes, and
    ///   ``FormatError/Code/activationShapeMismatch`` when `activations.columns != columns`.
    /// - Complexity: two sgemms of n × columns × checked rows plus one pass over the checked
    ///   weights; scratch memory about `(2 · blockRows · columns + 2 · n · blockRows) · 4` bytes.
    public static func measure(
        original: UnsafeBufferPointer<Float>, decoded: UnsafeBufferPointer<Float>, rows: Int, columns: Int,
        activations: ProbeActivations, storedByteCount: Int? = nil, tensorName: String? = nil,
        options: AccuracyOptions = AccuracyOptions()
    ) throws -> TensorAccuracy {
        guard rows > 0, columns > 0, let count = CheckedSize.multiply(rows, columns),
            original.count == count, decoded.count == count, rows <= Int(Int32.max), columns <= Int(Int32.max)
        else {
            throw FormatError(
                .accuracyShapeMismatch, path: "(accuracy check)", tensor: tensorName,
                message: "original has \(original.count) and decoded \(decoded.count) values; "
                    + "a \(rows) × \(columns) weight needs \(rows &* columns)",
                remedy: "decode the quantized tensor to the full shape of the original before checking it")
        }
        guard activations.columns == columns else {
            throw FormatError(
                .activationShapeMismatch, path: "(accuracy check)", tensor: tensorName,
                message: "probe activations have width \(activations.columns), the weight has \(columns) inputs",
                remedy: "use activations of shape [tokens, \(columns)] for this tensor")
        }
        let previousThreads = options.blasThreads.map { _ in OpenBLAS.threadCount }
        if let threads = options.blasThreads { OpenBLAS.threadCount = threads }
        defer { if let previousThreads { OpenBLAS.threadCount = previousThreads } }

        let selected = options.checkedRows(rows: rows, columns: columns)
        let checked = selected?.count ?? rows
        var sums = AccuracySums()
        let n = activations.rows
        let block = min(options.blockRows, checked)
        let workers = max(1, min(options.blasThreads ?? OpenBLAS.threadCount, ProcessInfo.processInfo.activeProcessorCount))
        // Scratch: Ŵ − W for a block, W for a block when rows are gathered, Y and D for a block,
        // and ‖w‖², ‖ŵ − w‖² per row (summed in row order, so the result does not depend on threads).
        var difference = [Float](repeating: 0, count: block * columns)
        var gathered = [Float](repeating: 0, count: selected == nil ? 0 : block * columns)
        var outputs = [Float](repeating: 0, count: 2 * n * block)
        var rowSums = [Float](repeating: 0, count: 2 * block)
        activations.values.withUnsafeBufferPointer { x in
            difference.withUnsafeMutableBufferPointer { diff in
                gathered.withUnsafeMutableBufferPointer { gather in
                    outputs.withUnsafeMutableBufferPointer { out in
                        rowSums.withUnsafeMutableBufferPointer { perRow in
                            var start = 0
                            while start < checked {
                                let count = min(block, checked - start)
                                let pass = DifferencePass(
                                    original: original.baseAddress!, decoded: decoded.baseAddress!,
                                    difference: diff.baseAddress!, gathered: selected == nil ? nil : gather.baseAddress,
                                    rowSums: perRow.baseAddress!,
                                    selected: selected, start: start, count: count, columns: columns)
                                // The pass is memory-bound: spread it over the cores BLAS may use,
                                // unless the block is too small to pay for the dispatch.
                                let pieces = count * columns >= 1 << 18 ? min(workers, count) : 1
                                if pieces == 1 {
                                    pass.run(piece: 0, of: 1)
                                } else {
                                    DispatchQueue.concurrentPerform(iterations: pieces) { pass.run(piece: $0, of: pieces) }
                                }
                                for i in 0..<count {
                                    sums.weightSquares += Double(perRow[2 * i])
                                    sums.weightErrorSquares += Double(perRow[2 * i + 1])
                                }
                                let w = selected == nil
                                    ? original.baseAddress! + start * columns : UnsafePointer(gather.baseAddress!)
                                let y = out.baseAddress!
                                let d = out.baseAddress! + n * count
                                // Y = X·Wᵀ and D = X·(Ŵ − W)ᵀ for this block of output channels.
                                cblas_sgemm(
                                    CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(count), Int32(columns),
                                    1, x.baseAddress, Int32(columns), w, Int32(columns), 0, y, Int32(count))
                                cblas_sgemm(
                                    CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(count), Int32(columns),
                                    1, x.baseAddress, Int32(columns), diff.baseAddress, Int32(columns), 0, d,
                                    Int32(count))
                                outputSums(reference: y, error: d, count: n * count, sums: &sums)
                                start += count
                            }
                        }
                    }
                }
            }
        }
        var result = sums.accuracy(rows: rows, columns: columns, checkedRows: checked, activations: activations)
        if let storedByteCount, let count = CheckedSize.multiply(rows, columns) {
            result.bitsPerWeight = Double(storedByteCount) * 8 / Double(count)
        }
        return result
    }

    /// ``measure(original:decoded:rows:columns:activations:storedByteCount:tensorName:options:)``
    /// for arrays.
    public static func measure(
        original: [Float], decoded: [Float], rows: Int, columns: Int, activations: ProbeActivations,
        storedByteCount: Int? = nil, tensorName: String? = nil, options: AccuracyOptions = AccuracyOptions()
    ) throws -> TensorAccuracy {
        try original.withUnsafeBufferPointer { w in
            try decoded.withUnsafeBufferPointer { wq in
                try measure(
                    original: w, decoded: wq, rows: rows, columns: columns, activations: activations,
                    storedByteCount: storedByteCount, tensorName: tensorName, options: options)
            }
        }
    }
}

/// Running sums of the check, all in Double.
struct AccuracySums {
    var weightSquares = 0.0
    var weightErrorSquares = 0.0
    var referenceSquares = 0.0
    var errorSquares = 0.0
    var crossProducts = 0.0
    var maxAbsoluteError: Float = 0
    var nonFinite = false

    func accuracy(rows: Int, columns: Int, checkedRows: Int, activations: ProbeActivations) -> TensorAccuracy {
        func ratio(_ error: Double, _ reference: Double) -> Double {
            if nonFinite || !error.isFinite || !reference.isFinite { return .infinity }
            if error == 0 { return 0 }
            return reference == 0 ? .infinity : (error / reference).squareRoot()
        }
        let relative = ratio(errorSquares, referenceSquares)
        let sqnr: Double = relative == 0 ? .infinity : (relative.isFinite ? -20 * log10(relative) : -.infinity)
        // ‖Ŷ‖² = ‖Y + D‖² = ‖Y‖² + 2⟨Y, D⟩ + ‖D‖², ⟨Y, Ŷ⟩ = ‖Y‖² + ⟨Y, D⟩.
        let decodedSquares = max(referenceSquares + 2 * crossProducts + errorSquares, 0)
        let cosine: Double
        if !relative.isFinite && nonFinite {
            cosine = 0
        } else if referenceSquares == 0 || decodedSquares == 0 {
            cosine = referenceSquares == decodedSquares ? 1 : 0
        } else {
            let value = (referenceSquares + crossProducts) / (referenceSquares * decodedSquares).squareRoot()
            cosine = min(max(value, -1), 1)
        }
        return TensorAccuracy(
            rows: rows, columns: columns, checkedRows: checkedRows, probeRows: activations.rows,
            probe: activations.kind, relativeError: relative, sqnrDecibels: sqnr, cosineSimilarity: cosine,
            maxAbsoluteError: nonFinite ? .infinity : Double(maxAbsoluteError),
            relativeWeightError: ratio(weightErrorSquares, weightSquares))
    }
}

/// One block's difference pass: for each of `count` rows, `decoded − original` into `difference`
/// (and the original row into `gathered` when rows are sampled), with ‖w‖² and ‖ŵ − w‖² of row i
/// in `rowSums[2i]` and `rowSums[2i + 1]`. Pieces cover disjoint rows, so they may run in parallel.
struct DifferencePass: @unchecked Sendable {
    let original: UnsafePointer<Float>
    let decoded: UnsafePointer<Float>
    let difference: UnsafeMutablePointer<Float>
    let gathered: UnsafeMutablePointer<Float>?
    let rowSums: UnsafeMutablePointer<Float>
    let selected: [Int]?
    let start: Int
    let count: Int
    let columns: Int

    func run(piece: Int, of pieces: Int) {
        let first = count * piece / pieces
        let end = count * (piece + 1) / pieces
        for i in first..<end {
            let row = selected?[start + i] ?? start + i
            let source = original + row * columns
            if let gathered { (gathered + i * columns).update(from: source, count: columns) }
            let (weights, errors) = weightDifference(
                original: source, decoded: decoded + row * columns, into: difference + i * columns, count: columns)
            rowSums[2 * i] = weights
            rowSums[2 * i + 1] = errors
        }
    }
}

/// Writes `decoded − original` into `difference` and returns ‖w‖² and ‖ŵ − w‖² of the row.
///
/// Sums run in SIMD16<Float> lanes within a row (at most a few hundred adds per lane, relative
/// error below 1e-5); the caller adds the row totals in Double. Plain `+=` of products, not
/// `addProduct`: without FMA in the baseline x86-64 target the latter is a libm call per lane.
@inline(__always)
func weightDifference(
    original: UnsafePointer<Float>, decoded: UnsafePointer<Float>, into difference: UnsafeMutablePointer<Float>,
    count: Int
) -> (weights: Float, errors: Float) {
    var weights = SIMD16<Float>()
    var errors = SIMD16<Float>()
    var weightsTail: Float = 0
    var errorsTail: Float = 0
    let raw = UnsafeMutableRawPointer(difference)
    let rawOriginal = UnsafeRawPointer(original)
    let rawDecoded = UnsafeRawPointer(decoded)
    var i = 0
    while i + 16 <= count {
        let w = rawOriginal.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        let wq = rawDecoded.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        let d = wq - w
        raw.storeBytes(of: d, toByteOffset: i * 4, as: SIMD16<Float>.self)
        weights += w * w
        errors += d * d
        i += 16
    }
    while i < count {
        let d = decoded[i] - original[i]
        difference[i] = d
        weightsTail += original[i] * original[i]
        errorsTail += d * d
        i += 1
    }
    return (weights.sum() + weightsTail, errors.sum() + errorsTail)
}

/// Adds ‖Y‖², ‖D‖², ⟨Y, D⟩ and max |D| of `count` output entries to `sums` (Float lanes per
/// block of 4096 entries, Double totals).
@inline(__always)
func outputSums(reference: UnsafePointer<Float>, error: UnsafePointer<Float>, count: Int, sums: inout AccuracySums) {
    let rawReference = UnsafeRawPointer(reference)
    let rawError = UnsafeRawPointer(error)
    var start = 0
    var maxima = SIMD16<Float>()
    var sawNaN = false
    while start < count {
        let end = min(start + 4096, count)
        var yy = SIMD16<Float>()
        var dd = SIMD16<Float>()
        var yd = SIMD16<Float>()
        var i = start
        while i + 16 <= end {
            let y = rawReference.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            let d = rawError.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            yy += y * y
            dd += d * d
            yd += y * d
            maxima = pointwiseMax(maxima, pointwiseMax(d, -d))
            i += 16
        }
        var tail = (yy: Float(0), dd: Float(0), yd: Float(0))
        while i < end {
            let y = reference[i]
            let d = error[i]
            tail.yy += y * y
            tail.dd += d * d
            tail.yd += y * d
            if d.isNaN { sawNaN = true }
            maxima[0] = max(maxima[0], abs(d))
            i += 1
        }
        sums.referenceSquares += Double(yy.sum() + tail.yy)
        sums.errorSquares += Double(dd.sum() + tail.dd)
        sums.crossProducts += Double(yd.sum() + tail.yd)
        start = end
    }
    let blockMax = maxima.max()
    sums.maxAbsoluteError = max(sums.maxAbsoluteError, blockMax)
    // pointwiseMax drops NaN; the sums do not, so they reveal it.
    if sawNaN || !sums.errorSquares.isFinite || !sums.referenceSquares.isFinite || !blockMax.isFinite {
        sums.nonFinite = true
    }
}
