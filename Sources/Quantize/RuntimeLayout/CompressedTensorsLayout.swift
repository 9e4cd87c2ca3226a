import Foundation
import Formats

/// transformers' and vLLM's rules for a Hugging Face safetensors checkpoint: plain, compressed-tensors
/// (`pack-quantized`, `int-quantized`, `float-quantized`) or the `fp8` block layout (`weight_scale_inv`).
/// Each rule names the loader code it comes from (``RuntimeTarget/rulesFrom``).
enum CompressedTensorsLayout {
    /// The quantization arguments of one config group (compressed-tensors `QuantizationArgs`).
    struct Arguments {
        var bits: Int
        var type: String
        var symmetric: Bool
        var strategy: String
        var groupSize: Int?
        var blockStructure: [Int]?
        var dynamic: Bool

        init?(_ json: JSONValue?) {
            guard let json, json.object != nil else { return nil }
            bits = json["num_bits"]?.int ?? 8
            type = json["type"]?.string ?? "int"
            symmetric = json["symmetric"]?.bool ?? true
            strategy = json["strategy"]?.string ?? "tensor"
            groupSize = json["group_size"]?.int
            blockStructure = json["block_structure"]?.array?.compactMap(\.int)
            dynamic = json["dynamic"]?.bool ?? (json["dynamic"]?.string == "local")
        }

        var words: String {
            var text = "\(type)\(bits)"
            switch strategy {
            case "group": text += " group \(groupSize ?? 0)"
            case "block": text += " block \(blockStructure?.map(String.init).joined(separator: "×") ?? "?")"
            default: text += " per \(strategy)"
            }
            return text + (symmetric ? " symmetric" : " asymmetric")
        }
    }

    /// One config group: its targets, weight and input-activation arguments and format.
    struct Group {
        var name: String
        var targets: [String]
        var weights: Arguments?
        var inputs: Arguments?
        var format: String
    }

    /// A Linear module of the checkpoint (a 2-D `.weight` of a projection or the output head, or a
    /// packed `.weight_packed`), by module name.
    struct Module {
        var name: String
        var tensors: [String: TensorRecord]
        var isQuantized: Bool { tensors["weight_packed"] != nil || tensors["weight_scale"] != nil || tensors["weight_scale_inv"] != nil }
    }

    static let fusedShards = [["q_proj", "k_proj", "v_proj"], ["gate_proj", "up_proj"]]

    /// The decoder-only text architectures vLLM implements natively (`_TEXT_GENERATION_MODELS` in
    /// vllm/model_executor/models/registry.py); another one runs, if at all, on its Transformers
    /// backend.
    static let vllmTextArchitectures: Set<String> = [
        "AfmoeForCausalLM", "ApertusForCausalLM", "AquilaModel", "AquilaForCausalLM", "ArceeForCausalLM", "ArcticForCausalLM",
        "BaiChuanForCausalLM", "BaichuanForCausalLM", "BailingMoeForCausalLM", "BailingMoeV2ForCausalLM", "BambaForCausalLM",
        "BloomForCausalLM", "ChatGLMModel", "ChatGLMForConditionalGeneration", "CohereForCausalLM", "Cohere2ForCausalLM",
        "CwmForCausalLM", "DbrxForCausalLM", "DeciLMForCausalLM", "DeepseekForCausalLM", "DeepseekV2ForCausalLM",
        "DeepseekV3ForCausalLM", "DeepseekV32ForCausalLM", "Dots1ForCausalLM", "Ernie4_5ForCausalLM",
        "Ernie4_5_MoeForCausalLM", "ExaoneForCausalLM", "Exaone4ForCausalLM", "Fairseq2LlamaForCausalLM", "FalconForCausalLM",
        "FalconMambaForCausalLM", "FalconH1ForCausalLM", "FlexOlmoForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM",
        "Gemma3ForCausalLM", "Gemma3nForCausalLM", "Qwen3NextForCausalLM", "GlmForCausalLM", "Glm4ForCausalLM",
        "Glm4MoeForCausalLM", "GptOssForCausalLM", "GPT2LMHeadModel", "GPTBigCodeForCausalLM", "GPTJForCausalLM",
        "GPTNeoXForCausalLM", "GraniteForCausalLM", "GraniteMoeForCausalLM", "GraniteMoeHybridForCausalLM",
        "GraniteMoeSharedForCausalLM", "GritLM", "Grok1ModelForCausalLM", "HunYuanMoEV1ForCausalLM",
        "HunYuanDenseV1ForCausalLM", "HCXVisionForCausalLM", "InternLMForCausalLM", "InternLM2ForCausalLM",
        "InternLM2VEForCausalLM", "InternLM3ForCausalLM", "JAISLMHeadModel", "Jais2ForCausalLM", "JambaForCausalLM",
        "KimiLinearForCausalLM", "Lfm2ForCausalLM", "Lfm2MoeForCausalLM", "LlamaForCausalLM", "Llama4ForCausalLM",
        "LLaMAForCausalLM", "LongcatFlashForCausalLM", "MambaForCausalLM", "Mamba2ForCausalLM", "MiniCPMForCausalLM",
        "MiniCPM3ForCausalLM", "MiniMaxForCausalLM", "MiniMaxText01ForCausalLM", "MiniMaxM1ForCausalLM",
        "MiniMaxM2ForCausalLM", "MistralForCausalLM", "MistralLarge3ForCausalLM", "MixtralForCausalLM", "MptForCausalLM",
        "MPTForCausalLM", "MiMoForCausalLM", "MiMoV2FlashForCausalLM", "NemotronForCausalLM", "NemotronHForCausalLM",
        "OlmoForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM", "OlmoeForCausalLM", "OPTForCausalLM", "OrionForCausalLM",
        "OuroForCausalLM", "PanguEmbeddedForCausalLM", "PanguProMoEV2ForCausalLM", "PanguUltraMoEForCausalLM",
        "PersimmonForCausalLM", "PhiForCausalLM", "Phi3ForCausalLM", "PhiMoEForCausalLM", "Plamo2ForCausalLM",
        "Plamo3ForCausalLM", "QWenLMHeadModel", "Qwen2ForCausalLM", "Qwen2MoeForCausalLM", "Qwen3ForCausalLM",
        "Qwen3MoeForCausalLM", "RWForCausalLM", "SeedOssForCausalLM", "Step3TextForCausalLM", "StableLMEpochForCausalLM",
        "StableLmForCausalLM", "Starcoder2ForCausalLM", "SolarForCausalLM", "TeleChatForCausalLM", "TeleChat2ForCausalLM",
        "TeleFLMForCausalLM", "XverseForCausalLM", "Zamba2ForCausalLM",
    ]

    static func check(_ checkpoint: Checkpoint, target: RuntimeTarget) -> LayoutCheck {
        var findings: [LayoutFinding] = []
        func error(_ subject: String, _ message: String) { findings.append(LayoutFinding(.error, subject, message)) }
        func warning(_ subject: String, _ message: String) { findings.append(LayoutFinding(.warning, subject, message)) }
        func done(_ summary: String, _ checked: Int) -> LayoutCheck {
            LayoutCheck(target: target, path: checkpoint.path, summary: summary, checkedCount: checked,
                        findings: findings.filter { $0.severity == .error } + findings.filter { $0.severity == .warning })
        }

        guard let config = checkpoint.config else {
            error("config.json", "there is no config.json beside the weights; \(target.rawValue) builds the model from it — copy the original model's config.json (and tokenizer files) next to the safetensors")
            return done("no config.json", 0)
        }
        if config["model_type"]?.string == nil { error("config.json", "has no model_type, which \(target.rawValue) needs to pick the model class") }
        let architecture = config["architectures"]?.array?.first?.string
        if architecture == nil { warning("config.json", "has no architectures list; \(target.rawValue == "vllm" ? "vLLM picks the model class from it and refuses a checkpoint without one" : "AutoModelForCausalLM falls back to model_type")") }
        if target == .vllm, architecture == nil { findings[findings.count - 1].severity = .error }
        if target == .vllm, let architecture, !vllmTextArchitectures.contains(architecture) {
            warning("config.json", "architectures \(architecture) is not one vLLM implements natively (its model registry's text-generation list); vLLM would try its Transformers backend, which may be slower or refuse it")
        }

        // Modules: group tensors by module name.
        var modules: [String: Module] = [:]
        var order: [String] = []
        for record in checkpoint.tensors {
            guard let dot = record.name.lastIndex(of: ".") else { continue }
            let base = String(record.name[..<dot]), leaf = String(record.name[record.name.index(after: dot)...])
            let linearLeaf = ["weight", "weight_packed", "weight_scale", "weight_scale_inv", "weight_shape", "weight_zero_point",
                              "weight_g_idx", "input_scale", "input_zero_point", "output_scale", "weight_global_scale"].contains(leaf)
            guard linearLeaf else { continue }
            if modules[base] == nil {
                if leaf == "weight" {
                    let role = TensorRole(name: record.name)
                    guard record.shape.count == 2, role == .projection || role == .outputHead else { continue }
                }
                modules[base] = Module(name: base, tensors: [:])
                order.append(base)
            }
            modules[base]?.tensors[leaf] = record
        }
        let linear = order.compactMap { modules[$0] }.filter { $0.tensors["weight"] != nil || $0.tensors["weight_packed"] != nil }

        guard let quantization = config["quantization_config"], !quantization.isNull else {
            for module in linear where module.isQuantized {
                error(module.name, "has quantization tensors (weight_scale …) but config.json has no quantization_config to tell \(target.rawValue) how to read them")
            }
            return done("unquantized \(architecture ?? "model") (\(linear.count) linear layers)", linear.count)
        }
        let method = quantization["quant_method"]?.string ?? "(none)"
        switch method {
        case "fp8":
            let (summary, checked) = checkFP8Blocks(target: target, quantization: quantization, linear: linear, findings: &findings)
            return done(summary, checked)
        case "compressed-tensors":
            break
        default:
            warning("config.json", "quantization_config.quant_method is '\(method)'; only compressed-tensors and fp8 layouts are checked here")
            return done("quant_method \(method), not checked", 0)
        }

        // compressed-tensors.
        let globalFormat = quantization["format"]?.string ?? "dense"
        let knownFormats = ["pack-quantized", "int-quantized", "float-quantized", "naive-quantized", "dense", "marlin-24", "nvfp4-pack-quantized", "mxfp4-pack-quantized"]
        if !knownFormats.contains(globalFormat) { error("config.json", "quantization_config.format '\(globalFormat)' is not a compressed-tensors format (\(knownFormats.joined(separator: ", ")))") }
        var groups: [Group] = []
        for member in quantization["config_groups"]?.object ?? [] {
            let targets = member.value["targets"]?.array?.compactMap(\.string) ?? []
            let group = Group(name: member.key, targets: targets, weights: Arguments(member.value["weights"]),
                              inputs: Arguments(member.value["input_activations"]), format: member.value["format"]?.string ?? globalFormat)
            if targets.isEmpty { error("config.json", "config group \(member.key) has no targets") }
            if group.weights == nil { error("config.json", "config group \(member.key) has no weights arguments") }
            if let w = group.weights {
                if !["tensor", "channel", "group", "block", "tensor_group", "token", "attn_head"].contains(w.strategy) {
                    error("config.json", "config group \(member.key): weights strategy '\(w.strategy)' is not one compressed-tensors knows")
                }
                if (w.strategy == "group" || w.strategy == "tensor_group") != (w.groupSize != nil) {
                    error("config.json", "config group \(member.key): group_size \(w.groupSize.map(String.init) ?? "null") does not go with strategy '\(w.strategy)' (compressed-tensors' QuantizationArgs validator refuses it)")
                }
                if let g = w.groupSize, g <= 0 { error("config.json", "config group \(member.key): group_size \(g) must be positive") }
                if w.strategy == "block", w.blockStructure?.count != 2 { error("config.json", "config group \(member.key): block strategy without a two-number block_structure") }
            }
            if target == .vllm, let w = group.weights, group.inputs == nil, w.type != "float",
               ["int-quantized", "float-quantized", "naive-quantized"].contains(group.format) {
                error("config.json", "config group \(member.key): \(w.words) weights without input activations in format \(group.format) — vLLM's config parser asserts that weights are float for activation-quantization formats (compressed_tensors.py _quantization_scheme_map_from_config) and refuses the checkpoint; write int weight-only checkpoints as pack-quantized (quantize --to int8 does by default)")
            }
            groups.append(group)
        }
        if groups.isEmpty { error("config.json", "quantization_config has no config_groups: nothing says how the weights are stored") }
        let ignore = quantization["ignore"]?.array?.compactMap(\.string) ?? []
        if let kv = quantization["kv_cache_scheme"], !kv.isNull, target == .vllm {
            let args = Arguments(kv)
            if args?.type != "float" || args?.bits != 8 || args?.strategy != "tensor" || args?.symmetric != true {
                error("config.json", "kv_cache_scheme must be 8-bit float, per tensor, symmetric for vLLM (CompressedTensorsKVCacheMethod.validate_kv_cache_scheme)")
            }
        }
        if let kv = quantization["kv_cache_scheme"], !kv.isNull {
            checkKeyValueCacheScales(checkpoint: checkpoint, target: target, error: error, warning: warning)
        }

        func ignored(_ name: String) -> Bool {
            ignore.contains { entry in
                if entry.hasPrefix("re:") { return name.range(of: "^(?:" + entry.dropFirst(3) + ")", options: .regularExpression) != nil }
                return entry == name
            }
        }
        func group(for name: String) -> Group? {
            groups.first { $0.targets.contains("Linear") } ?? groups.first { g in
                g.targets.contains { t in t.hasPrefix("re:") ? name.range(of: "^(?:" + t.dropFirst(3) + ")", options: .regularExpression) != nil : t == name }
            }
        }

        // A tied output head is a Linear module with no tensor of its own: a group targeting
        // Linear quantizes it on load, and its weight is then gone (the tie points at the embedding).
        if config["tie_word_embeddings"]?.bool == true, !ignored("lm_head"), !linear.contains(where: { $0.name == "lm_head" }),
           groups.contains(where: { $0.targets.contains("Linear") }) {
            error("lm_head", "is tied to the embedding (tie_word_embeddings) but not in quantization_config.ignore, so the Linear group quantizes it and \(target == .transformers ? "transformers fails to load (AttributeError: Linear has no attribute `weight`)" : "its weights are never loaded"); add \"lm_head\" to ignore")
        }

        var schemes: [String: Int] = [:]
        var checked = 0
        for module in linear {
            let isIgnored = ignored(module.name)
            guard !isIgnored, let group = group(for: module.name), let weights = group.weights else {
                if module.isQuantized {
                    error(module.name, "is stored quantized but the config \(isIgnored ? "ignores it" : "targets no group at it"); \(target.rawValue) would read its quantization tensors as unexpected keys")
                } else if let w = module.tensors["weight"], case .dtype(let dtype) = w.type, ![.f32, .f16, .bf16].contains(dtype) {
                    error(module.name + ".weight", "is \(dtype.rawValue), not a float type, and no config group covers it")
                }
                continue
            }
            checked += 1
            if !module.isQuantized {
                error(module.name, "is targeted by config group \(group.name) but stored unquantized (\(module.tensors["weight"].map { String(describing: $0.type) } ?? "?")); add it to quantization_config.ignore or quantize it")
                continue
            }
            checkModule(module, group: group, weights: weights, checkpoint: checkpoint, target: target,
                        error: error, warning: warning, schemes: &schemes)
        }

        if target == .vllm {
            // vLLM fuses q/k/v and gate/up: all shards must share one scheme (should_ignore_layer).
            var layers: Set<String> = []
            for module in linear { if let dot = module.name.lastIndex(of: ".") { layers.insert(String(module.name[..<dot])) } }
            for layer in layers.sorted() {
                for shards in fusedShards {
                    let names = shards.map { layer + "." + $0 }.filter { modules[$0] != nil }
                    guard names.count == shards.count else { continue }
                    let states = Set(names.map { ignored($0) })
                    if states.count > 1 {
                        error(layer, "ignores some of \(shards.joined(separator: "/")) but not all; vLLM fuses them into one layer and requires one scheme for all shards (\"Found a different quantization schemes\")")
                    }
                }
            }
        } else if target == .transformers {
            for group in groups where group.format == "pack-quantized" && group.weights?.symmetric == false {
                error("config.json", "config group \(group.name) is asymmetric pack-quantized: compressed-tensors 0.20.x as transformers 5.23–5.24 loads it initialises weight_zero_point unpacked [rows, groups] while the file stores it packed [rows/\(32 / (group.weights?.bits ?? 4)), groups] (a size mismatch at load; llm-compressor's own W4A16_ASYM output fails the same way). vLLM loads it; for transformers use a symmetric scheme")
            }
        }
        let summary = schemes.isEmpty ? "compressed-tensors, no quantized linear layer"
            : schemes.sorted { $0.value > $1.value }.map { "\($0.key) × \($0.value)" }.joined(separator: ", ")
        return done(summary, checked)
    }

    /// The tensors one quantized module must have for its group's format, and which scheme the
    /// runtime picks for it.
    static func checkModule(_ module: Module, group: Group, weights: Arguments, checkpoint: Checkpoint, target: RuntimeTarget,
                            error: (String, String) -> Void, warning: (String, String) -> Void, schemes: inout [String: Int]) {
        let name = module.name
        func dtype(_ record: TensorRecord) -> DType? { if case .dtype(let d) = record.type { return d } else { return nil } }
        let floatScale: Set<DType> = [.f32, .f16, .bf16]
        var rows = 0, columns = 0
        var expected: Set<String> = ["weight_scale"]

        switch group.format {
        case "pack-quantized":
            expected.formUnion(["weight_packed", "weight_shape"])
            guard [4, 8].contains(weights.bits) || target == .transformers, weights.type == "int" else {
                error(name, "pack-quantized needs int weights of 4 or 8 bits (vLLM WNA16_SUPPORTED_BITS); the config says \(weights.words)")
                return
            }
            guard let packed = module.tensors["weight_packed"], let shape = module.tensors["weight_shape"] else {
                error(name, "pack-quantized needs weight_packed and weight_shape; found \(module.tensors.keys.sorted().joined(separator: ", "))")
                return
            }
            let pack = 32 / max(1, weights.bits)
            if dtype(packed) != .i32 || packed.shape.count != 2 { error(name + ".weight_packed", "must be a 2-D I32 tensor; it is \(packed.type) \(packed.shape)") ; return }
            if ![DType.i32, .i64].contains(dtype(shape) ?? .f32) || shape.shape != [2] { error(name + ".weight_shape", "must be a 2-element I32/I64 tensor; it is \(shape.type) \(shape.shape)"); return }
            let values = readShape(shape, checkpoint: checkpoint)
            rows = values?.first ?? packed.shape[0]
            columns = values?.last ?? packed.shape[1] * pack
            if packed.shape != [rows, (columns + pack - 1) / pack] {
                error(name + ".weight_packed", "has shape \(packed.shape) but weight_shape [\(rows), \(columns)] at \(weights.bits) bits packs into [\(rows), \((columns + pack - 1) / pack)] int32")
            }
            if !weights.symmetric {
                expected.insert("weight_zero_point")
                if let zero = module.tensors["weight_zero_point"] {
                    let groups = weights.strategy == "group" ? (columns + (weights.groupSize ?? 1) - 1) / max(1, weights.groupSize ?? 1) : 1
                    let want = [(rows + pack - 1) / pack, groups]
                    if dtype(zero) != .i32 || zero.shape != want { error(name + ".weight_zero_point", "must be I32 \(want) (zero points packed along the rows); it is \(zero.type) \(zero.shape)") }
                } else {
                    error(name, "is asymmetric but has no weight_zero_point")
                }
            }
        case "int-quantized", "naive-quantized", "float-quantized":
            expected.insert("weight")
            guard let weight = module.tensors["weight"], weight.shape.count == 2 else { error(name, "\(group.format) needs a 2-D weight tensor"); return }
            rows = weight.shape[0]; columns = weight.shape[1]
            let want: DType = weights.type == "float" ? .f8E4M3 : .i8
            if weights.bits != 8 { error(name, "\(group.format) stores 8-bit codes; the config says \(weights.bits) bits") }
            if dtype(weight) != want { error(name + ".weight", "must be \(want.rawValue) for \(weights.words); it is \(weight.type)") }
            if !weights.symmetric {
                expected.insert("weight_zero_point")
                if module.tensors["weight_zero_point"] == nil { error(name, "is asymmetric but has no weight_zero_point") }
            }
            if let inputs = group.inputs, !inputs.dynamic { expected.insert("input_scale"); if module.tensors["input_scale"] == nil { error(name, "declares static input activations but has no input_scale") } }
        default:
            error(name, "format '\(group.format)' is not checked here")
            return
        }

        // weight_scale: dtype and shape from the strategy (initialize_qparams).
        if let scale = module.tensors["weight_scale"] {
            if let d = dtype(scale), !floatScale.contains(d) { error(name + ".weight_scale", "must be F32, F16 or BF16; it is \(d.rawValue)") }
            let want: [[Int]]
            switch weights.strategy {
            case "tensor": want = [[1], [], [1, 1]]
            case "channel": want = [[rows, 1]]
            case "group":
                let g = max(1, weights.groupSize ?? 1)
                want = [[rows, (columns + g - 1) / g]]
                if columns % g != 0 {
                    (target == .vllm ? error : warning)(name, "in_features \(columns) is not a multiple of group_size \(g) (compressed-tensors strategy_cdiv warns; vLLM's Marlin refuses it)")
                }
            case "block":
                let b = weights.blockStructure ?? [128, 128]
                want = [[(rows + b[0] - 1) / b[0], (columns + b[1] - 1) / b[1]]]
                if target == .vllm, columns % b[1] != 0 { error(name, "in_features \(columns) is not a multiple of the block's \(b[1]) columns (vLLM's block kernels need it)") }
            default: want = []
            }
            if !want.isEmpty, !want.contains(scale.shape) { error(name + ".weight_scale", "has shape \(scale.shape); \(weights.words) needs \(want[0])") }
        } else {
            error(name, "has no weight_scale")
        }
        for leaf in module.tensors.keys.sorted() where !expected.contains(leaf) {
            if target == .vllm, leaf != "weight_g_idx" || weights.strategy != "group" {
                error(name + "." + leaf, "is not a parameter vLLM creates for this scheme; its weight loader fails on unknown names (KeyError)")
            } else if target == .transformers {
                warning(name + "." + leaf, "is not a parameter transformers creates for this scheme; it is dropped at load (unexpected key)")
            }
        }

        guard target == .vllm else {
            schemes[weights.words, default: 0] += 1
            return
        }
        // vLLM's scheme selection (_get_scheme_from_parts), weight-only first.
        let inputs = group.inputs
        var scheme: String
        if inputs == nil, ["channel", "group"].contains(weights.strategy), !weights.dynamic, group.format == "pack-quantized", [4, 8].contains(weights.bits) {
            scheme = "CompressedTensorsWNA16 \(weights.words)"
            let g = weights.strategy == "group" ? (weights.groupSize ?? 0) : -1
            if ![-1, 32, 64, 128].contains(g) { error(name, "group_size \(g) is not one Marlin supports (-1, 32, 64, 128: MARLIN_SUPPORTED_GROUP_SIZES)") }
            if !weights.symmetric, weights.bits != 4 { error(name, "asymmetric \(weights.bits)-bit weights: Marlin's zero-point kernels take uint4 only (query_marlin_supported_quant_types(has_zp=True))") }
            if rows % 64 != 0 || columns % 128 != 0 {
                warning(name, "[\(rows), \(columns)]: Marlin needs out_features % 64 == 0 and in_features % 128 == 0 (verify_marlin_supports_shape); vLLM falls back to another mixed-precision kernel if one implements the layer, else refuses it")
            }
        } else if inputs == nil, group.format != "pack-quantized", weights.type != "float" {
            schemes["refused at config parse (\(weights.words), \(group.format), no input activations)", default: 0] += 1
            return
        } else if weights.type == "float", weights.bits == 8, weights.symmetric, !weights.dynamic, ["tensor", "channel", "block"].contains(weights.strategy) {
            if let inputs, inputs.type == "float", inputs.dynamic || (inputs.symmetric && inputs.strategy == "tensor") {
                scheme = "CompressedTensorsW8A8Fp8 \(weights.words) (compute capability ≥ 8.9; W8A16 FP8 Marlin on an A100)"
            } else {
                scheme = "CompressedTensorsW8A16Fp8 \(weights.words)"
            }
        } else if let inputs, weights.bits == 8, inputs.bits == 8, weights.type == "int", weights.symmetric, ["tensor", "channel"].contains(weights.strategy),
                  !weights.dynamic, (inputs.strategy == "token" && inputs.dynamic) || (inputs.strategy == "tensor" && !inputs.dynamic) {
            scheme = "CompressedTensorsW8A8Int8 \(weights.words), \(inputs.dynamic ? "dynamic per-token" : "static per-tensor") int8 activations"
        } else {
            error(name, "\(weights.words) with \(inputs.map { "\($0.type)\($0.bits) \($0.strategy) activations" } ?? "no activation quantization") in \(group.format): no vLLM compressed-tensors scheme takes it (\"No compressed-tensors compatible scheme was found\")")
            return
        }
        schemes[scheme, default: 0] += 1
    }

    /// The two numbers of a `weight_shape` tensor (16 bytes at most), nil when unreadable.
    /// With `kv_cache_scheme`: every attention module (a `*.self_attn` with a `k_proj`) needs its
    /// `k_scale` and `v_scale` — one finite, positive F32/F16/BF16 value each (compressed-tensors'
    /// `initialize_qparams` makes them `(1,)`; vLLM's `BaseKVCacheMethod` falls back to 1.0 for a
    /// layer without them, which clips every key or value above 448).
    static func checkKeyValueCacheScales(checkpoint: Checkpoint, target: RuntimeTarget,
                                         error: (String, String) -> Void, warning: (String, String) -> Void) {
        var byName: [String: TensorRecord] = [:]
        for record in checkpoint.tensors { byName[record.name] = record }
        var attention = Set<String>()
        for record in checkpoint.tensors {
            for projection in [".k_proj.weight", ".k_proj.weight_packed"] where record.name.hasSuffix(projection) {
                attention.insert(String(record.name.dropLast(projection.count)))
            }
        }
        for module in attention.sorted() {
            for leaf in ["k_scale", "v_scale"] {
                let name = module + "." + leaf
                guard let record = byName[name] else {
                    error(name, "is missing: kv_cache_scheme declares an FP8 KV cache, and without this scale \(target == .vllm ? "vLLM stores the layer's cache with scale 1.0 (every value above 448 clipped)" : "compressed-tensors initialises the scale uncalibrated"); calibrate the scales (quantize --kv-cache fp8 --calibration FILE) or remove kv_cache_scheme")
                    continue
                }
                guard case .dtype(let dtype) = record.type, [.f32, .f16, .bf16].contains(dtype) else {
                    error(name, "must be F32, F16 or BF16; it is \(record.type)")
                    continue
                }
                if record.elementCount != 1 { error(name, "must hold one value (shape [1]); it has shape \(record.shape)"); continue }
                if record.shape != [1] { warning(name, "has shape \(record.shape); llm-compressor writes [1] (vLLM reads any one-element tensor)") }
                if let bytes = try? checkpoint.readData(for: record) {
                    var value = [Float](repeating: 0, count: 1)
                    if (try? value.withUnsafeMutableBufferPointer { try ElementConversion.toFloat32(bytes, from: dtype, into: $0) }) != nil,
                       !(value[0].isFinite && value[0] > 0) {
                        error(name, "is \(value[0]); a KV-cache scale must be finite and positive (vLLM would store NaN or zeros)")
                    }
                }
            }
        }
    }

    static func readShape(_ record: TensorRecord, checkpoint: Checkpoint) -> [Int]? {
        guard record.byteCount <= 16, let bytes = try? checkpoint.readData(for: record) else { return nil }
        let width = record.byteCount / 2
        guard width == 4 || width == 8, bytes.count >= 2 * width else { return nil }
        return (0..<2).map { i in
            width == 4 ? Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
                : Int(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
        }
    }

    /// The `fp8` quant_method with `weight_block_size` (transformers' FineGrainedFP8, vLLM's Fp8Config):
    /// F8_E4M3 weights with an F32 `weight_scale_inv` per block.
    /// - Returns: the summary and the number of modules checked; the findings are appended.
    static func checkFP8Blocks(target: RuntimeTarget, quantization: JSONValue, linear: [Module],
                               findings: inout [LayoutFinding]) -> (String, Int) {
        let block = quantization["weight_block_size"]?.array?.compactMap(\.int) ?? []
        let ignore = Set(quantization["ignored_layers"]?.array?.compactMap(\.string) ?? quantization["modules_to_not_convert"]?.array?.compactMap(\.string) ?? [])
        guard block.count == 2, block.allSatisfy({ $0 > 0 }) else {
            findings.append(LayoutFinding(.error, "config.json", "quant_method fp8 without a two-number weight_block_size is not a block layout these rules check"))
            return ("fp8 (no block size)", 0)
        }
        var checked = 0
        for module in linear where !ignore.contains(module.name) && module.isQuantized {
            checked += 1
            guard let weight = module.tensors["weight"], weight.shape.count == 2 else {
                findings.append(LayoutFinding(.error, module.name, "has no 2-D weight")); continue
            }
            if weight.type != .dtype(.f8E4M3) { findings.append(LayoutFinding(.error, module.name + ".weight", "must be F8_E4M3; it is \(weight.type)")) }
            let want = [(weight.shape[0] + block[0] - 1) / block[0], (weight.shape[1] + block[1] - 1) / block[1]]
            if let scale = module.tensors["weight_scale_inv"] {
                if scale.shape != want { findings.append(LayoutFinding(.error, module.name + ".weight_scale_inv", "has shape \(scale.shape); blocks of \(block[0])×\(block[1]) need \(want)")) }
                if scale.type != .dtype(.f32) && scale.type != .dtype(.bf16) { findings.append(LayoutFinding(.error, module.name + ".weight_scale_inv", "must be F32 (or BF16); it is \(scale.type)")) }
            } else {
                findings.append(LayoutFinding(.error, module.name, "has no weight_scale_inv (the fp8 block layout's per-block scale)"))
            }
            if target == .vllm, weight.shape[1] % block[1] != 0 {
                findings.append(LayoutFinding(.error, module.name, "in_features \(weight.shape[1]) is not a multiple of the block's \(block[1]) columns (vLLM's block FP8 kernels need it)"))
            }
        }
        if target == .transformers, checked > 0 {
            findings.append(LayoutFinding(.warning, "config.json", "transformers' FineGrainedFP8 computes these layers in BF16 on the CPU: load with the checkpoint's dtype (the default); dtype=torch.float32 fails at the first matmul (\"expected m1 and m2 to have the same dtype\", transformers 5.23)"))
        }
        for module in linear where !ignore.contains(module.name) && !module.isQuantized {
            findings.append(LayoutFinding(.warning, module.name, "is not in ignored_layers but stored unquantized"))
        }
        return ("fp8 blocks \(block[0])×\(block[1])" + (target == .vllm ? " (Fp8Config block-quantized)" : " (FineGrainedFP8)"), checked)
    }
}
