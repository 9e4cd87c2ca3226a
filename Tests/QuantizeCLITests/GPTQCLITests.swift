import Foundation
import Testing
import TestSupport

/// `quantize --to int4|int8 --method gptq`, end to end on the shipped model.
@Suite("--method gptq")
struct GPTQCLITests {
    func json(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    @Test("writes round-to-nearest's tensors and shapes with GPTQ's codes, no g_idx, and the method in config.json")
    func writesCalibratedOutput() throws {
        let scratch = try Fixtures.temporaryDirectory("cli-gptq")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let gptq = scratch.appendingPathComponent("gptq").path, rtn = scratch.appendingPathComponent("rtn").path
        let run = try CLI.run(["--to", "int4", "fixtures/tiny-llama", "--method", "gptq", "--calibration", "fixtures/trained-llama/eval.txt",
                               "--calibration-samples", "4", "--calibration-length", "64", "--act-order", "--no-check", "-o", gptq])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stderr.contains("gptq: layer 2/2 done"), "progress per layer: \(run.stderr)")
        #expect(try CLI.run(["--to", "int4", "fixtures/tiny-llama", "--no-check", "-o", rtn, "--quiet"]).status == 0)

        let config = try json(gptq + "/config.json")
        let record = try #require(config["quantize_calibration"] as? [String: Any])
        #expect(record["method"] as? String == "gptq" && record["actorder"] as? String == "static")
        let calibration = try #require(record["calibration"] as? [String: Any])
        #expect(calibration["samples"] as? Int == 4 && calibration["tokens"] as? Int == 256)
        let quantization = try #require(config["quantization_config"] as? [String: Any])
        let weights = try #require(((quantization["config_groups"] as? [String: Any])?["group_0"] as? [String: Any])?["weights"] as? [String: Any])
        #expect(weights["actorder"] as? String == "static")

        // Same tensors and shapes as round-to-nearest; other codes; no g_idx.
        let inspectGPTQ = try CLI.jsonObject(try CLI.run(["inspect", gptq, "--json"]).stdout)
        let inspectRTN = try CLI.jsonObject(try CLI.run(["inspect", rtn, "--json"]).stdout)
        let names = { (d: [String: Any]) in ((d["tensors"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }.sorted() }
        #expect(names(inspectGPTQ) == names(inspectRTN) && !names(inspectGPTQ).isEmpty)
        #expect(!names(inspectGPTQ).contains { $0.hasSuffix("g_idx") })
        let verify = try CLI.run(["verify", "fixtures/tiny-llama", gptq, "--json"])
        #expect(verify.status == 0 || verify.status == 1, "verify reads it; stderr: \(verify.stderr)")
        let shardA = try Data(contentsOf: URL(fileURLWithPath: gptq + "/model-00001-of-00002.safetensors"))
        let shardB = try Data(contentsOf: URL(fileURLWithPath: rtn + "/model-00001-of-00002.safetensors"))
        #expect(shardA.count == shardB.count && shardA != shardB, "GPTQ changes codes, not the layout")
    }

    @Test("refuses, before any work, what --method gptq or hqq cannot do", arguments: [
        (["--to", "int4", "fixtures/tiny-llama", "--method", "gptq"], "--calibration"),
        (["--to", "fp8", "fixtures/tiny-llama", "--method", "hqq"], "int4 and int8"),
        (["--to", "int4", "fixtures/tiny-llama", "--method", "hqq", "--search"], "--search"),
        (["--to", "int4", "fixtures/tiny-llama", "--method", "hqq", "--calibration", "fixtures/trained-llama/eval.txt"], "no calibration data"),
        (["--to", "fp8", "fixtures/tiny-llama", "--method", "gptq", "--calibration", "fixtures/trained-llama/eval.txt"], "int4 and int8"),
        (["--to", "int4", "fixtures/tiny-llama", "--calibration", "fixtures/trained-llama/eval.txt"], "--method gptq"),
        (["--to", "int4", "fixtures/tiny-llama", "--method", "gptq", "--search", "--calibration", "fixtures/trained-llama/eval.txt"], "--search"),
        (["--to", "int4", "fixtures/tiny-llama", "--method", "gptq", "--calibration", "fixtures/trained-llama/eval.txt", "--dampening", "-1"], "--dampening"),
    ])
    func refusesBadCombinations(_ arguments: [String], _ mention: String) throws {
        let result = try CLI.run(arguments + ["-o", "/tmp/quantize-gptq-refused-\(UUID().uuidString)"])
        #expect(result.status == 2, "stderr: \(result.stderr)")
        #expect(result.stderr.contains(mention), "the error names \(mention): \(result.stderr)")
    }

    @Test("a calibration file with no complete window is refused with its name")
    func refusesShortCalibration() throws {
        let scratch = try Fixtures.temporaryDirectory("cli-gptq-short")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let ids = scratch.appendingPathComponent("ids.json").path
        try Data("[[1, 2, 3]]".utf8).write(to: URL(fileURLWithPath: ids))
        let result = try CLI.run(["--to", "int4", "fixtures/tiny-llama", "--method", "gptq", "--calibration", ids,
                                  "-o", scratch.appendingPathComponent("out").path])
        #expect(result.status == 2, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("ids.json") && result.stderr.contains("window 0"), "stderr: \(result.stderr)")
    }
}

/// `quantize --to int4|int8 --method hqq` on the shipped model.
@Suite("--method hqq")
struct HQQCLITests {
    @Test("writes round-to-nearest's layout with refined scales, and the method in config.json")
    func writesRefinedOutput() throws {
        let scratch = try Fixtures.temporaryDirectory("cli-hqq")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let hqq = scratch.appendingPathComponent("hqq").path, rtn = scratch.appendingPathComponent("rtn").path
        let run = try CLI.run(["--to", "int4", "fixtures/tiny-llama", "--method", "hqq", "--asymmetric", "-o", hqq, "--quiet"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(try CLI.run(["--to", "int4", "fixtures/tiny-llama", "--asymmetric", "-o", rtn, "--quiet"]).status == 0)
        let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: hqq + "/config.json"))) as? [String: Any])
        let record = try #require(config["quantize_calibration"] as? [String: Any])
        #expect(record["method"] as? String == "hqq" && record["lp_norm"] as? Double == 0.7)
        let a = try Data(contentsOf: URL(fileURLWithPath: hqq + "/model-00001-of-00002.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: rtn + "/model-00001-of-00002.safetensors"))
        #expect(a.count == b.count && a != b, "HQQ changes scales, zero points and codes, not the layout")
        let verify = try CLI.run(["verify", "fixtures/tiny-llama", hqq, "--json"])
        #expect(verify.status == 0 || verify.status == 1, "verify reads it; stderr: \(verify.stderr)")
    }
}
