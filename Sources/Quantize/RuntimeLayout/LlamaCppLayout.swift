import Foundation
import Formats

/// llama.cpp's model loader rules for a GGUF file: the hyperparameter keys `load_hparams` requires,
/// the vocabulary keys `llama_vocab::load` reads, and — for the architectures below — every tensor
/// `load_arch_tensors` creates with its shape, and that the file holds no other tensor
/// (`done_getting_tensors`: "wrong number of tensors").
enum LlamaCppLayout {
    /// The architecture names llama.cpp knows (`LLM_ARCH_NAMES` in src/llama-arch.cpp).
    static let architectures: Set<String> = [
        "clip", "llama", "llama4", "deci", "falcon", "grok", "gpt2", "gptj", "gptneox", "mpt", "baichuan", "starcoder", "refact",
        "bert", "modern-bert", "nomic-bert", "nomic-bert-moe", "neo-bert", "jina-bert-v2", "jina-bert-v3", "eurobert", "bloom",
        "stablelm", "qwen", "qwen2", "qwen2moe", "qwen2vl", "qwen3", "qwen3moe", "qwen3next", "qwen3vl", "qwen3vlmoe", "qwen35",
        "qwen35moe", "qwen4exp", "phi2", "phi3", "phimoe", "plamo", "plamo2", "plamo3", "codeshell", "orion", "internlm2", "minicpm",
        "minicpm3", "gemma", "gemma2", "gemma3", "gemma3n", "gemma4", "gemma4-assistant", "gemma-embedding", "starcoder2", "mamba",
        "mamba2", "maple", "jamba", "falcon-h1", "xverse", "command-r", "cohere2", "cohere2moe", "dbrx", "olmo", "olmo2", "olmoe",
        "muse-glimmer", "openelm", "arctic", "deepseek", "deepseek2", "deepseek2-ocr", "deepseek32", "deepseek4", "chatglm", "glm4",
        "glm4moe", "glm-dsa", "bitnet", "t5", "t5encoder", "jais", "jais2", "nemotron", "nemotron_h", "nemotron_h_moe", "exaone",
        "exaone4", "exaone-moe", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7", "granite", "granitemoe", "granitehybrid", "graniteswitch",
        "granite_swa", "chameleon", "wavtokenizer-dec", "plm", "bailingmoe", "bailingmoe2", "bailingmoe3", "dots1", "dots3note",
        "arcee", "afmoe", "laguna", "ernie4_5", "ernie4_5-moe", "hunyuan-moe", "hunyuan-dense", "hunyuan_vl", "hy_v3", "hy_v4",
        "smollm3", "gpt-oss", "lfm2", "lfm2moe", "dream", "smallthinker", "llada", "llada-moe", "seed_oss", "grovemoe", "apertus",
        "minimax-01", "hrm_text", "minimax-m2", "minimax-m3", "cogvlm", "rnd1", "pangu-embedded", "mistral3", "eagle3", "dflash",
        "mistral4", "paddleocr", "mimo2", "step35", "spark2_5", "llama-embed", "maincoder", "kimi-linear", "kimi-k3", "glm5-next",
        "talkie", "mellum", "nanbeige", "qwen3tts", "pockettts",
    ]

    /// One tensor an architecture's loader creates: its GGUF name (`{i}` for the layer), its shape in
    /// ggml order from the hyperparameters, and whether it must be there.
    struct Expected {
        var name: String
        var shape: (Hyper) -> [Int]
        var required: Bool
    }

    /// The hyperparameters the shapes use.
    struct Hyper {
        var embedding = 0, layers = 0, feedForward = 0, heads = 0, kvHeads = 0, vocabulary = 0, keyLength = 0, valueLength = 0, rope = 0
        var qWidth: Int { keyLength * heads }
        var kWidth: Int { keyLength * kvHeads }
        var vWidth: Int { valueLength * kvHeads }
    }

    /// Per-layer tensors of the dense llama-family loaders (llama.cpp, qwen2.cpp, qwen3.cpp in src/models).
    static func layerTensors(_ architecture: String) -> [Expected]? {
        let qkv: [Expected] = [
            Expected(name: "blk.{i}.attn_q.weight", shape: { [$0.embedding, $0.qWidth] }, required: true),
            Expected(name: "blk.{i}.attn_k.weight", shape: { [$0.embedding, $0.kWidth] }, required: true),
            Expected(name: "blk.{i}.attn_v.weight", shape: { [$0.embedding, $0.vWidth] }, required: true),
            Expected(name: "blk.{i}.attn_q.bias", shape: { [$0.qWidth] }, required: false),
            Expected(name: "blk.{i}.attn_k.bias", shape: { [$0.kWidth] }, required: false),
            Expected(name: "blk.{i}.attn_v.bias", shape: { [$0.vWidth] }, required: false),
        ]
        let ffn: [Expected] = [
            Expected(name: "blk.{i}.attn_norm.weight", shape: { [$0.embedding] }, required: true),
            Expected(name: "blk.{i}.ffn_norm.weight", shape: { [$0.embedding] }, required: true),
            Expected(name: "blk.{i}.ffn_gate.weight", shape: { [$0.embedding, $0.feedForward] }, required: true),
            Expected(name: "blk.{i}.ffn_down.weight", shape: { [$0.feedForward, $0.embedding] }, required: true),
            Expected(name: "blk.{i}.ffn_up.weight", shape: { [$0.embedding, $0.feedForward] }, required: true),
        ]
        switch architecture {
        case "llama":
            return qkv + ffn + [
                Expected(name: "blk.{i}.attn_output.weight", shape: { [$0.qWidth, $0.embedding] }, required: true),
                Expected(name: "blk.{i}.attn_output.bias", shape: { [$0.embedding] }, required: false),
                Expected(name: "blk.{i}.ffn_gate.bias", shape: { [$0.feedForward] }, required: false),
                Expected(name: "blk.{i}.ffn_down.bias", shape: { [$0.embedding] }, required: false),
                Expected(name: "blk.{i}.ffn_up.bias", shape: { [$0.feedForward] }, required: false),
            ]
        case "qwen2":
            return qkv + ffn + [Expected(name: "blk.{i}.attn_output.weight", shape: { [$0.embedding, $0.embedding] }, required: true)]
        case "qwen3":
            return qkv + ffn + [
                Expected(name: "blk.{i}.attn_output.weight", shape: { [$0.qWidth, $0.embedding] }, required: true),
                Expected(name: "blk.{i}.attn_k_norm.weight", shape: { [$0.keyLength] }, required: true),
                Expected(name: "blk.{i}.attn_q_norm.weight", shape: { [$0.keyLength] }, required: true),
            ]
        default:
            return nil
        }
    }

    static func check(_ checkpoint: Checkpoint) -> LayoutCheck {
        var findings: [LayoutFinding] = []
        func error(_ subject: String, _ message: String) { findings.append(LayoutFinding(.error, subject, message)) }
        func warning(_ subject: String, _ message: String) { findings.append(LayoutFinding(.warning, subject, message)) }
        func done(_ summary: String, _ checked: Int) -> LayoutCheck {
            LayoutCheck(target: .llamaCpp, path: checkpoint.path, summary: summary, checkedCount: checked,
                        findings: findings.filter { $0.severity == .error } + findings.filter { $0.severity == .warning })
        }
        guard let gguf = checkpoint.gguf else { error("", "not a GGUF file"); return done("not GGUF", 0) }

        guard let architecture = gguf["general.architecture"]?.string else {
            error("general.architecture", "is missing; llama.cpp reads the architecture first and refuses the file without it")
            return done("no architecture", 0)
        }
        guard architectures.contains(architecture) else {
            error("general.architecture", "'\(DisplayText.shortened(architecture))' is not an architecture llama.cpp knows (LLM_ARCH_NAMES)")
            return done("unknown architecture \(DisplayText.shortened(architecture))", 0)
        }
        // A split set opens as one model (Checkpoint reads every shard, with the first's metadata),
        // as llama.cpp loads it from the first shard.
        let tensors = checkpoint.ggufTensors
        let shards = checkpoint.ggufShards.count
        if shards > 1, checkpoint.path != gguf.path {
            warning("split.no", "\(checkpoint.path) is not the first shard; llama.cpp must be given \(gguf.path) (it refuses the others)")
        }

        // Hyperparameters (load_hparams + the architecture's load_arch_hparams).
        func int(_ key: String) -> Int? {
            guard let value = gguf[architecture + "." + key] else { return nil }
            if let v = value.int { return v }
            // Per-layer arrays (get_key_or_arr): all layers must agree for the shapes checked here.
            if let values = value.array?.compactMap(\.int), let first = values.first { return values.allSatisfy { $0 == first } ? first : nil }
            return nil
        }
        let required = ["context_length", "embedding_length", "block_count"]
        for key in required where int(key) == nil { error(architecture + "." + key, "is missing or not an integer; llama_model_base::load_hparams requires it") }
        let dense = layerTensors(architecture) != nil
        if dense {
            if gguf[architecture + ".attention.layer_norm_rms_epsilon"]?.double == nil {
                error(architecture + ".attention.layer_norm_rms_epsilon", "is missing; the \(architecture) loader requires it (load_arch_hparams)")
            }
            for key in ["feed_forward_length", "attention.head_count"] where int(key) == nil {
                error(architecture + "." + key, "is missing (or differs between layers); without it the \(architecture) tensors have no shape")
            }
        }
        if let layers = int("block_count"), layers <= 0 || layers > 512 { error(architecture + ".block_count", "is \(layers); llama.cpp asserts 0 < n_layer ≤ LLAMA_MAX_LAYERS (512)") }
        if let experts = int("expert_count"), experts > 0, dense, architecture != "llama" {
            warning(architecture + ".expert_count", "is \(experts): MoE tensors are not checked for \(architecture)")
        }

        // Vocabulary (llama_vocab::load).
        var vocabulary = 0
        let model = gguf["tokenizer.ggml.model"]?.string
        if model == nil {
            error("tokenizer.ggml.model", "is missing; llama_vocab::load requires it ('none' for a file without a vocabulary)")
        } else if model != "none" && model != "no_vocab" {
            if !["llama", "gpt2", "hybriddna", "whitespace", "bert", "t5", "rwkv", "test", "plamo2", "gemma4"].contains(model!) {
                error("tokenizer.ggml.model", "'\(DisplayText.shortened(model!))' is not a tokenizer llama.cpp implements (llama, gpt2, bert, t5, rwkv, plamo2, gemma4, … in llama_vocab::load)")
            }
            if let tokens = gguf["tokenizer.ggml.tokens"]?.array {
                vocabulary = tokens.count
                if gguf["tokenizer.ggml.tokens"]?.elementType != .string { error("tokenizer.ggml.tokens", "must be an array of strings") }
                for key in ["tokenizer.ggml.scores", "tokenizer.ggml.token_type"] {
                    if let values = gguf[key]?.array, values.count != tokens.count {
                        error(key, "has \(values.count) entries for \(tokens.count) tokens")
                    }
                }
                for key in ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.unknown_token_id"] {
                    if let id = gguf[key]?.int, id < 0 || id >= tokens.count { error(key, "is \(id), outside the \(tokens.count)-token vocabulary") }
                }
            } else {
                error("tokenizer.ggml.tokens", "is missing; llama.cpp needs the token list for tokenizer '\(model!)'")
            }
            if ["gpt2", "hybriddna", "whitespace", "gemma4"].contains(model!), gguf["tokenizer.ggml.merges"]?.array == nil, gguf["tokenizer.ggml.pre"]?.string != "kimi-k2" { error("tokenizer.ggml.merges", "is missing; a gpt2 (BPE) vocabulary needs its merges") }
        }

        // Tensor types: every type must be one ggml implements and rows must fill whole blocks.
        for tensor in tensors {
            let type = tensor.type
            if let row = tensor.dimensions.first, type.blockSize > 1, row % type.blockSize != 0 {
                error(tensor.name, "has rows of \(row) elements, not a multiple of \(type.name)'s block of \(type.blockSize)")
            }
        }

        guard let expected = layerTensors(architecture) else {
            return done("\(architecture) — keys and vocabulary checked; tensor shapes are checked for llama, qwen2 and qwen3 only", tensors.count)
        }

        var h = Hyper()
        h.embedding = int("embedding_length") ?? 0
        h.layers = int("block_count") ?? 0
        h.feedForward = int("feed_forward_length") ?? 0
        h.heads = int("attention.head_count") ?? 0
        h.kvHeads = int("attention.head_count_kv") ?? h.heads
        h.keyLength = int("attention.key_length") ?? (h.heads > 0 ? h.embedding / h.heads : 0)
        h.valueLength = int("attention.value_length") ?? (h.heads > 0 ? h.embedding / h.heads : 0)
        h.rope = int("rope.dimension_count") ?? h.keyLength
        var byName: [String: GGUFTensorInfo] = [:]
        for tensor in tensors { byName[tensor.name] = tensor }
        h.vocabulary = vocabulary > 0 ? vocabulary : (byName["token_embd.weight"]?.dimensions.last ?? 0)
        if architecture == "llama", h.rope != h.keyLength { error(architecture + ".rope.dimension_count", "is \(h.rope), expected \(h.keyLength) (invalid n_rot)") }
        if h.heads > 0, h.kvHeads > 0, h.heads % h.kvHeads != 0 { error(architecture + ".attention.head_count_kv", "\(h.kvHeads) does not divide the \(h.heads) query heads") }

        var wanted: [(name: String, shape: [Int], required: Bool)] = [
            ("token_embd.weight", [h.embedding, h.vocabulary], true),
            ("output_norm.weight", [h.embedding], true),
            ("output.weight", [h.embedding, h.vocabulary], false),
        ]
        if architecture == "qwen2" { wanted.append(("output.bias", [h.vocabulary], false)) }
        if byName["rope_freqs.weight"] != nil { wanted.append(("rope_freqs.weight", [h.rope / 2], false)) }
        for layer in 0..<max(0, min(h.layers, 512)) {
            for entry in expected { wanted.append((entry.name.replacingOccurrences(of: "{i}", with: String(layer)), entry.shape(h), entry.required)) }
        }
        var used: Set<String> = []
        for entry in wanted {
            guard let tensor = byName[entry.name] else {
                if entry.required { error(entry.name, "is missing; the \(architecture) loader requires it (shape \(entry.shape))") }
                continue
            }
            used.insert(entry.name)
            if tensor.dimensions != entry.shape {
                error(entry.name, "has shape \(tensor.dimensions) (ggml order); the \(architecture) loader expects \(entry.shape) from the metadata (wrong shape)")
            }
        }
        let extra = tensors.filter { !used.contains($0.name) }
        for tensor in extra.prefix(20) {
            error(tensor.name, "is not a tensor the \(architecture) loader creates; llama.cpp counts every tensor and refuses the file (wrong number of tensors)")
        }
        if extra.count > 20 { error("", "\(extra.count - 20) more tensors the loader does not create") }
        let summary = "\(architecture), \(h.layers) layers, vocabulary \(h.vocabulary), \(model ?? "no") tokenizer" +
            (shards > 1 ? ", \(shards) shards" : "") +
            (byName["output.weight"] == nil ? ", output tied to token_embd" : "")
        return done(summary, used.count)
    }
}
