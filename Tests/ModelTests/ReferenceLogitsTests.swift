import Foundation
import Testing
import Formats
@testable import Model

/// Our logits against transformers' (torch FP32) on the tiny random-weight models that
/// tools/reference_logits.py generates; the expected numbers are transformers', stored by that script.
@Suite("forward pass against transformers")
struct ReferenceLogitsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/reference-models")

    struct Expected: Decodable {
        var tokens: [Int32]
        var positions: [Int]
        var logits: [[Float]]
    }

    static func expected(_ name: String) throws -> Expected {
        let data = try Data(contentsOf: root.appendingPathComponent(name).appendingPathComponent("expected-logits.json"))
        return try JSONDecoder().decode(Expected.self, from: data)
    }

    /// max |ours − reference| / max |reference| over the stored positions.
    static func relativeError(checkpoint: String, expected: Expected) throws -> Double {
        let model = try Transformer(weights: ModelWeights(path: checkpoint), threads: 2, maximumPositions: expected.tokens.count)
        let vocabulary = model.weights.configuration.vocabularySize
        let logits = try model.logits(sequences: [expected.tokens], positions: 0..<expected.tokens.count)
        var worst: Float = 0, scale: Float = 0
        for (row, position) in expected.positions.enumerated() {
            for v in 0..<vocabulary {
                worst = max(worst, abs(logits[position * vocabulary + v] - expected.logits[row][v]))
                scale = max(scale, abs(expected.logits[row][v]))
            }
        }
        return Double(worst / scale)
    }

    @Test("logits equal transformers' to 1e-4 relative", arguments: [
        "llama", "llama3-rope", "mistral-sliding", "qwen2-bias", "qwen3-qknorm", "llama-tied", "mixtral", "qwen2-moe-shared", "qwen3-moe",
    ])
    func matchesTransformers(name: String) throws {
        let error = try Self.relativeError(checkpoint: Self.root.appendingPathComponent(name).path, expected: Self.expected(name))
        #expect(error <= 1e-4, "relative logit error \(error) against transformers for \(name)")
    }

    @Test("the trained fixture's logits equal transformers' to 1e-4 relative")
    func trainedFixtureMatchesTransformers() throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("trained-llama-expected-logits.json"))
        let expected = try JSONDecoder().decode(Expected.self, from: data)
        let checkpoint = Self.root.deletingLastPathComponent().appendingPathComponent("trained-llama").path
        let error = try Self.relativeError(checkpoint: checkpoint, expected: expected)
        #expect(error <= 1e-4, "relative logit error \(error) against transformers for the trained fixture")
    }

    @Test("a llama GGUF twin (permuted Q/K, llama.cpp names) gives transformers' logits")
    func ggufTwinMatchesTransformers() throws {
        let error = try Self.relativeError(checkpoint: Self.root.appendingPathComponent("llama.gguf").path, expected: Self.expected("llama"))
        #expect(error <= 1e-4, "relative logit error \(error) of the GGUF twin")
    }

    @Test("undoing llama.cpp's Q/K permutation puts each head's interleaved rows back into rotate-half order")
    func unpermuteRestoresRotateHalfOrder() throws {
        let q = ModelWeights.unpermute([0, 1, 2, 3, 4, 5, 6, 7], rows: 8, columns: 1, heads: 2)
        // Head of 4 rows: GGUF rows (i, s) interleaved → HF halves: [r0, r2, r1, r3].
        #expect(q == [0, 2, 1, 3, 4, 6, 5, 7])
    }
}
