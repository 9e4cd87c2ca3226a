import Formats
import Testing
@testable import Quantize

@Suite("tensor selection")
struct TensorSelectionTests {
    let bf16 = TensorType.dtype(.bf16)

    @Test("default rules quantize linear weights and keep embeddings, heads, norms, biases, routers")
    func defaultRules() {
        let selection = TensorSelection()
        let cases: [(String, [Int], Bool, String)] = [
            ("model.layers.0.self_attn.q_proj.weight", [256, 256], true, "linear layer weight"),
            ("model.layers.0.mlp.down_proj.weight", [256, 768], true, "linear layer weight"),
            ("model.embed_tokens.weight", [1024, 256], false, "embedding"),
            ("lm_head.weight", [1024, 256], false, "output head (lm_head)"),
            ("output.weight", [1024, 256], false, "output head (lm_head)"),
            ("model.layers.0.input_layernorm.weight", [256], false, "1-D tensor"),
            ("model.layers.0.self_attn.q_proj.bias", [256], false, "1-D tensor"),
            ("model.layers.0.block_sparse_moe.gate.weight", [8, 256], false, "MoE router"),
            ("blk.0.ffn_gate_inp.weight", [8, 256], false, "MoE router"),
            ("model.layers.0.mlp.gate_proj.weight", [768, 256], true, "linear layer weight"),
            ("blk.3.ffn_gate.weight", [768, 256], true, "linear layer weight"),
        ]
        for (name, shape, quantize, rule) in cases {
            let decision = selection.decide(name: name, type: bf16, shape: shape)
            #expect(decision.quantize == quantize, "\(name)")
            #expect(decision.rule == rule, "\(name)")
        }
    }

    @Test("integer and already-quantized tensors are never quantized, even when --only names them")
    func structuralRefusals() {
        let selection = TensorSelection(patterns: [.init(quantize: true, glob: "*")])
        #expect(!selection.decide(name: "a.weight", type: .dtype(.i32), shape: [4, 4]).quantize)
        #expect(!selection.decide(name: "a.weight", type: .dtype(.f8E4M3), shape: [4, 4]).quantize)
        #expect(!selection.decide(name: "a.weight", type: .ggml(.q4_0), shape: [4, 32]).quantize)
        #expect(selection.decide(name: "lm_head.weight", type: bf16, shape: [4, 4]).quantize)
    }

    @Test("the first matching pattern wins, in command-line order")
    func firstMatchWins() {
        let selection = TensorSelection(patterns: [
            .init(quantize: false, glob: "model.layers.0.*"),
            .init(quantize: true, glob: "model.layers.*.mlp.*"),
        ])
        let kept = selection.decide(name: "model.layers.0.mlp.up_proj.weight", type: bf16, shape: [8, 8])
        #expect(!kept.quantize)
        #expect(kept.rule == "--skip 'model.layers.0.*'")
        #expect(selection.decide(name: "model.layers.1.mlp.up_proj.weight", type: bf16, shape: [8, 8]).quantize)
        let other = selection.decide(name: "model.layers.1.self_attn.q_proj.weight", type: bf16, shape: [8, 8])
        #expect(!other.quantize)
        #expect(other.rule == "not matched by any --only")
    }

    @Test("a pattern that matches no tensor is reported")
    func unmatchedPatterns() {
        let selection = TensorSelection(patterns: [
            .init(quantize: false, glob: "*.q_proj.weight"),
            .init(quantize: false, glob: "model.layer.*"),
        ])
        let unmatched = selection.unmatchedPatterns(in: ["model.layers.0.self_attn.q_proj.weight"])
        #expect(unmatched.map(\.glob) == ["model.layer.*"])
    }

    @Test("globs: stars cross dots, classes, ranges, negation, escapes")
    func globs() {
        #expect(Glob.matches("*", ""))
        #expect(Glob.matches("model.*.weight", "model.layers.0.mlp.weight"))
        #expect(!Glob.matches("model.*.weight", "model.layers.0.mlp.bias"))
        #expect(Glob.matches("blk.?.attn_q.weight", "blk.7.attn_q.weight"))
        #expect(!Glob.matches("blk.?.attn_q.weight", "blk.17.attn_q.weight"))
        #expect(Glob.matches("blk.[0-3].*", "blk.2.ffn_up.weight"))
        #expect(!Glob.matches("blk.[!0-3].*", "blk.2.ffn_up.weight"))
        #expect(Glob.matches("a\\*b", "a*b"))
        #expect(!Glob.matches("a\\*b", "axb"))
        #expect(Glob.matches("*q_proj*", "model.layers.0.self_attn.q_proj.weight"))
        #expect(Glob.matches("a[b", "a[b"))
    }
}

@Suite("tensor selection follows the shared role rules")
struct TensorSelectionRoleTests {
    @Test("BERT's token-type embedding and a Qwen-MoE shared-expert gate are kept by default; shared-expert projections quantized")
    func sharedRules() {
        let selection = TensorSelection()
        let bf16 = TensorType.dtype(.bf16)
        for (name, quantize, rule) in [("embeddings.token_type_embeddings.weight", false, "embedding"),
                                       ("model.layers.0.mlp.shared_expert_gate.weight", false, "MoE router"),
                                       ("model.layers.0.mlp.shared_expert.up_proj.weight", true, "linear layer weight")] {
            let decision = selection.decide(name: name, type: bf16, shape: [2, 256])
            #expect(decision.quantize == quantize, "\(name)")
            #expect(decision.rule == rule, "\(name)")
            #expect(TensorRole(name: name).isQuantizedByDefault == quantize, "\(name): Formats' role agrees")
        }
        // The accuracy report's layer types follow the same rules.
        #expect(LayerName(tensorName: "model.layers.0.mlp.shared_expert_gate.weight").type == .router)
        #expect(LayerName(tensorName: "embeddings.token_type_embeddings.weight").type == .embedding)
    }
}
