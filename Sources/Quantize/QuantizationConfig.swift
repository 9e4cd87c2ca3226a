import Foundation
import Formats

extension Scheme {
    /// The `quantization_config` object for config.json that vLLM and transformers read for this
    /// scheme, as JSON text (formats/quantize-fp8.md, formats/quantize-int.md); nil for GGUF schemes.
    ///
    /// - Parameters:
    ///   - ignore: names (or `re:` patterns) of Linear modules left unquantized, e.g. `lm_head`.
    ///   - options: the options the tensors were written with (INT8 packing changes the format).
    public func quantizationConfigJSON(ignore: [String], options: QuantizeOptions = QuantizeOptions()) -> String? {
        quantizationConfig(ignore: ignore, options: options)?.serializedString(.document)
    }

    /// The `quantization_config` object (keys sorted) that ``quantizationConfigJSON(ignore:options:)`` writes; nil for GGUF schemes.
    public func quantizationConfig(ignore: [String], options: QuantizeOptions = QuantizeOptions()) -> JSONValue? {
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
                                                  "dynamic": true, "observer": NSNull()]
                config = Self.compressedTensors(format: "float-quantized", weights: weights, inputActivations: activations, ignore: ignore)
            }
        case .integer(let bits):
            var weights = Self.weightArgs(bits: bits, type: "int", symmetric: symmetric)
            if case .group(let g) = granularity { weights["strategy"] = "group"; weights["group_size"] = g } else { weights["strategy"] = "channel" }
            let format = bits == 8 && !options.packInt8 ? "int-quantized" : "pack-quantized"
            config = Self.compressedTensors(format: format, weights: weights, inputActivations: nil, ignore: ignore)
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
         "block_structure": NSNull(), "dynamic": false, "actorder": NSNull(), "observer": "minmax", "observer_kwargs": [String: Any]()]
    }

    private static func compressedTensors(format: String, weights: [String: Any], inputActivations: [String: Any]?,
                                          ignore: [String]) -> [String: Any] {
        let group: [String: Any] = ["targets": ["Linear"], "format": format, "weights": weights,
                                    "input_activations": inputActivations ?? NSNull(), "output_activations": NSNull()]
        return ["quant_method": "compressed-tensors", "format": format, "quantization_status": "compressed",
                "global_compression_ratio": NSNull(), "kv_cache_scheme": NSNull(), "sparsity_config": [String: Any](),
                "ignore": ignore, "config_groups": ["group_0": group]]
    }
}
