import Formats

/// The FP8 KV-cache scales of ``QuantizeJob/Settings/keyValueCache``: refused where they cannot
/// go, declared in the last shard, written after every planned tensor, declared in the config.
extension QuantizeJob {
    /// Refuses KV-cache scales for a GGUF output or a scheme without a compressed-tensors config,
    /// and scales that vLLM could not use.
    static func checkKeyValueCache(_ scales: KeyValueCacheScales, kind: OutputKind, checkpoint: Checkpoint, scheme: Scheme) throws {
        if kind == .gguf {
            throw QuantizeJobError(.unsupportedConversion, "--kv-cache fp8 writes per-layer k_scale/v_scale tensors and kv_cache_scheme for vLLM; a GGUF file has no place for them and llama.cpp computes no such scales. For a smaller KV cache in llama.cpp, quantize the cache when serving: llama-server -fa on --cache-type-k q8_0 --cache-type-v q8_0")
        }
        guard scheme.quantizationConfig(ignore: [])?["quant_method"]?.string == "compressed-tensors" else {
            throw QuantizeJobError(.unsupportedConversion, "--kv-cache fp8 declares the cache in compressed-tensors' kv_cache_scheme; \(scheme.name.rawValue) with this granularity writes another quantization_config (vLLM's fp8 block layout). Use per-channel or per-tensor fp8, int8 or int4")
        }
        try scales.validate(against: checkpoint)
    }

    /// Adds the scale tensors to the last shard (vLLM and transformers find them through the index).
    func appendKeyValueCacheEntries(to shards: inout [SafetensorsShardedWriter.PlannedShard]) {
        guard let scales = settings.keyValueCache, !shards.isEmpty else { return }
        shards[shards.count - 1].tensors += scales.outputs.map { SafetensorsEntry(name: $0.name, dtype: scales.dtype, shape: $0.shape) }
    }

    /// Writes the scale tensors, after the planned tensors (the last shard's last entries).
    func writeKeyValueCacheScales(write: (OutputTensor, UnsafeRawBufferPointer) throws -> Void) throws {
        guard let scales = settings.keyValueCache else { return }
        for (i, output) in scales.outputs.enumerated() {
            let bytes = try scales.bytes(i)
            try bytes.withUnsafeBytes { try write(output, $0) }
        }
    }

    /// `config` with `kv_cache_scheme` set when the run writes KV-cache scales.
    func withKeyValueCacheScheme(_ config: JSONValue?) -> JSONValue? {
        guard settings.keyValueCache != nil, case .object(var members)? = config else { return config }
        if let i = members.firstIndex(where: { $0.key == "kv_cache_scheme" }) {
            members[i] = JSONMember("kv_cache_scheme", KeyValueCacheScales.scheme)
        } else {
            members.append(JSONMember("kv_cache_scheme", KeyValueCacheScales.scheme))
        }
        return .object(members)
    }
}
