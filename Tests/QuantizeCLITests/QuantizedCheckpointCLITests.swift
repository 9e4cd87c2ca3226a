import Foundation
import Testing
import TestSupport

/// inspect, fit and verify on a quantized checkpoint (issue 8, item 6), and one JSON spacing for every `--json`.
@Suite("quantized checkpoints read as what they are", .serialized)
struct QuantizedCheckpointCLITests {
    /// Quantizes the shipped model with `arguments` into a scratch directory; (scratch, output).
    static func quantized(_ label: String, _ arguments: [String]) throws -> (URL, String) {
        let scratch = try Fixtures.temporaryDirectory(label)
        let output = scratch.appendingPathComponent(label).path
        let result = try CLI.run(arguments + ["fixtures/tiny-llama", "-o", output, "--no-check", "--quiet"])
        try #require(result.status == 0, "quantize \(arguments) failed: \(result.stderr)")
        return (scratch, output)
    }

    @Test("inspect counts a packed int4 checkpoint's logical parameters and names its scheme")
    func inspectPackedInt4() throws {
        let (scratch, output) = try Self.quantized("int4-inspect", ["--to", "int4"])
        defer { try? FileManager.default.removeItem(at: scratch) }
        let result = try CLI.run(["inspect", output, "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let document = try CLI.jsonObject(result.stdout)
        // The original's 2,098,432 weights, not the 734,492 stored elements (packed words, scales, shapes).
        #expect((document["parameterCount"] as? NSNumber)?.intValue == 2_098_432)
        #expect((document["storedElementCount"] as? NSNumber)?.intValue == 734_492)
        let quantization = try #require(document["quantization"] as? [String: Any])
        #expect(quantization["schemeName"] as? String == "int4")
        #expect((quantization["groupSize"] as? NSNumber)?.intValue == 128)
        let text = try CLI.run(["inspect", output])
        #expect(text.stdout.contains("parameters: 2.10M (2098432)"))
        #expect(text.stdout.contains("quantization: int4 (compressed-tensors pack-quantized"))
    }

    @Test("an asymmetric group-64 int4 checkpoint is named int4-g64-asym; a q4_k GGUF q4_k")
    func schemeNames() throws {
        let (scratch, output) = try Self.quantized("int4-g64-asym", ["--to", "int4", "--group-size", "64", "--asymmetric"])
        defer { try? FileManager.default.removeItem(at: scratch) }
        let document = try CLI.jsonObject(try CLI.run(["inspect", output, "--json"]).stdout)
        #expect((document["quantization"] as? [String: Any])?["schemeName"] as? String == "int4-g64-asym")
        let gguf = scratch.appendingPathComponent("q4_k.gguf").path
        #expect(try CLI.run(["--to", "q4_k", "fixtures/tiny-llama.gguf", "-o", gguf, "--no-check", "--quiet"]).status == 0)
        let ggufDocument = try CLI.jsonObject(try CLI.run(["inspect", gguf, "--json"]).stdout)
        #expect((ggufDocument["quantization"] as? [String: Any])?["schemeName"] as? String == "q4_k")
        #expect((ggufDocument["parameterCount"] as? NSNumber)?.intValue == 2_098_432)
    }

    @Test("an unquantized checkpoint has no quantization member and the same count as before")
    func unquantizedUnchanged() throws {
        let document = try CLI.jsonObject(try CLI.run(["inspect", "fixtures/tiny-llama", "--json"]).stdout)
        #expect(document["quantization"] == nil)
        #expect(document["storedElementCount"] == nil)
        #expect((document["parameterCount"] as? NSNumber)?.intValue == 2_098_432)
    }

    @Test("fit plans a quantized checkpoint as what it stores, with its real bytes")
    func fitUsesStoredBytes() throws {
        let (scratch, output) = try Self.quantized("int4-fit", ["--to", "int4"])
        defer { try? FileManager.default.removeItem(at: scratch) }
        let inspect = try CLI.jsonObject(try CLI.run(["inspect", output, "--json"]).stdout)
        let tensorBytes = try #require((inspect["tensorBytes"] as? NSNumber)?.intValue)
        let result = try CLI.run(["fit", output, "--gpu", "l4", "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let document = try CLI.jsonObject(result.stdout)
        #expect(document["variant"] as? String == "int4")
        let memory = try #require(document["memory"] as? [String: Any])
        #expect((memory["weightsModel"] as? NSNumber)?.intValue == tensorBytes, "every stored byte, scales and kept tensors included")
        let model = try #require(document["model"] as? [String: Any])
        #expect((model["parameterCount"] as? NSNumber)?.intValue == 2_098_432)
    }

    @Test("verify with the arguments swapped says the original is quantized and exits 2")
    func verifySwapped() throws {
        let (scratch, output) = try Self.quantized("int4-verify", ["--to", "int4"])
        defer { try? FileManager.default.removeItem(at: scratch) }
        let result = try CLI.run(["verify", output, "fixtures/tiny-llama"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("is itself quantized"))
        #expect(result.stderr.contains("swapped"))
        #expect(result.stdout.isEmpty)
    }

    @Test("the HTML report names every checkpoint and keeps int4 and int4 --asymmetric apart")
    func htmlVariants() throws {
        let (scratch, symmetric) = try Self.quantized("int4-sym", ["--to", "int4"])
        defer { try? FileManager.default.removeItem(at: scratch) }
        let asymmetric = scratch.appendingPathComponent("int4-asym").path
        #expect(try CLI.run(["--to", "int4", "--asymmetric", "fixtures/tiny-llama", "-o", asymmetric, "--no-check", "--quiet"]).status == 0)
        let page = scratch.appendingPathComponent("report.html").path
        _ = try CLI.run(["verify", "fixtures/tiny-llama", symmetric, asymmetric, "--report", page, "--quiet"])
        let html = try String(contentsOfFile: page, encoding: .utf8)
        #expect(html.contains("original <b>fixtures/tiny-llama</b>"))
        #expect(html.contains(symmetric) && html.contains(asymmetric))
        #expect(html.contains(">int4 (int4-sym)</text>"), "a chart titled for the symmetric variant")
        #expect(html.contains(">int4 (int4-asym)</text>"), "a chart titled for the asymmetric variant")
    }

    @Test("every command's --json is spaced the same way ('\"key\": value')")
    func oneJSONSpacing() throws {
        let runs = [
            try CLI.run(["inspect", "fixtures/tiny-llama", "--json"]),
            try CLI.run(["fit", "llama-3.1-8b", "--gpu", "l4", "--json"]),
            try CLI.run(["verify", "fixtures/tiny-llama", "fixtures/tiny-llama", "--json", "--quiet"]),
            try CLI.run(["--to", "fp8", "fixtures/tiny-llama", "--dry-run", "--json"]),
        ]
        for run in runs {
            #expect(run.status == 0, "stderr: \(run.stderr)")
            #expect(run.stdout.contains("\": "), "two-space indented members")
            #expect(!run.stdout.contains("\" : "), "no Foundation-style ' : ' spacing")
            #expect(!run.stdout.contains("\\/"), "slashes are not escaped")
        }
    }
}
