import Foundation
import Formats
import Testing
import TestSupport

/// `quantize --to int4|int8 --method awq`, end to end on the shipped model.
@Suite("--method awq")
struct AWQCLITests {
    func json(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    @Test("writes round-to-nearest's layout with smoothed weights and norms, passes its own check, and records the mappings")
    func writesSmoothedOutput() throws {
        let scratch = try Fixtures.temporaryDirectory("cli-awq")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let awq = scratch.appendingPathComponent("awq").path, rtn = scratch.appendingPathComponent("rtn").path
        // The accuracy check is on: it compares each tensor with the smoothed weights it encodes.
        let run = try CLI.run(["--to", "int4", "fixtures/tiny-llama", "--method", "awq", "--calibration", "fixtures/trained-llama/eval.txt",
                               "--calibration-samples", "4", "--calibration-length", "64", "--asymmetric", "-o", awq])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stderr.contains("awq: layer 2/2 done"), "progress per layer: \(run.stderr)")
        #expect(try CLI.run(["--to", "int4", "fixtures/tiny-llama", "--asymmetric", "--no-check", "-o", rtn, "--quiet"]).status == 0)

        let config = try json(awq + "/config.json")
        let record = try #require(config["quantize_calibration"] as? [String: Any])
        #expect(record["method"] as? String == "awq" && record["n_grid"] as? Int == 20 && record["duo_scaling"] as? Bool == true)
        let mappings = try #require(record["mappings"] as? [[String: Any]])
        #expect(mappings.count == 6, "grouped-query attention: three mappings per layer, v_proj → o_proj skipped")
        #expect(mappings.first?["smooth_layer"] as? String == "model.layers.0.input_layernorm")
        #expect(mappings.allSatisfy { (($0["best_error"] as? Double) ?? .infinity) <= (($0["initial_error"] as? Double) ?? -1) })
        let calibration = try #require(record["calibration"] as? [String: Any])
        #expect(calibration["samples"] as? Int == 4 && calibration["tokens"] as? Int == 256)

        let inspect = { (path: String) throws -> [String: (dtype: String, shape: [Int])] in
            let tensors = try CLI.jsonObject(try CLI.run(["inspect", path, "--json"]).stdout)["tensors"] as? [[String: Any]] ?? []
            var byName: [String: (dtype: String, shape: [Int])] = [:]
            for t in tensors { if let name = t["name"] as? String { byName[name] = ((t["dtype"] as? String) ?? "", (t["shape"] as? [Int]) ?? []) } }
            return byName
        }
        let ours = try inspect(awq), theirs = try inspect(rtn)
        #expect(!ours.isEmpty && ours.keys.sorted() == theirs.keys.sorted())
        #expect(ours.allSatisfy { theirs[$0.key]?.dtype == $0.value.dtype && theirs[$0.key]?.shape == $0.value.shape }, "same dtypes and shapes")
        let a = try Data(contentsOf: URL(fileURLWithPath: awq + "/model-00001-of-00002.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: rtn + "/model-00001-of-00002.safetensors"))
        #expect(a.count == b.count && a != b, "AWQ changes codes, scales and norms, not the layout")
        // The norms the scales were folded into are written with their new values (kept tensors).
        let smoothed = try Checkpoint(path: awq), plain = try Checkpoint(path: rtn)
        for name in ["model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight"] {
            let s = try #require(smoothed.tensors.first { $0.name == name }), p = try #require(plain.tensors.first { $0.name == name })
            #expect(Array(smoothed.data(for: s)) != Array(plain.data(for: p)), "\(name) carries AWQ's scales")
        }
        let report = try json(awq + "/quantize-report.json")
        #expect(report["passed"] as? Bool == true, "the check against the smoothed weights passes: \(report["summary"] ?? "")")
    }

    @Test("refuses, before any work, what --method awq cannot do", arguments: [
        (["--to", "int4", "fixtures/tiny-llama", "--method", "awq"], "--calibration"),
        (["--to", "fp8", "fixtures/tiny-llama", "--method", "awq", "--calibration", "fixtures/trained-llama/eval.txt"], "int4 and int8"),
        (["--to", "int4", "fixtures/tiny-llama", "--method", "awq", "--search", "--calibration", "fixtures/trained-llama/eval.txt"], "--search"),
        (["--to", "int4", "fixtures/tiny-llama", "--method", "awq", "--act-order", "--calibration", "fixtures/trained-llama/eval.txt"], "--act-order"),
    ])
    func refusesBadCombinations(_ arguments: [String], _ mention: String) throws {
        let result = try CLI.run(arguments + ["-o", "/tmp/quantize-awq-refused-\(UUID().uuidString)"])
        #expect(result.status == 2, "stderr: \(result.stderr)")
        #expect(result.stderr.contains(mention), "the error names \(mention): \(result.stderr)")
    }

    @Test("a mixture-of-experts model is refused, naming the mapping AWQ lacks and the layer")
    func refusesExperts() throws {
        let out = "/tmp/quantize-awq-moe-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try CLI.run(["--to", "int4", "--group-size", "32", "fixtures/reference-models/mixtral", "--method", "awq",
                                  "--calibration", "fixtures/trained-llama/eval.txt", "--calibration-samples", "2", "--calibration-length", "16",
                                  "-o", out])
        #expect(result.status == 2, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("post_attention_layernorm") && result.stderr.contains("experts"), "stderr: \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out), "nothing written")
    }
}
