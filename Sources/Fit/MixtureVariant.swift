import Formats
import Quantize

extension ModelShape {
    /// The tensors llama.cpp's converter writes for this architecture, with GGUF names and ggml
    /// shapes (`ne[0]`, the row length, first) and the role Fit counts them under: token_embd,
    /// output (unless tied), per layer attn_q/k/v/output, the dense or expert FFN (experts stacked
    /// as `ffn_*_exps`, shared experts as `ffn_*_shexp`, the router `ffn_gate_inp`), norms and biases
    /// (F32, as the converter writes 1-D tensors and routers).
    func ggufTensors() -> [(tensor: MixtureTensor, role: WeightTensor.Role)] {
        var list: [(MixtureTensor, WeightTensor.Role)] = []
        let h = hiddenSize, q = attentionHeads * headDim, kv = kvHeads * headDim
        func add(_ name: String, _ shape: [Int], _ role: WeightTensor.Role, _ type: GGMLType = .f16) {
            list.append((MixtureTensor(name: name, shape: shape, type: type), role))
        }
        add("token_embd.weight", [h, vocabularySize], .embedding)
        if learnedPositions > 0 { add("position_embd.weight", [h, learnedPositions], .embedding) }
        add("output_norm.weight", [h], .vector, .f32)
        if !tiedEmbeddings { add("output.weight", [h, vocabularySize], .lmHead) }
        for layer in 0..<layerCount {
            let b = "blk.\(layer)."
            add(b + "attn_norm.weight", [h], .vector, .f32)
            add(b + "attn_q.weight", [h, q], .attention)
            add(b + "attn_k.weight", [h, kv], .attention)
            add(b + "attn_v.weight", [h, kv], .attention)
            add(b + "attn_output.weight", [q, h], .attention)
            if attentionBias {
                for (name, width) in [("attn_q", q), ("attn_k", kv), ("attn_v", kv)] { add(b + name + ".bias", [width], .vector, .f32) }
            }
            if projectionBias { add(b + "attn_output.bias", [h], .vector, .f32) }
            for extra in 0..<max(0, normsPerLayer - 2) { add(b + "norm_\(extra).weight", [h], .vector, .f32) }
            add(b + "ffn_norm.weight", [h], .vector, .f32)
            func ffn(_ suffix: String, width: Int, experts: Int?, role: WeightTensor.Role) {
                let tail = experts.map { [$0] } ?? []
                if gatedMLP { add(b + "ffn_gate\(suffix).weight", [h, width] + tail, role) }
                add(b + "ffn_up\(suffix).weight", [h, width] + tail, role)
                add(b + "ffn_down\(suffix).weight", [width, h] + tail, role)
            }
            if isMixtureOfExperts {
                ffn("_exps", width: expertIntermediateSize > 0 ? expertIntermediateSize : intermediateSize, experts: expertCount, role: .expert)
                add(b + "ffn_gate_inp.weight", [h, expertCount], .router, .f32)
                if sharedExpertIntermediateSize > 0 { ffn("_shexp", width: sharedExpertIntermediateSize, experts: nil, role: .mlp) }
            } else {
                ffn("", width: intermediateSize, experts: nil, role: .mlp)
            }
        }
        return list
    }
}

extension Variant {
    /// The weight bytes of a llama.cpp mixture: every tensor's type chosen by llama-quantize's rule
    /// (``MixturePlanner``) on the GGUF tensors of the architecture (``ModelShape/ggufTensors()``),
    /// counted exactly (`GGMLType.byteCount`). Nil when a count overflows or the rule cannot place a
    /// tensor.
    func mixtureWeightBytes(of shape: ModelShape, mixture: MixtureDescriptor) -> WeightBytes? {
        let tensors = shape.ggufTensors()
        let model = MixtureModel(architecture: "llama", layerCount: shape.layerCount, headCount: shape.attentionHeads,
                                 headCountKV: shape.kvHeads, expertCount: shape.isMixtureOfExperts ? shape.expertCount : 0)
        guard let plan = try? MixturePlanner.plan(mixture, model: model, tensors: tensors.map(\.tensor)) else { return nil }
        var byName: [String: (tensor: MixtureTensor, role: WeightTensor.Role)] = [:]
        for entry in tensors { byName[entry.tensor.name] = entry }
        var bytes = WeightBytes()
        for decision in plan {
            guard let entry = byName[decision.name], let elements = CheckedSize.product(entry.tensor.shape),
                  let stored = decision.type.byteCount(elementCount: elements) else { return nil }
            bytes.add(stored, role: entry.role)
        }
        return bytes
    }
}
