import Formats

/// What a weight does in a transformer, read from its tensor name (Hugging Face or GGUF naming).
///
/// The raw value is what reports print and group by.
public enum LayerType: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    /// Token embedding (`embed_tokens`, `token_embd`, `wte`, `word_embeddings`).
    case embedding = "embed"
    /// Attention query (`q_proj`, `attn_q`, `wq`, MLA `q_a_proj`/`q_b_proj`).
    case query = "q"
    /// Attention key (`k_proj`, `attn_k`, `wk`).
    case key = "k"
    /// Attention value (`v_proj`, `attn_v`, `wv`).
    case value = "v"
    /// Fused query-key-value (`qkv_proj`, `attn_qkv`, `query_key_value`, GPT-2 `c_attn`, `W_pack`).
    case queryKeyValue = "qkv"
    /// Fused or compressed key-value (MLA `kv_a_proj_with_mqa`, `kv_b_proj`, `attn_kv_a_mqa`, `attn_kv_b`).
    case keyValue = "kv"
    /// Attention output (`o_proj`, `attn_output`, `out_proj`, `wo`, `attention.dense`, attention `c_proj`).
    case attentionOutput = "o"
    /// MLP gate (`gate_proj`, `ffn_gate`, Mixtral/Meta `w1`, `ffn_gate_exps`, `ffn_gate_shexp`).
    case gate = "gate"
    /// MLP up (`up_proj`, `ffn_up`, `w3`, `fc1`, `c_fc`, `dense_h_to_4h`).
    case up = "up"
    /// Fused gate and up (`gate_up_proj`).
    case gateUp = "gate_up"
    /// MLP down (`down_proj`, `ffn_down`, `w2`, `fc2`, `dense_4h_to_h`, MLP `c_proj`).
    case down = "down"
    /// Mixture-of-experts router (`mlp.gate`, `block_sparse_moe.gate`, `ffn_gate_inp`, `router`).
    case router = "router"
    /// Output head (`lm_head`, GGUF `output`, `embed_out`).
    case outputHead = "lm_head"
    /// Anything else.
    case other = "other"

    /// Orders types the way a transformer block runs them (embedding first, head and other last).
    public static func < (lhs: LayerType, rhs: LayerType) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// A tensor name split into what matters for the report: the layer type, the block index and the
/// expert index.
public struct LayerName: Sendable, Hashable {
    /// What the weight does.
    public var type: LayerType
    /// The transformer block (`layers.N`, `blk.N`, `h.N`, `layer.N`, `blocks.N`), nil outside blocks.
    public var index: Int?
    /// The expert (`experts.N`), nil for dense weights.
    public var expert: Int?

    /// Creates a layer name from its parts.
    public init(type: LayerType, index: Int? = nil, expert: Int? = nil) {
        self.type = type
        self.index = index
        self.expert = expert
    }

    /// Classifies a tensor name such as `model.layers.3.self_attn.q_proj.weight` or
    /// `blk.3.attn_q.weight`; unknown names give ``LayerType/other``.
    public init(tensorName name: String) {
        let parts = name.lowercased().split(separator: ".").map(String.init)
        var index: Int?
        var expert: Int?
        for (position, part) in parts.enumerated() where position + 1 < parts.count {
            guard let number = Int(parts[position + 1]) else { continue }
            if LayerName.blockWords.contains(part), index == nil { index = number }
            if part == "experts", expert == nil { expert = number }
        }
        // Embeddings, output heads and routers are whatever Formats' shared role rules say they are
        // (the rules quantization's selection and fit's counts use); the rest by its name words.
        let type: LayerType
        switch TensorRole(name: name) {
        case .embedding: type = .embedding
        case .outputHead: type = .outputHead
        case .router: type = .router
        default: type = LayerName.type(of: parts, inBlock: index != nil)
        }
        self.init(type: type, index: index, expert: expert)
    }

    static let blockWords: Set<String> = ["layers", "blk", "h", "layer", "block", "blocks"]

    static let suffixes: Set<String> = [
        "weight", "bias", "qweight", "weight_packed", "weight_scale", "weight_zero_point", "scales", "qzeros",
        "weight_shape",
    ]

    static let exact: [String: LayerType] = [
        "q_proj": .query, "attn_q": .query, "wq": .query, "query": .query, "q_a_proj": .query,
        "q_b_proj": .query, "attn_q_a": .query, "attn_q_b": .query,
        "k_proj": .key, "attn_k": .key, "wk": .key, "key": .key, "attn_k_b": .key,
        "v_proj": .value, "attn_v": .value, "wv": .value, "value": .value, "attn_v_b": .value,
        "qkv_proj": .queryKeyValue, "attn_qkv": .queryKeyValue, "query_key_value": .queryKeyValue,
        "c_attn": .queryKeyValue, "wqkv": .queryKeyValue, "w_pack": .queryKeyValue,
        "kv_a_proj_with_mqa": .keyValue, "kv_b_proj": .keyValue, "attn_kv_a_mqa": .keyValue,
        "attn_kv_b": .keyValue,
        "o_proj": .attentionOutput, "attn_output": .attentionOutput, "out_proj": .attentionOutput,
        "wo": .attentionOutput,
        "gate_proj": .gate, "ffn_gate": .gate, "w1": .gate, "ffn_gate_exps": .gate, "ffn_gate_shexp": .gate,
        "up_proj": .up, "ffn_up": .up, "w3": .up, "fc1": .up, "c_fc": .up, "dense_h_to_4h": .up,
        "ffn_up_exps": .up, "ffn_up_shexp": .up,
        "gate_up_proj": .gateUp,
        "down_proj": .down, "ffn_down": .down, "w2": .down, "fc2": .down, "dense_4h_to_h": .down,
        "ffn_down_exps": .down, "ffn_down_shexp": .down,
        "ffn_gate_inp": .router, "router": .router,
        "embed_tokens": .embedding, "token_embd": .embedding, "wte": .embedding, "word_embeddings": .embedding,
        "embed_in": .embedding, "tok_embeddings": .embedding,
        "lm_head": .outputHead, "embed_out": .outputHead,
    ]

    static let attentionWords: Set<String> = ["attn", "self_attn", "attention", "self_attention", "mixer"]

    static func type(of parts: [String], inBlock: Bool) -> LayerType {
        var words = parts
        while let last = words.last, suffixes.contains(last) { words.removeLast() }
        for position in words.indices.reversed() {
            let word = words[position]
            if let type = exact[word] { return type }
            let parent = position > 0 ? words[position - 1] : ""
            switch word {
            case "dense", "c_proj":  // attention.dense / attn.c_proj vs mlp.c_proj
                return attentionWords.contains(parent) ? .attentionOutput : (word == "c_proj" ? .down : .other)
            case "gate":  // mlp.gate / block_sparse_moe.gate is the MoE router
                return .router
            case "output" where !inBlock && position == 0:  // GGUF's output.weight
                return .outputHead
            default:
                continue
            }
        }
        return .other
    }
}
