/// The shape of a transformer model as its config.json or GGUF metadata declares it.
///
/// Values are what the files say; nothing is guessed. A field the source does not declare stays
/// nil, except where the format defines a default (KV heads default to attention heads, head size
/// to hidden size / heads, as transformers and llama.cpp do).
public struct ModelArchitecture: Sendable, Hashable, Codable {
    /// The architecture name (`LlamaForCausalLM` from config.json, `llama` from GGUF).
    public var name: String
    /// The model family (`llama`, `mistral`, `qwen2`, …): config.json `model_type` or GGUF architecture.
    public var family: String?
    /// Transformer blocks.
    public var layers: Int?
    /// Hidden (embedding) size.
    public var hiddenSize: Int?
    /// Feed-forward inner size.
    public var intermediateSize: Int?
    /// Attention (query) heads.
    public var attentionHeads: Int?
    /// Key/value heads (fewer than attention heads under grouped-query attention).
    public var keyValueHeads: Int?
    /// Size of one attention head.
    public var headSize: Int?
    /// Vocabulary size.
    public var vocabularySize: Int?
    /// Longest context the model was trained for.
    public var contextLength: Int?
    /// Whether the output head shares the token embedding matrix.
    public var tiedEmbeddings: Bool?
    /// Experts per MoE layer (nil for dense models).
    public var expertCount: Int?
    /// Experts each token is routed to.
    public var expertsPerToken: Int?
    /// Sliding attention window in tokens, where declared.
    public var slidingWindow: Int?
    /// Width of one routed expert when declared apart from ``intermediateSize`` (config.json
    /// `moe_intermediate_size`, GGUF `expert_feed_forward_length`).
    public var expertIntermediateSize: Int?
    /// Width of an always-active shared expert (config.json `shared_expert_intermediate_size`,
    /// GGUF `expert_shared_feed_forward_length`).
    public var sharedExpertIntermediateSize: Int?
    /// The model's own name where the file gives one (config.json `_name_or_path`, GGUF `general.name`).
    public var modelName: String?
    /// Where the values came from (`config.json` or `GGUF metadata`).
    public var source: String

    /// Reads the architecture from a parsed config.json through ``ModelConfig`` (the text model's
    /// keys, under every alias transformers models use).
    public init?(config: JSONValue) {
        let reader = ModelConfig(config)
        let archs = config["architectures"]?.array?.compactMap(\.string) ?? []
        let modelType = config["model_type"]?.string
        guard let name = archs.first ?? modelType else { return nil }
        self.name = name
        family = modelType
        layers = reader.int(.layers)
        hiddenSize = reader.int(.hiddenSize)
        intermediateSize = reader.int(.intermediateSize)
        attentionHeads = reader.int(.attentionHeads)
        keyValueHeads = reader.int(.keyValueHeads) ?? attentionHeads
        headSize = reader.int(.headSize)
        if headSize == nil, let h = hiddenSize, let a = attentionHeads, a > 0 { headSize = h / a }
        vocabularySize = reader.int(.vocabularySize)
        contextLength = reader.int(.contextLength)
        tiedEmbeddings = reader.bool("tie_word_embeddings")
        expertCount = reader.int(.expertCount)
        expertsPerToken = reader.int(.expertsPerToken)
        slidingWindow = reader.int(.slidingWindow)
        if reader.bool("use_sliding_window") == false { slidingWindow = nil }
        expertIntermediateSize = reader.int(.expertIntermediateSize)
        sharedExpertIntermediateSize = reader.int(.sharedExpertIntermediateSize)
        modelName = reader.string("_name_or_path").flatMap { $0.isEmpty ? nil : $0 }
        source = "config.json"
    }

    /// Reads the architecture from GGUF metadata keys (`general.architecture`, `ARCH.block_count`, …).
    /// - Parameter value: looks up one metadata key; integers and floats are returned as Double,
    ///   strings as String, arrays as their element count (Int).
    public init?(ggufValue value: (String) -> Any?) {
        guard let arch = value("general.architecture") as? String else { return nil }
        func int(_ key: String) -> Int? {
            switch value("\(arch).\(key)") {
            case let d as Double: return Int(exactly: d)
            case let i as Int: return i
            case let array as [Any]: return (array.first as? Double).flatMap { Int(exactly: $0) }
            default: return nil
            }
        }
        name = arch
        family = arch
        layers = int("block_count")
        hiddenSize = int("embedding_length")
        intermediateSize = int("feed_forward_length") ?? int("expert_feed_forward_length")
        attentionHeads = int("attention.head_count")
        keyValueHeads = int("attention.head_count_kv") ?? attentionHeads
        headSize = int("attention.key_length")
        if headSize == nil, let h = hiddenSize, let a = attentionHeads, a > 0 { headSize = h / a }
        vocabularySize = int("vocab_size") ?? (value("tokenizer.ggml.tokens") as? Int)
        contextLength = int("context_length")
        tiedEmbeddings = nil
        expertCount = int("expert_count")
        expertsPerToken = int("expert_used_count")
        slidingWindow = int("attention.sliding_window")
        expertIntermediateSize = int("expert_feed_forward_length")
        sharedExpertIntermediateSize = int("expert_shared_feed_forward_length")
        modelName = value("general.name") as? String
        source = "GGUF metadata"
    }
}

/// A Hugging Face config.json read the one way every part of the tool reads it: the keys of the
/// text model (a multimodal wrapper's `text_config` merged over the top level, the inner value
/// winning), each size under every alias the transformers model families use.
public struct ModelConfig: Sendable, Hashable {
    /// A size or count that models name differently.
    public enum Key: String, Sendable, CaseIterable {
        /// Transformer blocks.
        case layers
        /// Residual width.
        case hiddenSize
        /// Feed-forward inner width.
        case intermediateSize
        /// Query heads.
        case attentionHeads
        /// Key/value heads.
        case keyValueHeads
        /// Size of one head.
        case headSize
        /// Vocabulary size.
        case vocabularySize
        /// Longest trained context.
        case contextLength
        /// Routed experts per layer.
        case expertCount
        /// Experts per token.
        case expertsPerToken
        /// Width of one routed expert.
        case expertIntermediateSize
        /// Width of the shared expert.
        case sharedExpertIntermediateSize
        /// Sliding attention window.
        case slidingWindow

        /// The config.json keys that hold it, first match wins (Llama names first, then GPT-2/GPT-J,
        /// OPT, T5-style, ChatGLM and other aliases).
        public var aliases: [String] {
            switch self {
            case .layers: return ["num_hidden_layers", "n_layer", "num_layers", "n_layers"]
            case .hiddenSize: return ["hidden_size", "n_embd", "d_model", "dim"]
            case .intermediateSize: return ["intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size"]
            case .attentionHeads: return ["num_attention_heads", "n_head", "num_heads", "n_heads"]
            case .keyValueHeads: return ["num_key_value_heads", "n_head_kv", "num_kv_heads", "multi_query_group_num"]
            case .headSize: return ["head_dim", "kv_channels"]
            case .vocabularySize: return ["vocab_size", "padded_vocab_size"]
            case .contextLength: return ["max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"]
            case .expertCount: return ["num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"]
            case .expertsPerToken: return ["num_experts_per_tok", "num_experts_per_token", "moe_top_k"]
            case .expertIntermediateSize: return ["moe_intermediate_size"]
            case .sharedExpertIntermediateSize: return ["shared_expert_intermediate_size"]
            case .slidingWindow: return ["sliding_window"]
            }
        }
    }

    /// The members read: the top level with `text_config`'s members over it.
    public let members: [JSONMember]

    /// Reads a parsed config.json (anything but an object reads as empty).
    public init(_ config: JSONValue) {
        var members = config.object ?? []
        if let text = config["text_config"]?.object {
            for member in text {
                if let index = members.firstIndex(where: { $0.key == member.key }) { members[index] = member } else { members.append(member) }
            }
        }
        self.members = members
    }

    /// The raw value of `key`, nil when absent.
    public subscript(key: String) -> JSONValue? { members.first { $0.key == key }?.value }

    /// The first alias of `key` holding a whole number (integer literal, or a float with no fraction).
    public func int(_ key: Key) -> Int? {
        for alias in key.aliases { if let value = int(alias) { return value } }
        return nil
    }

    /// The whole number under `key` (an integer literal, or a float with no fraction).
    public func int(_ key: String) -> Int? {
        guard case .number(let number)? = self[key] else { return nil }
        if let int = number.int { return int }
        let double = number.double
        return double.rounded(.towardZero) == double && abs(double) < 1e15 ? Int(double) : nil
    }

    /// The Boolean under `key`.
    public func bool(_ key: String) -> Bool? { self[key]?.bool }

    /// The string under `key`.
    public func string(_ key: String) -> String? { self[key]?.string }
}
