import Foundation
import Formats

/// How rotary position embeddings turn a position into angles.
public enum RoPEScaling: Sendable, Equatable {
    /// Plain RoPE: angle = position · base^(−2i/d).
    case none
    /// Positions divided by `factor` (transformers `rope_type: linear`).
    case linear(factor: Double)
    /// Llama 3.1's frequency-dependent scaling (transformers `rope_type: llama3`).
    case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalContext: Double)
}

/// The Mixture-of-Experts part of a decoder layer, as the configuration declares it.
public struct MixtureOfExpertsConfiguration: Sendable, Equatable {
    /// Routed experts per MoE layer.
    public var expertCount: Int
    /// Experts each token is sent to (top-k).
    public var expertsPerToken: Int
    /// Whether the top-k gate weights are renormalised to sum to 1 (Mixtral always; Qwen `norm_topk_prob`).
    public var normalizesTopK: Bool
    /// Inner size of one routed expert.
    public var expertIntermediateSize: Int
    /// Inner size of the shared expert (Qwen2-MoE `shared_expert_intermediate_size`), nil when there is none.
    public var sharedExpertIntermediateSize: Int?
    /// Layers that are dense instead of MoE (Qwen `mlp_only_layers`, `decoder_sparse_step`).
    public var denseLayers: Set<Int>
}

/// The shape and numerics of a llama-family decoder: everything the forward pass needs besides the weights.
///
/// Read from a Hugging Face config.json (transformers 4.x `rope_theta`/`rope_scaling` or 5.x
/// `rope_parameters`) or from GGUF metadata (formats.md §2.8). Whether q/k/v carry biases, whether
/// there are q/k norms and whether the embeddings are tied is decided by the tensors present, so a
/// config that omits those keys still loads.
public struct TransformerConfiguration: Sendable, Equatable {
    /// The family (`llama`, `mistral`, `qwen2`, `qwen3`, `mixtral`, `qwen3_moe`, `qwen2_moe`).
    public var family: String
    /// Transformer blocks.
    public var layerCount: Int
    /// Hidden (embedding) size.
    public var hiddenSize: Int
    /// Dense feed-forward inner size.
    public var intermediateSize: Int
    /// Query heads.
    public var headCount: Int
    /// Key/value heads (GQA when fewer than ``headCount``).
    public var keyValueHeadCount: Int
    /// Size of one head.
    public var headDimension: Int
    /// Vocabulary size (rows of the embedding).
    public var vocabularySize: Int
    /// RMSNorm epsilon.
    public var rmsNormEpsilon: Float
    /// RoPE base θ.
    public var ropeTheta: Double
    /// RoPE scaling.
    public var ropeScaling: RoPEScaling
    /// The sliding attention window of each layer (tokens), nil for full attention.
    public var slidingWindows: [Int?]
    /// The MoE configuration, nil for dense models.
    public var mixtureOfExperts: MixtureOfExpertsConfiguration?
    /// The beginning-of-sequence token id, where declared.
    public var bosTokenID: Int32?

    /// The families the forward pass implements.
    public static let supportedFamilies = ["llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe"]

    /// Reads the configuration of `checkpoint`.
    /// - Throws: ``ModelError`` `.unsupportedArchitecture` for another family, `.invalidConfiguration`
    ///   for a missing or impossible value, `.missingTensor` when the embedding is absent.
    public init(checkpoint: Checkpoint) throws(ModelError) {
        if let gguf = checkpoint.gguf {
            try self.init(gguf: gguf, checkpoint: checkpoint)
        } else if let config = checkpoint.config {
            try self.init(config: config, directory: checkpoint.directory)
        } else {
            throw .invalidConfiguration(path: checkpoint.path, key: "config.json",
                                        reason: "is absent; the forward pass needs the model directory with its config.json (or a GGUF file)")
        }
    }

    /// Reads a parsed config.json of the model directory `directory` (named in errors).
    package init(config root: JSONValue, directory: String) throws(ModelError) {
        let path = (directory as NSString).appendingPathComponent("config.json")
        var config = root
        if config["num_hidden_layers"] == nil, let text = config["text_config"] { config = text }
        let modelType = config["model_type"]?.string ?? root["model_type"]?.string ?? ""
        let family: String
        switch modelType {
        case "llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe": family = modelType
        default:
            let name = root["architectures"]?.array?.first?.string ?? modelType
            throw .unsupportedArchitecture(path: path, architecture: name.isEmpty ? "(no model_type)" : name,
                                           supported: TransformerConfiguration.supportedFamilies)
        }
        func required(_ key: String) throws(ModelError) -> Int {
            guard let value = config[key]?.int else { throw .invalidConfiguration(path: path, key: key, reason: "is missing or not an integer") }
            guard value > 0 else { throw .invalidConfiguration(path: path, key: key, reason: "is \(value); it must be positive") }
            return try TransformerConfiguration.bounded(value, key: key, path: path)
        }
        self.family = family
        layerCount = try required("num_hidden_layers")
        hiddenSize = try required("hidden_size")
        headCount = try required("num_attention_heads")
        keyValueHeadCount = config["num_key_value_heads"]?.int ?? headCount
        headDimension = config["head_dim"]?.int ?? hiddenSize / headCount
        intermediateSize = config["intermediate_size"]?.int ?? 0
        vocabularySize = try required("vocab_size")
        rmsNormEpsilon = Float(config["rms_norm_eps"]?.double ?? 1e-6)
        bosTokenID = try TransformerConfiguration.tokenID(config["bos_token_id"]?.int ?? root["bos_token_id"]?.int, key: "bos_token_id", path: path)

        // transformers 5 nests RoPE in `rope_parameters`; 4.x has `rope_theta` and `rope_scaling`.
        let rope = config["rope_parameters"].flatMap { $0.isNull ? nil : $0 }
        ropeTheta = rope?["rope_theta"]?.double ?? config["rope_theta"]?.double ?? 10000
        let scaling = rope ?? config["rope_scaling"].flatMap { $0.isNull ? nil : $0 }
        let ropeType = scaling?["rope_type"]?.string ?? scaling?["type"]?.string ?? "default"
        switch ropeType {
        case "default": ropeScaling = .none
        case "linear":
            guard let factor = scaling?["factor"]?.double, factor > 0 else {
                throw .invalidConfiguration(path: path, key: "rope_scaling.factor", reason: "is missing or not positive")
            }
            ropeScaling = .linear(factor: factor)
        case "llama3":
            guard let s = scaling, let factor = s["factor"]?.double, let low = s["low_freq_factor"]?.double,
                  let high = s["high_freq_factor"]?.double, let original = s["original_max_position_embeddings"]?.double,
                  factor > 0, high > low else {
                throw .invalidConfiguration(path: path, key: "rope_scaling",
                                            reason: "of type llama3 needs factor, low_freq_factor < high_freq_factor and original_max_position_embeddings")
            }
            ropeScaling = .llama3(factor: factor, lowFrequencyFactor: low, highFrequencyFactor: high, originalContext: original)
        default:
            throw .invalidConfiguration(path: path, key: "rope_scaling", reason: "has rope_type '\(ropeType)'; the forward pass implements default, linear and llama3")
        }

        // Sliding windows: transformers 5 `layer_types`, else Mistral's `sliding_window`, else
        // Qwen2's `use_sliding_window` from layer `max_window_layers` on.
        let window = config["sliding_window"]?.int
        var windows = [Int?](repeating: nil, count: layerCount)
        if let types = config["layer_types"]?.array, types.count == layerCount {
            for (index, type) in types.enumerated() where type.string == "sliding_attention" { windows[index] = window }
        } else if let window {
            switch family {
            case "mistral", "mixtral": windows = Array(repeating: window, count: layerCount)
            case "qwen2", "qwen3", "qwen2_moe", "qwen3_moe":
                if config["use_sliding_window"]?.bool == true {
                    // transformers: layer i slides when i >= max_window_layers (a negative value: every layer).
                    let from = min(max(config["max_window_layers"]?.int ?? 0, 0), layerCount)
                    for index in from..<layerCount { windows[index] = window }
                }
            default: break
            }
        }
        slidingWindows = windows

        if family == "mixtral" || family.hasSuffix("_moe") {
            let experts = config["num_local_experts"]?.int ?? config["num_experts"]?.int ?? 0
            let topK = config["num_experts_per_tok"]?.int ?? 0
            guard experts > 0, topK > 0, topK <= experts else {
                throw .invalidConfiguration(path: path, key: "num_experts_per_tok", reason: "must be between 1 and the expert count (\(experts))")
            }
            var dense = Set(config["mlp_only_layers"]?.array?.compactMap(\.int) ?? [])
            let step = config["decoder_sparse_step"]?.int ?? 1
            if step > 1 { for layer in 0..<layerCount where (layer + 1) % step != 0 { dense.insert(layer) } }
            let shared = config["shared_expert_intermediate_size"]?.int
            mixtureOfExperts = MixtureOfExpertsConfiguration(
                expertCount: experts, expertsPerToken: topK,
                normalizesTopK: family == "mixtral" ? true : (config["norm_topk_prob"]?.bool ?? false),
                expertIntermediateSize: config["moe_intermediate_size"]?.int ?? intermediateSize,
                sharedExpertIntermediateSize: shared.flatMap { $0 > 0 ? $0 : nil }, denseLayers: dense)
        } else {
            mixtureOfExperts = nil
        }
        try validate(path: path)
    }

    private init(gguf: GGUFFile, checkpoint: Checkpoint) throws(ModelError) {
        let path = gguf.path
        guard let arch = gguf["general.architecture"]?.string else {
            throw .invalidConfiguration(path: path, key: "general.architecture", reason: "is missing")
        }
        let familyByArch = ["llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen3": "qwen3",
                            "qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe"]
        guard var family = familyByArch[arch] else {
            throw .unsupportedArchitecture(path: path, architecture: arch, supported: Array(familyByArch.keys).sorted())
        }
        func value(_ key: String) -> GGUFValue? { gguf["\(arch).\(key)"] }
        func int(_ key: String) -> Int? {
            guard let v = value(key) else { return nil }
            if let i = v.int { return i }
            return v.array?.first?.int
        }
        func required(_ key: String) throws(ModelError) -> Int {
            guard let v = int(key), v > 0 else { throw .invalidConfiguration(path: path, key: "\(arch).\(key)", reason: "is missing or not a positive integer") }
            return try TransformerConfiguration.bounded(v, key: "\(arch).\(key)", path: path)
        }
        layerCount = try required("block_count")
        hiddenSize = try required("embedding_length")
        headCount = try required("attention.head_count")
        keyValueHeadCount = int("attention.head_count_kv") ?? headCount
        headDimension = int("attention.key_length") ?? hiddenSize / headCount
        intermediateSize = int("feed_forward_length") ?? 0
        guard let embedding = checkpoint.tensors.first(where: { $0.name == "token_embd.weight" }) else {
            throw .missingTensor(path: path, tensor: "token_embd.weight")
        }
        vocabularySize = int("vocab_size") ?? embedding.shape.first ?? 0
        rmsNormEpsilon = Float(value("attention.layer_norm_rms_epsilon")?.double ?? 1e-5)
        ropeTheta = value("rope.freq_base")?.double ?? 10000
        // Llama 3 scaling arrives as the `rope_freqs.weight` tensor (read with the weights);
        // linear scaling as rope.scaling.type.
        if value("rope.scaling.type")?.string == "linear", let factor = value("rope.scaling.factor")?.double, factor > 0 {
            ropeScaling = .linear(factor: factor)
        } else {
            ropeScaling = .none
        }
        let window = int("attention.sliding_window")
        slidingWindows = [Int?](repeating: window, count: layerCount)
        bosTokenID = try TransformerConfiguration.tokenID(gguf["tokenizer.ggml.bos_token_id"]?.int, key: "tokenizer.ggml.bos_token_id", path: path)
        // One pass over the tensors, not one per layer (layers × tensors on a hostile file).
        let routers = Set(checkpoint.tensors.lazy.map(\.name).filter { $0.hasSuffix(".ffn_gate_inp.weight") })
        if let experts = int("expert_count"), experts > 0 {
            if family == "llama" { family = "mixtral" }
            let shared = int("expert_shared_feed_forward_length")
            mixtureOfExperts = MixtureOfExpertsConfiguration(
                expertCount: experts, expertsPerToken: int("expert_used_count") ?? 0,
                // llama.cpp's converters write expert_weights_norm only when it differs from the family default.
                normalizesTopK: gguf["\(arch).expert_weights_norm"]?.bool ?? (family == "mixtral" || family == "qwen3_moe"),
                expertIntermediateSize: int("expert_feed_forward_length") ?? intermediateSize,
                sharedExpertIntermediateSize: shared,
                // A layer without a router tensor is dense (Qwen's mlp_only_layers survive conversion this way).
                denseLayers: Set((0..<layerCount).filter { layer in !routers.contains("blk.\(layer).ffn_gate_inp.weight") }))
        } else {
            mixtureOfExperts = nil
        }
        self.family = family
        try validate(path: path)
    }

    /// The largest layer count, width or vocabulary accepted (real models stay far below; the
    /// forward pass allocates per layer and per row, so a hostile value must not reach it).
    static let maximumSize = 1 << 24
    /// The largest layer count accepted.
    static let maximumLayerCount = 1 << 16

    /// `value`, or an error when it is above the limits.
    private static func bounded(_ value: Int, key: String, path: String) throws(ModelError) -> Int {
        let limit = key.hasSuffix("num_hidden_layers") || key.hasSuffix("block_count") ? maximumLayerCount : maximumSize
        guard value <= limit else {
            throw .invalidConfiguration(path: path, key: key, reason: "is \(value), above the largest the forward pass accepts (\(limit))")
        }
        return value
    }

    /// A token id from the configuration as Int32, nil when absent.
    private static func tokenID(_ value: Int?, key: String, path: String) throws(ModelError) -> Int32? {
        guard let value else { return nil }
        guard let id = Int32(exactly: value) else {
            throw .invalidConfiguration(path: path, key: key, reason: "is \(value), not a token id (ids are 32-bit)")
        }
        return id
    }

    private func validate(path: String) throws(ModelError) {
        guard keyValueHeadCount > 0, headCount % keyValueHeadCount == 0 else {
            throw .invalidConfiguration(path: path, key: "num_key_value_heads",
                                        reason: "is \(keyValueHeadCount); it must divide the attention heads (\(headCount))")
        }
        let sizes = [keyValueHeadCount, headDimension, intermediateSize, mixtureOfExperts?.expertCount ?? 0,
                     mixtureOfExperts?.expertIntermediateSize ?? 0, mixtureOfExperts?.sharedExpertIntermediateSize ?? 0]
        for (key, size) in zip(["num_key_value_heads", "head_dim", "intermediate_size", "num_experts", "moe_intermediate_size",
                                "shared_expert_intermediate_size"], sizes) where size < 0 || size > TransformerConfiguration.maximumSize {
            throw .invalidConfiguration(path: path, key: key, reason: "is \(size); it must be between 0 and \(TransformerConfiguration.maximumSize)")
        }
        guard headDimension > 0, headDimension % 2 == 0 else {
            throw .invalidConfiguration(path: path, key: "head_dim", reason: "is \(headDimension); RoPE needs a positive even head size")
        }
        if let moe = mixtureOfExperts, moe.expertsPerToken < 1 || moe.expertsPerToken > moe.expertCount {
            throw .invalidConfiguration(path: path, key: "expert_used_count",
                                        reason: "is \(moe.expertsPerToken); it must be between 1 and the expert count (\(moe.expertCount))")
        }
    }

    /// RoPE inverse frequencies (radians per position) for the `headDimension / 2` rotation pairs,
    /// after scaling; `frequencyFactors` (GGUF `rope_freqs.weight`) divides them when given.
    public func inverseFrequencies(frequencyFactors: [Float]? = nil) -> [Double] {
        let half = headDimension / 2
        var result = (0..<half).map { i in 1.0 / pow(ropeTheta, Double(2 * i) / Double(headDimension)) }
        switch ropeScaling {
        case .none: break
        case .linear(let factor): result = result.map { $0 / factor }
        case let .llama3(factor, low, high, original):
            let lowWavelength = original / low, highWavelength = original / high
            result = result.map { frequency in
                let wavelength = 2 * Double.pi / frequency
                if wavelength < highWavelength { return frequency }
                if wavelength > lowWavelength { return frequency / factor }
                let smooth = (original / wavelength - low) / (high - low)
                return (1 - smooth) * frequency / factor + smooth * frequency
            }
        }
        if let frequencyFactors, frequencyFactors.count == half {
            for i in 0..<half { result[i] /= Double(frequencyFactors[i]) }
        }
        return result
    }

    /// Whether layer `layer` routes through experts.
    public func isMixtureOfExpertsLayer(_ layer: Int) -> Bool {
        guard let moe = mixtureOfExperts else { return false }
        return !moe.denseLayers.contains(layer)
    }
}
