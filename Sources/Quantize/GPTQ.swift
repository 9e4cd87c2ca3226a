import CBLAS
import CKernels
import Dispatch
import Foundation
import Formats

/// The GPTQ Hessian of one linear layer's input, H = (2/n)·Σ xᵀx over the n calibration rows x it
/// saw, accumulated in FP32 with `cblas_ssyrk` (llm-compressor `accumulate_hessian`; its division by
/// the number of sequences instead of rows changes H by a constant factor, which GPTQ's updates and
/// the relative dampening do not see).
///
/// Memory: `columns²` floats.
public struct HessianAccumulator: Sendable {
    /// The input features (H is `columns × columns`).
    public let columns: Int
    /// Rows (tokens) accumulated so far.
    public private(set) var rowCount: Int = 0
    /// Σ 2·xᵀx, row-major; only the upper triangle is kept up to date.
    private var sums: [Float]

    /// An empty accumulator for inputs of `columns` features.
    public init(columns: Int) {
        self.columns = columns
        sums = [Float](repeating: 0, count: columns * columns)
    }

    /// Adds `rows` input rows (`rows × columns` floats, row-major).
    public mutating func add(_ x: UnsafeBufferPointer<Float>, rows: Int) {
        guard rows > 0, let base = x.baseAddress, x.count >= rows * columns else { return }
        let n = Int32(columns)
        sums.withUnsafeMutableBufferPointer { c in
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, Int32(rows), 2, base, n, 1, c.baseAddress!, n)
        }
        rowCount += rows
    }

    /// H = Σ 2·xᵀx / n as a full symmetric `columns × columns` matrix (row-major); zeros before any row.
    public var hessian: [Float] {
        var h = sums
        let scale: Float = rowCount > 0 ? 1 / Float(rowCount) : 0
        for i in 0..<columns {
            for j in i..<columns {
                let v = h[i * columns + j] * scale
                h[i * columns + j] = v
                h[j * columns + i] = v
            }
        }
        return h
    }
}

/// How the GPTQ solve runs (llm-compressor GPTQModifier's parameters).
public struct GPTQSettings: Sendable, Hashable {
    /// Added to H's diagonal as a fraction of its mean (`dampening_frac`, default 0.01).
    public var dampening: Double
    /// Columns quantized together before their error is pushed onto the rest (`block_size`, 128).
    public var blockSize: Int
    /// Process columns in descending order of diag(H) (`actorder: static`, alias of `weight`): groups
    /// keep their original columns and the scales, so no `g_idx` is stored.
    public var activationOrder: Bool

    /// Creates settings; the defaults are llm-compressor's (except `activationOrder`, which
    /// GPTQModifier turns on by default and `quantize` turns on with `--act-order`).
    public init(dampening: Double = 0.01, blockSize: Int = 128, activationOrder: Bool = false) {
        self.dampening = dampening
        self.blockSize = blockSize
        self.activationOrder = activationOrder
    }
}

/// One weight matrix quantized by GPTQ.
public struct GPTQResult: Sendable {
    /// The stored tensors in the scheme's layout (formats/quantize-int.md), as the round-to-nearest
    /// encoder writes them: the same scales and zero points, other codes.
    public var tensor: QuantizedTensor
    /// Ŵ = (code − zero point)·scale, `rows × columns` row-major: what a runtime decodes.
    public var dequantized: [Float]
    /// The Cholesky factorization of the dampened H or of H⁻¹ failed: the codes are round-to-nearest.
    public var usedRoundToNearest: Bool
    /// Σ over rows and columns of err² / 2, err = (w − q) / [H⁻¹]ᵢᵢ^½ (llm-compressor's logged "loss").
    public var loss: Double
}

/// GPTQ (Frantar et al., arXiv 2210.17323) as llm-compressor's `quantize_weight` runs it: scales and
/// zero points from the min-max observer on the original weights (per group), then columns
/// quantized one by one, each one's rounding error, scaled by the upper Cholesky factor of H⁻¹,
/// pushed onto the columns not yet quantized — within a block of ``GPTQSettings/blockSize``
/// columns per column, onto the later blocks once per block (one `cblas_sgemm`).
public enum GPTQ {
    /// Quantizes `weights` (`rows × columns`, row-major FP32) for `scheme` (int4 or int8, any
    /// granularity they allow) using the input Hessian `hessian` (`columns × columns`).
    ///
    /// Columns with diag(H) = 0 (never active) are zeroed first, as llm-compressor does. When H,
    /// after dampening, or its inverse is not positive definite the result is round-to-nearest
    /// with the same scales, and ``GPTQResult/usedRoundToNearest`` says so.
    /// - Throws: ``QuantizeError`` for a non-integer scheme, shapes that do not fit, non-finite
    ///   weights or Hessian, scales that overflow their dtype.
    public static func quantize(weights: [Float], hessian: [Float], rows: Int, columns: Int, scheme: Scheme,
                                tensorName: String, options: QuantizeOptions = QuantizeOptions(),
                                settings: GPTQSettings = GPTQSettings()) throws(QuantizeError) -> GPTQResult {
        guard case .integer(let bits) = scheme.descriptor.kernel else {
            throw .unsupportedLayout(tensor: tensorName, found: "GPTQ needs an integer scheme (int4, int8), not \(scheme.name.rawValue)")
        }
        let quantizer = try TensorQuantizer(scheme: scheme, rows: rows, columns: columns, tensorName: tensorName, options: options)
        guard weights.count == rows * columns, hessian.count == columns * columns else {
            throw .invalidShape(tensor: tensorName, shape: [rows, columns],
                                expected: "\(rows * columns) weights and a \(columns)×\(columns) Hessian, got \(weights.count) and \(hessian.count) values")
        }
        guard settings.blockSize > 0, settings.dampening >= 0, settings.dampening.isFinite else {
            throw .invalidShape(tensor: tensorName, shape: [rows, columns], expected: "a positive GPTQ block size and a finite dampening ≥ 0")
        }
        let bad = weights.withUnsafeBufferPointer { qk_quant_first_nonfinite($0.baseAddress!, $0.count) }
        if bad >= 0 {
            throw .nonFiniteWeight(tensor: tensorName, row: bad / columns, column: bad % columns, value: weights[bad])
        }
        if let i = hessian.firstIndex(where: { !$0.isFinite }) {
            throw .unsupportedLayout(tensor: tensorName, found: "a calibration Hessian with a non-finite entry at [\(i / columns), \(i % columns)]: the calibration activations overflowed")
        }
        let groupSize: Int
        if case .group(let g) = scheme.granularity { groupSize = g } else { groupSize = columns }
        let groups = (columns + groupSize - 1) / groupSize
        let symmetric = scheme.symmetric
        let qmin = Float(-(1 << (bits - 1))), qmax = Float((1 << (bits - 1)) - 1)

        // 1. The observer: min-max scales and zero points per group of the original weights (the
        //    round-to-nearest encoder's, rounded to the scale dtype).
        var scales = [Float](repeating: 0, count: rows * groups)
        var zeros = [Int8](repeating: 0, count: rows * groups)
        do {
            var scratch = [Int8](repeating: 0, count: rows * columns)
            let status = weights.withUnsafeBufferPointer { w in
                scratch.withUnsafeMutableBufferPointer { c in
                    scales.withUnsafeMutableBufferPointer { s in
                        zeros.withUnsafeMutableBufferPointer { z in
                            qk_quant_int_encode_rows(w.baseAddress!, rows, columns, groupSize, Int32(bits), symmetric ? 1 : 0,
                                                     quantizer.scaleTypeCode, 0, c.baseAddress!, s.baseAddress!, symmetric ? nil : z.baseAddress!)
                        }
                    }
                }
            }
            if status >= 0 {
                throw QuantizeError.scaleOutOfRange(tensor: tensorName, row: status / groups, column: (status % groups) * groupSize,
                                                    scaleType: options.scaleType.rawValue)
            }
        }

        // 2. Activation order (by the raw diagonal, as llm-compressor permutes before it handles dead
        //    columns), dead columns (diag 0: weights zeroed, diagonal 1), dampening — written straight
        //    into the working buffers, so that H is held once besides the caller's copy.
        let wp = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * columns)
        let up = UnsafeMutableBufferPointer<Float>.allocate(capacity: columns * columns)
        defer { wp.deallocate(); up.deallocate() }
        let dead = (0..<columns).map { hessian[$0 * columns + $0] == 0 }
        var order = Array(0..<columns)
        if settings.activationOrder {
            let diagonal = (0..<columns).map { hessian[$0 * columns + $0] }
            order.sort { diagonal[$0] > diagonal[$1] || (diagonal[$0] == diagonal[$1] && $0 < $1) }
        }
        hessian.withUnsafeBufferPointer { h in
            for i in 0..<columns {
                let source = order[i] * columns
                for j in 0..<columns { up[i * columns + j] = h[source + order[j]] }
                if dead[order[i]] { up[i * columns + i] = 1 }
            }
        }
        weights.withUnsafeBufferPointer { w in
            for r in 0..<rows {
                for j in 0..<columns { wp[r * columns + j] = dead[order[j]] ? 0 : w[r * columns + order[j]] }
            }
        }
        var mean = 0.0
        for i in 0..<columns { mean += Double(up[i * columns + i]) }
        let damp = Float(settings.dampening * mean / Double(columns))
        for i in 0..<columns { up[i * columns + i] += damp }

        // 3. U, the upper Cholesky factor of H⁻¹ (row-major upper = LAPACK's column-major lower).
        let usedRoundToNearest = !choleskyOfInverse(up, columns: columns)
        if usedRoundToNearest {
            up.update(repeating: 0)
            for i in 0..<columns { up[i * columns + i] = 1 }
        }

        // 4. Column by column, block by block (the working copies live in buffers that the row
        //    tasks and sgemm address directly).
        let block = settings.blockSize
        let width = min(block, columns)
        let cp = UnsafeMutableBufferPointer<Int8>.allocate(capacity: rows * columns)   // in processing order
        let ep = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * width)
        let lp = UnsafeMutableBufferPointer<Double>.allocate(capacity: rows)
        let sp = UnsafeMutableBufferPointer<Float>.allocate(capacity: scales.count)
        let zp = UnsafeMutableBufferPointer<Int8>.allocate(capacity: zeros.count)
        let gp = UnsafeMutableBufferPointer<Int>.allocate(capacity: columns)
        defer { cp.deallocate(); ep.deallocate(); lp.deallocate(); sp.deallocate(); zp.deallocate(); gp.deallocate() }
        cp.initialize(repeating: 0); ep.initialize(repeating: 0)
        lp.initialize(repeating: 0); _ = sp.initialize(from: scales); _ = zp.initialize(from: zeros)
        _ = gp.initialize(from: order.map { $0 / groupSize })
        let chunkRows = max(1, min(rows, 16_384 / width))
        let chunks = (rows + chunkRows - 1) / chunkRows
        let shared = UncheckedSendable(value: (wp.baseAddress!, up.baseAddress!, cp.baseAddress!, ep.baseAddress!,
                                               sp.baseAddress!, zp.baseAddress!, lp.baseAddress!, gp.baseAddress!))
        for i1 in stride(from: 0, to: columns, by: block) {
            let i2 = min(columns, i1 + block), b = i2 - i1
            // Rows are independent within a block: each one's columns are quantized in turn.
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let (wp, up, cp, ep, sp, zp, lp, gp) = shared.value
                for r in (chunk * chunkRows)..<min(rows, (chunk + 1) * chunkRows) {
                    let row = wp + r * columns + i1
                    let err = ep + r * b
                    var loss = 0.0
                    for i in 0..<b {
                        let column = i1 + i
                        let g = r * groups + gp[column]
                        let s = sp[g], z = symmetric ? 0 : Float(zp[g])
                        let v = row[i]
                        let code = min(max((v / s + z).rounded(.toNearestOrEven), qmin), qmax)
                        let q = (code - z) * s
                        let e = (v - q) / up[column * columns + column]
                        cp[r * columns + column] = Int8(code)
                        row[i] = q
                        err[i] = e
                        loss += Double(e) * Double(e)
                        let hrow = up + column * columns + i1
                        var j = i + 1
                        while j < b { row[j] -= e * hrow[j]; j += 1 }
                    }
                    lp[r] += loss / 2
                }
            }
            if i2 < columns {
                // W[:, i2:] −= Err · U[i1:i2, i2:]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(columns - i2), Int32(b), -1,
                            ep.baseAddress!, Int32(b), up.baseAddress! + i1 * columns + i2, Int32(columns), 1,
                            wp.baseAddress! + i2, Int32(columns))
            }
        }
        let codes = Array(cp)
        let loss = lp.reduce(0, +)

        // 5. Original column order, then the stored layout.
        var ordered = codes
        if settings.activationOrder {
            for r in 0..<rows { for j in 0..<columns { ordered[r * columns + order[j]] = codes[r * columns + j] } }
        }
        var dequantized = [Float](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            for c in 0..<columns {
                let g = r * groups + c / groupSize
                let z = symmetric ? 0 : Float(zeros[g])
                dequantized[r * columns + c] = (Float(ordered[r * columns + c]) - z) * scales[g]
            }
        }
        let tensor = encode(codes: ordered, scales: scales, zeros: symmetric ? nil : zeros, quantizer: quantizer, bits: bits)
        return GPTQResult(tensor: tensor, dequantized: dequantized, usedRoundToNearest: usedRoundToNearest, loss: loss)
    }

    /// Replaces the symmetric positive-definite `a` (row-major, `columns × columns`) by the upper
    /// Cholesky factor U of its inverse (H⁻¹ = UᵀU), in its upper triangle; false when a
    /// factorization fails (`a` is then undefined).
    static func choleskyOfInverse(_ a: UnsafeMutableBufferPointer<Float>, columns: Int) -> Bool {
        var n = blasint(columns), lda = blasint(columns), info: blasint = 0
        // Row-major upper is column-major lower: "L" throughout.
        spotrf_("L", &n, a.baseAddress!, &lda, &info)
        guard info == 0 else { return false }
        spotri_("L", &n, a.baseAddress!, &lda, &info)
        guard info == 0 else { return false }
        spotrf_("L", &n, a.baseAddress!, &lda, &info)
        return info == 0
    }

    /// The stored parts of `quantizer`'s layout from codes (`rows × columns`, original column
    /// order), scales (already in their dtype's values) and zero points.
    static func encode(codes: [Int8], scales: [Float], zeros: [Int8]?, quantizer: TensorQuantizer, bits: Int) -> QuantizedTensor {
        var tensor = quantizer.makeOutput()
        let rows = quantizer.rows, columns = quantizer.columns
        for index in tensor.parts.indices {
            switch tensor.parts[index].suffix {
            case "weight_packed":
                codes.withUnsafeBufferPointer { c in
                    tensor.parts[index].data.withUnsafeMutableBytes { out in
                        let target = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
                        if bits == 4 { qk_quant_pack_int4_rows(c.baseAddress!, rows, columns, target) }
                        else { qk_quant_pack_int8_rows(c.baseAddress!, rows, columns, target) }
                    }
                }
            case "weight":
                tensor.parts[index].data = codes.map { UInt8(bitPattern: $0) }
            case "weight_scale":
                var bytes: [UInt8] = []
                bytes.reserveCapacity(scales.count * quantizer.scaleBytes)
                for s in scales {
                    switch quantizer.scaleTypeCode {
                    case 0: withUnsafeBytes(of: s.bitPattern.littleEndian) { bytes += $0 }
                    case 1: withUnsafeBytes(of: qk_quant_f32_to_bf16(s).littleEndian) { bytes += $0 }
                    default: withUnsafeBytes(of: qk_quant_f32_to_f16(s).littleEndian) { bytes += $0 }
                    }
                }
                tensor.parts[index].data = bytes
            case "weight_zero_point":
                if let zeros {
                    let groups = scales.count / max(rows, 1)
                    zeros.withUnsafeBufferPointer { z in
                        tensor.parts[index].data.withUnsafeMutableBytes { out in
                            qk_quant_pack_int4_columns(z.baseAddress!, rows, groups, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
                        }
                    }
                }
            default:
                break  // weight_shape: written by makeOutput
            }
        }
        return tensor
    }
}
