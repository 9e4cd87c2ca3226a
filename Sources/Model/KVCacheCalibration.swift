import Foundation
import Formats
import Quantize

/// The key and value states one attention layer stores in its KV cache during a forward pass,
/// handed to a ``KeyValueObserver``: keys after the k-norm (Qwen3) and RoPE, values as `v_proj`
/// wrote them, both before any FP8 rounding the checkpoint declares.
public struct KeyValueStates {
    /// The decoder layer.
    public var layer: Int
    /// Sequences in the batch (each `length` tokens).
    public var sequences: Int
    /// Tokens per sequence.
    public var length: Int
    /// Floats per token: key-value heads × head dimension.
    public var width: Int
    /// `sequences × length × width` key floats, row-major; valid only during the call.
    public var keys: UnsafeBufferPointer<Float>
    /// `sequences × length × width` value floats, row-major; valid only during the call.
    public var values: UnsafeBufferPointer<Float>
}

/// Sees the key and value states of every attention layer of a forward pass (``Transformer/keyValueObserver``).
public typealias KeyValueObserver = (KeyValueStates) -> Void

/// llm-compressor's observer of the FP8 KV cache (`kv_cache_scheme` with `num_bits: 8, type: float,
/// strategy: tensor, symmetric: true, dynamic: false`), one per attention layer for K and one for V.
///
/// What it reproduces (llmcompressor 0.14 `observers/min_max.py` `MinMaxObserver`,
/// compressed-tensors 0.20 `quantization/utils/helpers.py` `calculate_qparams`):
/// - one observation per calibration sample (its `oneshot` runs batches of one window), of the
///   whole window: the minimum and maximum over every token and channel of the post-RoPE keys
///   (the hook on `QuantizedKVCache.forward`, which receives what the attention passes to
///   `past_key_values.update`) and of the values;
/// - the minimum and maximum are each a running average, `m ← m·(1 − c) + x·c` with `c = 0.01`
///   (`averaging_constant`), starting from the first sample's, computed in the model's dtype;
/// - scale = max(|min(m_min, 0)|, max(m_max, 0)) / 448 in that dtype, a zero scale replaced by
///   the dtype's epsilon; stored as a one-element tensor of that dtype (`initialize_qparams`:
///   shape `(1,)`, the attention module's parameter dtype).
public final class KeyValueCacheObserver: @unchecked Sendable {
    /// The scales of one layer.
    public struct LayerScales: Sendable, Equatable {
        /// The decoder layer.
        public var layer: Int
        /// `k_scale`: the stored key is `fp8(k / keyScale)`.
        public var keyScale: Float
        /// `v_scale`: the stored value is `fp8(v / valueScale)`.
        public var valueScale: Float
        /// The running-average minimum and maximum of the keys and values the scales come from.
        public var keyRange: ClosedRange<Float>, valueRange: ClosedRange<Float>
    }

    /// The running-average weight of a new sample (llm-compressor's `averaging_constant`).
    public let averagingConstant: Float
    /// The dtype the statistics and scales are computed and stored in (the model's: F32, F16 or BF16).
    public let scaleType: DType

    private struct Running { var keyMinimum: Float, keyMaximum: Float, valueMinimum: Float, valueMaximum: Float, samples: Int }
    private var running: [Int: Running] = [:]
    private let lock = NSLock()

    /// Creates an observer.
    /// - Parameters:
    ///   - scaleType: F32, F16 or BF16 (another dtype is treated as F16, as compressed-tensors does).
    ///   - averagingConstant: the weight of each new sample in the running averages, in (0, 1].
    public init(scaleType: DType, averagingConstant: Float = 0.01) {
        self.scaleType = [.f32, .f16, .bf16].contains(scaleType) ? scaleType : .f16
        self.averagingConstant = averagingConstant
    }

    /// Rounds `x` to the scale dtype (round to nearest even), as each torch operation on a tensor
    /// of that dtype does.
    func rounded(_ x: Float) -> Float {
        switch scaleType {
        case .bf16: return ElementConversion.float32(fromBFloat16Bits: ElementConversion.bfloat16Bits(x))
        case .f16: return ElementConversion.float32(fromFloat16Bits: ElementConversion.float16Bits(x))
        default: return x
        }
    }

    /// Observes one batch: each of its sequences is one sample, in order.
    public func observe(_ states: KeyValueStates) {
        let perSequence = states.length * states.width
        for s in 0..<states.sequences {
            let k = UnsafeBufferPointer(rebasing: states.keys[(s * perSequence)..<((s + 1) * perSequence)])
            let v = UnsafeBufferPointer(rebasing: states.values[(s * perSequence)..<((s + 1) * perSequence)])
            observe(layer: states.layer, keys: k, values: v)
        }
    }

    /// Observes one sample of layer `layer`: all its key and value floats.
    public func observe(layer: Int, keys: UnsafeBufferPointer<Float>, values: UnsafeBufferPointer<Float>) {
        let (kMin, kMax) = KeyValueCacheObserver.extrema(keys)
        let (vMin, vMax) = KeyValueCacheObserver.extrema(values)
        // The states themselves are in the model's dtype in llm-compressor's forward pass.
        let sample = Running(keyMinimum: rounded(kMin), keyMaximum: rounded(kMax), valueMinimum: rounded(vMin), valueMaximum: rounded(vMax), samples: 1)
        lock.lock(); defer { lock.unlock() }
        guard var r = running[layer] else { running[layer] = sample; return }
        // lerp(start, end, c) = start·(1 − c) + end·c, each product and the sum rounded to the dtype.
        let keep = Float(1.0 - Double(averagingConstant)), c = averagingConstant
        func lerp(_ a: Float, _ b: Float) -> Float { rounded(rounded(a * keep) + rounded(b * c)) }
        if averagingConstant != 1 {
            r.keyMinimum = lerp(r.keyMinimum, sample.keyMinimum); r.keyMaximum = lerp(r.keyMaximum, sample.keyMaximum)
            r.valueMinimum = lerp(r.valueMinimum, sample.valueMinimum); r.valueMaximum = lerp(r.valueMaximum, sample.valueMaximum)
        } else {
            r = Running(keyMinimum: sample.keyMinimum, keyMaximum: sample.keyMaximum, valueMinimum: sample.valueMinimum,
                        valueMaximum: sample.valueMaximum, samples: r.samples)
        }
        r.samples += 1
        running[layer] = r
    }

    /// Samples seen by layer `layer`.
    public func sampleCount(layer: Int) -> Int { lock.lock(); defer { lock.unlock() }; return running[layer]?.samples ?? 0 }

    /// The scales of every observed layer, by layer.
    public func scales() -> [LayerScales] {
        lock.lock(); defer { lock.unlock() }
        return running.keys.sorted().map { layer in
            let r = running[layer]!
            return LayerScales(layer: layer, keyScale: scale(minimum: r.keyMinimum, maximum: r.keyMaximum),
                               valueScale: scale(minimum: r.valueMinimum, maximum: r.valueMaximum),
                               keyRange: min(r.keyMinimum, r.keyMaximum)...max(r.keyMinimum, r.keyMaximum),
                               valueRange: min(r.valueMinimum, r.valueMaximum)...max(r.valueMinimum, r.valueMaximum))
        }
    }

    /// calculate_qparams for symmetric FP8 E4M3: the larger magnitude of the range (widened to
    /// include 0) over 448, in the scale dtype; 0 becomes the dtype's epsilon (torch.finfo.eps).
    func scale(minimum: Float, maximum: Float) -> Float {
        let magnitude = max(abs(min(minimum, 0)), max(maximum, 0))
        let s = rounded(magnitude / 448)
        guard s == 0 else { return s }
        switch scaleType {
        case .bf16: return 0.0078125
        case .f16: return 0.0009765625
        default: return Float.ulpOfOne
        }
    }

    static func extrema(_ x: UnsafeBufferPointer<Float>) -> (Float, Float) {
        var lo = SIMD8<Float>(repeating: .infinity), hi = SIMD8<Float>(repeating: -.infinity)
        let n = x.count, vectors = n / 8
        guard let base = x.baseAddress else { return (0, 0) }
        for i in 0..<vectors {
            let v = UnsafeRawPointer(base + i * 8).loadUnaligned(as: SIMD8<Float>.self)
            lo = pointwiseMin(lo, v); hi = pointwiseMax(hi, v)
        }
        var a = lo.min(), b = hi.max()
        for i in (vectors * 8)..<n { a = min(a, x[i]); b = max(b, x[i]) }
        return n == 0 ? (0, 0) : (a, b)
    }
}

/// FP8 KV-cache calibration (`quantize --kv-cache fp8`): the calibration windows run through the
/// model, layer by layer, while a ``KeyValueCacheObserver`` sees every layer's keys and values.
///
/// Which model the states come from follows llm-compressor's sequential pipeline: its calibration
/// passes run with quantization disabled, so for round-to-nearest (and AWQ, whose smoothing is
/// applied after the layer's states were observed) the states are the float model's — what this
/// runs. GPTQ writes each layer's quantized weights back before the next layer is calibrated, so
/// there the states come from the GPTQ pass itself (``GPTQCalibration/run(checkpointPath:calibration:quantize:settings:keyValueObserver:progress:warning:)``).
public enum KVCacheCalibration {
    /// Why an architecture cannot be calibrated here, nil when it can.
    public static func unsupportedReason(_ weights: ModelWeights) -> String? {
        if weights.checkpoint.format != .safetensors {
            return "\(weights.checkpoint.path) is not a Hugging Face safetensors checkpoint"
        }
        return nil
    }

    /// The dtype llm-compressor gives the scales: the attention module's first parameter's
    /// (`q_proj.weight`), F16 when that is not a float type.
    public static func scaleType(_ weights: ModelWeights) -> DType {
        let name = WeightRole.query(0).safetensorsNames.first ?? ""
        guard let record = weights.checkpoint.tensors.first(where: { $0.name == name }), case .dtype(let d) = record.type,
              [.f32, .f16, .bf16].contains(d) else { return .f16 }
        return d
    }

    /// Runs the float model over `calibration` and returns the per-layer scales.
    /// - Parameters:
    ///   - sequencesPerBatch: windows run through a layer together (bounds the activations; the
    ///     observation is per window whatever the batch).
    ///   - progress: after each layer: layers done, layer count, seconds so far.
    /// - Throws: ``ModelError`` for an architecture it cannot calibrate or bad input.
    public static func run(checkpointPath: String, calibration: CalibrationSet, threads: Int? = nil, sequencesPerBatch: Int = 8,
                           progress: ((_ done: Int, _ layers: Int, _ seconds: Double) -> Void)? = nil) throws -> [KeyValueCacheObserver.LayerScales] {
        let started = Date()
        let weights = try ModelWeights(path: checkpointPath, weightsOnly: true)
        if let reason = unsupportedReason(weights) {
            throw ModelError.invalidInput(reason: "--kv-cache fp8 cannot calibrate \(checkpointPath): \(reason)")
        }
        guard let length = calibration.windows.first?.count else { throw ModelError.invalidInput(reason: "no calibration windows") }
        let model = try Transformer(weights: weights, threads: threads, maximumPositions: length)
        let observer = KeyValueCacheObserver(scaleType: scaleType(weights))
        model.keyValueObserver = { observer.observe($0) }
        let config = weights.configuration, hidden = config.hiddenSize
        let sequences = calibration.windows.count, batch = max(1, sequencesPerBatch)
        var state = try model.embeddedStates(sequences: calibration.windows)
        for layer in 0..<config.layerCount {
            var s0 = 0
            while s0 < sequences {
                let s1 = min(sequences, s0 + batch)
                let range = (s0 * length * hidden)..<(s1 * length * hidden)
                var slice = Array(state[range])
                try model.runDecoderLayer(layer, state: &slice, sequences: s1 - s0, length: length)
                state.replaceSubrange(range, with: slice)
                s0 = s1
            }
            progress?(layer + 1, config.layerCount, Date().timeIntervalSince(started))
        }
        return observer.scales()
    }
}

extension Kernels {
    /// Rounds keys or values through an FP8 E4M3 KV cache the way vLLM's cache kernels store and
    /// read them: stored = e4m3(x / scale), saturating at ±448 (`__nv_cvt_float_to_fp8(a / scale,
    /// __NV_SATFINITE, …)` in csrc/quantization/fp8/nvidia/quant_utils.cuh), read back as stored · scale.
    static func roundToFP8Cache(_ x: UnsafeMutableBufferPointer<Float>, scale: Float, threads: Int) {
        guard let base = x.baseAddress, scale > 0, scale.isFinite else { return }
        parallelRows(x.count, threads: threads, minimumPerTask: 1 << 14) { range in
            for i in range {
                base[i] = FP8Format.e4m3.decode(FP8Format.e4m3.encode(base[i] / scale)) * scale
            }
        }
    }
}

extension ModelWeights {
    /// The k_scale and v_scale vLLM uses for layer `layer` (BaseKVCacheMethod.process_weights_after_loading):
    /// both when both are stored and positive; 1.0 for both when neither is; otherwise the larger
    /// of the two for both (a checkpoint with one `kv_scale`).
    public func keyValueCacheScales(layer: Int) -> (key: Float, value: Float) {
        let k = scale(.keyCacheScale(layer)) ?? -1, v = scale(.valueCacheScale(layer)) ?? -1
        if k > 0 && v > 0 { return (k, v) }
        if k <= 0 && v <= 0 { return (1, 1) }
        let both = max(k, v)
        return (both, both)
    }
}
