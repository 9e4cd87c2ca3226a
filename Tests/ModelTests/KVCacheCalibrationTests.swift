import Foundation
import Formats
import Quantize
import Testing
import TestSupport
@testable import Model

/// `--kv-cache fp8`: llm-compressor's K/V observer, the states it sees, and the cache rounding eval applies.
@Suite("FP8 KV-cache calibration")
struct KVCacheCalibrationTests {
    static let model = Fixtures.path("tiny-llama")
    static let windows: [[Int32]] = [
        [1022, 5, 9, 33, 70, 2, 11, 4, 60, 61, 100, 200, 300, 400, 500, 600],
        [1022, 17, 18, 19, 900, 901, 3, 8, 13, 21, 34, 55, 89, 144, 233, 377],
    ]

    @Test("the observer's k/v scales equal llm-compressor's minmax observer on the fixture's samples (bf16 and f32)")
    func observerMatchesLLMCompressor() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("kv-cache/observer.json")))
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cases = try #require(document["cases"] as? [[String: Any]])
        #expect(cases.count == 2)
        for item in cases {
            let dtype: DType = item["dtype"] as? String == "bf16" ? .bf16 : .f32
            let observer = KeyValueCacheObserver(scaleType: dtype)
            let layers = try #require(item["layers"] as? [[String: Any]])
            var expected: [Int: (Float, Float)] = [:]
            for layer in layers {
                let index = try #require(layer["layer"] as? Int)
                let keys = try #require(layer["keys"] as? [[Double]]), values = try #require(layer["values"] as? [[Double]])
                for (k, v) in zip(keys, values) {
                    let kf = k.map(Float.init), vf = v.map(Float.init)
                    kf.withUnsafeBufferPointer { kb in vf.withUnsafeBufferPointer { vb in observer.observe(layer: index, keys: kb, values: vb) } }
                }
                #expect(observer.sampleCount(layer: index) == keys.count)
                expected[index] = (Float(try #require(layer["k_scale"] as? Double)), Float(try #require(layer["v_scale"] as? Double)))
            }
            let scales = observer.scales()
            #expect(scales.count == layers.count)
            for s in scales {
                let (k, v) = try #require(expected[s.layer])
                // The same scalar operations in the same dtype: equal up to float printing.
                #expect(abs(s.keyScale - k) <= 1e-6 * k, "\(dtype) layer \(s.layer): k_scale \(s.keyScale), llm-compressor \(k)")
                #expect(abs(s.valueScale - v) <= 1e-6 * v, "\(dtype) layer \(s.layer): v_scale \(s.valueScale), llm-compressor \(v)")
            }
        }
    }

    @Test("FP8 cache rounding: stored = e4m3(x / scale) saturating at ±448, read back × scale")
    func cacheRounding() {
        var x: [Float] = [0.3, -0.3, 1000, -1000, 0, 4.48, 0.0001]
        x.withUnsafeMutableBufferPointer { Kernels.roundToFP8Cache($0, scale: 0.01, threads: 1) }
        #expect(abs(x[0] - 0.3) < 1e-6 && abs(x[1] + 0.3) < 1e-6, "30 is an E4M3 value: \(x[0])")
        #expect(abs(x[2] - 4.48) < 1e-5 && abs(x[3] + 4.48) < 1e-5, "saturates at 448 · scale: \(x[2])")
        #expect(x[4] == 0 && abs(x[5] - 4.48) < 1e-5)
        #expect(abs(x[6] - 0.0001) < 0.0001 * 0.07, "0.01 = 0.0001 / 0.01 lies in E4M3's subnormals (step 2^-9): \(x[6])")
        var y: [Float] = [1.7, 3.3]
        y.withUnsafeMutableBufferPointer { Kernels.roundToFP8Cache($0, scale: 1, threads: 1) }
        #expect(y == [1.75, 3.25], "E4M3 has 3 mantissa bits: \(y)")
    }

    @Test("the observer sees each layer's keys after RoPE (position 0 unrotated, pair norms kept) and v_proj's values")
    func observedStatesArePostRoPE() throws {
        let weights = try ModelWeights(path: Self.model)
        let model = try Transformer(weights: weights, threads: 1, maximumPositions: 16)
        let config = weights.configuration
        let d = config.headDimension, kvWidth = config.keyValueHeadCount * d, hidden = config.hiddenSize
        var keys: [Float] = [], values: [Float] = [], keyInput: [Float] = []
        model.keyValueObserver = { states in
            guard states.layer == 0 else { return }
            keys = Array(states.keys); values = Array(states.values)
            #expect(states.sequences == 1 && states.length == 16 && states.width == kvWidth)
        }
        _ = try model.logits(sequences: [Self.windows[0]], positions: 15..<16, observer: { input in
            if input.role == .key(0) { keyInput = Array(input.values) }
        })
        let wk = try weights.require(.key(0), shape: [kvWidth, hidden]).values
        let wv = try weights.require(.value(0), shape: [kvWidth, hidden]).values
        func projected(_ w: [Float], row: Int) -> [Float] {
            (0..<kvWidth).map { o in (0..<hidden).reduce(Float(0)) { $0 + keyInput[row * hidden + $1] * w[o * hidden + $1] } }
        }
        let k0 = projected(wk, row: 0)
        for i in 0..<kvWidth { #expect(abs(keys[i] - k0[i]) <= 1e-4 * max(1, abs(k0[i])), "position 0 is not rotated") }
        let k7 = projected(wk, row: 7), v7 = projected(wv, row: 7)
        let half = d / 2
        for h in 0..<config.keyValueHeadCount {
            for i in 0..<half {
                let a = h * d + i, b = a + half
                let before = k7[a] * k7[a] + k7[b] * k7[b], after = keys[7 * kvWidth + a] * keys[7 * kvWidth + a] + keys[7 * kvWidth + b] * keys[7 * kvWidth + b]
                #expect(abs(before - after) <= 1e-3 * max(1, before), "RoPE rotates pairs (i, i + d/2)")
            }
        }
        let rotated = (0..<kvWidth).contains { abs(keys[7 * kvWidth + $0] - k7[$0]) > 1e-3 }
        #expect(rotated, "position 7's keys are rotated")
        for i in 0..<kvWidth { #expect(abs(values[7 * kvWidth + i] - v7[i]) <= 1e-4 * max(1, abs(v7[i])), "values are v_proj's output") }
    }

    @Test("the layer-by-layer calibration sees what a full forward pass sees; one window gives amax / 448")
    func calibrationPassMatchesForwardPass() throws {
        let weights = try ModelWeights(path: Self.model)
        let model = try Transformer(weights: weights, threads: 1, maximumPositions: 16)
        var amax: [Int: (Float, Float)] = [:]
        model.keyValueObserver = { s in
            amax[s.layer] = (s.keys.map(abs).max() ?? 0, s.values.map(abs).max() ?? 0)
        }
        _ = try model.logits(sequences: [Self.windows[1]], positions: 15..<16)
        let scales = try KVCacheCalibration.run(checkpointPath: Self.model, calibration: CalibrationSet(windows: [Self.windows[1]], source: "test"), threads: 1)
        #expect(scales.count == weights.configuration.layerCount)
        #expect(KVCacheCalibration.scaleType(weights) == .bf16)
        for s in scales {
            let (k, v) = try #require(amax[s.layer])
            // The states pass through BLAS in another blocking; the scale is rounded to bf16 (2^-8 relative).
            #expect(abs(s.keyScale - k / 448) <= k / 448 * 0.008, "layer \(s.layer): \(s.keyScale) vs \(k / 448)")
            #expect(abs(s.valueScale - v / 448) <= v / 448 * 0.008, "layer \(s.layer): \(s.valueScale) vs \(v / 448)")
        }
        // Two windows: the running average of each window's range (1 % of the second window).
        let two = try KVCacheCalibration.run(checkpointPath: Self.model, calibration: CalibrationSet(windows: Self.windows, source: "test"), threads: 1,
                                             sequencesPerBatch: 1)
        let batched = try KVCacheCalibration.run(checkpointPath: Self.model, calibration: CalibrationSet(windows: Self.windows, source: "test"), threads: 1,
                                                 sequencesPerBatch: 2)
        for (a, b) in zip(two, batched) {
            #expect(abs(a.keyScale - b.keyScale) <= a.keyScale * 0.008 && abs(a.valueScale - b.valueScale) <= a.valueScale * 0.008,
                    "the observation is per window whatever the batch")
        }
    }

    @Test("averaging: the first sample sets the range, each later one moves it by 1 %; zero states give the dtype's epsilon")
    func runningAverage() {
        let observer = KeyValueCacheObserver(scaleType: .f32)
        let a: [Float] = [-2, 1, 0.5, 4.48], b: [Float] = [-448, 0, 0, 0], zero: [Float] = [0, 0]
        a.withUnsafeBufferPointer { ka in observer.observe(layer: 0, keys: ka, values: ka) }
        #expect(abs(observer.scales()[0].keyScale - 0.01) < 1e-7)
        b.withUnsafeBufferPointer { kb in observer.observe(layer: 0, keys: kb, values: kb) }
        // min: -2·0.99 - 448·0.01 = -6.46; max: 4.48·0.99 + 0 = 4.4352 → 6.46 / 448.
        #expect(abs(observer.scales()[0].keyScale - 6.46 / 448) < 1e-6)
        zero.withUnsafeBufferPointer { z in observer.observe(layer: 1, keys: z, values: z) }
        #expect(observer.scales()[1].keyScale == Float.ulpOfOne)
        let bf16 = KeyValueCacheObserver(scaleType: .bf16)
        zero.withUnsafeBufferPointer { z in bf16.observe(layer: 0, keys: z, values: z) }
        #expect(bf16.scales()[0].valueScale == 0.0078125, "torch.finfo(bfloat16).eps")
    }
}
