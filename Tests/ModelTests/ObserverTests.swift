import Foundation
import Testing
@testable import Model

/// The observer hook the calibration jobs collect activations with.
@Suite("linear-input observer")
struct ObserverTests {
    final class Seen: @unchecked Sendable {
        var inputs: [(module: String, rows: Int, columns: Int, sum: Double)] = []
    }

    static func observe(_ name: String, tokens: [Int32]) throws -> (Seen, Transformer) {
        let model = try Transformer(weights: ModelWeights(path: ReferenceLogitsTests.root.appendingPathComponent(name).path), threads: 1,
                                    maximumPositions: tokens.count)
        let seen = Seen()
        _ = try model.logits(sequences: [tokens], positions: 0..<tokens.count) { input in
            seen.inputs.append((input.module, input.rows, input.columns, input.values.reduce(0) { $0 + Double($1) }))
        }
        return (seen, model)
    }

    @Test("a dense model shows every linear layer's input once, in execution order, with its shape")
    func denseModelInputs() throws {
        let tokens: [Int32] = [1, 5, 9, 33, 70, 2, 11, 4]
        let (seen, model) = try Self.observe("llama", tokens: tokens)
        let c = model.weights.configuration
        var expected: [(String, Int)] = []
        for l in 0..<c.layerCount {
            let p = "model.layers.\(l)."
            expected += [(p + "self_attn.q_proj", c.hiddenSize), (p + "self_attn.k_proj", c.hiddenSize), (p + "self_attn.v_proj", c.hiddenSize),
                         (p + "self_attn.o_proj", c.headCount * c.headDimension), (p + "mlp.gate_proj", c.hiddenSize),
                         (p + "mlp.up_proj", c.hiddenSize), (p + "mlp.down_proj", c.intermediateSize)]
        }
        expected.append(("lm_head", c.hiddenSize))
        #expect(seen.inputs.map(\.module) == expected.map(\.0))
        #expect(seen.inputs.map(\.columns) == expected.map(\.1))
        #expect(seen.inputs.allSatisfy { $0.rows == tokens.count })
        // q, k and v see the same normed input.
        #expect(seen.inputs[0].sum == seen.inputs[1].sum && seen.inputs[1].sum == seen.inputs[2].sum)
    }

    @Test("in a MoE layer each expert sees only the tokens routed to it: top-k rows per token in all")
    func expertInputs() throws {
        let tokens: [Int32] = [1, 5, 9, 33, 70, 2, 11, 4, 60, 61]
        let (seen, model) = try Self.observe("mixtral", tokens: tokens)
        let moe = try #require(model.weights.configuration.mixtureOfExperts)
        for layer in 0..<model.weights.configuration.layerCount {
            let gates = seen.inputs.filter { $0.module.hasPrefix("model.layers.\(layer).mlp.experts.") && $0.module.hasSuffix("gate_proj") }
            #expect(gates.reduce(0) { $0 + $1.rows } == tokens.count * moe.expertsPerToken)
            #expect(seen.inputs.contains { $0.module == "model.layers.\(layer).mlp.gate" && $0.rows == tokens.count })
        }
    }
}
