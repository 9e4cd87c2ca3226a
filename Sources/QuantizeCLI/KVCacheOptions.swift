import ArgumentParser
import Foundation
import Formats
import Model
import Quantize

/// The KV-cache quantization `--kv-cache` asks for.
enum KVCacheQuantization: String, ExpressibleByArgument, CaseIterable {
    /// FP8 E4M3 with per-layer static k/v scales (compressed-tensors `kv_cache_scheme`, vLLM `--kv-cache-dtype fp8`).
    case fp8
}

/// `quantize --to fp8|int8|int4 … --kv-cache fp8 --calibration FILE`: per-layer FP8 KV-cache scales
/// calibrated as llm-compressor's `kv_cache_scheme` does, written for vLLM.
struct KVCacheOptions: ParsableArguments {
    @Option(name: .customLong("kv-cache"), help: ArgumentHelp("fp8: also write per-layer FP8 E4M3 KV-cache scales (k_scale, v_scale) calibrated on --calibration and kv_cache_scheme, as llm-compressor does; serve with vLLM --kv-cache-dtype fp8.", valueName: "type"))
    var kvCache: KVCacheQuantization?

    /// Rejects what `--kv-cache fp8` cannot do, before any work starts.
    func validate(target: QuantizeTarget, calibration: CalibrationOptions) throws {
        guard kvCache != nil else { return }
        if target.mixture != nil || target.schemeName.descriptor.container == .gguf {
            throw ValidationError("--kv-cache fp8 writes per-layer k_scale/v_scale tensors and kv_cache_scheme for vLLM; \(target.name) is a GGUF output, which has no place for them (llama.cpp computes no such scales). For a smaller KV cache in llama.cpp, quantize the cache when serving: llama-server -fa on --cache-type-k q8_0 --cache-type-v q8_0")
        }
        guard calibration.calibration != nil else {
            throw ValidationError("--kv-cache fp8 calibrates each layer's k/v scales from the keys and values of real text: give --calibration FILE (a text, or a JSON array of token ids)")
        }
        if calibration.calibrationSamples < 1 { throw ValidationError("--calibration-samples must be positive") }
        if calibration.calibrationLength < 2 { throw ValidationError("--calibration-length must be 2 or more") }
    }

    /// The observer GPTQ's calibration pass feeds (llm-compressor observes the states of that pass
    /// under GPTQ), nil without `--kv-cache` or for another method.
    func observerForGPTQ(job: QuantizeJob, method: WeightMethod) throws -> KeyValueCacheObserver? {
        guard kvCache != nil, method == .gptq else { return nil }
        return KeyValueCacheObserver(scaleType: KVCacheCalibration.scaleType(try ModelWeights(checkpoint: job.checkpoint, weightsOnly: true)))
    }

    /// The scales for the job: from `observed` (GPTQ's pass) or from a float-model pass over the
    /// calibration windows; nil without `--kv-cache`.
    func scales(job: QuantizeJob, input: String, calibration options: CalibrationOptions, observed: KeyValueCacheObserver?,
                threads: Int?, verbose: Bool) throws -> KeyValueCacheScales? {
        guard kvCache != nil, let path = options.calibration else { return nil }
        QuantizeCommand.EvalCommand.restartWithFasterBLASIfNeeded()
        let started = Date()
        let weights = try ModelWeights(checkpoint: job.checkpoint, weightsOnly: true)
        if let reason = KVCacheCalibration.unsupportedReason(weights) {
            throw QuantizeJobError(.unsupportedConversion, "--kv-cache fp8 cannot calibrate \(input): \(reason)")
        }
        let config = weights.configuration
        let tokenizer = try? TokenizerLoader.load(checkpoint: job.checkpoint)
        let data = try CalibrationSet.load(path: path, tokenizer: tokenizer, vocabularySize: config.vocabularySize,
                                           samples: options.calibrationSamples, length: options.calibrationLength)
        let layers: [KeyValueCacheObserver.LayerScales]
        let states: String
        if let observed {
            layers = observed.scales()
            states = "gptq calibration pass (original layer weights on the quantized earlier layers' output)"
        } else {
            if verbose {
                Format.note("kv-cache: \(data.windows.count) windows × \(options.calibrationLength) tokens (\(data.tokenCount) tokens, \(data.source)); "
                            + "\(config.layerCount) layers, one float pass; memory ≈ \(Format.bytes(data.tokenCount * config.hiddenSize * 4)) of hidden states + one layer's weights")
            }
            layers = try KVCacheCalibration.run(checkpointPath: input, calibration: data, threads: threads, progress: { done, count, seconds in
                guard verbose else { return }
                Format.note(String(format: "kv-cache: layer %d/%d done, %.1f s, ETA %.1f s", done, count, seconds, seconds / Double(done) * Double(count - done)))
            })
            states = options.method == .awq ? "float model (before AWQ's smoothing, as llm-compressor observes them)" : "float model"
        }
        guard layers.count == config.layerCount else {
            throw QuantizeJobError(.outputCheckFailed, "--kv-cache fp8: the calibration observed \(layers.count) of the \(config.layerCount) attention layers; this is a bug in quantize, please report it")
        }
        let dtype = KVCacheCalibration.scaleType(weights)
        var entries: [KeyValueCacheScales.Entry] = []
        for l in layers {
            entries.append(.init(name: WeightRole.keyCacheScale(l.layer).moduleName, value: l.keyScale))
            entries.append(.init(name: WeightRole.valueCacheScale(l.layer).moduleName, value: l.valueScale))
        }
        func number(_ v: Double) -> JSONValue { .number(JSONNumber(v)) }
        func integer(_ v: Int) -> JSONValue { .number(JSONNumber(v)) }
        let record: JSONValue = .object([
            JSONMember("kv_cache", .string("fp8_e4m3")),
            JSONMember("observer", .string("minmax")),
            JSONMember("averaging_constant", number(0.01)),
            JSONMember("scale", .string("max(|running min|, |running max|) / 448 per layer, keys after RoPE")),
            JSONMember("scale_dtype", .string(dtype.rawValue)),
            JSONMember("states", .string(states)),
            JSONMember("calibration", .object([
                JSONMember("source", .string(data.source)),
                JSONMember("samples", integer(data.windows.count)),
                JSONMember("sequence_length", integer(options.calibrationLength)),
                JSONMember("tokens", integer(data.tokenCount)),
            ])),
            JSONMember("seconds", number((Date().timeIntervalSince(started) * 100).rounded() / 100)),
            JSONMember("tool", .string("quantize")),
        ])
        if verbose {
            let k = layers.map(\.keyScale), v = layers.map(\.valueScale)
            Format.note(String(format: "kv-cache: k_scale %.4g…%.4g, v_scale %.4g…%.4g over %d layers",
                               k.min() ?? 0, k.max() ?? 0, v.min() ?? 0, v.max() ?? 0, layers.count) + " (\(dtype.rawValue))")
        }
        return KeyValueCacheScales(entries: entries, dtype: dtype, record: record)
    }
}
