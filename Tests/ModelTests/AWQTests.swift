import Foundation
import Formats
import Quantize
import Testing
import TestSupport
@testable import Model

/// AWQ's scale search against the torch + compressed-tensors oracle of tools/make_awq_fixture.py
/// (one linear layer that is its own parent, as llm-compressor's up_proj → down_proj mapping is).
@Suite("AWQ")
struct AWQTests {
    struct Oracle {
        var rows: Int, columns: Int, tokens: Int, groupSize: Int
        var weight: [Float], input: [Float]
        var grid: [AWQ.GridPoint]
        var activationMeans: [Double], weightMeans: [Double]
        var candidates: [[Float]]
        var schemes: [String: [String: Any]]
    }

    static func oracle() throws -> Oracle {
        let directory = Fixtures.path("quantize/awq-oracle")
        let file = try SafetensorsFile(path: directory + "/layer.safetensors")
        func floats(_ name: String) throws -> [Float] {
            let tensor = try #require(file.tensor(named: name))
            return try file.readData(for: tensor).withMemoryRebound(to: Float.self) { Array($0) }
        }
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/expected.json"))) as? [String: Any])
        let grid = try #require(json["grid"] as? [[String: Any]]).map {
            AWQ.GridPoint(ratio: ($0["ratio"] as? Double) ?? .nan, duoScaling: ($0["duo_scaling"] as? Bool) ?? false)
        }
        return Oracle(rows: try #require(json["rows"] as? Int), columns: try #require(json["columns"] as? Int),
                      tokens: try #require(json["tokens"] as? Int), groupSize: try #require(json["group_size"] as? Int),
                      weight: try floats("weight"), input: try floats("input"), grid: grid,
                      // x̄ is FP32 in torch: rounding the parsed decimal to Float recovers it exactly.
                      activationMeans: try #require(json["activation_means"] as? [Double]).map { Double(Float($0)) },
                      weightMeans: try #require(json["weight_means"] as? [Double]),
                      candidates: try #require(json["candidates"] as? [[Double]]).map { $0.map { Float($0) } },
                      schemes: try #require(json["schemes"] as? [String: [String: Any]]))
    }

    static func close(_ a: Double, _ b: Double, relative: Double, absolute: Double = 0) -> Bool {
        abs(a - b) <= relative * max(abs(a), abs(b)) + absolute
    }

    @Test("the grid, activation means, weight means and every grid point's scales are llm-compressor's")
    func statistics() throws {
        let o = try Self.oracle()
        let grid = AWQ.grid(AWQSettings())
        #expect(grid.count == o.grid.count)
        for (ours, theirs) in zip(grid, o.grid) {
            #expect(ours.duoScaling == theirs.duoScaling && Self.close(ours.ratio, theirs.ratio, relative: 1e-12), "\(ours) vs \(theirs)")
        }
        // Mean |x| per channel: sums of 40 FP32 magnitudes, a few ulps apart at most.
        var sums = [Double](repeating: 0, count: o.columns)
        for t in 0..<o.tokens { for c in 0..<o.columns { sums[c] += Double(abs(o.input[t * o.columns + c])) } }
        for c in 0..<o.columns { #expect(Self.close(sums[c] / Double(o.tokens), o.activationMeans[c], relative: 1e-6), "x̄[\(c)]") }
        let means = AWQ.weightMeans([o.weight], columns: o.columns, chunk: o.groupSize)
        for c in 0..<o.columns { #expect(Self.close(means[c], o.weightMeans[c], relative: 1e-6), "w̄[\(c)]: \(means[c]) vs \(o.weightMeans[c])") }
        // x̄^r / (w̄^(1−r) + 1e-4), normalised: FP64 arithmetic on both sides, rounded to FP32.
        for (i, point) in grid.enumerated() {
            let s = AWQ.scales(activationMeans: o.activationMeans, weightMeans: means, point: point)
            let worst = zip(s, o.candidates[i]).map { Double(abs($0 - $1) / $1) }.max() ?? .nan
            #expect(worst <= 1e-5, "grid point \(i): scales differ by up to \(worst) relative")
        }
    }

    @Test("each grid point's loss, the choice and the smoothed output are the oracle's", arguments: ["int4-g32-sym", "int4-g32-asym"])
    func search(_ label: String) throws {
        let o = try Self.oracle()
        let expected = try #require(o.schemes[label])
        let symmetric = try #require(expected["symmetric"] as? Bool)
        let scheme = Scheme(name: .int4, granularity: .group(size: o.groupSize), symmetric: symmetric)
        let options = QuantizeOptions(scaleType: .f32)
        let reference = AWQCalibration.matmul(o.input, rows: o.tokens, weights: o.weight, outputs: o.rows, inner: o.columns)
        func loss(_ candidates: [[Float]]) -> Double {
            let output = AWQCalibration.matmul(o.input, rows: o.tokens, weights: candidates[0], outputs: o.rows, inner: o.columns)
            return AWQ.squaredError(output, reference) / Double(output.count)
        }
        // The oracle's FP32 scales give the same W·s bit for bit, so the same codes: the losses differ
        // only by the sgemm's summation order.
        let found = try AWQ.search(o.grid, candidates: o.candidates, balance: [(name: "layer.weight", weights: o.weight)], columns: o.columns,
                                   scheme: scheme, options: options, loss: loss)
        let losses = try #require(expected["losses"] as? [Double])
        #expect(found.losses.count == losses.count)
        for (i, (ours, theirs)) in zip(found.losses, losses).enumerated() {
            #expect(Self.close(ours, theirs, relative: 1e-4), "grid point \(i): loss \(ours) vs the oracle's \(theirs)")
        }
        let best = try #require(expected["best"] as? Int)
        #expect(found.best == best, "chose grid point \(found.best), the oracle \(best) (losses \(found.losses))")
        let scales = try #require(expected["scales"] as? [Double])
        for c in 0..<o.columns { #expect(Self.close(Double(found.scales[c]), scales[c], relative: 1e-7), "s[\(c)]: \(found.scales[c]) vs \(scales[c])") }

        // Folded: (x / s) · Q(W·s)ᵀ, the layer as the smoothed checkpoint computes it.
        var smoothed = o.weight
        AWQ.scaleColumns(&smoothed, columns: o.columns, by: found.scales)
        let encoded = try smoothed.withUnsafeBufferPointer { try quantized($0, rows: o.rows, columns: o.columns, scheme: scheme, tensorName: "layer.weight", options: options) }
        let decoded = try dequantized(encoded, tensorName: "layer.weight")
        var x = o.input
        for t in 0..<o.tokens { for c in 0..<o.columns { x[t * o.columns + c] /= found.scales[c] } }
        let output = AWQCalibration.matmul(x, rows: o.tokens, weights: decoded, outputs: o.rows, inner: o.columns)
        let theirs = try #require(expected["output"] as? [Double])
        let magnitude = theirs.reduce(0) { max($0, abs($1)) }
        var worst = 0.0
        for i in output.indices { worst = max(worst, abs(Double(output[i]) - theirs[i])) }
        #expect(worst <= 1e-5 * magnitude, "largest output difference \(worst) against outputs up to \(magnitude)")
        #expect(found.bestLoss < 0.5 * found.initialLoss, "AWQ lowers the output error well below the identity's")

        // The whole search from the statistics: where the winner leads by a clear margin (asymmetric,
        // 4.9 %), FP32 noise in the scales cannot change the choice.
        if let margin = expected["margin"] as? Double, margin > 0.02 {
            let own = try AWQ.search(activationMeans: o.activationMeans, balance: [(name: "layer.weight", weights: o.weight)], columns: o.columns,
                                     scheme: scheme, options: options, settings: AWQSettings(), loss: loss)
            #expect(own.best == best, "from the statistics: grid point \(own.best), the oracle \(best)")
        }
    }

    @Test("a mixture-of-experts model is refused, naming the mapping and the layer")
    func refusesExperts() throws {
        let weights = try ModelWeights(path: Fixtures.path("reference-models/mixtral"), weightsOnly: true)
        do {
            try AWQCalibration.checkMappings(weights.configuration, path: "mixtral")
            Issue.record("a mixture-of-experts model was accepted")
        } catch let error as ModelError {
            let text = "\(error)"
            #expect(text.contains("post_attention_layernorm") && text.contains("layer 0"), "\(text)")
        }
    }

    @Test("on the tiny model: the smoothed float layer computes what the original did, and only the mapped tensors change")
    func pipelinePreservesFunction() throws {
        let model = Fixtures.path("tiny-llama")
        let windows: [[Int32]] = [
            [1022, 5, 9, 33, 70, 2, 11, 4, 60, 61, 100, 200, 300, 400, 500, 600],
            [1022, 17, 18, 19, 900, 901, 3, 8, 13, 21, 34, 55, 89, 144, 233, 377],
        ]
        let weights = try ModelWeights(path: model, weightsOnly: true)
        let names = Set(weights.checkpoint.tensors.map(\.name).filter { $0.hasSuffix("proj.weight") })
        let scheme = Scheme(name: .int4, granularity: .group(size: 32), symmetric: true)
        let result = try AWQCalibration.run(checkpointPath: model, calibration: CalibrationSet(windows: windows, source: "test"), quantize: names,
                                            settings: AWQCalibration.Settings(scheme: scheme, threads: 1))
        let layers = weights.configuration.layerCount
        #expect(result.mappings.count == 3 * layers, "GQA: v_proj → o_proj is skipped, three mappings per layer")
        #expect(Set(result.tensors.keys) == names)
        #expect(result.smoothed.keys.contains("model.layers.0.input_layernorm.weight"))
        // The smoothed float model gives the original's logits (the folding is exact up to rounding).
        let transformer = try Transformer(weights: weights, threads: 1, maximumPositions: 16)
        var original = try transformer.embeddedStates(sequences: windows)
        var folded = original
        for layer in 0..<layers {
            try transformer.runDecoderLayer(layer, state: &original, sequences: 2, length: 16)
            var replaced: [WeightRole: DecodedTensor] = [:]
            for (role, shape) in transformer.roles(of: layer) {
                guard let name = role.safetensorsNames.first(where: { result.smoothed[$0] != nil }), let values = result.smoothed[name] else { continue }
                replaced[role] = DecodedTensor(rows: shape.count == 2 ? shape[0] : 1, columns: shape.last ?? 0, values: values)
            }
            #expect(replaced.count == 8, "layer \(layer): both norms and the six projections other than o_proj are smoothed")
            try transformer.runDecoderLayer(layer, state: &folded, sequences: 2, length: 16, replacing: replaced)
        }
        let magnitude = original.reduce(Float(0)) { max($0, abs($1)) }
        let worst = zip(original, folded).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
        #expect(worst <= 1e-4 * magnitude, "hidden states differ by \(worst) (magnitude \(magnitude))")
    }
}
