import Foundation
import Formats
import Quantize
import Testing
import TestSupport
@testable import Model

/// The layer-at-a-time forward pass, calibration data and GPTQ's sequential pipeline.
@Suite("GPTQ calibration")
struct GPTQCalibrationTests {
    static let model = Fixtures.path("tiny-llama")
    static let windows: [[Int32]] = [
        [1022, 5, 9, 33, 70, 2, 11, 4, 60, 61, 100, 200, 300, 400, 500, 600],
        [1022, 17, 18, 19, 900, 901, 3, 8, 13, 21, 34, 55, 89, 144, 233, 377],
    ]

    @Test("running the layers one at a time with the checkpoint's own weights as replacements changes nothing")
    func layerAtATime() throws {
        let model = try Transformer(weights: ModelWeights(path: Self.model), threads: 1, maximumPositions: 16)
        var plain = try model.embeddedStates(sequences: Self.windows)
        var replaced = plain
        for layer in 0..<model.weights.configuration.layerCount {
            try model.runDecoderLayer(layer, state: &plain, sequences: 2, length: 16)
            var own: [WeightRole: DecodedTensor] = [:]
            for item in model.linearRoles(of: layer) { own[item.role] = try model.weights.require(item.role, shape: item.shape) }
            try model.runDecoderLayer(layer, state: &replaced, sequences: 2, length: 16, replacing: own)
        }
        #expect(plain == replaced)
        // A replacement is used: zeroing layer 0's down projection changes the states.
        var zeroed = try model.embeddedStates(sequences: Self.windows)
        let shape = try #require(model.linearRoles(of: 0).first { $0.role == .down(0) }?.shape)
        try model.runDecoderLayer(0, state: &zeroed, sequences: 2, length: 16,
                                  replacing: [.down(0): DecodedTensor(rows: shape[0], columns: shape[1], values: [Float](repeating: 0, count: shape[0] * shape[1]))])
        var once = try model.embeddedStates(sequences: Self.windows)
        try model.runDecoderLayer(0, state: &once, sequences: 2, length: 16)
        #expect(zeroed != once)
        #expect(throws: ModelError.self) { try model.runDecoderLayer(0, state: &once, sequences: 3, length: 16) }
    }

    @Test("calibration data: token windows as given, flat ids and text cut into windows with BOS first, bad ids refused")
    func calibrationData() throws {
        let scratch = try Fixtures.temporaryDirectory("gptq-calibration-data")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let windows = scratch.appendingPathComponent("w.json").path, flat = scratch.appendingPathComponent("f.json").path
        let bad = scratch.appendingPathComponent("b.json").path
        try Data("[[5, 6, 7, 8, 9], [10, 11, 12, 13]]".utf8).write(to: URL(fileURLWithPath: windows))
        try Data("[5, 6, 7, 8, 9, 10, 11, 12, 13]".utf8).write(to: URL(fileURLWithPath: flat))
        try Data("[[5, 6, 7000, 8]]".utf8).write(to: URL(fileURLWithPath: bad))
        let tokenizer = try TokenizerLoader.load(directory: Self.model)
        let given = try CalibrationSet.load(path: windows, tokenizer: tokenizer, vocabularySize: 1024, samples: 8, length: 4)
        #expect(given.windows == [[5, 6, 7, 8], [10, 11, 12, 13]])
        let cut = try CalibrationSet.load(path: flat, tokenizer: tokenizer, vocabularySize: 1024, samples: 8, length: 4)
        let bos = tokenizer.chunkBOS
        #expect(cut.windows == [[bos ?? 5, 6, 7, 8], [bos ?? 9, 10, 11, 12]])
        #expect(try CalibrationSet.load(path: flat, tokenizer: tokenizer, vocabularySize: 1024, samples: 1, length: 4).windows.count == 1)
        let text = try CalibrationSet.load(path: Fixtures.path("trained-llama/eval.txt"), tokenizer: tokenizer, vocabularySize: 1024, samples: 3, length: 64)
        #expect(text.windows.count == 3 && text.windows.allSatisfy { $0.count == 64 })
        do {
            _ = try CalibrationSet.load(path: bad, tokenizer: tokenizer, vocabularySize: 1024, samples: 8, length: 4)
            Issue.record("an id outside the vocabulary was accepted")
        } catch {
            #expect("\(error)".contains("7000") && "\(error)".contains("b.json"))
        }
    }

    @Test("the sequential pipeline: layer 0 is solved on the original model's inputs, later layers on the quantized layers' outputs")
    func sequentialPipeline() throws {
        let weights = try ModelWeights(path: Self.model)
        let names = Set(weights.checkpoint.tensors.map(\.name).filter { $0.hasPrefix("model.layers.") && $0.hasSuffix("_proj.weight") })
        let scheme = Scheme(name: .int4, granularity: .group(size: 32))
        let result = try GPTQCalibration.run(checkpointPath: Self.model, calibration: CalibrationSet(windows: Self.windows, source: "test"),
                                             quantize: names, settings: GPTQCalibration.Settings(scheme: scheme, threads: 1))
        #expect(Set(result.tensors.keys) == names && result.outcomes.count == names.count)
        #expect(result.outcomes.allSatisfy { !$0.roundToNearest } && result.layerSeconds.count == 2 && result.tokenCount == 32)

        // The original model's q_proj inputs, layer by layer, from one ordinary forward pass.
        let model = try Transformer(weights: weights, threads: 1, maximumPositions: 16)
        final class Inputs: @unchecked Sendable { var hessians: [Int: HessianAccumulator] = [:] }
        let inputs = Inputs()
        _ = try model.logits(sequences: Self.windows, positions: 0..<1) { input in
            guard case .query(let layer) = input.role else { return }
            var h = inputs.hessians[layer] ?? HessianAccumulator(columns: input.columns)
            h.add(input.values, rows: input.rows)
            inputs.hessians[layer] = h
        }
        func solve(_ layer: Int) throws -> QuantizedTensor {
            let shape = try #require(model.linearRoles(of: layer).first { $0.role == .query(layer) }?.shape)
            let w = try weights.require(.query(layer), shape: shape)
            let h = try #require(inputs.hessians[layer]).hessian
            return try GPTQ.quantize(weights: w.values, hessian: h, rows: shape[0], columns: shape[1], scheme: scheme, tensorName: "q").tensor
        }
        #expect(result.tensors["model.layers.0.self_attn.q_proj.weight"] == (try solve(0)), "layer 0 sees the original embeddings")
        #expect(result.tensors["model.layers.1.self_attn.q_proj.weight"] != (try solve(1)), "layer 1 sees the quantized layer 0's output")
    }
}
