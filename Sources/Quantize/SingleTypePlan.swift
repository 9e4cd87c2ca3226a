import Formats

extension MixturePlanner {
    /// `llama-quantize --pure MODEL OUT TYPE` for a single type that is not one of the mixtures
    /// (`f16`, `bf16`, `q8_0`, `q4_0`, …, `q4_k` as Q4_K_S, …): every tensor llama.cpp quantizes gets
    /// `defaultType` (with `--tensor-type` overrides and the row-length fallbacks), every other
    /// tensor keeps its type; the decisions come in llama-quantize's order. `label` names the
    /// llama.cpp file type in the reasons (`Q8_0`).
    public static func plan(pure defaultType: GGMLType, label: String, tensors: [MixtureTensor],
                            overrides: [TensorTypeOverride] = []) throws(QuantizeJobError) -> [MixtureDecision] {
        var used = Set<Int>()
        var out: [MixtureDecision] = []
        for t in llamaOrder(tensors) {
            guard allowsQuantization(t) else {
                out.append(MixtureDecision(name: t.name, type: t.type, converts: false,
                                           reason: t.shape.dropFirst().allSatisfy({ $0 == 1 }) ? "kept: one dimension" : "kept: llama.cpp never quantizes this tensor"))
                continue
            }
            var type = defaultType, reason = "\(label) (--pure)"
            if let i = overrides.firstIndex(where: { $0.matches(t.name) }) {
                used.insert(i)
                type = overrides[i].type
                reason = "--tensor-type \(overrides[i].pattern)=\(type.name.lowercased())"
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
}
