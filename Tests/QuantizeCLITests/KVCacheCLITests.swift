import Foundation
import Testing
import TestSupport

/// `quantize --to fp8|int8|int4 … --kv-cache fp8 --calibration FILE`, end to end on the shipped model.
@Suite("--kv-cache fp8")
struct KVCacheCLITests {
    static let text = "fixtures/trained-llama/eval.txt"
    static let calibration = ["--calibration", text, "--calibration-samples", "2", "--calibration-length", "32"]

    func json(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    func scaleTensors(_ path: String) throws -> [String: [String: Any]] {
        let inspect = try CLI.jsonObject(try CLI.run(["inspect", path, "--json"]).stdout)
        var found: [String: [String: Any]] = [:]
        for tensor in (inspect["tensors"] as? [[String: Any]]) ?? [] {
            if let name = tensor["name"] as? String, name.hasSuffix("_scale"), name.contains("self_attn.k_scale") || name.contains("self_attn.v_scale") {
                found[name] = tensor
            }
        }
        return found
    }

    @Test("writes one BF16 [1] k_scale and v_scale per layer, kv_cache_scheme as llm-compressor does, the record; vLLM's rules pass; eval reads them")
    func writesScalesAndConfig() throws {
        let scratch = try Fixtures.temporaryDirectory("cli-kv-fp8")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = scratch.appendingPathComponent("fp8-kv").path, plain = scratch.appendingPathComponent("fp8").path
        let run = try CLI.run(["--to", "fp8", "fixtures/tiny-llama", "--kv-cache", "fp8"] + Self.calibration + ["--no-check", "-o", out])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stderr.contains("kv-cache: layer 2/2 done"), "progress per layer: \(run.stderr)")
        #expect(try CLI.run(["--to", "fp8", "fixtures/tiny-llama", "--no-check", "-o", plain, "--quiet"]).status == 0)

        let config = try json(out + "/config.json")
        let quantization = try #require(config["quantization_config"] as? [String: Any])
        let scheme = try #require(quantization["kv_cache_scheme"] as? [String: Any])
        #expect(scheme["num_bits"] as? Int == 8 && scheme["type"] as? String == "float" && scheme["strategy"] as? String == "tensor")
        #expect(scheme["symmetric"] as? Bool == true && scheme["dynamic"] as? Bool == false && scheme["group_size"] is NSNull)
        #expect(scheme.count == 6, "llm-compressor leaves out the unset optional fields: \(scheme.keys.sorted())")
        let record = try #require(config["quantize_kv_cache"] as? [String: Any])
        #expect(record["observer"] as? String == "minmax" && record["states"] as? String == "float model")
        #expect((record["calibration"] as? [String: Any])?["tokens"] as? Int == 64)

        let scales = try scaleTensors(out)
        let expected = (0..<2).flatMap { ["model.layers.\($0).self_attn.k_scale", "model.layers.\($0).self_attn.v_scale"] }
        #expect(Set(scales.keys) == Set(expected), "\(scales.keys.sorted())")
        for (name, tensor) in scales {
            #expect(tensor["dtype"] as? String == "BF16", "\(name): \(tensor)")
            #expect(tensor["shape"] as? [Int] == [1], "\(name): \(tensor)")
        }
        let index = try json(out + "/model.safetensors.index.json")
        let map = try #require(index["weight_map"] as? [String: String])
        for name in expected { #expect(map[name] != nil, "the index lists \(name)") }
        #expect(try scaleTensors(plain).isEmpty)

        for target in ["vllm", "transformers"] {
            let verify = try CLI.run(["verify", "--target", target, out, "--json", "--no-load"])
            #expect(verify.status == 0, "\(target): \(verify.stdout)")
        }

        // eval rounds K and V through the cache with the stored scales.
        let eval = try CLI.run(["eval", "fixtures/tiny-llama", plain, out, "--text", Self.text, "--context", "64", "--chunks", "2", "--json"])
        #expect(eval.status == 0, "stderr: \(eval.stderr)")
        let document = try CLI.jsonObject(eval.stdout)
        let results = try #require(document["comparisons"] as? [[String: Any]] ?? document["results"] as? [[String: Any]], "\(document.keys.sorted())")
        #expect(results.count == 2)
        #expect(results.map { $0["fp8KVCache"] as? Bool } == [false, true], "\(results)")
    }

    @Test("with --method gptq the scales come from GPTQ's calibration pass and the output passes vLLM's rules")
    func withGPTQ() throws {
        let scratch = try Fixtures.temporaryDirectory("cli-kv-gptq")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = scratch.appendingPathComponent("int4-kv").path
        let run = try CLI.run(["--to", "int4", "fixtures/tiny-llama", "--method", "gptq", "--kv-cache", "fp8"] + Self.calibration + ["--no-check", "-o", out])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let config = try json(out + "/config.json")
        #expect((config["quantize_kv_cache"] as? [String: Any])?["states"] as? String == "gptq calibration pass (original layer weights on the quantized earlier layers' output)")
        #expect((config["quantize_calibration"] as? [String: Any])?["method"] as? String == "gptq")
        #expect(try scaleTensors(out).count == 4)
        let verify = try CLI.run(["verify", "--target", "vllm", out, "--json", "--no-load"])
        #expect(verify.status == 0, "\(verify.stdout)")
    }

    @Test("refuses, before any work, what --kv-cache fp8 cannot do", arguments: [
        (["--to", "fp8", "fixtures/tiny-llama", "--kv-cache", "fp8"], "--calibration FILE"),
        (["--to", "q8_0", "fixtures/tiny-llama.gguf", "--kv-cache", "fp8", "--calibration", text], "--cache-type-k q8_0"),
        (["--to", "q4_k_m", "fixtures/tiny-llama.gguf", "--kv-cache", "fp8", "--calibration", text], "--cache-type-k q8_0"),
        (["--to", "int4", "fixtures/tiny-llama", "--kv-cache", "fp8", "--calibration", text, "--calibration-samples", "0"], "--calibration-samples"),
        (["--to", "int4", "fixtures/tiny-llama", "--calibration", text], "--method gptq"),
    ])
    func refusesBadCombinations(_ arguments: [String], _ mention: String) throws {
        let result = try CLI.run(arguments + ["-o", "/tmp/quantize-kv-refused-\(UUID().uuidString)"])
        #expect(result.status == 2, "stderr: \(result.stderr)")
        #expect(result.stderr.contains(mention), "the error names \(mention): \(result.stderr)")
    }

    @Test("a GGUF input exported to Hugging Face is refused: --kv-cache runs on a Hugging Face input")
    func refusesGGUFInput() throws {
        let out = "/tmp/quantize-kv-refused-\(UUID().uuidString)"
        let result = try CLI.run(["--to", "fp8", "fixtures/tiny-llama.gguf", "--kv-cache", "fp8", "--calibration", Self.text, "-o", out])
        #expect(result.status != 0 && result.stderr.contains("--kv-cache"), "stderr: \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test("verify --target vllm names a layer whose k_scale is missing when kv_cache_scheme declares the cache")
    func verifyNamesMissingScales() throws {
        let scratch = try Fixtures.temporaryDirectory("cli-kv-missing")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = scratch.appendingPathComponent("fp8").path
        #expect(try CLI.run(["--to", "fp8", "fixtures/tiny-llama", "--no-check", "-o", out, "--quiet"]).status == 0)
        var config = try json(out + "/config.json")
        var quantization = try #require(config["quantization_config"] as? [String: Any])
        quantization["kv_cache_scheme"] = ["num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": false, "symmetric": true, "group_size": NSNull()]
        config["quantization_config"] = quantization
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: out + "/config.json"))
        let verify = try CLI.run(["verify", "--target", "vllm", out, "--json", "--no-load"])
        #expect(verify.status != 0)
        #expect(verify.stdout.contains("model.layers.0.self_attn.k_scale") && verify.stdout.contains("is missing"), "\(verify.stdout)")
    }
}
