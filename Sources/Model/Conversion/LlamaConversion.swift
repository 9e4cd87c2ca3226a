import Formats
import Foundation
import Quantize

/// Builds the ``ConversionPlan`` of a Hugging Face llama-family directory: what llama.cpp's
/// `convert_hf_to_gguf.py --outtype f32` writes from it (the "F32 twin"), key by key and tensor by
/// tensor — `LlamaModel` / `Qwen2Model` `set_gguf_parameters`, `generate_extra_tensors` (llama3's
/// `rope_freqs`), gguf-py's `Metadata` heuristics and `size_label`, `_create_vocab_sentencepiece`
/// or `get_vocab_base` (byte-level BPE tokenizer.json) and `SpecialVocab` (the llama.cpp under
/// .llama.cpp/llama.cpp: conversion/{base,llama,qwen}.py, gguf-py/gguf/{metadata,vocab,utility}.py).
///
/// Scope (``ConversionFamily``): `LlamaForCausalLM` and `MistralForCausalLM` (llama.cpp's `llama`
/// architecture: no RoPE scaling, linear, or llama3 with its computed `rope_freqs`) and
/// `Qwen2ForCausalLM` (`qwen2`, with its q/k/v biases) and `Qwen3ForCausalLM` (`qwen3`, with its
/// Q/K norms), no experts; the tokenizer from
/// tokenizer.model (SentencePiece; llama and Mistral) or a byte-level BPE tokenizer.json whose
/// pre-tokenizer llama.cpp knows by its check-text hash. Everything else is refused by
/// ``check(directory:)`` from config.json and the tokenizer files alone, before any weight is read,
/// with what is missing named.
public enum LlamaConversion {
    /// Refuses, from config.json and the tokenizer files alone, a directory this conversion does not
    /// reproduce exactly; returns the parsed config.
    /// - Throws: ``QuantizeJobError`` `.unsupportedConversion` naming what is missing or unsupported.
    @discardableResult
    public static func check(directory: String) throws -> ModelConfig {
        try inspect(directory: directory).config
    }

    /// What ``check(directory:)`` finds: the config, its family and how its vocabulary is converted.
    struct Inspection {
        var config: ModelConfig
        var family: ConversionFamily
        /// The BPE vocabulary (tokenizer.json) when there is no tokenizer.model.
        var bpe: BPEVocabulary?
    }

    static func refusal(_ directory: String, _ what: String) -> QuantizeJobError {
        QuantizeJobError(.unsupportedConversion, "\(directory) is a Hugging Face safetensors checkpoint that the GGUF conversion does not handle: \(what). Writing GGUF from a Hugging Face directory supports \(ConversionFamily.supportedSummary) so far. Convert it with llama.cpp's convert_hf_to_gguf.py and run quantize on the .gguf")
    }

    static func inspect(directory: String) throws -> Inspection {
        func refuse(_ what: String) -> QuantizeJobError { refusal(directory, what) }
        let fm = FileManager.default
        let configPath = directory + "/config.json"
        guard fm.fileExists(atPath: configPath) else { throw refuse("there is no config.json (the model's architecture and sizes)") }
        let raw: JSONValue
        do { raw = try JSONValue.parse(contentsOf: configPath) } catch { throw refuse("config.json does not parse (\(error))") }
        let config = ModelConfig(raw)
        let modelType = config.string("model_type") ?? "(none)"
        guard let family = ConversionFamily.all.first(where: { $0.modelType == modelType }) else {
            throw refuse("config.json model_type is '\(modelType)', not one of \(ConversionFamily.all.map { "'\($0.modelType)'" }.joined(separator: ", "))")
        }
        let architectures = config["architectures"]?.array?.compactMap(\.string) ?? []
        guard let architecture = architectures.first, architecture == family.architecture else {
            throw refuse("config.json architectures is \(architectures.isEmpty ? "missing" : architectures.joined(separator: ", ")), not \(family.architecture) (model_type '\(modelType)')")
        }
        for key in ["num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size"] where config.int(key) == nil {
            throw refuse("config.json has no integer \(key)")
        }
        if let quantization = config["quantization_config"], !quantization.isNull {
            try checkStoredQuantization(quantization, refuse: refuse)
        }
        if !family.hasAttentionBiases, config.bool("attention_bias") == true || config.bool("mlp_bias") == true {
            throw refuse("config.json sets attention_bias or mlp_bias (\(family.architecture) bias tensors are not converted yet)")
        }
        if family.hasAttentionBiases, config.bool("mlp_bias") == true { throw refuse("config.json sets mlp_bias") }
        for key in ["num_local_experts", "num_experts", "n_routed_experts", "local_rope_theta", "rope_local_theta", "rope_theta_local",
                    "swa_rope_theta", "rope_local_base_freq", "partial_rotary_factor", "rope_pct", "rope_percent", "transformer_layer_config",
                    "draft_vocab_size", "text_config", "mrope_section", "classifier_pooling", "num_experts_per_tok", "n_group", "topk_group",
                    "score_function", "scoring_func"] where config[key] != nil && config[key]?.isNull == false {
            throw refuse("config.json has \(key), which this conversion does not handle")
        }
        let rope = ropeParameters(config)
        let ropeType = rope["rope_type"]?.string ?? rope["type"]?.string
        switch ropeType?.lowercased() {
        case nil, "default": break
        case "linear" where rope["factor"]?.double != nil: break
        case "llama3" where family.computesLlama3RopeFrequencies: break
        default: throw refuse("config.json asks for RoPE scaling '\(ropeType ?? "")'\(ropeType?.lowercased() == "llama3" ? " on \(family.architecture) (llama3 scaling is converted for llama and Mistral)" : ""), which this conversion does not write")
        }
        if rope["mrope_section"] != nil || rope["sliding_attention"] != nil { throw refuse("config.json's RoPE parameters have mrope_section or sliding_attention") }
        if let vocab = config.int("vocab_size"), family.ggufArchitecture == "llama", vocab == 32016 || vocab == 49152 {
            throw refuse("vocab_size \(vocab) is a CodeLlama/Granite special case of the converter")
        }
        for name in ["tekken.json", "additional_chat_templates", "modules.json"] where fm.fileExists(atPath: directory + "/" + name) {
            throw refuse("it has \(name), which this conversion does not handle")
        }
        if let card = try? String(contentsOfFile: directory + "/README.md", encoding: .utf8), card.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first == "---" {
            throw refuse("README.md has a model card header (license, tags, base models), whose metadata this conversion does not carry yet")
        }
        if family.modelType == "qwen3" {
            // Qwen3Model turns a reranker (found by these names) into a classifier; that is not converted.
            let hints = [URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent, config.string("_name_or_path") ?? ""].map { $0.lowercased() }
            let card = ((try? String(contentsOfFile: directory + "/README.md", encoding: .utf8)) ?? "").lowercased()
            if hints.contains(where: { $0.contains("qwen3-reranker") || $0.contains("qwen3-vl-reranker") }) || card.contains("# qwen3-reranker") || card.contains("# qwen3-vl-reranker") {
                throw refuse("it looks like a Qwen3 reranker (its name or model card), which the converter writes as a classifier")
            }
        }
        let tokenizerConfig = try? JSONValue.parse(contentsOf: directory + "/tokenizer_config.json")
        if let config = tokenizerConfig {
            if config["tokenizer_class"]?.string == "HybridDNATokenizer" { throw refuse("tokenizer_config.json names HybridDNATokenizer") }
            if let prefix = config["add_prefix_space"], !prefix.isNull, prefix.bool == nil { throw refuse("tokenizer_config.json add_prefix_space is not a Boolean") }
            if let template = config["chat_template"], !template.isNull, template.string == nil {
                throw refuse("tokenizer_config.json has a list of chat templates (only one template string is converted)")
            }
        }
        if fm.fileExists(atPath: directory + "/tokenizer.model") {
            guard family.readsSentencePiece else { throw refuse("it has a SentencePiece tokenizer.model, which is converted for llama and Mistral only") }
            return Inspection(config: config, family: family, bpe: nil)
        }
        guard fm.fileExists(atPath: directory + "/tokenizer.json") else {
            throw refuse("there is no tokenizer.model (SentencePiece) and no tokenizer.json (byte-level BPE)")
        }
        let bpe = try BPEVocabulary(directory: directory, config: config, tokenizerConfig: tokenizerConfig, refuse: refuse)
        return Inspection(config: config, family: family, bpe: bpe)
    }

    /// Refuses a `quantization_config` whose weights the conversion does not decode. Decoded (to the
    /// FP32 the converter's `dequant_model` computes, `weight.float() * scale`): vLLM/DeepSeek `fp8`
    /// (`weight_scale_inv` blocks or `weight_scale`) and compressed-tensors `float-quantized`,
    /// `int-quantized`, `naive-quantized` and `pack-quantized` (4/8-bit, channel, group, block or
    /// tensor scales, with or without zero points).
    static func checkStoredQuantization(_ quantization: JSONValue, refuse: (String) -> QuantizeJobError) throws {
        let method = quantization["quant_method"]?.string ?? "(none)"
        let decoded = "fp8 and compressed-tensors float-quantized, int-quantized and pack-quantized weights are decoded"
        switch method {
        case "fp8":
            if let block = quantization["weight_block_size"], !block.isNull,
               !(block.array.map { $0.count == 2 && $0.allSatisfy { ($0.int ?? 0) > 0 } } ?? false) {
                throw refuse("config.json quantization_config.weight_block_size is not two positive integers")
            }
        case "compressed-tensors":
            let formats = ["float-quantized", "int-quantized", "naive-quantized", "pack-quantized"]
            let global = quantization["format"]?.string
            if let sparsity = quantization["sparsity_config"], !sparsity.isNull, let format = sparsity["format"]?.string, format != "dense" {
                throw refuse("its weights are sparse-compressed (quantization_config.sparsity_config format '\(format)'), which is not decoded; \(decoded)")
            }
            let groups = quantization["config_groups"]?.object ?? []
            if groups.isEmpty { throw refuse("config.json quantization_config has no config_groups, so nothing says how its weights are stored") }
            for group in groups {
                let format = group.value["format"]?.string ?? global ?? "(none)"
                guard formats.contains(format) else {
                    throw refuse("config group \(group.key) stores its weights as compressed-tensors '\(format)', which is not decoded; \(decoded)")
                }
                let weights = group.value["weights"]
                let bits = weights?["num_bits"]?.int ?? 0, type = weights?["type"]?.string ?? "int"
                guard (type == "float" && bits == 8) || (type == "int" && (bits == 8 || (bits == 4 && format == "pack-quantized"))) else {
                    throw refuse("config group \(group.key) has \(bits)-bit \(type) weights in '\(format)', which is not decoded; \(decoded)")
                }
                if let order = weights?["actorder"]?.string, order == "group" {
                    throw refuse("config group \(group.key) orders its groups by activation (actorder 'group', a weight_g_idx per column), which is not decoded")
                }
            }
        default:
            throw refuse("it is quantized with quant_method '\(method)' (config.json quantization_config), which is not decoded; \(decoded). Convert the original BF16/F16 directory instead")
        }
    }

    /// The plan for `checkpoint` (a safetensors model directory that passes ``check(directory:)``).
    /// - Throws: ``QuantizeJobError`` for what the converter would not map (an unknown tensor name,
    ///   a Q/K shape the permutation cannot split), ``ModelError`` for an unreadable tokenizer.model.
    public static func plan(for checkpoint: Checkpoint) throws -> ConversionPlan {
        try plan(for: checkpoint, inspection: try inspect(directory: checkpoint.directory))
    }

    /// The plan for the model directory `directory`: refused from config.json and the tokenizer
    /// files alone (``check(directory:)``, whose tokenizer is then reused) before `open` reads the
    /// weight headers.
    public static func plan(directory: String, open: () throws -> Checkpoint) throws -> ConversionPlan {
        let inspection = try inspect(directory: directory)
        return try plan(for: try open(), inspection: inspection)
    }

    static func plan(for checkpoint: Checkpoint, inspection: Inspection) throws -> ConversionPlan {
        let directory = checkpoint.directory
        let config = inspection.config, family = inspection.family
        func int(_ keys: [String]) -> Int? {
            guard let key = keys.first(where: { config[$0] != nil }) else { return nil }
            return config.int(key)
        }
        let layers = int(["n_layers", "num_hidden_layers", "n_layer", "num_layers"]) ?? 0
        let heads = int(["n_heads", "num_attention_heads"]) ?? 0
        let kvHeads = int(["n_kv_heads", "num_key_value_heads"]) ?? heads

        // Tensors, in the converter's order: the computed ones first, then part files sorted by
        // name, each file's names sorted.
        var tensors: [ConversionPlan.Tensor] = []
        if let factors = try llama3RopeFactors(config, family: family, directory: directory) {
            tensors.append(ConversionPlan.Tensor(generated: "rope_freqs.weight", values: factors, shape: [factors.count]))
        }
        for weight in try sourceWeights(checkpoint) {
            let logical = weight.name
            guard let (name, permute) = ggufName(logical, heads: heads, kvHeads: kvHeads, layers: layers, family: family) else {
                throw QuantizeJobError(.unsupportedConversion, "\(directory): tensor '\(logical)' has no llama.cpp name in this conversion (\(family.architecture): embeddings, norms, q/k/v/o\(family.hasAttentionBiases ? " with q/k/v biases" : ""), gate/up/down, lm_head)")
            }
            if let permute {
                let rows = weight.shape.first ?? 0
                guard weight.shape.count == 2, permute > 0, rows % (2 * permute) == 0 else {
                    throw QuantizeJobError(.unsupportedConversion, "\(directory): '\(logical)' has shape \(weight.shape), whose rows do not split into \(permute) heads of two halves for llama.cpp's Q/K permutation")
                }
            }
            var tensor = ConversionPlan.Tensor(source: weight.parts[0].name, name: name, shape: weight.shape, permuteHeads: permute, type: .f32)
            if weight.parts.count > 1 || weight.isQuantizedValues {
                tensor.decoding = ConversionPlan.Decoding(parts: weight.parts, groupSize: weight.groupSize, blockSize: weight.blockSize)
            }
            tensors.append(tensor)
        }

        var metadata: [(key: String, value: GGUFValue)] = [("general.architecture", .string(family.ggufArchitecture)), ("general.type", .string("model"))]
        let totalParameters = tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }
        metadata += generalMetadata(config: config, directory: directory, totalParameters: totalParameters)
        metadata += hyperparameters(config, family: family)
        if let bpe = inspection.bpe {
            // LlamaModel.set_vocab writes add_space_prefix before any vocabulary; Qwen2Model does not.
            if family.ggufArchitecture == "llama", let prefix = (try? JSONValue.parse(contentsOf: directory + "/tokenizer_config.json"))?["add_prefix_space"]?.bool {
                metadata.append(("tokenizer.ggml.add_space_prefix", .bool(prefix)))
            }
            metadata += try bpe.metadata(directory: directory)
        } else {
            metadata += try tokenizerMetadata(directory: directory, config: config)
        }
        return ConversionPlan(metadata: metadata, tensors: tensors)
    }

    /// One weight the converter reads, with its stored parts when it is quantized.
    struct SourceWeight {
        /// The Hugging Face name of the (logical) weight: `X.weight` also for `X.weight_packed`.
        var name: String
        /// The logical shape.
        var shape: [Int]
        /// The stored tensors, values first.
        var parts: [TensorRecord]
        /// Whether the values part is stored quantized (FP8, I8, packed I32).
        var isQuantizedValues: Bool
        var groupSize: Int?
        var blockSize: [Int]?
    }

    /// The weights in the converter's order (`index_tensors`, then `dequant_model`): part files
    /// sorted by name, each file's names sorted; a quantized weight decoded in place of its values
    /// tensor (fp8, float-/int-quantized: `weight` keeps its key), except `pack-quantized` ones,
    /// which the converter adds as new tensors after every other (in the order of their
    /// `weight_packed` names). Scales, zero points and shapes are parts of their weight; the
    /// activation and KV-cache scales llama.cpp has no use for (`input_scale`, `k_scale`, `v_scale`)
    /// are dropped.
    static func sourceWeights(_ checkpoint: Checkpoint) throws -> [SourceWeight] {
        let files = checkpoint.files
        func fileName(_ record: TensorRecord) -> String { URL(fileURLWithPath: files[record.fileIndex]).lastPathComponent }
        let quantization = checkpoint.quantization
        let declared = checkpoint.config?["quantization_config"]
        var groupSize: Int? = nil
        var blockSize: [Int]? = nil
        if let declared, !declared.isNull {
            if let block = declared["weight_block_size"]?.array?.compactMap(\.int), block.count == 2 { blockSize = block }
            for group in declared["config_groups"]?.object ?? [] {
                if let g = group.value["weights"]?["group_size"]?.int { groupSize = g }
                if let b = group.value["weights"]?["block_structure"]?.array?.compactMap(\.int), b.count == 2 { blockSize = b }
            }
        }
        let order = Dictionary(checkpoint.tensors.sorted { a, b in
            let fa = fileName(a), fb = fileName(b)
            return fa != fb ? fa < fb : a.name < b.name
        }.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { first, _ in first })
        var inPlace: [(Int, SourceWeight)] = [], appended: [(Int, SourceWeight)] = []
        let dropped = [".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias"]
        let unused = [".input_scale", ".k_scale", ".v_scale"]
        for logical in quantization == nil ? checkpoint.tensors.map({ LogicalTensor(name: $0.name, shape: $0.shape, elementCount: $0.elementCount, parts: [$0]) })
                                           : checkpoint.logicalTensors {
            let values = logical.parts[0]
            if dropped.contains(where: { logical.name.hasSuffix($0) }) { continue }
            if quantization != nil, unused.contains(where: { logical.name.hasSuffix($0) }) { continue }
            var parts = logical.parts.filter { !$0.name.hasSuffix(".input_scale") }
            if let gIndex = parts.first(where: { $0.name.hasSuffix(".weight_g_idx") }) {
                throw QuantizeJobError(.unsupportedConversion, "\(checkpoint.directory): '\(gIndex.name)' orders \(logical.name)'s groups by activation, which the conversion does not decode")
            }
            parts = parts.filter { !$0.name.hasSuffix(".weight_g_idx") }
            var quantizedValues = false
            if case .dtype(let dtype) = values.type { quantizedValues = ![.f32, .f16, .bf16].contains(dtype) }
            if quantizedValues, !parts.contains(where: { $0.name.hasSuffix(".weight_scale") || $0.name.hasSuffix(".weight_scale_inv") }) {
                throw QuantizeJobError(.unsupportedConversion, "\(checkpoint.directory): '\(values.name)' is stored as \(values.type), but there is no \(logical.name)_scale (or _scale_inv) to decode it with; the checkpoint is incomplete")
            }
            let weight = SourceWeight(name: logical.name, shape: logical.shape, parts: parts, isQuantizedValues: quantizedValues,
                                      groupSize: groupSize, blockSize: blockSize)
            let position = order[values.name] ?? 0
            if values.name.hasSuffix(".weight_packed") { appended.append((position, weight)) } else { inPlace.append((position, weight)) }
        }
        return (inPlace.sorted { $0.0 < $1.0 } + appended.sorted { $0.0 < $1.0 }).map(\.1)
    }

    /// `LlamaModel.generate_extra_tensors`: llama3 RoPE scaling's per-frequency factors, computed in
    /// float32 in the converter's order of operations (torch: `1 / base ** (arange(0, dim, 2) / dim)`,
    /// `2π / f` as a reciprocal times 2π, the smooth blend likewise), so the F32 bytes are the converter's.
    static func llama3RopeFactors(_ config: ModelConfig, family: ConversionFamily, directory: String) throws -> [Float]? {
        guard family.computesLlama3RopeFrequencies else { return nil }
        let rope = ropeParameters(config)
        guard (rope["rope_type"]?.string ?? "").lowercased() == "llama3" else { return nil }
        let base = rope["rope_theta"]?.double ?? 10000
        let dim = config["head_dim"]?.int ?? ((config.int("hidden_size") ?? 0) / max(1, config.int("num_attention_heads") ?? 1))
        let factor = rope["factor"]?.double ?? 8, low = rope["low_freq_factor"]?.double ?? 1, high = rope["high_freq_factor"]?.double ?? 4
        let old = rope["original_max_position_embeddings"]?.double ?? 8192
        guard dim > 0, dim % 2 == 0, high != low else {
            throw refusal(directory, "llama3 RoPE scaling with head dimension \(dim), low_freq_factor \(low) and high_freq_factor \(high) has no rope_freqs the converter can compute")
        }
        return llama3RopeFactors(base: base, dimension: dim, factor: factor, lowFrequencyFactor: low, highFrequencyFactor: high,
                                 originalContext: old)
    }

    /// llama3 RoPE scaling's factor per frequency pair (the converter's `rope_freqs`), from the
    /// `rope_parameters` values; `dimension` is even and the two frequency factors differ.
    static func llama3RopeFactors(base: Double, dimension dim: Int, factor: Double, lowFrequencyFactor low: Double,
                                  highFrequencyFactor high: Double, originalContext old: Double) -> [Float] {
        let lowWavelength = Float(old / low), highWavelength = Float(old / high)
        let twoPi = Float(2 * Double.pi), base32 = Float(base)
        return stride(from: 0, to: dim, by: 2).map { i -> Float in
            let exponent = Float(i) / Float(dim)
            let frequency = 1 / Float(pow(Double(base32), Double(exponent)))
            let wavelength = (1 / frequency) * twoPi
            if wavelength < highWavelength { return 1 }
            if wavelength > lowWavelength { return Float(factor) }
            let smooth = ((1 / wavelength) * Float(old) - Float(low)) / Float(high - low)
            return 1 / ((1 - smooth) / Float(factor) + smooth)
        }
    }

    /// The llama.cpp name of a Hugging Face llama tensor, and the head count of its Q/K permutation.
    static func ggufName(_ name: String, heads: Int, kvHeads: Int, layers: Int, family: ConversionFamily = .llama) -> (String, Int?)? {
        let permutes = family.permutesQueryKey
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
        case "self_attn.q_proj.weight": return (blk + "attn_q.weight", permutes ? heads : nil)
        case "self_attn.k_proj.weight": return (blk + "attn_k.weight", permutes ? (heads != kvHeads ? kvHeads : heads) : nil)
        case "self_attn.q_proj.bias" where family.hasAttentionBiases: return (blk + "attn_q.bias", nil)
        case "self_attn.k_proj.bias" where family.hasAttentionBiases: return (blk + "attn_k.bias", nil)
        case "self_attn.v_proj.bias" where family.hasAttentionBiases: return (blk + "attn_v.bias", nil)
        case "self_attn.q_norm.weight" where family.hasQueryKeyNorm: return (blk + "attn_q_norm.weight", nil)
        case "self_attn.k_norm.weight" where family.hasQueryKeyNorm: return (blk + "attn_k_norm.weight", nil)
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
        if rope["original_max_position_embeddings"] == nil, let value = config["original_max_position_embeddings"], !value.isNull {
            rope["original_max_position_embeddings"] = value
        }
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
    static func hyperparameters(_ config: ModelConfig, family: ConversionFamily = .llama) -> [(key: String, value: GGUFValue)] {
        let prefix = family.ggufArchitecture + "."
        var out: [(key: String, value: GGUFValue)] = []
        func first(_ keys: [String]) -> JSONValue? {
            guard let key = keys.first(where: { config[$0] != nil }), let value = config[key], !value.isNull else { return nil }
            return value
        }
        func u32(_ key: String, _ keys: [String]) {
            if let v = first(keys)?.int, let u = UInt32(exactly: v) { out.append((prefix + key, .uint32(u))) }
        }
        u32("block_count", ["n_layers", "num_hidden_layers", "n_layer", "num_layers"])
        u32("context_length", ["max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"])
        u32("embedding_length", ["hidden_size", "n_embd", "dim"])
        u32("feed_forward_length", ["prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner", "hidden_dim"])
        u32("attention.head_count", ["num_attention_heads", "n_head", "n_heads"])
        u32("attention.head_count_kv", ["num_key_value_heads", "n_kv_heads"])
        if config.bool("is_causal") == false { out.append((prefix + "attention.causal", .bool(false))) }
        let rope = ropeParameters(config)
        if (rope["rope_type"]?.string ?? "") == "linear", let factor = rope["factor"]?.double {
            out.append((prefix + "rope.scaling.type", .string("linear")))
            out.append((prefix + "rope.scaling.factor", .float32(Float(factor))))
        }
        if let theta = rope["rope_theta"]?.double { out.append((prefix + "rope.freq_base", .float32(Float(theta)))) }
        if let eps = first(["rms_norm_eps", "norm_eps"])?.double { out.append((prefix + "attention.layer_norm_rms_epsilon", .float32(Float(eps)))) }
        if let eps = first(["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"])?.double { out.append((prefix + "attention.layer_norm_epsilon", .float32(Float(eps)))) }
        if let headDim = config["head_dim"]?.int, let u = UInt32(exactly: headDim) {
            out.append((prefix + "attention.key_length", .uint32(u)))
            out.append((prefix + "attention.value_length", .uint32(u)))
        }
        guard family.ggufArchitecture == "llama" else { return out }  // LlamaModel's own keys
        if let vocab = config.int("vocab_size"), let u = UInt32(exactly: vocab) { out.append(("llama.vocab_size", .uint32(u))) }
        let ropeDimension = config["head_dim"]?.int ?? ((config.int("hidden_size") ?? 0) / max(1, config.int("num_attention_heads") ?? 1))
        if let u = UInt32(exactly: ropeDimension) { out.append(("llama.rope.dimension_count", .uint32(u))) }
        return out
    }
}
