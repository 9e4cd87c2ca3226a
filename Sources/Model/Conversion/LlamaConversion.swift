import Formats
import Foundation
import Quantize

/// Builds the ``ConversionPlan`` of a Hugging Face llama directory: what llama.cpp's
/// `convert_hf_to_gguf.py --outtype f32` writes from it (the "F32 twin"), key by key and tensor by
/// tensor — `LlamaModel.set_gguf_parameters`, gguf-py's `Metadata` heuristics and `size_label`,
/// `_create_vocab_sentencepiece` and `SpecialVocab` (the llama.cpp under .llama.cpp/llama.cpp:
/// conversion/base.py, conversion/llama.py, gguf-py/gguf/{metadata,vocab,utility}.py).
///
/// Scope: `model_type` llama (`LlamaForCausalLM`) without rope scaling or with linear scaling,
/// no attention/MLP biases, no experts, tokenizer.model (SentencePiece). Everything else is
/// refused by ``check(directory:)`` from config.json and the tokenizer files alone, before any
/// weight is read, with what is missing named.
public enum LlamaConversion {
    /// Refuses, from config.json and the tokenizer files alone, a directory this conversion does not
    /// reproduce exactly; returns the parsed config.
    /// - Throws: ``QuantizeJobError`` `.unsupportedConversion` naming what is missing or unsupported.
    @discardableResult
    public static func check(directory: String) throws -> ModelConfig {
        func refuse(_ what: String) -> QuantizeJobError {
            QuantizeJobError(.unsupportedConversion, "\(directory) is a Hugging Face safetensors checkpoint that the GGUF conversion does not handle: \(what). Writing GGUF from a Hugging Face directory supports llama (LlamaForCausalLM, Llama 2/3 without llama3 RoPE scaling) with a SentencePiece tokenizer.model so far. Convert it with llama.cpp's convert_hf_to_gguf.py and run quantize on the .gguf")
        }
        let fm = FileManager.default
        let configPath = directory + "/config.json"
        guard fm.fileExists(atPath: configPath) else { throw refuse("there is no config.json (the model's architecture and sizes)") }
        let raw: JSONValue
        do { raw = try JSONValue.parse(contentsOf: configPath) } catch { throw refuse("config.json does not parse (\(error))") }
        let config = ModelConfig(raw)
        let modelType = config.string("model_type") ?? "(none)"
        guard modelType == "llama" else { throw refuse("config.json model_type is '\(modelType)', not 'llama'") }
        let architectures = config["architectures"]?.array?.compactMap(\.string) ?? []
        guard architectures.first == "LlamaForCausalLM" else {
            throw refuse("config.json architectures is \(architectures.isEmpty ? "missing" : architectures.joined(separator: ", ")), not LlamaForCausalLM")
        }
        for key in ["num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size"] where config.int(key) == nil {
            throw refuse("config.json has no integer \(key)")
        }
        if config.bool("attention_bias") == true || config.bool("mlp_bias") == true {
            throw refuse("config.json sets attention_bias or mlp_bias (bias tensors are not converted yet)")
        }
        for key in ["num_local_experts", "num_experts", "n_routed_experts", "local_rope_theta", "rope_local_theta", "rope_theta_local",
                    "swa_rope_theta", "rope_local_base_freq", "partial_rotary_factor", "rope_pct", "rope_percent", "transformer_layer_config",
                    "draft_vocab_size"] where config[key] != nil && config[key]?.isNull == false {
            throw refuse("config.json has \(key), which this conversion does not handle")
        }
        let rope = ropeParameters(config)
        let ropeType = rope["rope_type"]?.string ?? rope["type"]?.string
        switch ropeType {
        case nil, "default": break
        case "linear" where rope["factor"]?.double != nil: break
        default: throw refuse("config.json asks for RoPE scaling '\(ropeType ?? "")' (llama3 scaling needs the rope_freqs tensor, not built yet)")
        }
        if let vocab = config.int("vocab_size"), vocab == 32016 || vocab == 49152 {
            throw refuse("vocab_size \(vocab) is a CodeLlama/Granite special case of the converter")
        }
        guard fm.fileExists(atPath: directory + "/tokenizer.model") else {
            throw refuse("there is no tokenizer.model (a SentencePiece model); BPE tokenizer.json conversion is not built yet")
        }
        for name in ["tekken.json", "additional_chat_templates"] where fm.fileExists(atPath: directory + "/" + name) {
            throw refuse("it has \(name), which this conversion does not handle")
        }
        if let card = try? String(contentsOfFile: directory + "/README.md", encoding: .utf8), card.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first == "---" {
            throw refuse("README.md has a model card header (license, tags, base models), whose metadata this conversion does not carry yet")
        }
        if let config = try? JSONValue.parse(contentsOf: directory + "/tokenizer_config.json") {
            if config["tokenizer_class"]?.string == "HybridDNATokenizer" { throw refuse("tokenizer_config.json names HybridDNATokenizer") }
            if let prefix = config["add_prefix_space"], !prefix.isNull, prefix.bool == nil { throw refuse("tokenizer_config.json add_prefix_space is not a Boolean") }
            if let template = config["chat_template"], !template.isNull, template.string == nil {
                throw refuse("tokenizer_config.json has a list of chat templates (only one template string is converted)")
            }
        }
        return config
    }

    /// The plan for `checkpoint` (a safetensors model directory that passes ``check(directory:)``).
    /// - Throws: ``QuantizeJobError`` for what the converter would not map (an unknown tensor name,
    ///   a Q/K shape the permutation cannot split), ``ModelError`` for an unreadable tokenizer.model.
    public static func plan(for checkpoint: Checkpoint) throws -> ConversionPlan {
        let directory = checkpoint.directory
        let config = try check(directory: directory)
        func int(_ keys: [String]) -> Int? {
            guard let key = keys.first(where: { config[$0] != nil }) else { return nil }
            return config.int(key)
        }
        let layers = int(["n_layers", "num_hidden_layers", "n_layer", "num_layers"]) ?? 0
        let heads = int(["n_heads", "num_attention_heads"]) ?? 0
        let kvHeads = int(["n_kv_heads", "num_key_value_heads"]) ?? heads

        // Tensors, in the converter's order: part files sorted by name, each file's names sorted.
        let files = checkpoint.files
        let records = checkpoint.tensors.sorted { a, b in
            let fa = URL(fileURLWithPath: files[a.fileIndex]).lastPathComponent, fb = URL(fileURLWithPath: files[b.fileIndex]).lastPathComponent
            return fa != fb ? fa < fb : a.name < b.name
        }
        var tensors: [ConversionPlan.Tensor] = []
        for record in records {
            if record.name.hasSuffix(".rotary_emb.inv_freq") || record.name.hasSuffix(".attention.masked_bias") || record.name.hasSuffix(".attention.bias") { continue }
            guard let (name, permute) = ggufName(record.name, heads: heads, kvHeads: kvHeads, layers: layers) else {
                throw QuantizeJobError(.unsupportedConversion, "\(directory): tensor '\(record.name)' has no llama.cpp name in this conversion (llama: embeddings, norms, q/k/v/o, gate/up/down, lm_head)")
            }
            if let permute {
                let rows = record.shape.first ?? 0
                guard record.shape.count == 2, permute > 0, rows % (2 * permute) == 0 else {
                    throw QuantizeJobError(.unsupportedConversion, "\(directory): '\(record.name)' has shape \(record.shape), whose rows do not split into \(permute) heads of two halves for llama.cpp's Q/K permutation")
                }
            }
            tensors.append(ConversionPlan.Tensor(source: record.name, name: name, shape: record.shape, permuteHeads: permute, type: .f32))
        }

        var metadata: [(key: String, value: GGUFValue)] = [("general.architecture", .string("llama")), ("general.type", .string("model"))]
        let totalParameters = tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }
        metadata += generalMetadata(config: config, directory: directory, totalParameters: totalParameters)
        metadata += hyperparameters(config)
        metadata += try tokenizerMetadata(directory: directory, config: config)
        return ConversionPlan(metadata: metadata, tensors: tensors)
    }

    /// The llama.cpp name of a Hugging Face llama tensor, and the head count of its Q/K permutation.
    static func ggufName(_ name: String, heads: Int, kvHeads: Int, layers: Int) -> (String, Int?)? {
        switch name {
        case "model.embed_tokens.weight": return ("token_embd.weight", nil)
        case "model.norm.weight": return ("output_norm.weight", nil)
        case "lm_head.weight": return ("output.weight", nil)
        default: break
        }
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]), layer >= 0, layer < layers else { return nil }
        let blk = "blk.\(layer)."
        switch rest[rest.index(after: dot)...] {
        case "input_layernorm.weight": return (blk + "attn_norm.weight", nil)
        case "self_attn.q_proj.weight": return (blk + "attn_q.weight", heads)
        case "self_attn.k_proj.weight": return (blk + "attn_k.weight", heads != kvHeads ? kvHeads : heads)
        case "self_attn.v_proj.weight": return (blk + "attn_v.weight", nil)
        case "self_attn.o_proj.weight": return (blk + "attn_output.weight", nil)
        case "post_attention_layernorm.weight": return (blk + "ffn_norm.weight", nil)
        case "mlp.gate_proj.weight": return (blk + "ffn_gate.weight", nil)
        case "mlp.up_proj.weight": return (blk + "ffn_up.weight", nil)
        case "mlp.down_proj.weight": return (blk + "ffn_down.weight", nil)
        default: return nil
        }
    }

    /// `rope_parameters` (or `rope_scaling`) with the top-level rope_theta mirrored, as TextModel builds it.
    static func ropeParameters(_ config: ModelConfig) -> [String: JSONValue] {
        var rope: [String: JSONValue] = [:]
        let source = config["rope_parameters"] ?? config["rope_scaling"]
        for member in source?.object ?? [] { rope[member.key] = member.value }
        if let full = rope["full_attention"]?.object {
            rope = [:]
            for member in full { rope[member.key] = member.value }
            return rope
        }
        let thetaKeys = ["global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta", "rotary_emb_base"]
        if rope["rope_theta"] == nil, let key = thetaKeys.first(where: { config[$0] != nil }), let theta = config[key], !theta.isNull {
            rope["rope_theta"] = theta
        }
        if rope["rope_type"] == nil, let type = rope["type"] { rope["rope_type"] = type }
        return rope
    }

    /// `general.name` and the other `Metadata` fields gguf-py derives without a model card:
    /// from config.json's `_name_or_path` (a model id, not a path) and the directory's name, and
    /// `size_label` from the parameter count.
    static func generalMetadata(config: ModelConfig, directory: String, totalParameters: Int) -> [(key: String, value: GGUFValue)] {
        var name: String?, organization: String?, basename: String?, finetune: String?, version: String?, sizeLabel: String?
        func apply(_ id: String) {
            let parts = ModelIdentifier(id, totalParameters: totalParameters)
            if name == nil, let full = parts.fullName { name = ModelIdentifier.title(full) }
            if organization == nil, let org = parts.organization { organization = ModelIdentifier.title(org) }
            if basename == nil { basename = parts.basename }
            if finetune == nil { finetune = parts.finetune }
            if version == nil { version = parts.version }
            if sizeLabel == nil { sizeLabel = parts.sizeLabel }
        }
        if let id = config.string("_name_or_path"), id.filter({ $0 == "/" }).count <= 1 { apply(id) }
        let folder = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        apply(folder)
        if name == nil { name = folder }
        if sizeLabel == nil, totalParameters > 0 { sizeLabel = ModelIdentifier.sizeLabel(totalParameters) }

        var out: [(key: String, value: GGUFValue)] = []
        if let generation = try? JSONValue.parse(contentsOf: directory + "/generation_config.json") {
            func float(_ key: String) -> Float? { generation[key]?.double.map { Float($0) } }
            func int32(_ key: String) -> Int32? { generation[key]?.int.flatMap { Int32(exactly: $0) } }
            if let v = generation["sequence"]?.string { out.append(("general.sampling.sequence", .string(v))) }
            if let v = int32("top_k") { out.append(("general.sampling.top_k", .int32(v))) }
            if let v = float("top_p") { out.append(("general.sampling.top_p", .float32(v))) }
            if let v = float("min_p") { out.append(("general.sampling.min_p", .float32(v))) }
            if let v = float("xtc_probability") { out.append(("general.sampling.xtc_probability", .float32(v))) }
            if let v = float("xtc_threshold") { out.append(("general.sampling.xtc_threshold", .float32(v))) }
            if let v = float("temperature") { out.append(("general.sampling.temp", .float32(v))) }
            if let v = int32("penalty_last_n") { out.append(("general.sampling.penalty_last_n", .int32(v))) }
            if let v = float("penalty_repeat") ?? float("repetition_penalty") { out.append(("general.sampling.penalty_repeat", .float32(v))) }
            if let v = int32("mirostat") { out.append(("general.sampling.mirostat", .int32(v))) }
            if let v = float("mirostat_tau") { out.append(("general.sampling.mirostat_tau", .float32(v))) }
            if let v = float("mirostat_eta") { out.append(("general.sampling.mirostat_eta", .float32(v))) }
        }
        out.append(("general.name", .string(name ?? folder)))
        if let version { out.append(("general.version", .string(version))) }
        if let organization { out.append(("general.organization", .string(organization))) }
        if let finetune { out.append(("general.finetune", .string(finetune))) }
        if let basename { out.append(("general.basename", .string(basename))) }
        if let sizeLabel { out.append(("general.size_label", .string(sizeLabel))) }
        return out
    }

    /// `TextModel.set_gguf_parameters` + `LlamaModel.set_gguf_parameters` for the keys a plain
    /// llama config has (general.file_type is the sink's).
    static func hyperparameters(_ config: ModelConfig) -> [(key: String, value: GGUFValue)] {
        var out: [(key: String, value: GGUFValue)] = []
        func first(_ keys: [String]) -> JSONValue? {
            guard let key = keys.first(where: { config[$0] != nil }), let value = config[key], !value.isNull else { return nil }
            return value
        }
        func u32(_ key: String, _ keys: [String]) {
            if let v = first(keys)?.int, let u = UInt32(exactly: v) { out.append(("llama." + key, .uint32(u))) }
        }
        u32("block_count", ["n_layers", "num_hidden_layers", "n_layer", "num_layers"])
        u32("context_length", ["max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"])
        u32("embedding_length", ["hidden_size", "n_embd", "dim"])
        u32("feed_forward_length", ["prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner", "hidden_dim"])
        u32("attention.head_count", ["num_attention_heads", "n_head", "n_heads"])
        u32("attention.head_count_kv", ["num_key_value_heads", "n_kv_heads"])
        if config.bool("is_causal") == false { out.append(("llama.attention.causal", .bool(false))) }
        let rope = ropeParameters(config)
        if (rope["rope_type"]?.string ?? "") == "linear", let factor = rope["factor"]?.double {
            out.append(("llama.rope.scaling.type", .string("linear")))
            out.append(("llama.rope.scaling.factor", .float32(Float(factor))))
        }
        if let theta = rope["rope_theta"]?.double { out.append(("llama.rope.freq_base", .float32(Float(theta)))) }
        if let eps = first(["rms_norm_eps", "norm_eps"])?.double { out.append(("llama.attention.layer_norm_rms_epsilon", .float32(Float(eps)))) }
        if let eps = first(["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"])?.double { out.append(("llama.attention.layer_norm_epsilon", .float32(Float(eps)))) }
        if let headDim = config["head_dim"]?.int, let u = UInt32(exactly: headDim) {
            out.append(("llama.attention.key_length", .uint32(u)))
            out.append(("llama.attention.value_length", .uint32(u)))
        }
        if let vocab = config.int("vocab_size"), let u = UInt32(exactly: vocab) { out.append(("llama.vocab_size", .uint32(u))) }
        let ropeDimension = config["head_dim"]?.int ?? ((config.int("hidden_size") ?? 0) / max(1, config.int("num_attention_heads") ?? 1))
        if let u = UInt32(exactly: ropeDimension) { out.append(("llama.rope.dimension_count", .uint32(u))) }
        return out
    }
}
