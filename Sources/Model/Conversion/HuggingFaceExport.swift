import Formats
import Foundation
import Quantize

/// Builds the ``ExportPlan`` of a GGUF file: the Hugging Face directory transformers loads for it —
/// tensor names (the inverse of ``LlamaConversion``'s mapping), the inverse Q/K row permutation,
/// config.json and generation_config.json from the metadata, and the tokenizer rebuilt from the
/// vocabulary (tokenizer.model for `tokenizer.ggml.model = llama`, tokenizer.json for `gpt2`) with
/// tokenizer_config.json.
///
/// Scope: `general.architecture` llama (Llama 2/3, Mistral: LlamaForCausalLM) and qwen2
/// (Qwen2ForCausalLM, with q/k/v biases); a GGUF whose metadata or tensors this mapping does not
/// carry exactly (llama3 `rope_freqs`, experts, another architecture, partial rotary) is refused
/// before any weight is read, naming what is missing.
public enum HuggingFaceExport {
    /// One architecture the export writes.
    struct Architecture {
        /// `general.architecture`.
        var name: String
        /// config.json `model_type`.
        var modelType: String
        /// config.json `architectures`.
        var className: String
        /// Whether llama.cpp's converter permuted Q/K rows (llama does, qwen2 does not).
        var permutesQK: Bool
        /// Whether q/k/v carry biases.
        var hasQKVBias: Bool
    }

    static let architectures: [Architecture] = [
        Architecture(name: "llama", modelType: "llama", className: "LlamaForCausalLM", permutesQK: true, hasQKVBias: false),
        Architecture(name: "qwen2", modelType: "qwen2", className: "Qwen2ForCausalLM", permutesQK: false, hasQKVBias: true),
    ]

    /// The plan for `gguf`.
    /// - Throws: ``QuantizeJobError`` `.unsupportedConversion` naming what the export does not
    ///   carry (architecture, a tensor without a Hugging Face name, a metadata feature), from the
    ///   header alone.
    /// llama3 RoPE scaling's `rope_parameters`, recovered from a GGUF's `rope_freqs.weight`.
    struct Llama3Rope {
        var factor: Double
        var lowFrequencyFactor: Double
        var highFrequencyFactor: Double
        var originalContext: Int
        var note: String
    }

    /// The llama3 `rope_parameters` whose factors, computed as the converter computes them
    /// (``LlamaConversion/llama3RopeFactors(base:dimension:factor:lowFrequencyFactor:highFrequencyFactor:originalContext:)``),
    /// equal the GGUF's `rope_freqs.weight` bit for bit. The tensor holds the factors, not the
    /// parameters: `factor` is its largest value, and the other three are searched (the published
    /// Llama 3.1/3.2 values first: low 1, high 4, 8192 positions). When no frequency falls in the
    /// smooth band several choices give the same tensor — and then the same model in transformers
    /// and llama.cpp, which use only those factors — and the first is taken.
    static func recoverLlama3Rope(_ gguf: GGUFFile, _ info: GGUFTensorInfo, base: Double, dimension: Int, context: Int?,
                                  refuse: (String) -> QuantizeJobError) throws -> Llama3Rope {
        guard info.type == .f32, info.elementCount == dimension / 2, dimension > 0, dimension % 2 == 0 else {
            throw refuse("its rope_freqs.weight is \(info.type.name) of \(info.elementCount) values; llama3 RoPE scaling has \(dimension / 2) F32 factors")
        }
        let bytes = try gguf.readData(for: info)
        let stored = (0..<info.elementCount).map { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        guard let largest = stored.max(), largest.isFinite, largest >= 1 else {
            throw refuse("its rope_freqs.weight holds factors below 1 or not finite, which llama3 RoPE scaling does not make")
        }
        let factors: [Double] = largest > 1 ? [Double(largest)] : [8, 32, 16, 4]
        var contexts = [8192]
        for power in 4...20 where 1 << power != 8192 { contexts.append(1 << power) }
        if let context, !contexts.contains(context) { contexts.append(context) }
        for factor in factors {
            for (low, high) in [(1.0, 4.0), (1.0, 2.0), (1.0, 8.0), (2.0, 4.0), (0.5, 4.0), (1.0, 16.0)] {
                for old in contexts {
                    let computed = LlamaConversion.llama3RopeFactors(base: base, dimension: dimension, factor: factor, lowFrequencyFactor: low,
                                                                     highFrequencyFactor: high, originalContext: Double(old))
                    guard computed.map(\.bitPattern) == stored.map(\.bitPattern) else { continue }
                    return Llama3Rope(factor: factor, lowFrequencyFactor: low, highFrequencyFactor: high, originalContext: old,
                                      note: "rope_freqs.weight was recognised as llama3 RoPE scaling (factor \(Float(factor)), low_freq_factor \(low), high_freq_factor \(high), original_max_position_embeddings \(old)): those rope_parameters give the same factors bit for bit")
                }
            }
        }
        throw refuse("its rope_freqs.weight matches no llama3 RoPE scaling (factor \(largest), low/high frequency factors 0.5-16, 16-1M original positions), so its rope_parameters cannot be recovered")
    }

    /// `shards`: every shard of a gguf-split set, first (`gguf`) first; nil for one file.
    public static func plan(for gguf: GGUFFile, shards: [GGUFFile]? = nil) throws -> ExportPlan {
        let path = gguf.path
        let shards = shards ?? [gguf]
        var infos: [String: (info: GGUFTensorInfo, shard: GGUFFile)] = [:]
        for shard in shards { for info in shard.tensors where infos[info.name] == nil { infos[info.name] = (info, shard) } }
        let allTensors = shards.flatMap(\.tensors)
        func refuse(_ what: String) -> QuantizeJobError {
            QuantizeJobError(.unsupportedConversion, "\(path) cannot be exported to a Hugging Face directory: \(what). The export writes llama (Llama 2/3, Mistral) and qwen2 GGUFs so far")
        }
        let archName = gguf["general.architecture"]?.string ?? "(none)"
        guard let arch = architectures.first(where: { $0.name == archName }) else {
            throw refuse("general.architecture is '\(archName)'")
        }
        let p = arch.name + "."
        func int(_ key: String) -> Int? { gguf[p + key]?.int }
        func float(_ key: String) -> Double? { gguf[p + key]?.double }
        guard let layers = int("block_count"), let hidden = int("embedding_length"), let heads = int("attention.head_count"), heads > 0,
              let feedForward = int("feed_forward_length") else {
            throw refuse("it lacks \(p)block_count, embedding_length, attention.head_count or feed_forward_length")
        }
        let kvHeads = int("attention.head_count_kv") ?? heads
        for key in ["expert_count", "attention.sliding_window", "rope.scaling.original_context_length"] where gguf[p + key] != nil {
            throw refuse("it has \(p)\(key), which this export does not carry")
        }
        let headDim = int("attention.key_length")
        var llama3Rope: Llama3Rope? = nil
        if let (info, shard) = infos["rope_freqs.weight"] {
            llama3Rope = try recoverLlama3Rope(shard, info, base: float("rope.freq_base") ?? 10000, dimension: headDim ?? hidden / heads,
                                               context: int("context_length"), refuse: refuse)
        }
        if let valueLength = int("attention.value_length"), valueLength != (headDim ?? hidden / heads) {
            throw refuse("\(p)attention.value_length \(valueLength) differs from the key length")
        }
        if let rotary = int("rope.dimension_count"), rotary != (headDim ?? hidden / heads) {
            throw refuse("\(p)rope.dimension_count \(rotary) is not the head size \(headDim ?? hidden / heads) (partial rotary)")
        }
        let tokens = gguf["tokenizer.ggml.tokens"]?.array ?? []
        let vocabSize = int("vocab_size") ?? (tokens.isEmpty ? infos["token_embd.weight"]?.info.dimensions.last : tokens.count) ?? 0

        // Tensors, in the order transformers registers the modules (its state dict's order).
        var tensors: [ExportPlan.Tensor] = []
        var used: Set<String> = llama3Rope == nil ? [] : ["rope_freqs.weight"]  // recomputed by the converter from rope_parameters
        func add(_ source: String, _ name: String, unpermute: Int? = nil, required: Bool = true) throws {
            guard let info = infos[source]?.info else {
                if required { throw refuse("it has no tensor \(source)") }
                return
            }
            used.insert(source)
            tensors.append(ExportPlan.Tensor(source: source, name: name, shape: info.shape, unpermuteHeads: unpermute))
        }
        try add("token_embd.weight", "model.embed_tokens.weight")
        for layer in 0..<layers {
            let blk = "blk.\(layer).", hf = "model.layers.\(layer)."
            try add(blk + "attn_q.weight", hf + "self_attn.q_proj.weight", unpermute: arch.permutesQK ? heads : nil)
            if arch.hasQKVBias { try add(blk + "attn_q.bias", hf + "self_attn.q_proj.bias") }
            try add(blk + "attn_k.weight", hf + "self_attn.k_proj.weight", unpermute: arch.permutesQK ? kvHeads : nil)
            if arch.hasQKVBias { try add(blk + "attn_k.bias", hf + "self_attn.k_proj.bias") }
            try add(blk + "attn_v.weight", hf + "self_attn.v_proj.weight")
            if arch.hasQKVBias { try add(blk + "attn_v.bias", hf + "self_attn.v_proj.bias") }
            try add(blk + "attn_output.weight", hf + "self_attn.o_proj.weight")
            try add(blk + "ffn_gate.weight", hf + "mlp.gate_proj.weight")
            try add(blk + "ffn_up.weight", hf + "mlp.up_proj.weight")
            try add(blk + "ffn_down.weight", hf + "mlp.down_proj.weight")
            try add(blk + "attn_norm.weight", hf + "input_layernorm.weight")
            try add(blk + "ffn_norm.weight", hf + "post_attention_layernorm.weight")
        }
        try add("output_norm.weight", "model.norm.weight")
        try add("output.weight", "lm_head.weight", required: false)
        let tied = !used.contains("output.weight")
        if let extra = allTensors.first(where: { !used.contains($0.name) }) {
            throw refuse("its tensor \(extra.name) has no Hugging Face name in this export")
        }
        for tensor in tensors {
            if let heads = tensor.unpermuteHeads, tensor.shape.count != 2 || (tensor.shape.first ?? 0) % (2 * heads) != 0 {
                throw refuse("\(tensor.source) has shape \(tensor.shape), whose rows do not split into \(heads) heads of two halves")
            }
        }

        let vocabulary = try TokenizerExport(gguf: gguf)
        var notes = vocabulary.notes
        var config: [JSONMember] = []
        func number(_ value: Int) -> JSONValue { .number(JSONNumber(value)) }
        /// A float32 from the GGUF as its shortest decimal (1e-05, not 9.99999974738e-06).
        func real(_ value: Double) -> JSONValue { .number(JSONNumber(Double(Float(value).description) ?? value)) }
        if let id = nameOrPath(gguf, parameters: allTensors.reduce(0) { $0 + $1.elementCount }) { config.append(JSONMember("_name_or_path", .string(id))) }
        config.append(JSONMember("architectures", .array([.string(arch.className)])))
        config.append(JSONMember("attention_dropout", .number(JSONNumber(0.0))))
        if arch.name == "llama" {
            config.append(JSONMember("attention_bias", .bool(false)))
            config.append(JSONMember("mlp_bias", .bool(false)))
            config.append(JSONMember("pretraining_tp", number(1)))
        }
        for (type, id) in vocabulary.specialIDs { config.append(JSONMember("\(type)_token_id", number(id))) }
        if let headDim { config.append(JSONMember("head_dim", number(headDim))) }
        config.append(JSONMember("hidden_act", .string("silu")))
        config.append(JSONMember("hidden_size", number(hidden)))
        config.append(JSONMember("initializer_range", .number(JSONNumber(0.02))))
        config.append(JSONMember("intermediate_size", number(feedForward)))
        if gguf[p + "attention.causal"]?.bool == false { config.append(JSONMember("is_causal", .bool(false))) }
        if let context = int("context_length") { config.append(JSONMember("max_position_embeddings", number(context))) }
        config.append(JSONMember("model_type", .string(arch.modelType)))
        config.append(JSONMember("num_attention_heads", number(heads)))
        config.append(JSONMember("num_hidden_layers", number(layers)))
        config.append(JSONMember("num_key_value_heads", number(kvHeads)))
        if let eps = float("attention.layer_norm_rms_epsilon") { config.append(JSONMember("rms_norm_eps", real(eps))) }
        var rope: [JSONMember] = []
        let scaling = gguf[p + "rope.scaling.type"]?.string
        switch scaling {
        case nil, "none":
            if let llama3Rope {
                rope.append(JSONMember("factor", real(llama3Rope.factor)))
                rope.append(JSONMember("high_freq_factor", real(llama3Rope.highFrequencyFactor)))
                rope.append(JSONMember("low_freq_factor", real(llama3Rope.lowFrequencyFactor)))
                rope.append(JSONMember("original_max_position_embeddings", number(llama3Rope.originalContext)))
            }
        case "linear" where llama3Rope != nil:
            throw refuse("it has both linear RoPE scaling and rope_freqs.weight")
        case "linear":
            guard let factor = float("rope.scaling.factor") else { throw refuse("\(p)rope.scaling.type is linear without rope.scaling.factor") }
            rope.append(JSONMember("factor", real(factor)))
        default: throw refuse("\(p)rope.scaling.type is '\(scaling ?? "")' (only linear scaling is carried)")
        }
        let theta = float("rope.freq_base") ?? 10000
        rope.append(JSONMember("rope_theta", real(theta)))
        rope.append(JSONMember("rope_type", .string(llama3Rope != nil ? "llama3" : scaling == "linear" ? "linear" : "default")))
        if let llama3Rope { notes.append(llama3Rope.note) }
        config.append(JSONMember("rope_parameters", .object(rope)))
        if arch.name == "qwen2" {
            config.append(JSONMember("sliding_window", .null))
            config.append(JSONMember("use_sliding_window", .bool(false)))
        }
        config.append(JSONMember("tie_word_embeddings", .bool(tied)))
        config.append(JSONMember("use_cache", .bool(true)))
        config.append(JSONMember("vocab_size", number(vocabSize)))
        if vocabSize != tokens.count, !tokens.isEmpty {
            notes.append("the vocabulary has \(tokens.count) tokens for \(vocabSize) embedding rows")
        }
        config.sort { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }

        var files: [ExportPlan.File] = []
        files.append(ExportPlan.File(name: "generation_config.json", bytes: document(generationConfig(gguf, special: vocabulary.specialIDs))))
        files += vocabulary.files
        return ExportPlan(tensors: tensors, config: .object(config), files: files, notes: notes)
    }

    /// generation_config.json: the special ids and the `general.sampling.*` defaults, as
    /// ``LlamaConversion`` reads them back (`repetition_penalty` for `penalty_repeat`).
    static func generationConfig(_ gguf: GGUFFile, special: [(String, Int)]) -> JSONValue {
        var members: [JSONMember] = []
        func real(_ value: Double) -> JSONValue { .number(JSONNumber(Double(Float(value).description) ?? value)) }
        for (type, id) in special where ["bos", "eos", "pad"].contains(type) { members.append(JSONMember("\(type)_token_id", .number(JSONNumber(id)))) }
        let sampling: [(gguf: String, json: String, isInteger: Bool)] = [
            ("top_k", "top_k", true), ("top_p", "top_p", false), ("min_p", "min_p", false), ("temp", "temperature", false),
            ("penalty_repeat", "repetition_penalty", false), ("penalty_last_n", "penalty_last_n", true),
            ("xtc_probability", "xtc_probability", false), ("xtc_threshold", "xtc_threshold", false),
            ("mirostat", "mirostat", true), ("mirostat_tau", "mirostat_tau", false), ("mirostat_eta", "mirostat_eta", false),
        ]
        var sampled = false
        for entry in sampling {
            guard let value = gguf["general.sampling." + entry.gguf] else { continue }
            sampled = true
            if entry.isInteger, let v = value.int { members.append(JSONMember(entry.json, .number(JSONNumber(v)))) }
            else if let v = value.double { members.append(JSONMember(entry.json, real(v))) }
        }
        if let sequence = gguf["general.sampling.sequence"]?.string { members.append(JSONMember("sequence", .string(sequence))); sampled = true }
        if sampled { members.append(JSONMember("do_sample", .bool(true))) }
        members.sort { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        return .object(members)
    }

    /// A `_name_or_path` from which llama.cpp's converter (gguf-py's `Metadata`) derives the same
    /// `general.name`, organization, basename, finetune, version and size label as this GGUF
    /// has: the first candidate that reproduces them all, else nil (the directory's name then decides).
    static func nameOrPath(_ gguf: GGUFFile, parameters: Int) -> String? {
        guard let name = gguf["general.name"]?.string else { return nil }
        let organization = gguf["general.organization"]?.string, basename = gguf["general.basename"]?.string
        let finetune = gguf["general.finetune"]?.string, version = gguf["general.version"]?.string
        let sizeLabel = gguf["general.size_label"]?.string
        var candidates: [String] = []
        let parts = [basename, sizeLabel, finetune, version].compactMap { $0 }
        let dashed = name.replacingOccurrences(of: " ", with: "-")
        for stem in [parts.joined(separator: "-"), dashed, name] where !stem.isEmpty {
            candidates.append(stem)
            if let organization { candidates.append(organization.replacingOccurrences(of: " ", with: "-") + "/" + stem) }
        }
        for candidate in candidates where candidate.filter({ $0 == "/" }).count <= 1 {
            let id = ModelIdentifier(candidate, totalParameters: parameters)
            let derivedName = id.fullName.map(ModelIdentifier.title)
            let derivedOrganization = id.organization.map(ModelIdentifier.title)
            // The size label falls back to the parameter count when the id has none.
            let derivedSize = id.sizeLabel ?? (parameters > 0 ? ModelIdentifier.sizeLabel(parameters) : nil)
            if derivedName == name, derivedOrganization == organization, id.basename == basename, id.finetune == finetune,
               id.version == version, derivedSize == sizeLabel {
                return candidate
            }
        }
        return nil
    }

    /// A JSON document as transformers writes one (`indent=2`, keys as given, UTF-8 kept, newline).
    static func document(_ value: JSONValue) -> [UInt8] {
        value.serialized(JSONStyle(indent: 2, sortKeys: false, escapeNonASCII: false)) + [UInt8(ascii: "\n")]
    }
}
