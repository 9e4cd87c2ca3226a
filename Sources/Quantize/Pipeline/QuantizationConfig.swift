import Formats

/// The `quantization_config` written into config.json, so vLLM and transformers load the output
/// as it is (formats/quantize-fp8.md and formats/quantize-int.md give the layouts).
public enum QuantizationConfig {
    /// The config object for `scheme`, or nil for schemes that write GGUF.
    /// - Parameter ignore: Linear modules left unquantized (module names, without `.weight`).
    public static func json(for scheme: Scheme, options: QuantizeOptions, ignore: [String]) -> JSONValue? {
        let ignoreList = JSONValue.array(ignore.sorted().map(JSONValue.string))
        func number(_ value: Int) -> JSONValue { .number(JSONNumber(value)) }
        switch scheme.name {
        case .fp8, .fp8E5M2:
            if case .block(let rows, let columns) = scheme.granularity {
                return .object([
                    JSONMember("quant_method", .string("fp8")),
                    JSONMember("fmt", .string(scheme.name == .fp8 ? "e4m3" : "e5m2")),
                    JSONMember("activation_scheme", .string("dynamic")),
                    JSONMember("weight_block_size", .array([number(rows), number(columns)])),
                    JSONMember("ignored_layers", ignoreList),
                ])
            }
            let strategy: String
            var groupSize: JSONValue = .null
            switch scheme.granularity {
            case .tensor: strategy = "tensor"
            case .group(let size): strategy = "group"; groupSize = number(size)
            default: strategy = "channel"
            }
            let weights = JSONValue.object([
                JSONMember("num_bits", number(8)), JSONMember("type", .string("float")),
                JSONMember("symmetric", .bool(true)), JSONMember("strategy", .string(strategy)),
                JSONMember("group_size", groupSize), JSONMember("block_structure", .null),
                JSONMember("dynamic", .bool(false)), JSONMember("actorder", .null),
                JSONMember("observer", .string("minmax")), JSONMember("observer_kwargs", .object([])),
            ])
            let activations = JSONValue.object([
                JSONMember("num_bits", number(8)), JSONMember("type", .string("float")),
                JSONMember("symmetric", .bool(true)), JSONMember("strategy", .string("token")),
                JSONMember("dynamic", .bool(true)), JSONMember("observer", .null),
            ])
            return compressedTensors(format: "float-quantized", weights: weights, activations: activations, ignore: ignoreList)
        case .int8, .int4:
            let bits = scheme.name == .int8 ? 8 : 4
            let packed = scheme.name == .int4 || options.packInt8
            var strategy = "channel"
            var groupSize: JSONValue = .null
            if case .group(let size) = scheme.granularity { strategy = "group"; groupSize = number(size) }
            let weights = JSONValue.object([
                JSONMember("num_bits", number(bits)), JSONMember("type", .string("int")),
                JSONMember("symmetric", .bool(scheme.symmetric)), JSONMember("strategy", .string(strategy)),
                JSONMember("group_size", groupSize), JSONMember("block_structure", .null),
                JSONMember("dynamic", .bool(false)), JSONMember("actorder", .null),
                JSONMember("observer", .string("minmax")), JSONMember("observer_kwargs", .object([])),
            ])
            return compressedTensors(format: packed ? "pack-quantized" : "int-quantized", weights: weights,
                                     activations: .null, ignore: ignoreList)
        default:
            return nil
        }
    }

    private static func compressedTensors(format: String, weights: JSONValue, activations: JSONValue, ignore: JSONValue) -> JSONValue {
        .object([
            JSONMember("quant_method", .string("compressed-tensors")),
            JSONMember("format", .string(format)),
            JSONMember("quantization_status", .string("compressed")),
            JSONMember("global_compression_ratio", .null),
            JSONMember("kv_cache_scheme", .null),
            JSONMember("sparsity_config", .object([])),
            JSONMember("ignore", ignore),
            JSONMember("config_groups", .object([
                JSONMember("group_0", .object([
                    JSONMember("targets", .array([.string("Linear")])),
                    JSONMember("format", .string(format)),
                    JSONMember("weights", weights),
                    JSONMember("input_activations", activations),
                    JSONMember("output_activations", .null),
                ]))
            ])),
        ])
    }
}
