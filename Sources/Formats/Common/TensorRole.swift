/// What a tensor is for in a transformer checkpoint, read from its name (Hugging Face or GGUF
/// naming): the one set of rules that quantization's default selection and fit's memory counts
/// share (formats.md §5 says why each kind is kept).
public enum TensorRole: String, Sendable, Hashable, CaseIterable {
    /// Not a weight: a bias or a buffer (the last name component is not `weight`).
    case nonWeight
    /// A token, position or token-type embedding table (looked up, not multiplied).
    case embedding
    /// The output projection (`lm_head`, GGUF `output.weight`, GPT-NeoX `embed_out`).
    case outputHead
    /// A norm's scale.
    case norm
    /// A mixture-of-experts router or shared-expert gate (a few outputs per token; kept precise).
    case router
    /// A routed expert's projection (`experts`, GGUF `_exps`).
    case expertProjection
    /// Any other linear layer weight (attention, MLP, shared expert).
    case projection

    /// The role of the tensor called `name`.
    public init(name: String) {
        let lower = name.lowercased()
        let last = lower.split(separator: ".").last.map(String.init) ?? lower
        if last != "weight" && !lower.hasSuffix("_weight") {
            self = .nonWeight
        } else if TensorRole.embeddingWords.contains(where: lower.contains) || lower.contains("_embeddings.") {
            // `_embeddings.`: BERT's word/position/token_type_embeddings and the like.
            self = .embedding
        } else if lower.hasPrefix("lm_head") || lower.contains(".lm_head") || lower == "output.weight" || lower.hasPrefix("embed_out") {
            self = .outputHead
        } else if lower.contains("norm") || lower.contains(".ln_") || lower.hasPrefix("ln_") {
            self = .norm
        } else if lower.contains("gate_inp") || lower.contains("router") || lower.hasSuffix(".gate.weight")
                    || lower.hasSuffix("shared_expert_gate.weight") {
            self = .router
        } else if lower.contains("experts") || lower.contains("_exps") {
            self = .expertProjection
        } else {
            self = .projection
        }
    }

    /// Name fragments of embedding tables.
    static let embeddingWords = ["embed_tokens", "token_embd", "wte", "wpe", "word_embeddings", "embed_positions",
                                 "position_embeddings", "pos_embd", "token_types", "tok_embeddings"]

    /// Whether a linear-layer quantization converts this kind by default (projections and experts).
    public var isQuantizedByDefault: Bool { self == .projection || self == .expertProjection }

    /// The reason in words, as `--dry-run` prints it, for the kinds kept by default.
    public var keptReason: String? {
        switch self {
        case .nonWeight: return "not a weight (bias or buffer)"
        case .embedding: return "embedding"
        case .outputHead: return "output head (lm_head)"
        case .norm: return "norm"
        case .router: return "MoE router"
        case .expertProjection, .projection: return nil
        }
    }
}
