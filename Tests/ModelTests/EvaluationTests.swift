import Foundation
import Testing
@testable import Model

/// `PerplexityEvaluation` against statistics computed in numpy from transformers' logits
/// (tools/reference_logits.py `write_eval_expected`), and the logits file round trip.
@Suite("evaluation protocol and statistics")
struct EvaluationTests {
    static let root = ReferenceLogitsTests.root

    struct Expected: Decodable {
        var originalPerplexity, perplexity, kldMean, kldMax, kldP99, kldP90, kldMedian, deltaPMean, deltaPRMS, sameTopToken: Double
        var count, context: Int
        var bos: Int32
        var tokens: [Int32]
    }

    static func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: root.appendingPathComponent("eval-expected.json")))
    }

    static func model(_ name: String) throws -> Transformer {
        try Transformer(weights: ModelWeights(path: root.appendingPathComponent(name).path), threads: 2, maximumPositions: 64)
    }

    static func close(_ a: Double, _ b: Double, relative: Double) -> Bool { abs(a - b) <= relative * max(abs(b), 1e-12) }

    @Test("perplexity, KLD percentiles, Δp and same-top equal the numpy oracle on transformers' logits")
    func statisticsMatchOracle() throws {
        let e = try Self.expected()
        let evaluation = try PerplexityEvaluation(tokens: e.tokens, context: e.context, bosTokenID: e.bos, chunksPerBatch: 1)
        let report = try evaluation.run(original: ("llama", Self.model("llama")), quantized: [("llama-perturbed", Self.model("llama-perturbed"))])
        let r = try #require(report.results.first)
        #expect(report.scoredTokens == e.count)
        // Logits agree to ~1e-5 relative (BLAS order); log-probability sums inherit about that.
        #expect(Self.close(report.original.perplexity.value, e.originalPerplexity, relative: 1e-4), "original PPL \(report.original.perplexity.value) vs \(e.originalPerplexity)")
        #expect(Self.close(r.perplexity.value, e.perplexity, relative: 1e-4), "PPL \(r.perplexity.value) vs \(e.perplexity)")
        #expect(Self.close(r.kld.mean, e.kldMean, relative: 1e-3), "mean KLD \(r.kld.mean) vs \(e.kldMean)")
        #expect(Self.close(r.kld.max, e.kldMax, relative: 1e-3))
        #expect(Self.close(r.kld.p99, e.kldP99, relative: 1e-3))
        #expect(Self.close(r.kld.p90, e.kldP90, relative: 1e-3))
        #expect(Self.close(r.kld.median, e.kldMedian, relative: 1e-3))
        #expect(Self.close(r.deltaP.mean, e.deltaPMean, relative: 1e-2))
        #expect(Self.close(r.deltaP.rms, e.deltaPRMS, relative: 1e-3))
        #expect(abs(r.sameTopToken - e.sameTopToken) < 0.5 / Double(e.count), "same top \(r.sameTopToken) vs \(e.sameTopToken)")
    }

    @Test("a saved logits file gives the same statistics, within its 16-bit quantization")
    func logitsFileRoundTrip() throws {
        let e = try Self.expected()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("eval-\(UUID().uuidString).logits").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let evaluation = try PerplexityEvaluation(tokens: e.tokens, context: e.context, bosTokenID: e.bos)
        let direct = try evaluation.run(original: ("llama", Self.model("llama")), quantized: [("q", Self.model("llama-perturbed"))], saveLogits: file)
        let reader = try LogitsFile.Reader(path: file)
        #expect(reader.context == e.context && reader.chunks == 2 && reader.vocabulary == 96 && reader.tokens == e.tokens)
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attributes[.size] as? Int) == LogitsFile.byteCount(context: e.context, vocabulary: 96, chunks: 2))
        let fromFile = try evaluation.run(original: nil, base: (file, reader), quantized: [("q", Self.model("llama-perturbed"))])
        // 16 bits over a 16-nat range: log-probabilities within 16/65535/2 ≈ 1.2e-4.
        #expect(abs(log(fromFile.original.perplexity.value) - log(direct.original.perplexity.value)) < 2e-4)
        #expect(abs(fromFile.results[0].kld.mean - direct.results[0].kld.mean) < 1e-3)
    }

    @Test("too few tokens for two chunks is a clear error")
    func rejectsShortInput() {
        #expect {
            try PerplexityEvaluation(tokens: [1, 2, 3], context: 8, bosTokenID: 1)
        } throws: { error in
            guard case .invalidInput(let reason)? = error as? ModelError else { return false }
            return reason.contains("3 tokens") && reason.contains("16")
        }
    }
}
