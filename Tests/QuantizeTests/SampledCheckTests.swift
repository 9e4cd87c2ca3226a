import Formats
import Testing
@testable import Quantize

@Suite("sampled accuracy check during quantize")
struct SampledCheckTests {
    static let schemes: [Scheme] = [
        Scheme(name: .fp8), Scheme(name: .fp8, granularity: .tensor), Scheme(name: .fp8E5M2), Scheme(name: .int8),
        Scheme(name: .int4), Scheme(name: .int4, granularity: .group(size: 32)), Scheme(name: .q8_0), Scheme(name: .q4_K),
        Scheme(name: .q6_K), Scheme(name: .bf16),
    ]

    @Test("decoding only the sampled rows gives the metrics of sampling the fully decoded tensor", arguments: schemes)
    func sampledRowsMatchFullDecode(scheme: Scheme) throws {
        let rows = 640, columns = 512
        var generator = SplitMix64(seed: 77)
        let weights = (0..<(rows * columns)).map { i in Float((generator.nextUnitInterval() - 0.5) * (i % 97 == 0 ? 0.5 : 0.05)) }
        let result = try weights.withUnsafeBufferPointer { buffer in
            try quantized(buffer, rows: rows, columns: columns, scheme: scheme, tensorName: "w")
        }
        let options = AccuracyOptions(maxCheckedWeights: 100 * columns)
        let selected = try #require(options.checkedRows(rows: rows, columns: columns))
        let subset = try #require(QuantizeJob.rows(selected, of: result), "\(scheme) should slice by rows")
        let probe = ProbeActivations.gaussian(columns: columns)

        let full = try TensorAccuracy.measure(original: weights, decoded: try dequantized(result, tensorName: "w"), rows: rows,
                                              columns: columns, activations: probe, options: options)
        let gathered = selected.flatMap { weights[($0 * columns)..<(($0 + 1) * columns)] }
        let sampled = try TensorAccuracy.measure(original: gathered, decoded: try dequantized(subset, tensorName: "w"),
                                                 rows: selected.count, columns: columns, activations: probe)
        #expect(full.checkedRows == selected.count)
        for (a, b, label) in [(full.relativeError, sampled.relativeError, "relative error"),
                              (full.relativeWeightError, sampled.relativeWeightError, "weight error"),
                              (full.cosineSimilarity, sampled.cosineSimilarity, "cosine"),
                              (full.maxAbsoluteError, sampled.maxAbsoluteError, "max abs")] {
            // Both paths go through sgemm, whose summation order may follow the CPU and thread split:
            // a few float ulps (6e-8 each) apart at most, so 1e-6 relative.
            #expect(abs(a - b) <= 1e-6 * max(abs(a), 1e-12), "\(scheme.name.rawValue) \(label): full \(a), sampled \(b)")
        }
    }

    @Test("layouts that share data across rows are not sliced")
    func sharedLayoutsAreNotSliced() throws {
        let rows = 256, columns = 256
        let weights = [Float](repeating: 0.01, count: rows * columns)
        for scheme in [Scheme(name: .fp8, granularity: .block(rows: 128, columns: 128)), Scheme(name: .int4, symmetric: false)] {
            let result = try weights.withUnsafeBufferPointer { try quantized($0, rows: rows, columns: columns, scheme: scheme, tensorName: "w") }
            #expect(QuantizeJob.rows([0, 100, 200], of: result) == nil, "\(scheme)")
        }
    }
}
