import Foundation
import Formats
import Testing
import TestSupport
@testable import Quantize

/// tr((W − Ŵ) H (W − Ŵ)ᵀ): the output error GPTQ minimises, in Double.
func hessianError(_ w: [Float], _ q: [Float], _ h: [Float], rows: Int, columns: Int) -> Double {
    var total = 0.0
    for r in 0..<rows {
        let d = (0..<columns).map { Double(w[r * columns + $0] - q[r * columns + $0]) }
        for i in 0..<columns where d[i] != 0 {
            var s = 0.0
            for j in 0..<columns { s += Double(h[i * columns + j]) * d[j] }
            total += d[i] * s
        }
    }
    return total
}

/// The output error ‖X·Wᵀ − X·Ŵᵀ‖² over the rows of `x`.
func outputError(_ x: [Float], rows n: Int, _ w: [Float], _ q: [Float], outputs: Int, columns: Int) -> Double {
    var total = 0.0
    for t in 0..<n {
        for o in 0..<outputs {
            var s = 0.0
            for c in 0..<columns { s += Double(x[t * columns + c]) * Double(w[o * columns + c] - q[o * columns + c]) }
            total += s * s
        }
    }
    return total
}

@Suite("GPTQ")
struct GPTQTests {
    /// Correlated inputs: a rank-8 signal with per-channel gains over 2 orders of magnitude, plus a little noise.
    static func correlatedInputs(rows: Int, columns: Int) -> [Float] {
        let z = gaussianMatrix(rows: rows, columns: 8, seed: 7)
        let a = gaussianMatrix(rows: 8, columns: columns, seed: 8)
        let noise = gaussianMatrix(rows: rows, columns: columns, seed: 9, scale: 0.05)
        let gains = gaussianMatrix(rows: 1, columns: columns, seed: 10).map { Float(exp(Double($0))) }
        var x = [Float](repeating: 0, count: rows * columns)
        for t in 0..<rows {
            for c in 0..<columns {
                var s: Float = 0
                for k in 0..<8 { s += z[t * 8 + k] * a[k * columns + c] }
                x[t * columns + c] = (s + noise[t * columns + c]) * gains[c]
            }
        }
        return x
    }

    @Test("the Hessian accumulator is 2·XᵀX/n, whichever way the rows are split")
    func hessianAccumulates() throws {
        let n = 37, columns = 12
        let x = gaussianMatrix(rows: n, columns: columns, seed: 3)
        var whole = HessianAccumulator(columns: columns), split = HessianAccumulator(columns: columns)
        x.withUnsafeBufferPointer { whole.add($0, rows: n) }
        x.withUnsafeBufferPointer { p in
            split.add(UnsafeBufferPointer(rebasing: p[0..<(10 * columns)]), rows: 10)
            split.add(UnsafeBufferPointer(rebasing: p[(10 * columns)...]), rows: n - 10)
        }
        #expect(whole.rowCount == n && split.rowCount == n)
        let a = whole.hessian, b = split.hessian
        var worst = 0.0
        for i in 0..<columns {
            for j in 0..<columns {
                var exact = 0.0
                for t in 0..<n { exact += 2 * Double(x[t * columns + i]) * Double(x[t * columns + j]) }
                exact /= Double(n)
                // FP32 sums of 37 products: a few ulps of the sum of magnitudes.
                var magnitude = 0.0
                for t in 0..<n { magnitude += 2 * abs(Double(x[t * columns + i]) * Double(x[t * columns + j])) }
                let tolerance = magnitude / Double(n) * 1e-5
                worst = max(worst, abs(Double(a[i * columns + j]) - exact) / tolerance, abs(Double(b[i * columns + j]) - exact) / tolerance)
                #expect(a[i * columns + j] == a[j * columns + i], "H is symmetric")
            }
        }
        #expect(worst <= 1, "H within 1e-5 of the magnitude sum of 2·XᵀX/n (worst \(worst) of the tolerance)")
    }

    // Measured (2-core EPYC VM, OpenBLAS 0.3.21): GPTQ's output error is 0.019× RTN's for int4 g32
    // and 0.016× per channel on these rank-8 inputs; the bound leaves 2.5× room for other BLAS kernels.
    @Test("on correlated inputs GPTQ's output error is well below round-to-nearest's",
          arguments: [Granularity.group(size: 32), .channel])
    func beatsRoundToNearest(_ granularity: Granularity) throws {
        let n = 256, columns = 256, outputs = 32
        let x = Self.correlatedInputs(rows: n, columns: columns)
        let w = gaussianMatrix(rows: outputs, columns: columns, seed: 11, scale: 0.02)
        var accumulator = HessianAccumulator(columns: columns)
        x.withUnsafeBufferPointer { accumulator.add($0, rows: n) }
        let scheme = Scheme(name: .int4, granularity: granularity)
        let rtn = try w.withUnsafeBufferPointer { try quantized($0, rows: outputs, columns: columns, scheme: scheme, tensorName: "t") }
        let rtnDecoded = try decode(rtn, scheme)
        let gptq = try GPTQ.quantize(weights: w, hessian: accumulator.hessian, rows: outputs, columns: columns, scheme: scheme, tensorName: "t")
        #expect(!gptq.usedRoundToNearest)
        #expect(try decode(gptq.tensor, scheme) == gptq.dequantized, "the stored layout decodes to the weights GPTQ chose")
        // Same scales as round-to-nearest: only the codes differ.
        #expect(gptq.tensor.parts.first { $0.suffix == "weight_scale" }?.data == rtn.parts.first { $0.suffix == "weight_scale" }?.data)
        let ratio = outputError(x, rows: n, w, gptq.dequantized, outputs: outputs, columns: columns)
            / outputError(x, rows: n, w, rtnDecoded, outputs: outputs, columns: columns)
        #expect(ratio < 0.05, "GPTQ / RTN output error \(ratio) (measured 0.016–0.019)")
    }

    @Test("a Hessian that is not positive definite falls back to round-to-nearest with the same codes")
    func choleskyFailureFallsBack() throws {
        let rows = 8, columns = 64
        let w = gaussianMatrix(rows: rows, columns: columns, seed: 5, scale: 0.02)
        var h = [Float](repeating: 0, count: columns * columns)
        for i in 0..<columns { h[i * columns + i] = i == 3 ? -50 : 1 }
        let scheme = Scheme(name: .int4, granularity: .group(size: 32))
        let result = try GPTQ.quantize(weights: w, hessian: h, rows: rows, columns: columns, scheme: scheme, tensorName: "layer.weight")
        #expect(result.usedRoundToNearest)
        let rtn = try w.withUnsafeBufferPointer { try quantized($0, rows: rows, columns: columns, scheme: scheme, tensorName: "t") }
        #expect(result.tensor == rtn)
    }

    @Test("a column no calibration input reached (diag(H) = 0) is zeroed, as llm-compressor does", arguments: [false, true])
    func deadColumnsAreZeroed(_ activationOrder: Bool) throws {
        let n = 64, columns = 64, rows = 8
        var x = gaussianMatrix(rows: n, columns: columns, seed: 21)
        for t in 0..<n { x[t * columns + 5] = 0 }
        var accumulator = HessianAccumulator(columns: columns)
        x.withUnsafeBufferPointer { accumulator.add($0, rows: n) }
        let w = gaussianMatrix(rows: rows, columns: columns, seed: 22, scale: 0.02)
        let result = try GPTQ.quantize(weights: w, hessian: accumulator.hessian, rows: rows, columns: columns,
                                       scheme: Scheme(name: .int4, granularity: .group(size: 32)), tensorName: "t",
                                       settings: GPTQSettings(activationOrder: activationOrder))
        #expect(!result.usedRoundToNearest)
        #expect((0..<rows).allSatisfy { result.dequantized[$0 * columns + 5] == 0 })
        #expect((0..<rows).contains { result.dequantized[$0 * columns + 6] != 0 })
    }

    @Test("refuses a non-integer scheme, mismatched shapes and a non-finite Hessian with the tensor's name")
    func refusesBadInput() throws {
        let w = [Float](repeating: 0.1, count: 4 * 32)
        var h = [Float](repeating: 0, count: 32 * 32)
        for i in 0..<32 { h[i * 32 + i] = 1 }
        #expect(throws: QuantizeError.self) { try GPTQ.quantize(weights: w, hessian: h, rows: 4, columns: 32, scheme: Scheme(name: .fp8), tensorName: "a") }
        #expect(throws: QuantizeError.self) { try GPTQ.quantize(weights: w, hessian: Array(h.dropLast()), rows: 4, columns: 32, scheme: Scheme(name: .int8), tensorName: "a") }
        h[5] = .nan
        do {
            _ = try GPTQ.quantize(weights: w, hessian: h, rows: 4, columns: 32, scheme: Scheme(name: .int8), tensorName: "blk.weight")
            Issue.record("a NaN in the Hessian was accepted")
        } catch {
            #expect(error.description.contains("blk.weight") && error.description.contains("non-finite"))
        }
    }

    struct Oracle: Decodable {
        struct Case: Decodable {
            let name: String
            let bits: Int
            let group_size: Int?
            let symmetric: Bool
            let actorder: String?
            let fallback: Bool
            let codes: [Int]
            let scales: [Float]
            let zeros: [Int]
        }
        let rows: Int
        let columns: Int
        let rank: Int
        let weights: [Float]
        let basis: [Float]
        let diagonal: [Float]
        let cases: [Case]
    }

    static let oracle: Oracle? = {
        guard let data = FileManager.default.contents(atPath: Fixtures.path("quantize/gptq-oracle.json")) else { return nil }
        return try? JSONDecoder().decode(Oracle.self, from: data)
    }()

    // Measured against llm-compressor 0.14.0.1's quantize_weight (torch 2.15 CPU): all 2,560 codes
    // equal in every case and the H-weighted errors equal to the last digit. Another BLAS kernel may
    // move a value across a rounding tie, and the error feedback then changes a few later codes of
    // that row, so the test allows 1 % of codes to differ and the H-weighted error to differ by 1 %.
    @Test("equals llm-compressor's GPTQ solve on fixed data (tools/gptq_oracle.py)", arguments: 0..<4)
    func matchesLLMCompressor(_ index: Int) throws {
        let oracle = try #require(Self.oracle, "fixtures/quantize/gptq-oracle.json is missing or unreadable")
        let c = oracle.cases[index]
        let rows = oracle.rows, columns = oracle.columns, rank = oracle.rank
        var h = [Float](repeating: 0, count: columns * columns)
        for i in 0..<columns {
            for j in 0..<columns {
                var s = 0.0
                for k in 0..<rank { s += Double(oracle.basis[k * columns + i]) * Double(oracle.basis[k * columns + j]) }
                h[i * columns + j] = Float(s / Double(rank) + (i == j ? Double(oracle.diagonal[i]) / 100 : 0))
            }
        }
        let granularity: Granularity = c.group_size.map { .group(size: $0) } ?? .channel
        let scheme = Scheme(name: c.bits == 4 ? .int4 : .int8, granularity: granularity, symmetric: c.symmetric)
        let result = try GPTQ.quantize(weights: oracle.weights, hessian: h, rows: rows, columns: columns, scheme: scheme, tensorName: c.name,
                                       options: QuantizeOptions(scaleType: .f32, packInt8: true),
                                       settings: GPTQSettings(dampening: 0.01, blockSize: 128, activationOrder: c.actorder != nil))
        #expect(result.usedRoundToNearest == c.fallback)
        let groupSize = c.group_size ?? columns, groups = columns / groupSize
        // llm-compressor's weights, decoded from its codes, scales and zero points.
        var reference = [Float](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            for col in 0..<columns {
                let g = r * groups + col / groupSize
                reference[r * columns + col] = (Float(c.codes[r * columns + col]) - Float(c.zeros[g])) * c.scales[g]
            }
        }
        // Scales: the same min-max formula in FP32 on both sides.
        let stored = try #require(result.tensor.parts.first { $0.suffix == "weight_scale" })
        let scales = stored.data.withUnsafeBytes { raw in (0..<(rows * groups)).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) } }
        for (a, b) in zip(scales, c.scales) { #expect(abs(a - b) <= 2 * b.ulp, "scale \(a) vs llm-compressor's \(b)") }
        // Our codes, recovered from our decoded weights and scales.
        var differing = 0
        for r in 0..<rows {
            for col in 0..<columns {
                let g = r * groups + col / groupSize
                let code = Int((result.dequantized[r * columns + col] / scales[g]).rounded(.toNearestOrEven)) + c.zeros[g]
                if code != c.codes[r * columns + col] { differing += 1 }
            }
        }
        #expect(Double(differing) <= 0.01 * Double(rows * columns), "\(c.name): \(differing) of \(rows * columns) codes differ from llm-compressor's")
        let oursError = hessianError(oracle.weights, result.dequantized, h, rows: rows, columns: columns)
        let theirsError = hessianError(oracle.weights, reference, h, rows: rows, columns: columns)
        #expect(abs(oursError - theirsError) <= 0.01 * theirsError, "\(c.name): H-weighted error \(oursError) vs llm-compressor's \(theirsError)")
    }
}
