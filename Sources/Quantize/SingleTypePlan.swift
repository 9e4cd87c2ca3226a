import Formats

extension MixturePlanner {
    /// `llama-quantize --pure MODEL OUT TYPE` for a single type that is not one of the mixtures
    /// (`f16`, `bf16`, `q8_0`, `q4_0`, …, `q4_k` as Q4_K_S, …): every tensor llama.cpp quantizes gets
    /// `defaultType` (with `--tensor-type` overrides and the row-length fallbacks), every other
    /// tensor keeps its type; the decisions come in llama-quantize's order. `label` names the
    /// llama.cpp file type in the reasons (`Q8_0`).
    public static func plan(pure defaultType: GGMLType, label: String, tensors: [MixtureTensor],
                            overrides: [TensorTypeOverride] = []) throws(QuantizeJobError) -> [MixtureDecision] {
        try decide(llamaOrder(tensors), defaultType: defaultType, reason: "\(label) (--pure)", overrides: overrides) { _, type, reason in (type, reason) }
    }
}
