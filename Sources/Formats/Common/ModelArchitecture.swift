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
    /// Where the values came from (`config.json` or `GGUF metadata`).
    public var source: String

    /// Reads the architecture from a parsed config.json (the `text_config` of multimodal models is
    /// used when the top level has no layer count).
    public init?(config: JSONValue) {
        var root = config
        if root["num_hidden_layers"] == nil && root["n_layer"] == nil && root["num_layers"] == nil,
           let text = root["text_config"] {
            root = text
        }
        func int(_ keys: String...) -> Int? {
            for key in keys { if let value = root[key]?.int { return value } }
            return nil
        }
        let archs = config["architectures"]?.array?.compactMap(\.string) ?? []
        let modelType = config["model_type"]?.string
        guard let name = archs.first ?? modelType else { return nil }
        self.name = name
        family = modelType
        layers = int("num_hidden_layers", "n_layer", "num_layers", "n_layers")
        hiddenSize = int("hidden_size", "n_embd", "d_model", "dim")
        intermediateSize = int("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size")
        attentionHeads = int("num_attention_heads", "n_head", "num_heads", "n_heads")
        keyValueHeads = int("num_key_value_heads", "n_head_kv", "num_kv_heads", "multi_query_group_num") ?? attentionHeads
        headSize = int("head_dim", "kv_channels")
        if headSize == nil, let h = hiddenSize, let a = attentionHeads, a > 0 { headSize = h / a }
        vocabularySize = int("vocab_size", "padded_vocab_size")
        contextLength = int("max_position_embeddings", "n_positions", "seq_length", "max_sequence_length", "n_ctx")
        tiedEmbeddings = root["tie_word_embeddings"]?.bool ?? config["tie_word_embeddings"]?.bool
        expertCount = int("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
        expertsPerToken = int("num_experts_per_tok", "moe_top_k", "num_experts_per_token")
        slidingWindow = int("sliding_window")
        if root["use_sliding_window"]?.bool == false { slidingWindow = nil }
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
        source = "GGUF metadata"
    }
}
