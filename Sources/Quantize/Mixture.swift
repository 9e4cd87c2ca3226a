import Foundation
import Formats

/// A llama.cpp quantization mixture, named as `llama-quantize` names it (`q4_k_m`, `q5_k_s`, …):
/// one default k-quant for the matrices, with some tensors promoted or demoted by
/// ``MixturePlanner``'s rule.
public enum MixtureName: String, CaseIterable, Sendable, Codable {
    /// `Q2_K`: Q2_K matrices, attn_v/ffn_down/attn_output at Q3_K or Q4_K.
    case q2_K = "q2_k"
    /// `Q3_K_S`: every matrix Q3_K.
    case q3_K_S = "q3_k_s"
    /// `Q3_K_M`: Q3_K with attn_v, attn_output and ffn_down at Q4_K/Q5_K.
    case q3_K_M = "q3_k_m"
    /// `Q3_K_L`: Q3_K with attn_v, attn_output and ffn_down at Q5_K.
    case q3_K_L = "q3_k_l"
    /// `Q4_K_S`: Q4_K with the first attn_v and ffn_down layers at Q5_K.
    case q4_K_S = "q4_k_s"
    /// `Q4_K_M`: Q4_K with half of attn_v and ffn_down at Q6_K.
    case q4_K_M = "q4_k_m"
    /// `Q5_K_S`: every matrix Q5_K.
    case q5_K_S = "q5_k_s"
    /// `Q5_K_M`: Q5_K with half of attn_v and ffn_down at Q6_K.
    case q5_K_M = "q5_k_m"
    /// `Q6_K`: every matrix Q6_K.
    case q6_K = "q6_k"
    /// `IQ4_XS`: IQ4_XS matrices, attn_v (GQA) and the first ffn_down layers at Q5_K.
    case iq4_XS = "iq4_xs"

    /// This mixture's entry of ``MixtureDescriptor/all``.
    public var descriptor: MixtureDescriptor { MixtureDescriptor.all.first { $0.name == self }! }
}

/// What a mixture is: its llama `file_type` and the type its matrices default to.
public struct MixtureDescriptor: Sendable {
    /// The name.
    public let name: MixtureName
    /// llama.cpp's `llama_ftype` (`general.file_type` of the output).
    public let llamaFileType: UInt32
    /// `llama_ftype_get_default_type`: the type of every matrix the rule leaves alone.
    public let defaultType: GGMLType
    /// The name llama-quantize prints and accepts (`Q4_K_M`).
    public var llamaName: String { name.rawValue.uppercased() }

    /// Every mixture (llama.cpp include/llama.h `LLAMA_FTYPE_MOSTLY_*`).
    public static let all: [MixtureDescriptor] = [
        MixtureDescriptor(name: .q2_K, llamaFileType: 10, defaultType: .q2_K),
        MixtureDescriptor(name: .q3_K_S, llamaFileType: 11, defaultType: .q3_K),
        MixtureDescriptor(name: .q3_K_M, llamaFileType: 12, defaultType: .q3_K),
        MixtureDescriptor(name: .q3_K_L, llamaFileType: 13, defaultType: .q3_K),
        MixtureDescriptor(name: .q4_K_S, llamaFileType: 14, defaultType: .q4_K),
        MixtureDescriptor(name: .q4_K_M, llamaFileType: 15, defaultType: .q4_K),
        MixtureDescriptor(name: .q5_K_S, llamaFileType: 16, defaultType: .q5_K),
        MixtureDescriptor(name: .q5_K_M, llamaFileType: 17, defaultType: .q5_K),
        MixtureDescriptor(name: .q6_K, llamaFileType: 18, defaultType: .q6_K),
        MixtureDescriptor(name: .iq4_XS, llamaFileType: 30, defaultType: .iq4_XS),
    ]

    /// The mixture written as text (`q4_k_m`, `Q4_K_M`), nil if unknown.
    public static func named(_ text: String) -> MixtureDescriptor? { MixtureName(rawValue: text.lowercased())?.descriptor }
}

/// The model facts the mixture rule reads (llama.cpp's hparams), from GGUF metadata.
public struct MixtureModel: Sendable, Equatable {
    /// `general.architecture` (`llama`, `qwen2`, `falcon`, …).
    public var architecture: String
    /// `<arch>.block_count`.
    public var layerCount: Int
    /// `<arch>.attention.head_count` (layer 0).
    public var headCount: Int
    /// `<arch>.attention.head_count_kv` (layer 0; the head count when absent).
    public var headCountKV: Int
    /// `<arch>.expert_count` (0 for dense models).
    public var expertCount: Int

    /// Creates the facts.
    public init(architecture: String, layerCount: Int, headCount: Int, headCountKV: Int, expertCount: Int = 0) {
        self.architecture = architecture
        self.layerCount = layerCount
        self.headCount = headCount
        self.headCountKV = headCountKV
        self.expertCount = expertCount
    }

    /// The facts from a GGUF file's metadata (integers or per-layer integer arrays; layer 0 is used).
    public init(metadata: [String: GGUFValue]) throws(QuantizeJobError) {
        guard case .string(let arch)? = metadata["general.architecture"] else {
            throw QuantizeJobError(.unsupportedConversion, "the GGUF has no general.architecture; a mixture needs the model's layer and head counts")
        }
        func int(_ key: String) -> Int? {
            switch metadata[key] {
            case .some(.array(_, let items)): return items.first.flatMap { $0.int }
            case .some(let v): return v.int
            case nil: return nil
            }
        }
        guard let layers = int("\(arch).block_count"), layers > 0 else {
            throw QuantizeJobError(.unsupportedConversion, "the GGUF has no \(arch).block_count; a mixture needs the model's layer count")
        }
        let heads = int("\(arch).attention.head_count") ?? 0
        self.init(architecture: arch, layerCount: layers, headCount: heads,
                  headCountKV: int("\(arch).attention.head_count_kv") ?? heads, expertCount: int("\(arch).expert_count") ?? 0)
    }

    /// llama.cpp's `n_gqa()`: query heads per key/value head (0 without key/value heads).
    public var gqa: Int { headCountKV == 0 ? 0 : headCount / headCountKV }

    /// Whether llama.cpp types this model `LLM_TYPE_70B` (80 layers of llama with GQA, qwen2, deci,
    /// olmo; 68 layers of jais2), which promotes attn_v.
    public var is70B: Bool {
        switch architecture {
        case "llama": return expertCount != 8 && layerCount == 80 && headCount != headCountKV
        case "qwen2", "deci", "olmo": return layerCount == 80
        case "jais2": return layerCount == 68
        default: return false
        }
    }
}

/// One tensor the planner decides for: its GGUF name, ggml shape (row length first) and stored type.
public struct MixtureTensor: Sendable, Equatable {
    /// The GGUF tensor name.
    public var name: String
    /// The ggml dimensions, `ne[0]` (the row length) first.
    public var shape: [Int]
    /// The type stored in the input.
    public var type: GGMLType

    /// Creates a tensor description.
    public init(name: String, shape: [Int], type: GGMLType) {
        self.name = name
        self.shape = shape
        self.type = type
    }
}

/// A `--tensor-type PATTERN=TYPE` override: tensors whose name the regular expression finds a match
/// in (like llama-quantize's `std::regex_search`; the pattern is lower-cased as llama-quantize does)
/// get TYPE instead of the mixture's choice; the first matching override wins.
public struct TensorTypeOverride: Sendable {
    /// The pattern as given.
    public let pattern: String
    /// The type.
    public let type: GGMLType
    private let regex: NSRegularExpression

    /// Parses `PATTERN=TYPE`; a malformed pattern, missing part or unknown type is an error saying which.
    public init(parsing text: String) throws(QuantizeJobError) {
        guard let eq = text.firstIndex(of: "=") else {
            throw QuantizeJobError(.patternMatchedNothing, "--tensor-type '\(text)' is not PATTERN=TYPE (for example attn_v=q8_0)")
        }
        let pattern = String(text[..<eq]).lowercased(), typeName = String(text[text.index(after: eq)...])
        guard !pattern.isEmpty else { throw QuantizeJobError(.patternMatchedNothing, "--tensor-type '\(text)' has no tensor name pattern before '='") }
        guard let type = GGMLType.named(typeName), type == .f32 || type == .f16 || type == .bf16 || SchemeDescriptor.writing(type) != nil else {
            let known = (["f32"] + SchemeDescriptor.all.compactMap { $0.ggmlType?.name.lowercased() }).joined(separator: ", ")
            throw QuantizeJobError(.patternMatchedNothing, "--tensor-type '\(text)': '\(typeName)' is not a type this tool writes (\(known))")
        }
        do { regex = try NSRegularExpression(pattern: pattern) } catch {
            throw QuantizeJobError(.patternMatchedNothing, "--tensor-type '\(text)': '\(pattern)' is not a valid regular expression")
        }
        self.pattern = pattern
        self.type = type
    }

    func matches(_ name: String) -> Bool {
        regex.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
    }
}

/// The planner's decision for one tensor.
public struct MixtureDecision: Sendable, Equatable {
    /// The tensor name.
    public var name: String
    /// The type it is written with.
    public var type: GGMLType
    /// Whether it is converted (its type differs from the input's).
    public var converts: Bool
    /// Why this type, in words (`--dry-run` prints it).
    public var reason: String
}

/// llama.cpp's `llama_tensor_get_type` (src/llama-quant.cpp of the llama.cpp that
/// tools/build_llama_cpp.sh builds) for the mixtures of ``MixtureName``, with or without an
/// importance matrix (its `qs.has_imatrix`): which tensors are quantized at all, the per-category promotions by layer (attn_v,
/// ffn_down, attn_output, attn_qkv), the output / tied token-embedding type, the GQA, 70B and
/// 8-expert cases, `--tensor-type` overrides and the fallbacks for row lengths that are not a
/// multiple of the block size. Tensors are visited in llama-quantize's order (by layer, then
/// name), which is also the order the counters of the rule and the output file use.
public enum MixturePlanner {
    /// The tensors in llama-quantize's order (its `weight_name_comparer`: layer number of
    /// `blk.N.`, -1 without one, then name).
    public static func llamaOrder(_ tensors: [MixtureTensor]) -> [MixtureTensor] {
        func layer(_ name: String) -> Int {
            guard name.hasPrefix("blk.") else { return -1 }
            let digits = name.dropFirst(4).prefix { $0.isASCII && $0.isNumber }
            return name.dropFirst(4 + digits.count).hasPrefix(".") ? Int(digits) ?? -1 : -1
        }
        return tensors.sorted { a, b in
            let la = layer(a.name), lb = layer(b.name)
            return la != lb ? la < lb : Array(a.name.utf8).lexicographicallyPrecedes(Array(b.name.utf8))
        }
    }

    /// The decision for every tensor, in ``llamaOrder(_:)``. An override that matches no
    /// quantized tensor is an error naming it. `pure` (llama-quantize `--pure`) gives every
    /// quantized tensor the mixture's default type: no promotions, no output/embedding rule, only
    /// the overrides and the row-length fallbacks.
    ///
    /// `hasImportanceMatrix` is llama-quantize's `has_imatrix`: whether an importance matrix with
    /// at least one entry is given (`--imatrix`), whichever tensors it covers. Of the rule's
    /// branches that read it, the one for these mixtures is IQ4_XS's: without an importance matrix
    /// the first eighth of the ffn_down layers is promoted to Q5_K, with one it stays IQ4_XS (the
    /// others are for IQ3_XXS, Q4_0 and Q5_0 files, which are not mixtures here). None of these
    /// mixtures needs an importance matrix (llama.cpp's `tensor_requires_imatrix` asks for one for
    /// IQ1/IQ2/IQ3_XXS tensors and Q2_K_S files only).
    public static func plan(_ mixture: MixtureDescriptor, model: MixtureModel, tensors: [MixtureTensor],
                            overrides: [TensorTypeOverride] = [], pure: Bool = false,
                            hasImportanceMatrix: Bool = false) throws(QuantizeJobError) -> [MixtureDecision] {
        var state = State(mixture: mixture.name, model: model, hasImportanceMatrix: hasImportanceMatrix)
        let ordered = llamaOrder(tensors)
        state.attentionVCount = ordered.filter { Category($0.name).isAttentionV }.count
        state.tiedEmbeddings = !ordered.contains { Category($0.name) == .output }
        return try decide(ordered, defaultType: mixture.defaultType, reason: "\(mixture.llamaName) default", overrides: overrides) {
            t, type, reason throws(QuantizeJobError) in
            pure ? (type, "\(mixture.defaultType.name) (--pure)") : try state.rule(t, type, reason)
        }
    }

    /// The loop both plans share (llama.cpp's `llama_tensor_get_type` around its `_impl`): tensors
    /// llama.cpp never quantizes keep their type; the first matching `--tensor-type` override wins,
    /// else `rule` refines the default; then the row-length fallback. `ordered` is in
    /// ``llamaOrder(_:)``, which `rule`'s counters rely on. An override that matches no quantized
    /// tensor is an error naming it.
    static func decide(_ ordered: [MixtureTensor], defaultType: GGMLType, reason defaultReason: String, overrides: [TensorTypeOverride],
                       rule: (MixtureTensor, GGMLType, String) throws(QuantizeJobError) -> (GGMLType, String)) throws(QuantizeJobError) -> [MixtureDecision] {
        var used = Set<Int>()
        var out: [MixtureDecision] = []
        for t in ordered {
            guard allowsQuantization(t) else {
                out.append(MixtureDecision(name: t.name, type: t.type, converts: false,
                                           reason: t.shape.dropFirst().allSatisfy({ $0 == 1 }) ? "kept: one dimension" : "kept: llama.cpp never quantizes this tensor"))
                continue
            }
            var type = defaultType, reason = defaultReason
            if let i = overrides.firstIndex(where: { $0.matches(t.name) }) {
                used.insert(i)
                type = overrides[i].type
                reason = "--tensor-type \(overrides[i].pattern)=\(type.name.lowercased())"
            } else {
                (type, reason) = try rule(t, type, reason)
            }
            (type, reason) = fallback(t, type, reason)
            out.append(MixtureDecision(name: t.name, type: type, converts: type != t.type, reason: reason))
        }
        if let unused = overrides.indices.first(where: { !used.contains($0) }) {
            throw QuantizeJobError(.patternMatchedNothing,
                                   "--tensor-type \(overrides[unused].pattern)=\(overrides[unused].type.name.lowercased()) matches no quantized tensor; `quantize inspect` lists the tensor names")
        }
        return out
    }

    /// llama.cpp's `tensor_allows_quantization` (no `--leave-output-tensor`, no `--only-copy`).
    static func allowsQuantization(_ t: MixtureTensor) -> Bool {
        var dims = t.shape.count
        while dims > 1 && t.shape[dims - 1] == 1 { dims -= 1 }
        guard dims >= 2 else { return false }
        let n = t.name
        guard n.hasSuffix("weight") else { return false }
        let never = ["_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
                     "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
                     "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight",
                     "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
                     "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
                     "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_",
                     ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd"]
        if never.contains(where: { n.contains($0) }) { return false }
        return n != "position_embd.weight" && n != "token_types.weight"
    }

    /// llama.cpp's `tensor_type_fallback`: a type whose block does not divide the row length.
    static func fallback(_ t: MixtureTensor, _ type: GGMLType, _ reason: String) -> (GGMLType, String) {
        let columns = t.shape.first ?? 0
        guard columns % type.blockSize != 0 else { return (type, reason) }
        var to: GGMLType
        switch type {
        case .iq4_XS: to = .iq4_NL
        case .q2_K, .q3_K: to = .q4_0
        case .q4_K: to = .q5_0
        case .q5_K: to = .q5_1
        case .q6_K: to = .q8_0
        default: to = type
        }
        if columns % to.blockSize != 0 { to = .f16 }
        return (to, "\(reason); row length \(columns) is not a multiple of \(type.blockSize) (\(type.name)): falls back to \(to.name)")
    }

    /// llama.cpp's `tensor_category`.
    enum Category: Equatable {
        case tokenEmbedding, attentionQ, attentionV, attentionK, attentionQKV, attentionKVB, attentionOutput, ffnUp, ffnGate, ffnDown, output, other

        init(_ name: String) {
            if name == "output.weight" { self = .output }
            else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" { self = .tokenEmbedding }
            else if name.contains("attn_qkv.weight") { self = .attentionQKV }
            else if name.contains("attn_kv_b.weight") { self = .attentionKVB }
            else if name.contains("attn_v.weight") { self = .attentionV }
            else if name.contains("attn_k.weight") { self = .attentionK }
            else if name.contains("attn_q.weight") { self = .attentionQ }
            else if name.contains("attn_output.weight") { self = .attentionOutput }
            else if name.contains("ffn_up") { self = .ffnUp }
            else if name.contains("ffn_gate") { self = .ffnGate }
            else if name.contains("ffn_down") { self = .ffnDown }
            else { self = .other }
        }

        var isAttentionV: Bool { self == .attentionV || self == .attentionQKV || self == .attentionKVB }
    }

    /// The counters and facts `llama_tensor_get_type_impl` reads.
    struct State {
        let mixture: MixtureName
        let model: MixtureModel
        /// llama-quantize's `qs.has_imatrix`.
        let hasImportanceMatrix: Bool
        var attentionVCount = 0, attentionVIndex = 0, ffnDownIndex = 0
        var tiedEmbeddings = true

        static func useMoreBits(_ i: Int, _ n: Int) -> Bool { i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2 }

        /// The layer of an FFN tensor: its counter for dense models, the `blk.N.` of its name with experts.
        func layer(_ counter: Int, _ name: String) throws(QuantizeJobError) -> Int {
            guard model.expertCount > 1 else { return counter }
            let digits = name.hasPrefix("blk.") ? name.dropFirst(4).prefix { $0.isASCII && $0.isNumber } : ""
            guard let i = Int(digits), i < model.layerCount else {
                throw QuantizeJobError(.unsupportedConversion, "cannot determine the layer of tensor \(name) (llama.cpp expects blk.N. with N < \(model.layerCount))")
            }
            return i
        }

        mutating func rule(_ t: MixtureTensor, _ type: GGMLType, _ reason: String) throws(QuantizeJobError) -> (GGMLType, String) {
            let m = mixture, falcon = model.architecture == "falcon", eightExperts = model.expertCount == 8
            let category = Category(t.name)
            var type = type, reason = reason
            func set(_ to: GGMLType, _ why: String) { type = to; reason = why }
            if category == .output || (tiedEmbeddings && category == .tokenEmbedding) {
                let what = category == .output ? "output" : "token_embd (tied to the output)"
                if falcon || (t.shape.first ?? 0) % type.blockSize != 0 {
                    set(.q8_0, "\(what): Q8_0 (\(falcon ? "falcon" : "row length not a multiple of \(type.blockSize)"))")
                } else if type != .q8_0 {
                    set(.q6_K, "\(what): Q6_K")
                }
            } else if category == .tokenEmbedding {
                // The mixtures here keep the default type for untied token embeddings.
            } else if category.isAttentionV {
                let i = attentionVIndex, n = attentionVCount
                switch m {
                case .q2_K: set(model.gqa >= 4 ? .q4_K : .q3_K, "attn_v: \(model.gqa >= 4 ? "Q4_K (GQA ≥ 4)" : "Q3_K") in Q2_K")
                case .q3_K_M: set(i < 2 ? .q5_K : .q4_K, "attn_v #\(i): \(i < 2 ? "Q5_K (first two)" : "Q4_K") in Q3_K_M")
                case .q3_K_L: set(.q5_K, "attn_v: Q5_K in Q3_K_L")
                case .iq4_XS where model.gqa >= 4: set(.q5_K, "attn_v: Q5_K (GQA ≥ 4) in IQ4_XS")
                case .q4_K_M, .q5_K_M: if Self.useMoreBits(i, n) { set(.q6_K, "attn_v #\(i) of \(n): Q6_K (use_more_bits) in \(m.rawValue.uppercased())") }
                case .q4_K_S: if i < 4 { set(.q5_K, "attn_v #\(i): Q5_K (first four) in Q4_K_S") }
                default: break
                }
                if model.is70B && (type == .q3_K || type == .q4_K) { set(.q5_K, "attn_v: Q5_K (70B model)") }
                if eightExperts { set(.q8_0, "attn_v: Q8_0 (8 experts)") }
                attentionVIndex += 1
            } else if category == .attentionK {
                if eightExperts { set(.q8_0, "attn_k: Q8_0 (8 experts)") }
            } else if category == .ffnDown {
                let i = try layer(ffnDownIndex, t.name), n = model.layerCount
                switch m {
                case .q2_K: set(.q3_K, "ffn_down: Q3_K in Q2_K")
                case .q3_K_M:
                    let to: GGMLType = i < n / 16 ? .q5_K : (!falcon || Self.useMoreBits(i, n)) ? .q4_K : .q3_K
                    set(to, "ffn_down layer \(i) of \(n): \(to.name) in Q3_K_M")
                case .q3_K_L: set(falcon ? .q4_K : .q5_K, "ffn_down: \(falcon ? "Q4_K (falcon)" : "Q5_K") in Q3_K_L")
                case .q4_K_M:
                    if falcon {
                        let to: GGMLType = i < n / 16 ? .q6_K : Self.useMoreBits(i, n) ? .q5_K : .q4_K
                        set(to, "ffn_down layer \(i) of \(n): \(to.name) in Q4_K_M (falcon)")
                    } else if Self.useMoreBits(i, n) { set(.q6_K, "ffn_down layer \(i) of \(n): Q6_K (use_more_bits) in Q4_K_M") }
                case .iq4_XS: if i < n / 8 && !hasImportanceMatrix { set(.q5_K, "ffn_down layer \(i) of \(n): Q5_K (first eighth, no imatrix) in IQ4_XS") }
                case .q5_K_M: if Self.useMoreBits(i, n) { set(.q6_K, "ffn_down layer \(i) of \(n): Q6_K (use_more_bits) in Q5_K_M") }
                case .q4_K_S: if !falcon && i < n / 8 { set(.q5_K, "ffn_down layer \(i) of \(n): Q5_K (first eighth) in Q4_K_S") }
                default: break
                }
                ffnDownIndex += 1
            } else if category == .attentionOutput {
                if !falcon {
                    if eightExperts {
                        if [.q2_K, .q3_K_S, .q3_K_M, .q4_K_S, .q4_K_M, .iq4_XS].contains(m) { set(.q5_K, "attn_output: Q5_K (8 experts)") }
                    } else {
                        switch m {
                        case .q2_K: set(.q3_K, "attn_output: Q3_K in Q2_K")
                        case .q3_K_M: set(.q4_K, "attn_output: Q4_K in Q3_K_M")
                        case .q3_K_L: set(.q5_K, "attn_output: Q5_K in Q3_K_L")
                        default: break
                        }
                    }
                } else if m == .q3_K_L { set(.q4_K, "attn_output: Q4_K (falcon) in Q3_K_L") }
            } else if category == .attentionQKV {
                switch m {
                case .q3_K_M, .q3_K_L: set(.q4_K, "attn_qkv: Q4_K in \(m.rawValue.uppercased())")
                case .q4_K_M: set(.q5_K, "attn_qkv: Q5_K in Q4_K_M")
                case .q5_K_M: set(.q6_K, "attn_qkv: Q6_K in Q5_K_M")
                default: break
                }
            } else if category == .ffnGate || category == .ffnUp {
                _ = try layer(0, t.name)  // llama.cpp checks the layer of expert FFN tensors
            }
            return (type, reason)
        }
    }
}
