/// One Hugging Face architecture the GGUF conversion reproduces, as data: which converter class of
/// llama.cpp's convert_hf_to_gguf.py handles it and what that class does differently
/// (conversion/llama.py `LlamaModel`, conversion/qwen.py `Qwen2Model`).
struct ConversionFamily: Sendable {
    /// config.json's `model_type`.
    var modelType: String
    /// config.json's `architectures[0]`.
    var architecture: String
    /// The GGUF `general.architecture` (and metadata key prefix).
    var ggufArchitecture: String
    /// Whether Q/K rows get llama.cpp's RoPE permutation (`LlamaModel.undo_permute`).
    var permutesQueryKey: Bool
    /// Whether q/k/v projection biases are part of the model (Qwen2) and are converted.
    var hasAttentionBiases: Bool
    /// Whether llama3 RoPE scaling is converted into the computed `rope_freqs` tensor.
    var computesLlama3RopeFrequencies: Bool
    /// Whether a SentencePiece tokenizer.model is converted for it.
    var readsSentencePiece: Bool
    /// Whether the attention has per-head Q/K RMS norms (`self_attn.q_norm`/`k_norm`, Qwen3).
    var hasQueryKeyNorm: Bool = false

    /// `LlamaForCausalLM`.
    static let llama = ConversionFamily(modelType: "llama", architecture: "LlamaForCausalLM", ggufArchitecture: "llama",
                                        permutesQueryKey: true, hasAttentionBiases: false, computesLlama3RopeFrequencies: true,
                                        readsSentencePiece: true)
    /// `MistralForCausalLM` with a llama-style config: the converter's `LlamaModel` writes it as
    /// `llama` and writes nothing for `sliding_window` (llama.cpp then attends to the whole context).
    static let mistral = ConversionFamily(modelType: "mistral", architecture: "MistralForCausalLM", ggufArchitecture: "llama",
                                          permutesQueryKey: true, hasAttentionBiases: false, computesLlama3RopeFrequencies: true,
                                          readsSentencePiece: true)
    /// `Qwen2ForCausalLM`: q/k/v biases, no permutation, a BPE tokenizer.json.
    static let qwen2 = ConversionFamily(modelType: "qwen2", architecture: "Qwen2ForCausalLM", ggufArchitecture: "qwen2",
                                        permutesQueryKey: false, hasAttentionBiases: true, computesLlama3RopeFrequencies: false,
                                        readsSentencePiece: false)

    /// `Qwen3ForCausalLM`: Qwen2's conversion plus the per-head Q/K norms (`attn_q_norm`,
    /// `attn_k_norm`); biases only where the checkpoint has them (`attention_bias`).
    static let qwen3 = ConversionFamily(modelType: "qwen3", architecture: "Qwen3ForCausalLM", ggufArchitecture: "qwen3",
                                        permutesQueryKey: false, hasAttentionBiases: true, computesLlama3RopeFrequencies: false,
                                        readsSentencePiece: false, hasQueryKeyNorm: true)

    /// Every family converted.
    static let all: [ConversionFamily] = [.llama, .mistral, .qwen2, .qwen3]

    /// The families for messages.
    static let supportedSummary = "llama (LlamaForCausalLM, Llama 2/3.x incl. llama3 RoPE scaling), Mistral (MistralForCausalLM), Qwen2 (Qwen2ForCausalLM) and Qwen3 (Qwen3ForCausalLM), with a SentencePiece tokenizer.model or a byte-level BPE tokenizer.json that llama.cpp's converter recognizes"
}
