import Foundation
import Testing
import TestSupport

@Suite("quantize command line, end to end")
struct QuantizeCLITests {
    @Test("--help lists the subcommands and exits 0")
    func help() throws {
        let result = try CLI.run(["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("SUBCOMMANDS"))
        for subcommand in ["run", "inspect", "fit"] {
            #expect(result.stdout.contains("\n  \(subcommand) "), "--help lists \(subcommand)")
        }
    }

    @Test("inspect --json prints one JSON document with format, parameter count and tensors", arguments: ["tiny-llama", "tiny-llama.gguf"])
    func inspectJSON(_ fixture: String) throws {
        let result = try CLI.run(["inspect", "fixtures/" + fixture, "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let document = try CLI.jsonObject(result.stdout)
        #expect(document["format"] as? String == (fixture.hasSuffix(".gguf") ? "gguf" : "safetensors"))
        #expect((document["parameterCount"] as? NSNumber)?.intValue == 2_098_432)
        let tensors = try #require(document["tensors"] as? [[String: Any]])
        #expect(tensors.count == 21)
        for tensor in tensors {
            #expect(tensor["name"] is String)
            #expect(tensor["dtype"] is String)
            #expect((tensor["shape"] as? [NSNumber])?.isEmpty == false, "shape of \(tensor["name"] ?? "?")")
        }
        let head = tensors.first { ($0["name"] as? String) == (fixture.hasSuffix(".gguf") ? "output.weight" : "lm_head.weight") }
        #expect((head?["shape"] as? [NSNumber])?.map(\.intValue) == [1024, 256])
        #expect(head?["dtype"] as? String == (fixture.hasSuffix(".gguf") ? "F16" : "BF16"))
    }

    @Test("inspect of a malformed file exits 2 with one error line on stderr and nothing on stdout",
          arguments: ["fixtures/malformed/safetensors/offsets_overlap.safetensors", "fixtures/malformed/safetensors/truncated_in_header.safetensors",
                      "fixtures/malformed/gguf/truncated_data.gguf", "fixtures/malformed/gguf/wrong_magic.gguf"])
    func inspectMalformed(_ path: String) throws {
        let result = try CLI.run(["inspect", path, "--json"])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderrLines.count == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.hasPrefix("error: "))
    }

    @Test("--to fp8 --json prints exactly one JSON summary on stdout and writes the output")
    func quantizeJSON() throws {
        let (scratch, model) = try CLI.tinyLlamaCopy("cli-json")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out").path
        let result = try CLI.run(["--to", "fp8", model, "-o", output, "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let summary = try CLI.jsonObject(result.stdout)
        #expect(summary["scheme"] as? String == "fp8")
        #expect(summary["output"] as? String == output)
        #expect(summary["outputKind"] as? String == "safetensors-directory")
        #expect((summary["quantizedTensors"] as? NSNumber)?.intValue == 14)
        #expect((summary["keptTensors"] as? NSNumber)?.intValue == 7)
        #expect(((summary["accuracy"] as? [String: Any])?["passed"] as? Bool) == true)
        // The check's share of the run: its seconds over the run's, so within (0, 1].
        let seconds = try #require((summary["seconds"] as? NSNumber)?.doubleValue)
        let checkSeconds = try #require((summary["checkSeconds"] as? NSNumber)?.doubleValue)
        let share = try #require((summary["checkShare"] as? NSNumber)?.doubleValue)
        #expect(share > 0 && share <= 1 && abs(share - checkSeconds / seconds) <= 1e-6 * share, "checkShare \(share), check \(checkSeconds) s of \(seconds) s")
        #expect(FileManager.default.fileExists(atPath: output + "/config.json"))
        #expect(try CLI.listing(scratch) == ["out", "tiny-llama"])
    }

    @Test("--quiet writes the GGUF output and prints nothing")
    func quietGGUF() throws {
        let scratch = try Fixtures.temporaryDirectory("cli-quiet")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let input = scratch.appendingPathComponent("m.gguf").path
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-llama.gguf"), toPath: input)
        let result = try CLI.run(["--to", "q4_k", input, "--quiet"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.isEmpty)
        #expect(try CLI.listing(scratch) == ["m-q4_k.gguf", "m-q4_k.gguf.quantize-manifest.json", "m-q4_k.gguf.quantize-report.json", "m.gguf"])
    }

    @Test("--dry-run prints the plan and writes nothing")
    func dryRun() throws {
        let (scratch, model) = try CLI.tinyLlamaCopy("cli-dry")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let result = try CLI.run(["--to", "int4", model, "--dry-run"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("model.layers.0.mlp.down_proj.weight"))
        #expect(result.stdout.contains("output head (lm_head)"))
        #expect(result.stdout.contains("nothing written"))
        #expect(try CLI.listing(scratch) == ["tiny-llama"])
    }

    @Test("a GGUF type from a Hugging Face directory exits 2 with the conversion message and writes nothing")
    func conversionRefused() throws {
        let (scratch, model) = try CLI.tinyLlamaCopy("cli-conv")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let result = try CLI.run(["--to", "q8_0", model])
        #expect(result.status == 2)
        #expect(result.stderrLines.count == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("is a Hugging Face safetensors checkpoint"))
        #expect(result.stderr.contains("convert_hf_to_gguf.py"))
        #expect(try CLI.listing(scratch) == ["tiny-llama"])
    }

    @Test("a failed accuracy check exits 1 but writes the output")
    func accuracyFailureWrites() throws {
        let (scratch, model) = try CLI.tinyLlamaCopy("cli-acc")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out").path
        let result = try CLI.run(["--to", "fp8", model, "-o", output, "--max-error", "1e-9"])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("accuracy check FAILED"))
        #expect(FileManager.default.fileExists(atPath: output + "/model-00001-of-00002.safetensors"))
        #expect(FileManager.default.fileExists(atPath: output + "/quantize-report.json"))

        // --json: the summary still comes out on stdout, with the failure, and the exit status is 1.
        let json = try CLI.run(["--to", "fp8", model, "-o", output, "--force", "--max-error", "1e-9", "--json"])
        #expect(json.status == 1)
        let summary = try CLI.jsonObject(json.stdout)
        #expect(((summary["accuracy"] as? [String: Any])?["passed"] as? Bool) == false)
    }

    @Test("--strict with an impossible limit exits 1 (a failed check, DESIGN.md) and writes nothing")
    func strictWritesNothing() throws {
        let (scratch, model) = try CLI.tinyLlamaCopy("cli-strict")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let result = try CLI.run(["--to", "fp8", model, "-o", scratch.appendingPathComponent("out").path, "--strict", "--max-error", "1e-9"])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("with --strict nothing was written"))
        #expect(try CLI.listing(scratch) == ["tiny-llama"])
    }

    @Test("an existing output exits 2 without --force and is replaced with it")
    func forceReplaces() throws {
        let (scratch, model) = try CLI.tinyLlamaCopy("cli-force")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: false)
        let refused = try CLI.run(["--to", "int8", model, "-o", output, "--quiet"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--force"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: output).isEmpty)
        let forced = try CLI.run(["--to", "int8", model, "-o", output, "--quiet", "--force"])
        #expect(forced.status == 0, "stderr: \(forced.stderr)")
        #expect(FileManager.default.fileExists(atPath: output + "/model.safetensors.index.json"))
    }

    @Test("usage errors exit 2: unknown option, --skip matching nothing, bad option values",
          arguments: [(["--to", "fp8", "fixtures/tiny-llama", "--bogus"], "Unknown option"),
                      (["--to", "fp8", "fixtures/tiny-llama", "--skip", "nomatch*", "--dry-run"], "--skip 'nomatch*' matched no tensor"),
                      (["--to", "fp9", "fixtures/tiny-llama", "--dry-run"], "fp9"),
                      (["--to", "fp8", "fixtures/tiny-llama", "--asymmetric", "--dry-run"], "--asymmetric applies to int4 only"),
                      (["--to", "fp8", "fixtures/tiny-llama", "--no-check", "--strict", "--dry-run"], "--no-check cannot be combined"),
                      (["--to", "int4", "fixtures/tiny-llama", "--group-size", "48", "--dry-run"], "int4 groups are 32, 64 or 128"),
                      (["--to", "q4_0", "fixtures/tiny-llama.gguf", "--granularity", "tensor", "--dry-run"], "--granularity does not apply to GGUF types"),
                      (["--to", "fp8", "fixtures/no-such-model", "--dry-run"], "no such file or directory"),
                      ([], "Missing expected argument '--to <to>'"),
                      (["inspect"], "Missing expected argument '<path>'")])
    func usageErrors(arguments: [String], message: String) throws {
        let result = try CLI.run(arguments)
        #expect(result.status == 2, "\(arguments): stderr \(result.stderr)")
        #expect(result.stderr.contains(message), "\(arguments): stderr \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test("--report writes a self-contained HTML accuracy report")
    func htmlReport() throws {
        let (scratch, model) = try CLI.tinyLlamaCopy("cli-html")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let report = scratch.appendingPathComponent("report.html").path
        let result = try CLI.run(["--to", "int8", model, "-o", scratch.appendingPathComponent("out").path, "--report", report, "--quiet"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let html = try String(contentsOfFile: report, encoding: .utf8)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("model.layers.1.mlp.down_proj.weight"))
        #expect(!html.contains("<script src=") && !html.contains("<link "), "self-contained: no external resources")
    }

    @Test("--granularity group is never silently ignored: without --group-size it is refused or uses groups")
    func groupWithoutSize() throws {
        let (scratch, model) = try CLI.tinyLlamaCopy("cli-group")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out").path
        let result = try CLI.run(["--to", "int8", "--granularity", "group", model, "-o", output, "--quiet", "--no-check"])
        if result.status == 2 { return }  // refused: fine
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let inspect = try CLI.jsonObject(try CLI.run(["inspect", output, "--json"]).stdout)
        let tensors = inspect["tensors"] as? [[String: Any]] ?? []
        let scale = tensors.first { $0["name"] as? String == "model.layers.0.self_attn.q_proj.weight_scale" }
        let shape = (scale?["shape"] as? [NSNumber])?.map(\.intValue)
        #expect(shape != [256, 1], "--granularity group wrote per-channel scales \(shape ?? [])")
    }

    @Test("--only and --skip apply in command-line order, first match wins, in both option spellings",
          arguments: [(["--skip", "model.layers.0.mlp.*", "--only", "model.layers.0.*"], false),
                      (["--only=model.layers.0.*", "--skip=model.layers.0.mlp.*"], true)])
    func patternOrder(patterns: [String], mlpQuantized: Bool) throws {
        let result = try CLI.run(["--to", "fp8", "fixtures/tiny-llama", "--dry-run"] + patterns)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        func action(_ name: String) -> String? {
            lines.first { $0.hasPrefix(name + " ") }?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.map(String.init)
        }
        #expect(action("model.layers.0.mlp.up_proj.weight") == (mlpQuantized ? "quantize" : "keep"))
        #expect(action("model.layers.0.self_attn.q_proj.weight") == "quantize")
        #expect(action("model.layers.1.self_attn.q_proj.weight") == "keep", "not matched by any --only")
    }

    @Test("--dry-run --json prints one JSON document on stdout, as every --json does (DESIGN.md)")
    func dryRunJSON() throws {
        let result = try CLI.run(["--to", "fp8", "fixtures/tiny-llama", "--dry-run", "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect((try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) is [String: Any],
                "stdout is not one JSON document: \(result.stdout.prefix(120))")
    }
}
