import Foundation
import Formats

/// The architecture numbers Fit needs: sizes of every weight matrix and of the KV cache.
///
/// Built from a Hugging Face config.json (``init(config:path:)``), GGUF metadata
/// (``init(ggufMetadata:path:)``), a preset (``preset(named:)``), and refined by real tensor
/// headers (``withTensors(_:)``) for the exact parameter count and bytes.
public struct ModelShape: Codable, Sendable, Hashable {
    /// A label for output (preset name, model_type or directory name).
    public var name: String
    /// Width of the residual stream (`hidden_size`).
    public var hiddenSize: Int
    /// Number of transformer blocks.
    public var layerCount: Int
    /// Query heads.
    public var attentionHeads: Int
    /// Key/value heads (fewer than `attentionHeads` under GQA).
    public var kvHeads: Int
    /// Dimension of one head.
    public var headDim: Int
    /// Width of the dense MLP (or of each expert when `expertIntermediateSize` is 0).
    public var intermediateSize: Int
    /// Vocabulary size (rows of the embedding and lm_head).
    public var vocabularySize: Int
    /// Whether lm_head shares the embedding matrix.
    public var tiedEmbeddings: Bool
    /// Gated MLP (gate, up, down: Llama family) or plain two-matrix MLP (GPT-J, Phi-2, OPT).
    public var gatedMLP: Bool
    /// Routed experts per layer (1 for a dense model).
    public var expertCount: Int
    /// Experts each token is routed to.
    public var expertsPerToken: Int
    /// Width of one routed expert when it differs from `intermediateSize` (Qwen-MoE), else 0.
    public var expertIntermediateSize: Int
    /// Width of an always-active shared expert, 0 when there is none.
    public var sharedExpertIntermediateSize: Int
    /// Sliding attention window in tokens when the config declares one for every layer.
    public var slidingWindow: Int?
    /// Longest context the model was trained for (`max_position_embeddings`).
    public var maxContext: Int
    /// Biases on the q, k, v projections (Qwen2, Phi-2, OPT).
    public var attentionBias: Bool
    /// Biases on the attention output and MLP projections (GPT-J MLP, Phi-2, OPT).
    public var projectionBias: Bool
    /// A bias on lm_head (GPT-J, Phi-2).
    public var lmHeadBias: Bool
    /// Norm layers per block (2 for pre-norm attention + MLP, 1 for parallel blocks).
    public var normsPerLayer: Int
    /// LayerNorm with bias (true) or RMSNorm (false).
    public var normBias: Bool
    /// Rows of a learned position embedding (OPT), 0 for rotary models.
    public var learnedPositions: Int
    /// Tensor list from real checkpoint headers; when present it replaces the architecture-derived list.
    public var tensors: [WeightTensor]?
    /// How the checkpoint the shape was read from is quantized (nil for presets, configs and
    /// unquantized weights); its ``StoredQuantization/schemeName`` is the variant its stored bytes are.
    public var storedQuantization: StoredQuantization?

    /// Creates a shape; derived defaults follow transformers (head_dim = hidden / heads).
    public init(name: String, hiddenSize: Int, layerCount: Int, attentionHeads: Int, kvHeads: Int? = nil,
                headDim: Int? = nil, intermediateSize: Int, vocabularySize: Int, tiedEmbeddings: Bool = false,
                gatedMLP: Bool = true, expertCount: Int = 1, expertsPerToken: Int = 1, expertIntermediateSize: Int = 0,
                sharedExpertIntermediateSize: Int = 0, slidingWindow: Int? = nil, maxContext: Int,
                attentionBias: Bool = false, projectionBias: Bool = false, lmHeadBias: Bool = false,
                normsPerLayer: Int = 2, normBias: Bool = false, learnedPositions: Int = 0) {
        self.name = name
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
        self.attentionHeads = attentionHeads
        self.kvHeads = kvHeads ?? attentionHeads
        self.headDim = headDim ?? (attentionHeads > 0 ? hiddenSize / attentionHeads : 0)
        self.intermediateSize = intermediateSize
        self.vocabularySize = vocabularySize
        self.tiedEmbeddings = tiedEmbeddings
        self.gatedMLP = gatedMLP
        self.expertCount = max(expertCount, 1)
        self.expertsPerToken = max(min(expertsPerToken, max(expertCount, 1)), 1)
        self.expertIntermediateSize = expertIntermediateSize
        self.sharedExpertIntermediateSize = sharedExpertIntermediateSize
        self.slidingWindow = slidingWindow
        self.maxContext = maxContext
        self.attentionBias = attentionBias
        self.projectionBias = projectionBias
        self.lmHeadBias = lmHeadBias
        self.normsPerLayer = normsPerLayer
        self.normBias = normBias
        self.learnedPositions = learnedPositions
        self.tensors = nil
        self.storedQuantization = nil
    }

    /// Whether routed experts exist.
    public var isMixtureOfExperts: Bool { expertCount > 1 }

    /// Checks that every size is positive and consistent; throws `invalidModelConfig`.
    public func validate(path: String) throws {
        let sizes = [hiddenSize, layerCount, attentionHeads, kvHeads, headDim, intermediateSize, vocabularySize, maxContext]
        guard sizes.allSatisfy({ $0 > 0 && $0 < 1 << 31 }) else {
            throw FormatError(.invalidModelConfig, path: path,
                              message: "sizes must be between 1 and 2^31 - 1 (hidden \(hiddenSize), layers \(layerCount), heads \(attentionHeads), kv heads \(kvHeads), head dim \(headDim), intermediate \(intermediateSize), vocab \(vocabularySize), context \(maxContext))",
                              remedy: "check config.json or the GGUF metadata")
        }
        // The optional sizes enter the derived tensor list's products too (experts × layers).
        let optional = [expertCount, expertsPerToken, expertIntermediateSize, sharedExpertIntermediateSize, learnedPositions]
        guard optional.allSatisfy({ $0 >= 0 && $0 < 1 << 31 }) else {
            throw FormatError(.invalidModelConfig, path: path,
                              message: "expert and position sizes must be between 0 and 2^31 - 1 (experts \(expertCount), experts per token \(expertsPerToken), expert intermediate \(expertIntermediateSize), shared expert intermediate \(sharedExpertIntermediateSize), learned positions \(learnedPositions))",
                              remedy: "check config.json or the GGUF metadata")
        }
        // Every product the planner forms from these sizes must fit in Int (sizes come from files).
        var total = 0
        for tensor in weightTensors {
            guard let elements = CheckedSize.product([tensor.rows, tensor.columns, tensor.count]),
                  let bytes = CheckedSize.multiply(elements, 4), let sum = CheckedSize.sum(total, bytes) else {
                throw FormatError(.overflow, path: path, tensor: tensor.name, message: "the size of \(tensor.name) overflows 64-bit arithmetic",
                                  remedy: "check the sizes in config.json or the GGUF metadata")
            }
            total = sum
        }
        guard CheckedSize.product([2, layerCount, kvHeads, headDim, 2]) != nil else {
            throw FormatError(.overflow, path: path, message: "the KV bytes per token overflow 64-bit arithmetic", remedy: "check the sizes")
        }
        guard attentionHeads % kvHeads == 0 else {
            throw FormatError(.invalidModelConfig, path: path, message: "\(attentionHeads) attention heads are not a multiple of \(kvHeads) KV heads",
                              remedy: "check num_key_value_heads")
        }
    }

    // MARK: KV cache

    /// KV-cache bytes per token for the whole model: 2 (K and V) × layers × KV heads × head dim × `bytesPerElement`.
    public func kvBytesPerToken(bytesPerElement: Int) -> Int {
        2 * layerCount * kvHeads * headDim * bytesPerElement
    }

    /// Tokens of KV one sequence keeps at `context` tokens (capped by a sliding window when declared).
    public func kvTokens(context: Int) -> Int {
        if let slidingWindow, slidingWindow > 0 { return min(context, slidingWindow) }
        return context
    }

    // MARK: Weights

    /// Every weight tensor, from real headers when known, else derived from the architecture.
    public var weightTensors: [WeightTensor] { tensors ?? derivedTensors() }

    /// Parameters of the model (all experts included).
    public var parameterCount: Int { weightTensors.reduce(0) { $0 + $1.elementCount } }

    /// Parameters one token reads in a decode step: everything except the embedding lookup, with
    /// only `expertsPerToken` of the routed experts.
    public var activeParameterCount: Int {
        weightTensors.reduce(0) { total, tensor in
            switch tensor.role {
            case .embedding: return total
            case .expert: return total + tensor.elementCount / expertCount * expertsPerToken
            default: return total + tensor.elementCount
            }
        }
    }

    /// The tensor list implied by the architecture (names follow the Llama naming in transformers).
    func derivedTensors() -> [WeightTensor] {
        var list: [WeightTensor] = []
        let h = hiddenSize, layers = layerCount
        let qWidth = attentionHeads * headDim, kvWidth = kvHeads * headDim
        list.append(WeightTensor(name: "model.embed_tokens.weight", rows: vocabularySize, columns: h, count: 1, role: .embedding))
        if learnedPositions > 0 {
            list.append(WeightTensor(name: "model.embed_positions.weight", rows: learnedPositions, columns: h, count: 1, role: .embedding))
        }
        list.append(WeightTensor(name: "self_attn.q_proj.weight", rows: qWidth, columns: h, count: layers, role: .attention))
        list.append(WeightTensor(name: "self_attn.k_proj.weight", rows: kvWidth, columns: h, count: layers, role: .attention))
        list.append(WeightTensor(name: "self_attn.v_proj.weight", rows: kvWidth, columns: h, count: layers, role: .attention))
        list.append(WeightTensor(name: "self_attn.o_proj.weight", rows: h, columns: qWidth, count: layers, role: .attention))
        if attentionBias {
            list.append(WeightTensor(name: "self_attn.qkv.bias", rows: 1, columns: qWidth + 2 * kvWidth, count: layers, role: .vector))
        }
        if projectionBias {
            list.append(WeightTensor(name: "self_attn.o_proj.bias", rows: 1, columns: h, count: layers, role: .vector))
        }
        func mlp(_ prefix: String, width: Int, count: Int, role: WeightTensor.Role) {
            if gatedMLP {
                list.append(WeightTensor(name: "\(prefix).gate_proj.weight", rows: width, columns: h, count: count, role: role))
                list.append(WeightTensor(name: "\(prefix).up_proj.weight", rows: width, columns: h, count: count, role: role))
            } else {
                list.append(WeightTensor(name: "\(prefix).fc1.weight", rows: width, columns: h, count: count, role: role))
            }
            list.append(WeightTensor(name: "\(prefix).down_proj.weight", rows: h, columns: width, count: count, role: role))
            if projectionBias {
                list.append(WeightTensor(name: "\(prefix).bias", rows: 1, columns: (gatedMLP ? 2 : 1) * width + h, count: count, role: .vector))
            }
        }
        if isMixtureOfExperts {
            let width = expertIntermediateSize > 0 ? expertIntermediateSize : intermediateSize
            mlp("mlp.experts", width: width, count: layers * expertCount, role: .expert)
            list.append(WeightTensor(name: "mlp.gate.weight", rows: expertCount, columns: h, count: layers, role: .router))
            if sharedExpertIntermediateSize > 0 {
                mlp("mlp.shared_expert", width: sharedExpertIntermediateSize, count: layers, role: .mlp)
            }
        } else {
            mlp("mlp", width: intermediateSize, count: layers, role: .mlp)
        }
        list.append(WeightTensor(name: "norm.weight", rows: 1, columns: h * (normBias ? 2 : 1), count: layers * normsPerLayer + 1, role: .vector))
        if !tiedEmbeddings {
            list.append(WeightTensor(name: "lm_head.weight", rows: vocabularySize, columns: h, count: 1, role: .lmHead))
        }
        if lmHeadBias {
            list.append(WeightTensor(name: "lm_head.bias", rows: 1, columns: vocabularySize, count: 1, role: .vector))
        }
        return list
    }

    /// This shape with its tensor list taken from real checkpoint headers (exact parameter count and shapes).
    ///
    /// Roles come from the names through Formats' ``TensorRole`` (the rules quantization's default
    /// selection uses): rank < 2 tensors, norms and biases are vectors; embeddings, the output
    /// head and routers keep their roles; routed experts are experts; every other rank-2 tensor is
    /// a quantizable projection.
    public func withTensors(_ records: [TensorRecord]) -> ModelShape {
        withTensors(records.map { LogicalTensor(name: $0.name, shape: $0.shape, elementCount: $0.elementCount, parts: [$0]) })
    }

    /// This shape with its tensor list taken from a checkpoint's logical tensors (quantized
    /// weights at their logical shapes, with the stored bytes of all their parts).
    public func withTensors(_ tensors: [LogicalTensor]) -> ModelShape {
        var copy = self
        copy.tensors = tensors.map { tensor in
            // rows × columns = elementCount, which the reader has already checked.
            let columns = max(tensor.shape.count >= 2 ? tensor.shape.last ?? 1 : tensor.elementCount, 1)
            let rows = tensor.elementCount / columns
            let role: WeightTensor.Role
            switch TensorRole(name: tensor.name) {
            case _ where tensor.shape.count < 2: role = .vector
            case .nonWeight, .norm: role = .vector
            case .embedding: role = .embedding
            case .outputHead: role = .lmHead
            case .router: role = .router
            case .expertProjection: role = .expert
            case .projection: role = .attention
            }
            var weight = WeightTensor(name: tensor.name, rows: rows, columns: columns, count: 1, role: role, storedBytes: tensor.storedByteCount)
            weight.storedType = tensor.parts.first?.type.description
            return weight
        }
        if !tensors.contains(where: { TensorRole(name: $0.name) == .outputHead }) { copy.tiedEmbeddings = true }
        return copy
    }
}

/// One weight tensor (or `count` identical ones, such as one per layer), as a rows × columns matrix.
public struct WeightTensor: Codable, Sendable, Hashable {
    /// What the tensor is for, which decides whether quantization touches it.
    public enum Role: String, Codable, Sendable {
        /// Token or position embedding: looked up, not multiplied; kept 16-bit by safetensors schemes.
        case embedding
        /// The output projection; kept 16-bit by safetensors schemes.
        case lmHead
        /// Attention projection (quantized).
        case attention
        /// Dense MLP projection (quantized).
        case mlp
        /// Routed-expert projection (quantized; only the routed share is read per token).
        case expert
        /// MoE router (kept 16-bit).
        case router
        /// Norms and biases (kept 16-bit).
        case vector
    }
    /// A name (one representative name for repeated tensors).
    public var name: String
    /// Output rows (all leading dimensions folded).
    public var rows: Int
    /// Input columns (the last dimension).
    public var columns: Int
    /// How many tensors of this shape.
    public var count: Int
    /// The role.
    public var role: Role
    /// Bytes on disk when read from a real header.
    public var storedBytes: Int?
    /// The stored type of its values when read from a real header (`Q4_K`, `F16`, `BF16`, `F8_E4M3`); nil otherwise.
    public var storedType: String? = nil

    /// Creates a tensor description.
    public init(name: String, rows: Int, columns: Int, count: Int, role: Role, storedBytes: Int? = nil) {
        self.name = name
        self.rows = rows
        self.columns = columns
        self.count = count
        self.role = role
        self.storedBytes = storedBytes
    }

    /// Elements over all `count` copies.
    public var elementCount: Int { rows * columns * count }

    /// Whether a quantization scheme converts this tensor (projections and experts).
    public var isQuantizable: Bool { role == .attention || role == .mlp || role == .expert }
}

// MARK: - config.json

extension ModelShape {
    /// Builds a shape from a Hugging Face config.json given as Foundation values (see ``init(config:path:)-(JSONValue,_)``).
    public init(config raw: [String: Any], path: String) throws {
        try self.init(config: ModelShape.jsonValue(raw), path: path)
    }

    /// Builds a shape from a parsed Hugging Face config.json, read through Formats' ``ModelConfig``
    /// (the text model's keys under every alias: `n_embd`, `n_layer`, `n_head`, `n_inner`,
    /// `n_positions`, OPT's `ffn_dim`, …), with the family rules transformers applies (plain
    /// two-matrix MLPs, LayerNorm with bias, tied embeddings by default).
    public init(config: JSONValue, path: String) throws {
        let reader = ModelConfig(config)
        func require(_ label: String, _ value: Int?) throws -> Int {
            guard let value else {
                throw FormatError(.invalidModelConfig, path: path, message: "config.json has no \(label)",
                                  remedy: "use a transformers config.json, or a preset name (quantize fit --help lists them)")
            }
            return value
        }
        let modelType = (reader.string("model_type") ?? "").lowercased()
        let plainMLP: Set = ["gptj", "phi", "opt", "gpt2", "gpt_neox", "falcon", "bloom", "starcoder2", "gpt_bigcode"]
        let layerNorm: Set = ["gptj", "phi", "opt", "gpt2", "gpt_neox", "falcon", "bloom", "starcoder2", "gpt_bigcode"]
        let hidden = try require("hidden_size", reader.int(.hiddenSize))
        let heads = try require("num_attention_heads", reader.int(.attentionHeads))
        let layers = try require("num_hidden_layers", reader.int(.layers))
        let vocab = try require("vocab_size", reader.int(.vocabularySize))
        // Saturating: a size too large for the arithmetic is refused by validate(path:) below.
        let intermediate = reader.int(.intermediateSize) ?? CheckedSize.multiply(4, hidden) ?? Int.max
        let experts = reader.int(.expertCount) ?? 1
        var sliding: Int? = reader.int(.slidingWindow)
        if reader.bool("use_sliding_window") == false { sliding = nil }
        if reader["layer_types"] != nil || reader["max_window_layers"] != nil, modelType != "mistral" {
            // Per-layer windows (Gemma-style, Qwen2 max_window_layers) need per-group accounting; stay conservative.
            if modelType == "qwen2" || reader["layer_types"] != nil { sliding = nil }
        }
        let tiedDefault = !["llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "gptj", "phi", "phi3"].contains(modelType)
        self.init(
            name: reader.string("_name_or_path").flatMap { $0.isEmpty ? nil : $0 } ?? (modelType.isEmpty ? "model" : modelType),
            hiddenSize: hidden, layerCount: layers, attentionHeads: heads,
            kvHeads: reader.int(.keyValueHeads) ?? heads,
            headDim: reader.int(.headSize) ?? hidden / max(heads, 1),
            intermediateSize: intermediate, vocabularySize: vocab,
            tiedEmbeddings: reader.bool("tie_word_embeddings") ?? tiedDefault,
            gatedMLP: !plainMLP.contains(modelType),
            expertCount: experts, expertsPerToken: reader.int(.expertsPerToken) ?? (experts > 1 ? 2 : 1),
            expertIntermediateSize: reader.int(.expertIntermediateSize) ?? 0,
            sharedExpertIntermediateSize: reader.int(.sharedExpertIntermediateSize) ?? 0,
            slidingWindow: sliding,
            maxContext: reader.int(.contextLength) ?? 2048,
            attentionBias: reader.bool("attention_bias") ?? ["qwen2", "qwen2_moe", "phi", "opt"].contains(modelType),
            projectionBias: reader.bool("mlp_bias") ?? ["gptj", "phi", "opt"].contains(modelType),
            lmHeadBias: ["gptj", "phi"].contains(modelType),
            normsPerLayer: ["gptj", "phi"].contains(modelType) ? 1 : 2,
            normBias: layerNorm.contains(modelType),
            learnedPositions: modelType == "opt" ? CheckedSize.sum(reader.int("max_position_embeddings") ?? 2048, 2) ?? Int.max : 0
        )
        if modelType == "gptj" { projectionBias = true; attentionBias = false }
        try validate(path: path)
    }

    /// Reads `directory/config.json` (or a config.json path) and builds the shape.
    public static func load(configAt path: String) throws -> ModelShape {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        let file = exists && isDirectory.boolValue ? (path as NSString).appendingPathComponent("config.json") : path
        guard FileManager.default.isReadableFile(atPath: file) else {
            throw FormatError(.io, path: file, message: "cannot read config.json (\(exists ? "not readable" : "no such file"))",
                              remedy: "pass a model directory that holds config.json, or a preset name")
        }
        return try shape(config: try JSONValue.parse(contentsOf: file), file: file)
    }

    /// The shape of a parsed config.json at `file`, named after its directory when the config
    /// gives no better name.
    static func shape(config: JSONValue, file: String) throws -> ModelShape {
        guard config.object != nil else {
            throw FormatError(.notThisFormat, path: file, message: "config.json is not a JSON object", remedy: "check the file")
        }
        var shape = try ModelShape(config: config, path: file)
        if shape.name == "model" || shape.name == (config["model_type"]?.string ?? "") {
            shape.name = URL(fileURLWithPath: file).deletingLastPathComponent().lastPathComponent
        }
        return shape
    }

    /// Foundation values (as `JSONSerialization` gives them) as a ``JSONValue``.
    static func jsonValue(_ value: Any) -> JSONValue {
        switch value {
        case let string as String: return .string(string)
        case let bool as Bool: return .bool(bool)
        case let int as Int: return .number(JSONNumber(int))
        case let double as Double: return .number(JSONNumber(double))
        case let array as [Any]: return .array(array.map(jsonValue))
        case let object as [String: Any]: return .object(object.keys.sorted().map { JSONMember($0, jsonValue(object[$0]!)) })
        default: return .null
        }
    }
}

// MARK: - GGUF metadata

/// A GGUF metadata value as Fit reads it (the numeric and string kinds; arrays are passed as their length).
public enum MetadataValue: Sendable, Hashable, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByStringLiteral {
    /// Any integer kind.
    case int(Int)
    /// Float32/Float64.
    case double(Double)
    /// A string.
    case string(String)

    /// Creates an integer value.
    public init(integerLiteral value: Int) { self = .int(value) }
    /// Creates a float value.
    public init(floatLiteral value: Double) { self = .double(value) }
    /// Creates a string value.
    public init(stringLiteral value: String) { self = .string(value) }

    /// The value as an integer when it is a whole number.
    public var intValue: Int? {
        switch self {
        case .int(let value): return value
        case .double(let value): return value == value.rounded() && abs(value) < 1e15 ? Int(value) : nil
        case .string: return nil
        }
    }
}

extension ModelShape {
    /// Builds a shape from GGUF metadata keys given as values: they are read by Formats'
    /// ``ModelArchitecture/init(ggufValue:)`` (the one GGUF metadata reader), so see
    /// ``init(architecture:path:)``; when the vocabulary size is absent the caller passes the length
    /// of `tokenizer.ggml.tokens` as `tokenizer.ggml.tokens` (an `.int`).
    public init(ggufMetadata metadata: [String: MetadataValue], path: String) throws {
        let architecture = ModelArchitecture(ggufValue: { key in
            switch metadata[key] {
            case .int(let value)?: return key == "tokenizer.ggml.tokens" ? value as Any : Double(value) as Any
            case .double(let value)?: return value
            case .string(let value)?: return value
            case nil: return nil
            }
        })
        guard let architecture else {
            throw FormatError(.invalidModelConfig, path: path, message: "GGUF metadata has no general.architecture",
                              remedy: "check the file with gguf-dump")
        }
        try self.init(architecture: architecture, path: path)
    }

    /// Builds a shape from the architecture GGUF metadata declares (`ARCH.block_count`,
    /// `ARCH.embedding_length`, `ARCH.feed_forward_length`, `ARCH.attention.head_count(_kv)`,
    /// `ARCH.attention.key_length`, `ARCH.context_length`, `ARCH.expert_count`,
    /// `ARCH.expert_used_count`, `ARCH.attention.sliding_window`, the vocabulary size), with
    /// llama.cpp's family rules. Whether lm_head is tied is not in the metadata: refine with
    /// ``withTensors(_:)`` (no `output.weight` means tied).
    public init(architecture: ModelArchitecture, path: String) throws {
        let arch = architecture.name
        func require(_ key: String, _ value: Int?) throws -> Int {
            guard let value else {
                throw FormatError(.invalidModelConfig, path: path, message: "GGUF metadata has no \(arch).\(key)",
                                  remedy: "check the file with gguf-dump")
            }
            return value
        }
        let hidden = try require("embedding_length", architecture.hiddenSize)
        let heads = try require("attention.head_count", architecture.attentionHeads)
        guard let vocab = architecture.vocabularySize else {
            throw FormatError(.invalidModelConfig, path: path, message: "GGUF metadata gives no vocabulary size",
                              remedy: "pass the length of tokenizer.ggml.tokens")
        }
        let experts = architecture.expertCount ?? 1
        let plain: Set = ["gptj", "phi2", "gpt2", "gptneox", "falcon", "bloom", "starcoder2", "starcoder"]
        self.init(
            name: architecture.modelName ?? arch,
            hiddenSize: hidden, layerCount: try require("block_count", architecture.layers), attentionHeads: heads,
            kvHeads: architecture.keyValueHeads ?? heads, headDim: architecture.headSize ?? hidden / max(heads, 1),
            intermediateSize: try require("feed_forward_length", architecture.intermediateSize), vocabularySize: vocab,
            gatedMLP: !plain.contains(arch),
            expertCount: experts, expertsPerToken: architecture.expertsPerToken ?? (experts > 1 ? 2 : 1),
            expertIntermediateSize: architecture.expertIntermediateSize ?? 0,
            slidingWindow: architecture.slidingWindow,
            maxContext: architecture.contextLength ?? 2048,
            normsPerLayer: ["gptj", "phi2"].contains(arch) ? 1 : 2,
            normBias: plain.contains(arch)
        )
        try validate(path: path)
    }
}

// MARK: - Checkpoints and model names

extension ModelShape {
    /// The shape of an opened checkpoint: the architecture from its config.json or GGUF metadata,
    /// the exact tensor list (quantized weights at their logical shapes and stored bytes) from its headers.
    public init(checkpoint: Checkpoint) throws {
        var shape: ModelShape
        if checkpoint.format == .gguf {
            guard let architecture = checkpoint.architecture else {
                throw FormatError(.invalidModelConfig, path: checkpoint.path, message: "GGUF metadata has no general.architecture",
                                  remedy: "check the file with gguf-dump")
            }
            shape = try ModelShape(architecture: architecture, path: checkpoint.path)
        } else {
            let file = (checkpoint.directory as NSString).appendingPathComponent("config.json")
            guard let config = checkpoint.config else {
                throw FormatError(.io, path: file, message: "cannot read config.json (no such file)",
                                  remedy: "pass a model directory that holds config.json, or a preset name")
            }
            shape = try ModelShape.shape(config: config, file: file)
        }
        self = shape.withTensors(checkpoint.logicalTensors)
        storedQuantization = checkpoint.quantization
    }

    /// The shape for `quantize fit MODEL`: a preset name; a directory or config.json with no
    /// weights (plan before downloading); or weight files (.safetensors, sharded directory, .gguf),
    /// whose headers give the exact parameter count and bytes per tensor.
    public static func load(model path: String) throws -> ModelShape {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            if path.hasSuffix(".json") && !path.hasSuffix(".index.json") { return try load(configAt: path) }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                let hasWeights = names.contains { $0.hasSuffix(".safetensors") || $0.hasSuffix(".gguf") }
                if !hasWeights { return try load(configAt: path) }  // plan before downloading
            }
            return try ModelShape(checkpoint: try Checkpoint(path: path))
        }
        if let preset = try preset(named: path) { return preset }
        let names = try presets().map(\.name)
        throw FormatError(.unknownModel, path: path, message: "no such file or directory, and not a preset; presets: \(names.joined(separator: ", "))",
                          remedy: "pass a model directory with config.json, a weight file, or one of the presets")
    }
}

// MARK: - Presets

/// A named architecture from the published config.json of a well-known model (Resources/presets.json).
public struct ModelPreset: Codable, Sendable {
    /// The name users type (`llama-3.1-70b`).
    public var name: String
    /// Other accepted names.
    public var aliases: [String]?
    /// Where the numbers come from (the Hugging Face repository whose config.json they copy).
    public var source: String
    /// The published config.json values that matter (transformers key names).
    public var config: [String: JSONScalar]
}

/// A JSON number, string or boolean.
public enum JSONScalar: Codable, Sendable, Hashable {
    /// A number.
    case number(Double)
    /// A string.
    case string(String)
    /// A boolean.
    case bool(Bool)
    /// null.
    case null

    /// Decodes any scalar.
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null } else if let value = try? container.decode(Bool.self) { self = .bool(value) } else if let value = try? container.decode(Double.self) { self = .number(value) } else { self = .string(try container.decode(String.self)) }
    }

    /// Encodes the scalar.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }

    /// The value as JSON (an integer for whole numbers).
    var jsonValue: JSONValue {
        switch self {
        case .number(let value): return value == value.rounded() && abs(value) < 1e15 ? .number(JSONNumber(Int(value))) : .number(JSONNumber(value))
        case .string(let value): return .string(value)
        case .bool(let value): return .bool(value)
        case .null: return .null
        }
    }
}

extension ModelShape {
    /// Every preset shipped with the tool.
    public static func presets() throws -> [ModelPreset] {
        guard let url = Bundle.module.url(forResource: "presets", withExtension: "json", subdirectory: "Resources"),
              let data = try? Data(contentsOf: url) else {
            throw FormatError(.io, path: "Resources/presets.json", message: "the model presets are missing from the bundle", remedy: "rebuild the package")
        }
        do { return try JSONValueDecoder().decode([ModelPreset].self, from: [UInt8](data), path: "Resources/presets.json") } catch {
            throw FormatError(.invalidCatalog, path: "Resources/presets.json", message: describe(error), remedy: "fix the preset table")
        }
    }

    /// The preset called `name` (or one of its aliases, case-insensitive); nil when there is none.
    public static func preset(named name: String) throws -> ModelShape? {
        let key = name.lowercased()
        guard let preset = try presets().first(where: { $0.name == key || ($0.aliases ?? []).contains(key) }) else { return nil }
        let config = JSONValue.object(preset.config.keys.sorted().map { JSONMember($0, preset.config[$0]!.jsonValue) })
        var shape = try ModelShape(config: config, path: "preset \(preset.name)")
        shape.name = preset.name
        return shape
    }
}
