import Foundation
import Formats

extension Scheme {
    /// The `quantization_config` object for config.json that vLLM and transformers read for this
    /// scheme, as JSON text (formats/quantize-fp8.md, formats/quantize-int.md); nil for GGUF schemes.
    ///
    /// - Parameters:
    ///   - ignore: names (or `re:` patterns) of Linear modules left unquantized, e.g. `lm_head`.
    ///   - options: the options the tensors were written with (INT8 packing changes the format).
    ///   - activationOrder: the GPTQ column ordering the weights were calibrated with (`static`), written
    ///     as the weights' `actorder` the way llm-compressor writes it; nil (round-to-nearest) leaves it out.
    public func quantizationConfigJSON(ignore: [String], options: QuantizeOptions = QuantizeOptions(), activationOrder: String? = nil) -> String? {
        quantizationConfig(ignore: ignore, options: options, activationOrder: activationOrder)?.serializedString(.document)
    }

    /// The compressed-tensors version whose config schema and loader the layouts follow (written as
    /// `version`, as llm-compressor writes the version it saved with; checked by tools/check_loads.py).
    public static let compressedTensorsVersion = "0.20.1"

    /// The `quantization_config` object (keys sorted) that ``quantizationConfigJSON(ignore:options:activationOrder:)``
    /// writes; nil for GGUF schemes. Keys and spellings are those llm-compressor 0.14 with
    /// compressed-tensors 0.20 writes (`observer: memoryless_minmax`, no null `actorder` /
    /// `block_structure` / empty `observer_kwargs` / `zp_dtype`, a `version`,
    /// `transform_config`, `moe_sparsity_config`); formats/quantize-int.md and quantize-fp8.md.
    public func quantizationConfig(ignore: [String], options: QuantizeOptions = QuantizeOptions(), activationOrder: String? = nil) -> JSONValue? {
        let config: [String: Any]
        switch descriptor.kernel {
        case .fp8(let format):
            if case .block(let r, let c) = granularity {
                config = ["quant_method": "fp8", "fmt": format.rawValue, "activation_scheme": "dynamic",
                          "weight_block_size": [r, c], "ignored_layers": ignore]
            } else {
                var weights = Self.weightArgs(bits: 8, type: "float", symmetric: true)
                switch granularity {
                case .tensor: weights["strategy"] = "tensor"
                case .group(let g): weights["strategy"] = "group"; weights["group_size"] = g
                case .channel, .block: weights["strategy"] = "channel"
                }
                let activations: [String: Any] = ["num_bits": 8, "type": "float", "symmetric": true, "strategy": "token",
                                                  "dynamic": true, "group_size": NSNull()]
                config = Self.compressedTensors(format: "float-quantized", weights: weights, inputActivations: activations, ignore: ignore)
            }
        case .integer(let bits):
            var weights = Self.weightArgs(bits: bits, type: "int", symmetric: symmetric)
            if case .group(let g) = granularity { weights["strategy"] = "group"; weights["group_size"] = g } else { weights["strategy"] = "channel" }
            // No zp_dtype: llm-compressor leaves it out unless a recipe sets it, and compressed-tensors
            // then derives it (int8 for 4- and 8-bit ints) — the same value.
            if let activationOrder { weights["actorder"] = activationOrder }
            let format = bits == 8 && !options.packInt8 ? "int-quantized" : "pack-quantized"
            // W8A8 (llm-compressor's preset W8A8): dynamic per-token symmetric INT8 inputs, I8 weights.
            let activations: [String: Any]? = format == "int-quantized" && options.int8Activations
                ? ["num_bits": 8, "type": "int", "symmetric": true, "strategy": "token", "dynamic": true, "group_size": NSNull()] : nil
            config = Self.compressedTensors(format: format, weights: weights, inputActivations: activations, ignore: ignore)
        case .ggml:
            return nil
        }
        return Self.jsonValue(config)
    }

    /// The literal tables above as JSON, keys sorted by code point.
    private static func jsonValue(_ value: Any) -> JSONValue {
        switch value {
        case let string as String: return .string(string)
        case let bool as Bool: return .bool(bool)
        case let int as Int: return .number(JSONNumber(int))
        case let array as [Any]: return .array(array.map(jsonValue))
        case let object as [String: Any]:
            return .object(object.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.map { JSONMember($0, jsonValue(object[$0]!)) })
        default: return .null
        }
    }

    private static func weightArgs(bits: Int, type: String, symmetric: Bool) -> [String: Any] {
        ["num_bits": bits, "type": type, "symmetric": symmetric, "strategy": "channel", "group_size": NSNull(),
         "dynamic": false, "observer": "memoryless_minmax"]
    }

    private static func compressedTensors(format: String, weights: [String: Any], inputActivations: [String: Any]?,
                                          ignore: [String]) -> [String: Any] {
        let group: [String: Any] = ["targets": ["Linear"], "format": format, "weights": weights,
                                    "input_activations": inputActivations ?? NSNull(), "output_activations": NSNull()]
        return ["quant_method": "compressed-tensors", "format": format, "quantization_status": "compressed",
                "global_compression_ratio": NSNull(), "kv_cache_scheme": NSNull(), "sparsity_config": [String: Any](),
                "ignore": ignore, "config_groups": ["group_0": group], "moe_sparsity_config": NSNull(),
                "transform_config": [String: Any](), "version": compressedTensorsVersion]
    }
}
