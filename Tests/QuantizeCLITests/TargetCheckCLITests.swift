import Foundation
import Formats
import Testing
import TestSupport

/// `quantize verify --target transformers|vllm|llama.cpp`: each layout we write against the loader
/// rules of the runtime it is meant for, and hand-broken files that each rule must catch.
@Suite("verify --target")
struct TargetCheckCLITests {
    /// Writes `flags` of fixtures/tiny-llama (or `input`) into `directory/name` without the check.
    func write(_ flags: [String], _ name: String, in directory: URL, input: String = "fixtures/tiny-llama") throws -> String {
        let out = directory.appendingPathComponent(name).path
        let run = try CLI.run(["--to"] + flags + [input, "-o", out, "--no-check", "--quiet"])
        #expect(run.status == 0, "quantize --to \(flags) failed: \(run.stderr)")
        return out
    }

    /// `verify --target TARGET PATH --json --no-load` as its JSON document and exit status.
    func check(_ target: String, _ path: String) throws -> (status: Int32, json: JSONValue) {
        let run = try CLI.run(["verify", "--target", target, path, "--json", "--no-load"])
        return (run.status, try JSONValue.parse(run.stdout))
    }

    func messages(_ json: JSONValue, _ severity: String = "error") -> [String] {
        (json["findings"]?.array ?? []).filter { $0["severity"]?.string == severity }.compactMap { finding in
            "\(finding["subject"]?.string ?? ""): \(finding["message"]?.string ?? "")"
        }
    }

    @Test("every symmetric layout we write loads in vLLM and transformers; the scheme vLLM picks is named")
    func ourLayoutsLoad() throws {
        let directory = try Fixtures.temporaryDirectory("target-ours")
        let cases: [([String], String)] = [
            (["int4"], "CompressedTensorsWNA16 int4 group 128 symmetric"),
            (["int4", "--group-size", "32"], "CompressedTensorsWNA16 int4 group 32 symmetric"),
            (["int8"], "CompressedTensorsWNA16 int8 per channel symmetric"),
            (["fp8"], "CompressedTensorsW8A8Fp8 float8 per channel symmetric"),
            (["fp8", "--granularity", "block"], "fp8 blocks 128×128"),
        ]
        for (index, (flags, scheme)) in cases.enumerated() {
            let out = try write(flags, "v\(index)", in: directory)
            let vllm = try check("vllm", out)
            #expect(vllm.status == 0, "\(flags): \(messages(vllm.json))")
            #expect(vllm.json["loads"]?.bool == true)
            #expect(vllm.json["summary"]?.string?.contains(scheme) == true, "\(flags): \(vllm.json["summary"]?.string ?? "")")
            #expect((vllm.json["checked"]?.int ?? 0) == 14, "\(flags): 2 layers × 7 projections, lm_head ignored")
            let hf = try check("transformers", out)
            #expect(hf.status == 0, "\(flags): \(messages(hf.json))")
            #expect(hf.json["rules_from"]?.string?.contains("compressed-tensors 0.20") == true)
        }
    }

    @Test("asymmetric int4 loads in vLLM but not in transformers 5.2x; int-quantized int8 trips vLLM's float assertion")
    func knownRuntimeLimits() throws {
        let directory = try Fixtures.temporaryDirectory("target-limits")
        let asymmetric = try write(["int4", "--asymmetric"], "asym", in: directory)
        let vllm = try check("vllm", asymmetric)
        #expect(vllm.status == 0, "\(messages(vllm.json))")
        #expect(vllm.json["summary"]?.string?.contains("int4 group 128 asymmetric") == true)
        let hf = try check("transformers", asymmetric)
        #expect(hf.status == 1)
        #expect(messages(hf.json).contains { $0.contains("asymmetric pack-quantized") && $0.contains("size mismatch") })

        let naive = try write(["int8", "--int8-layout", "int-quantized"], "naive", in: directory)
        let refused = try check("vllm", naive)
        #expect(refused.status == 1)
        #expect(messages(refused.json).count == 1)
        #expect(messages(refused.json).contains { $0.hasPrefix("config.json:") && $0.contains("asserts that weights are float") && $0.contains("pack-quantized") })
        #expect(try check("transformers", naive).status == 0)
    }

    @Test("a config that no longer matches its tensors, a targeted layer left unquantized and split q/k/v ignores are caught")
    func brokenConfigs() throws {
        let directory = try Fixtures.temporaryDirectory("target-broken")
        let out = try write(["int4"], "int4", in: directory)
        let configURL = URL(fileURLWithPath: out + "/config.json")
        let text = try String(contentsOf: configURL, encoding: .utf8)

        // group_size 64 while the scales are per 128 columns.
        try text.replacingOccurrences(of: "\"group_size\": 128", with: "\"group_size\": 64").write(to: configURL, atomically: true, encoding: .utf8)
        let regrouped = try check("vllm", out)
        #expect(regrouped.status == 1)
        #expect(messages(regrouped.json).contains { $0.contains("weight_scale") && $0.contains("needs [128, 4]") }, "\(messages(regrouped.json))")

        // k_proj of layer 0 ignored, q/v not: vLLM fuses them; and the ignored layer is stored quantized.
        try text.replacingOccurrences(of: "\"lm_head\"", with: "\"lm_head\", \"model.layers.0.self_attn.k_proj\"").write(to: configURL, atomically: true, encoding: .utf8)
        let split = try check("vllm", out)
        #expect(split.status == 1)
        #expect(messages(split.json).contains { $0.hasPrefix("model.layers.0.self_attn:") && $0.contains("one scheme for all shards") })
        #expect(messages(split.json).contains { $0.hasPrefix("model.layers.0.self_attn.k_proj:") && $0.contains("stored quantized") })

        // No ignore list at all: lm_head is targeted by "Linear" but stored in BF16.
        try text.replacingOccurrences(of: "\"lm_head\"", with: "").write(to: configURL, atomically: true, encoding: .utf8)
        let unquantized = try check("transformers", out)
        #expect(unquantized.status == 1)
        #expect(messages(unquantized.json).contains { $0.hasPrefix("lm_head:") && $0.contains("stored unquantized") })

        // An architecture vLLM does not implement natively is a warning (its Transformers backend may run it).
        try text.replacingOccurrences(of: "LlamaForCausalLM", with: "FooForCausalLM").write(to: configURL, atomically: true, encoding: .utf8)
        let foreign = try check("vllm", out)
        #expect(foreign.status == 0)
        #expect(messages(foreign.json, "warning").contains { $0.contains("FooForCausalLM is not one vLLM implements natively") })

        // Plain checkpoints pass; a GGUF is refused for vLLM with what to do instead.
        #expect(try check("vllm", "fixtures/tiny-llama").status == 0)
        let gguf = try check("vllm", "fixtures/tiny-llama.gguf")
        #expect(gguf.status == 1)
        #expect(messages(gguf.json).contains { $0.contains("quantize --to bf16") })
    }

    @Test("llama.cpp: our GGUF outputs load; a missing tensor, an extra tensor, a wrong shape and a missing key are named")
    func llamaCppRules() throws {
        let directory = try Fixtures.temporaryDirectory("target-gguf")
        for type in ["q8_0", "q4_k_m"] {
            let out = try write([type], "\(type).gguf", in: directory, input: "fixtures/tiny-llama.gguf")
            let result = try check("llama.cpp", out)
            #expect(result.status == 0, "\(type): \(messages(result.json))")
            #expect(result.json["summary"]?.string?.hasPrefix("llama, 2 layers, vocabulary 1024") == true, "\(result.json["summary"]?.string ?? "")")
        }
        // After a quantize run the verdict is printed too.
        let run = try CLI.run(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", directory.appendingPathComponent("printed.gguf").path, "--no-check"])
        #expect(run.stderr.contains("layout llama.cpp: loads — llama, 2 layers"))

        // A broken copy: ffn_up of layer 1 dropped, an extra tensor, attn_k with the wrong width,
        // and no RMS epsilon.
        let source = try GGUFFile(path: Fixtures.path("tiny-llama.gguf"))
        var metadata = source.metadata.filter { $0.key != "llama.attention.layer_norm_rms_epsilon" }
        metadata.removeAll { $0.key == "general.alignment" }
        var tensors: [GGUFWriter.Tensor] = []
        var payloads: [[UInt8]] = []
        for info in source.tensors where info.name != "blk.1.ffn_up.weight" {
            var shape = info.shape
            var bytes = [UInt8](source.data(for: info))
            if info.name == "blk.0.attn_k.weight" {
                shape = [shape[0] / 2, shape[1]]
                bytes = Array(bytes.prefix(bytes.count / 2))
            }
            tensors.append(GGUFWriter.Tensor(name: info.name, type: info.type, shape: shape))
            payloads.append(bytes)
        }
        tensors.append(GGUFWriter.Tensor(name: "blk.0.extra.weight", type: .f32, shape: [4]))
        payloads.append([UInt8](repeating: 0, count: 16))
        let broken = directory.appendingPathComponent("broken.gguf").path
        let writer = try GGUFWriter(path: broken, metadata: metadata, tensors: tensors)
        for bytes in payloads { try writer.writeTensor(bytes) }
        try writer.finish()

        let result = try check("llama.cpp", broken)
        #expect(result.status == 1)
        let errors = messages(result.json)
        #expect(errors.contains { $0.hasPrefix("blk.1.ffn_up.weight:") && $0.contains("is missing") })
        #expect(errors.contains { $0.hasPrefix("blk.0.extra.weight:") && $0.contains("wrong number of tensors") })
        #expect(errors.contains { $0.hasPrefix("blk.0.attn_k.weight:") && $0.contains("wrong shape") })
        #expect(errors.contains { $0.hasPrefix("llama.attention.layer_norm_rms_epsilon:") })
        #expect(try check("llama.cpp", "fixtures/tiny-llama").status == 1)
    }
}
