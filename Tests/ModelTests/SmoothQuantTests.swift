import Foundation
import Quantize
import Testing
import TestSupport
@testable import Model

/// SmoothQuant's scales against llm-compressor's own code on a fixed set
/// (fixtures/quantize/smoothquant-oracle.json, tools/smoothquant_reference.py oracle), and the
/// engine's per-token INT8 activation rounding.
@Suite("SmoothQuant and INT8 activations")
struct SmoothQuantTests {
    struct Oracle: Decodable {
        struct Layer: Decodable { var rows: Int; var weights: [Float] }
        var columns: Int
        var batchRows: Int
        var batches: [[Float]]
        var balance: [Layer]
        var ranges: [Float]
        var scales: [String: [Float]]

        enum CodingKeys: String, CodingKey {
            case columns, batches, balance, ranges, scales
            case batchRows = "batch_rows"
        }
    }

    static func oracle() throws -> Oracle {
        try JSONDecoder().decode(Oracle.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("quantize/smoothquant-oracle.json"))))
    }

    static func range(_ o: Oracle) -> SmoothQuant.ChannelRange {
        var range = SmoothQuant.ChannelRange(columns: o.columns)
        for batch in o.batches { batch.withUnsafeBufferPointer { range.add($0, rows: o.batchRows) } }
        return range
    }

    @Test("the running per-channel min/max over two batches gives llm-compressor's activation ranges exactly")
    func rangesMatchOracle() throws {
        let o = try Self.oracle()
        let range = Self.range(o)
        #expect(range.rowCount == 2 * o.batchRows)
        // max − min of the same FP32 values: one rounding, the same on both sides.
        #expect(range.ranges == o.ranges, "ranges \(range.ranges) vs llm-compressor \(o.ranges)")
        #expect(range.ranges[11] == 0, "the fixture's constant channel")
    }

    @Test("the scales equal llm-compressor's _calculate_smoothing_scales with its 1e-5 clamp", arguments: ["0.5", "0.8"])
    func scalesMatchOracle(_ alpha: String) throws {
        let o = try Self.oracle()
        let expected = try #require(o.scales[alpha])
        let balance = o.balance.enumerated().map { (name: "layer\($0.offset)", weights: $0.element.weights) }
        let found = try SmoothQuant.scales(range: Self.range(o), balance: balance, columns: o.columns, strength: Double(alpha)!,
                                           smoothName: "norm")
        #expect(found.count == expected.count)
        // powf and torch's pow in FP32 agree to a few ulps; the quotient adds one rounding.
        for (c, (a, b)) in zip(found, expected).enumerated() {
            #expect(abs(a - b) <= 4e-6 * abs(b), "channel \(c): \(a) vs llm-compressor \(b)")
        }
        #expect(found[11] == SmoothQuant.minimumScale, "a constant channel (range 0) is clamped at 1e-5")
        #expect(abs(found[5] - o.ranges[5]) <= 1e-6 * o.ranges[5], "a column zero in every balance layer takes the activation range itself")
    }

    @Test("a channel no calibration token reached is refused, naming the mapping")
    func refusesEmptyRange() throws {
        let range = SmoothQuant.ChannelRange(columns: 4)
        #expect(throws: ModelError.self) {
            try SmoothQuant.scales(range: range, balance: [(name: "q", weights: [Float](repeating: 0.1, count: 8))], columns: 4,
                                   strength: 0.5, smoothName: "model.layers.0.input_layernorm")
        }
        do {
            _ = try SmoothQuant.scales(range: range, balance: [(name: "q", weights: [Float](repeating: 0.1, count: 8))], columns: 4,
                                       strength: 0.5, smoothName: "model.layers.0.input_layernorm")
        } catch {
            #expect("\(error)".contains("model.layers.0.input_layernorm"), "\(error)")
        }
    }

    @Test("the Hessian of the smoothed inputs X·diag(1/s) is diag(1/s)·H·diag(1/s)")
    func hessianRescale() throws {
        let columns = 3, rows = 5
        let x: [Float] = [1, -2, 0.5, 3, 1, -1, 0.25, 4, 2, -1.5, 0, 1, 2, 2, -3]
        let s: [Float] = [2, 0.5, 4]
        var plain = HessianAccumulator(columns: columns), smoothed = HessianAccumulator(columns: columns)
        x.withUnsafeBufferPointer { plain.add($0, rows: rows) }
        let divided = x.enumerated().map { $0.element / s[$0.offset % columns] }
        divided.withUnsafeBufferPointer { smoothed.add($0, rows: rows) }
        var h = plain.hessian
        SmoothQuantCalibration.rescale(&h, columns: columns, by: s)
        for (a, b) in zip(h, smoothed.hessian) { #expect(abs(a - b) <= 1e-5 * max(1, abs(b)), "\(a) vs \(b)") }
    }

    @Test("folding the scales into the norms and q/k/v, gate/up leaves each float layer's output unchanged")
    func foldingIsInvariant() throws {
        let path = Fixtures.path("tiny-llama")
        let windows: [[Int32]] = [(0..<32).map { Int32(($0 * 37 + 11) % 1000) }, (0..<32).map { Int32(($0 * 53 + 5) % 1000) }]
        let calibration = CalibrationSet(windows: windows, source: "test windows")
        let result = try SmoothQuantCalibration.run(checkpointPath: path, calibration: calibration, quantize: [],
                                                    settings: SmoothQuantCalibration.Settings(scheme: Scheme(name: .int8), strength: 0.8, threads: 2))
        #expect(result.mappings.count == 4 && result.tensors.isEmpty, "two mappings per layer; nothing selected, nothing encoded")
        #expect(result.mappings.allSatisfy { m in m.scales.contains { abs($0 - 1) > 0.01 } }, "the scales are not the identity")
        let model = try Transformer(weights: ModelWeights(path: path, weightsOnly: true), threads: 2, maximumPositions: 32)
        let hidden = model.weights.configuration.hiddenSize
        var original = try model.embeddedStates(sequences: windows)
        var smoothed = original
        try model.runDecoderLayer(0, state: &original, sequences: 2, length: 32)
        var replacing: [WeightRole: DecodedTensor] = [:]
        for role in [WeightRole.attentionNorm(0), .feedForwardNorm(0), .query(0), .key(0), .value(0), .gate(0), .up(0)] {
            let name = try #require(role.safetensorsNames.first { result.smoothed[$0] != nil }, "\(role) was smoothed")
            let values = try #require(result.smoothed[name])
            let isVector: Bool
            switch role { case .attentionNorm, .feedForwardNorm: isVector = true; default: isVector = false }
            replacing[role] = DecodedTensor(rows: isVector ? 1 : values.count / hidden, columns: hidden, values: values)
        }
        try model.runDecoderLayer(0, state: &smoothed, sequences: 2, length: 32, replacing: replacing)
        let scale = original.reduce(0) { max($0, abs($1)) }
        let worst = zip(original, smoothed).reduce(0) { max($0, abs($1.0 - $1.1)) }
        // FP32 rounding of the folded weights through two sgemm chains: a few ulps of the magnitude.
        #expect(worst <= 1e-5 * scale, "max |Δ| \(worst) of \(scale)")
    }

    @Test("per-token INT8 rounds x·127/amax half to even, saturates, and dequantizes with amax/127, row by row (vLLM's kernel)")
    func int8ActivationRounding() {
        // Row 0: amax 127 → multiplier 1: ties at ±2.5 and 3.5 go to the even code.
        // Row 1: amax 254 → multiplier 0.5: 5 → 2.5 → 2 (even) → 4; −1 → −0.5 → −0 → 0.
        // Row 2: all zero → codes 0 (vLLM's inverse is 0 for amax 0).
        var x: [Float] = [127, -2.5, 3.5, 0.5, -0.5, 1.4,
                          254, 5, -1, 3, -254, 0.9,
                          0, 0, 0, 0, 0, 0]
        x.withUnsafeMutableBufferPointer { Kernels.fakeQuantize($0.baseAddress!, rows: 3, width: 6, isFloat: false, threads: 2) }
        #expect(Array(x[0..<6]) == [127, -2, 4, 0, 0, 1])
        #expect(Array(x[6..<12]) == [254, 4, 0, 4, -254, 0])
        #expect(Array(x[12..<18]) == [0, 0, 0, 0, 0, 0])
    }
}
