import Foundation
import Testing
import TestSupport
@testable import Formats
@testable import Quantize

/// Small special inputs made in the test's scratch directory with our writers.
enum SpecialInputs {
    /// A seeded pseudo-random weight in about [-0.05, 0.05] (xorshift; no Foundation randomness).
    static func weights(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Float(Int64(state % 2001) - 1000) / 20000
        }
    }

    /// Writes an F32 safetensors file with these tensors, in this order.
    static func writeSafetensors(_ path: String, _ tensors: [(name: String, shape: [Int], values: [Float])]) throws {
        let writer = try SafetensorsWriter(path: path, tensors: tensors.map { SafetensorsEntry(name: $0.name, dtype: .f32, shape: $0.shape) },
                                           order: .given)
        for tensor in tensors {
            try tensor.values.withUnsafeBytes { try writer.write($0, for: tensor.name) }
        }
        try writer.finish()
    }

    /// A one-file model directory (config.json + model.safetensors) whose up_proj holds NaN at
    /// [3, 17]; a finite down_proj comes first so the run has written something when it fails.
    static func nanModel(in scratch: URL) throws -> String {
        let directory = scratch.appendingPathComponent("nan-model").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        var up = weights(8 * 64, seed: 7)
        up[3 * 64 + 17] = .nan
        try writeSafetensors(directory + "/model.safetensors", [
            ("model.layers.0.mlp.down_proj.weight", [64, 8], weights(64 * 8, seed: 3)),
            ("model.layers.0.mlp.up_proj.weight", [8, 64], up),
            ("model.norm.weight", [64], [Float](repeating: 1, count: 64)),
        ])
        try Data(#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}"#.utf8)
            .write(to: URL(fileURLWithPath: directory + "/config.json"))
        return directory
    }
}

@Suite("quantize job errors and file safety")
struct QuantizeJobErrorTests {
    @Test("a GGUF type from a Hugging Face checkpoint is refused as an unsupported conversion")
    func hfToGGUF() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("err-conv")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let error = #expect(throws: QuantizeJobError.self) {
            try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .q8_0), output: scratch.path + "/out.gguf"))
        }
        #expect(error?.code == .unsupportedConversion)
        #expect(error?.message.contains("convert_hf_to_gguf.py") == true)
        #expect(try JobFixtures.listing(scratch) == ["tiny-llama"])
    }

    @Test("fp8 from a GGUF file is refused as an unsupported conversion")
    func ggufToFP8() throws {
        let (scratch, model) = try JobFixtures.tinyGGUFCopy("err-conv-gguf")
        defer { try? FileManager.default.removeItem(at: scratch) }
        for scheme in [Scheme(name: .fp8), Scheme(name: .int4)] {
            let error = #expect(throws: QuantizeJobError.self) {
                try QuantizeJob(input: model, settings: .init(scheme: scheme, output: scratch.path + "/out"))
            }
            #expect(error?.code == .unsupportedConversion, "\(scheme.name)")
        }
    }

    @Test("an existing output is refused without overwrite, for directories and GGUF files")
    func outputExists() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("err-exists")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: false)
        let error = #expect(throws: QuantizeJobError.self) {
            try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8), output: output))
        }
        #expect(error?.code == .outputExists)

        let (ggufScratch, gguf) = try JobFixtures.tinyGGUFCopy("err-exists-gguf")
        defer { try? FileManager.default.removeItem(at: ggufScratch) }
        let ggufOutput = ggufScratch.appendingPathComponent("out.gguf").path
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: ggufOutput))
        let ggufError = #expect(throws: QuantizeJobError.self) {
            try QuantizeJob(input: gguf, settings: .init(scheme: Scheme(name: .q8_0), output: ggufOutput))
        }
        #expect(ggufError?.code == .outputExists)
        #expect(try Data(contentsOf: URL(fileURLWithPath: ggufOutput)) == Data([1, 2, 3]), "the existing output is untouched")
    }

    @Test("the input itself, one of its shards, or the GGUF input is refused as output, even with overwrite")
    func outputIsInput() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("err-self")
        defer { try? FileManager.default.removeItem(at: scratch) }
        for output in [model, model + "/", model + "/model-00002-of-00002.safetensors", scratch.path + "/./tiny-llama"] {
            let error = #expect(throws: QuantizeJobError.self) {
                try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8), output: output, overwrite: true))
            }
            #expect(error?.code == .outputIsInput, "output \(output)")
        }
        let (ggufScratch, gguf) = try JobFixtures.tinyGGUFCopy("err-self-gguf")
        defer { try? FileManager.default.removeItem(at: ggufScratch) }
        let error = #expect(throws: QuantizeJobError.self) {
            try QuantizeJob(input: gguf, settings: .init(scheme: Scheme(name: .q8_0), output: gguf, overwrite: true))
        }
        #expect(error?.code == .outputIsInput)
    }

    @Test("an output that contains the input, or is a file of the input directory, is refused even with overwrite",
          arguments: ["", "/tiny-llama/config.json", "/tiny-llama/model.safetensors.index.json", "/tiny-llama/tokenizer.json"])
    func outputContainingInput(suffix: String) throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("err-contains")
        defer { try? FileManager.default.removeItem(at: scratch) }
        // Only the plan is made here: running such a job replaces (and so deletes) part of the input.
        let output = scratch.path + suffix
        let error = #expect(throws: QuantizeJobError.self, "output \(output) would replace the input or part of it") {
            try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8), output: output, overwrite: true))
        }
        if let error { #expect(error.code == .outputIsInput) }
    }

    @Test("a GGUF output that is the directory holding the input is refused even with overwrite")
    func ggufOutputContainingInput() throws {
        let (scratch, gguf) = try JobFixtures.tinyGGUFCopy("err-contains-gguf")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let error = #expect(throws: QuantizeJobError.self) {
            try QuantizeJob(input: gguf, settings: .init(scheme: Scheme(name: .q8_0), output: scratch.path, overwrite: true))
        }
        if let error { #expect(error.code == .outputIsInput) }
    }

    @Test("a --skip glob that matches no tensor is an error naming the pattern")
    func patternMatchedNothing() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("err-glob")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let selection = TensorSelection(patterns: [.init(quantize: false, glob: "lm_head*"), .init(quantize: false, glob: "nomatch*")])
        let error = #expect(throws: QuantizeJobError.self) {
            try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8), selection: selection, output: scratch.path + "/out"))
        }
        #expect(error?.code == .patternMatchedNothing)
        #expect(error?.message.contains("--skip 'nomatch*'") == true)
        #expect(error?.message.contains("lm_head*") == false, "only the pattern that matched nothing is named")
    }

    @Test("--skip and --only patterns change the plan, first match wins")
    func patternsChangePlan() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("plan-glob")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let selection = TensorSelection(patterns: [.init(quantize: false, glob: "model.layers.1.*"), .init(quantize: true, glob: "*_proj.weight")])
        let job = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8), selection: selection, output: scratch.path + "/out"))
        let quantized = Set(job.tensors.filter(\.decision.quantize).map(\.source.name))
        #expect(quantized == JobFixtures.hfLinearNames.filter { $0.hasPrefix("model.layers.0.") })
        let layer1 = job.tensors.first { $0.source.name == "model.layers.1.mlp.up_proj.weight" }
        #expect(layer1?.decision == TensorSelection.Decision(quantize: false, rule: "--skip 'model.layers.1.*'"))
        let head = job.tensors.first { $0.source.name == "lm_head.weight" }
        #expect(head?.decision == TensorSelection.Decision(quantize: false, rule: "not matched by any --only"))
        // Linear weights kept by --skip are listed in `ignore`, as vLLM needs to load them unquantized.
        _ = try job.run()
        let config = try JSONValue.parse(contentsOf: scratch.path + "/out/config.json")
        let ignore = (config["quantization_config"]?["ignore"]?.array ?? []).compactMap(\.string)
        #expect(ignore == ["lm_head"] + JobFixtures.hfLinearNames.filter { $0.hasPrefix("model.layers.1.") }
            .map { String($0.dropLast(".weight".count)) }.sorted())
    }

    @Test("a plan that quantizes nothing is refused")
    func nothingToQuantize() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("err-nothing")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let error = #expect(throws: QuantizeJobError.self) {
            try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8), selection: TensorSelection(patterns: [.init(quantize: false, glob: "*")]),
                                                         output: scratch.path + "/out"))
        }
        #expect(error?.code == .nothingToQuantize)
        let onlyNorm = #expect(throws: QuantizeJobError.self) {
            try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .int8), selection: TensorSelection(patterns: [.init(quantize: true, glob: "model.norm.weight")]),
                                                         output: scratch.path + "/out"))
        }
        #expect(onlyNorm?.code == .nothingToQuantize, "--only on a 1-D tensor quantizes nothing")
    }

    @Test("a NaN weight fails naming tensor, row and column, and leaves nothing behind", arguments: [true, false])
    func nonFiniteLeavesNothing(directoryInput: Bool) throws {
        let scratch = try Fixtures.temporaryDirectory("err-nan")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let directory = try SpecialInputs.nanModel(in: scratch)
        let input = directoryInput ? directory : directory + "/model.safetensors"
        let output = scratch.appendingPathComponent(directoryInput ? "out" : "out.safetensors").path
        let before = try JobFixtures.snapshot(directory)
        let job = try QuantizeJob(input: input, settings: .init(scheme: Scheme(name: .fp8), output: output))
        let error = #expect(throws: QuantizeError.self) { try job.run() }
        if case let .nonFiniteWeight(tensor, row, column, value)? = error {
            #expect(tensor == "model.layers.0.mlp.up_proj.weight")
            #expect(row == 3 && column == 17)
            #expect(value.isNaN)
        } else {
            Issue.record("expected nonFiniteWeight, got \(String(describing: error))")
        }
        #expect(try JobFixtures.listing(scratch) == ["nan-model"], "no output and no hidden staging directory beside it")
        #expect(try JobFixtures.snapshot(directory) == before, "the input is unchanged")

        // With allowNonFinite the NaN becomes 0 and the run succeeds.
        let allowed = try QuantizeJob(input: input, settings: .init(scheme: Scheme(name: .fp8), options: QuantizeOptions(allowNonFinite: true),
                                                                   output: output))
        let summary = try allowed.run()
        #expect(summary.quantizedCount == 2)
        let written = try SafetensorsCheckpoint(path: output)
        let weight = try #require(written.tensor(named: "model.layers.0.mlp.up_proj.weight"))
        #expect(weight.type == .dtype(.f8E4M3))
        #expect(written.data(for: weight)[3 * 64 + 17] == 0, "NaN is stored as +0")
        let scales = try #require(written.tensor(named: "model.layers.0.mlp.up_proj.weight_scale"))
        let scaleValues = written.data(for: scales).withMemoryRebound(to: Float.self) { Array($0) }
        #expect(scaleValues.count == 8 && scaleValues.allSatisfy { $0.isFinite && $0 > 0 })
        if directoryInput {
            #expect(try JobFixtures.listing(scratch) == ["nan-model", "out"])
        } else {
            #expect(try JobFixtures.listing(scratch) == ["nan-model", "out.safetensors", "out.safetensors.quantize-manifest.json", "out.safetensors.quantize-report.json"])
        }
    }

    @Test("a failed run with overwrite leaves the existing output as it was")
    func failedOverwriteKeepsOld() throws {
        let scratch = try Fixtures.temporaryDirectory("err-nan-overwrite")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let directory = try SpecialInputs.nanModel(in: scratch)
        let output = scratch.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: false)
        // An earlier output of ours (a shard of a different layout): replaceable with --force.
        try Data("previous".utf8).write(to: URL(fileURLWithPath: output + "/model-00001-of-00009.safetensors"))
        let job = try QuantizeJob(input: directory, settings: .init(scheme: Scheme(name: .int8), output: output, overwrite: true))
        #expect(throws: QuantizeError.self) { try job.run() }
        #expect(try FileManager.default.contentsOfDirectory(atPath: output) == ["model-00001-of-00009.safetensors"])
        #expect(try JobFixtures.listing(scratch) == ["nan-model", "out"])
    }

    @Test("a NaN weight in a GGUF input fails and leaves nothing behind")
    func ggufNonFinite() throws {
        let scratch = try Fixtures.temporaryDirectory("err-nan-gguf")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let input = try QuantizeJobShapeTests.smallGGUF(in: scratch, nanAt: 5 * 64 + 9)
        let job = try QuantizeJob(input: input, settings: .init(scheme: Scheme(name: .q8_0), output: scratch.path + "/out.gguf"))
        let error = #expect(throws: QuantizeError.self) { try job.run() }
        if case let .nonFiniteWeight(tensor, row, column, _)? = error {
            #expect(tensor == "blk.0.ffn_up.weight" && row == 5 && column == 9)
        } else {
            Issue.record("expected nonFiniteWeight, got \(String(describing: error))")
        }
        #expect(try JobFixtures.listing(scratch) == ["small.gguf"])
    }

    @Test("an index.json input writes a model directory beside the model")
    func indexInput() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("index-input")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let job = try QuantizeJob(input: model + "/model.safetensors.index.json", settings: .init(scheme: Scheme(name: .fp8), check: nil))
        #expect(job.outputKind == .safetensorsDirectory)
        #expect(URL(fileURLWithPath: job.outputPath).lastPathComponent == "tiny-llama-fp8")
        _ = try job.run()
        #expect(try JobFixtures.listing(scratch) == ["tiny-llama", "tiny-llama-fp8"])
        #expect(try SafetensorsCheckpoint(path: scratch.path + "/tiny-llama-fp8").tensors.count == 21 + 14)
    }

    @Test("--strict with an impossible limit fails with accuracyCheckFailed and writes nothing")
    func strictWritesNothing() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("err-strict")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let check = QuantizeJob.CheckSettings(maxError: 1e-9, strict: true)
        let job = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8), output: scratch.path + "/out", check: check))
        let error = #expect(throws: QuantizeJobError.self) { try job.run() }
        #expect(error?.code == .accuracyCheckFailed)
        #expect(try JobFixtures.listing(scratch) == ["tiny-llama"])

        let (ggufScratch, gguf) = try JobFixtures.tinyGGUFCopy("err-strict-gguf")
        defer { try? FileManager.default.removeItem(at: ggufScratch) }
        let ggufJob = try QuantizeJob(input: gguf, settings: .init(scheme: Scheme(name: .q4_0), output: ggufScratch.path + "/out.gguf", check: check))
        let ggufError = #expect(throws: QuantizeJobError.self) { try ggufJob.run() }
        #expect(ggufError?.code == .accuracyCheckFailed)
        #expect(try JobFixtures.listing(ggufScratch) == ["tiny-llama.gguf"])
    }

    @Test("without --strict a failed accuracy check still writes the output and reports the failure")
    func failedCheckWrites() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("check-fail")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let job = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8), output: scratch.path + "/out",
                                                               check: QuantizeJob.CheckSettings(maxError: 1e-9)))
        let summary = try job.run()
        let report = try #require(summary.report)
        #expect(!report.passed)
        #expect(report.failedCount == 14)
        #expect(FileManager.default.fileExists(atPath: scratch.path + "/out/quantize-report.json"))
        _ = try SafetensorsCheckpoint(path: scratch.path + "/out")
    }

    @Test("the default check passes fp8 and int8 on tiny-llama")
    func defaultCheckPasses() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("check-pass")
        defer { try? FileManager.default.removeItem(at: scratch) }
        for scheme in [Scheme(name: .fp8), Scheme(name: .int8)] {
            let summary = try QuantizeJob(input: model, settings: .init(scheme: scheme, output: scratch.path + "/out-\(scheme.name.rawValue)")).run()
            #expect(summary.report?.passed == true, "\(scheme.name): failed \(summary.report?.failedCount ?? -1), worst \(summary.report?.worstTensor ?? "?")")
        }
    }

    @Test("overwrite replaces an existing output directory or file completely")
    func overwriteReplaces() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("overwrite")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: false)
        // A stale shard of an earlier output of ours (files that are not ours make --force refuse:
        // ReliabilityCLITests.forceSparesForeignFiles).
        try Data("stale".utf8).write(to: URL(fileURLWithPath: output + "/model-00003-of-00003.safetensors"))
        _ = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .int8), output: output, overwrite: true, check: nil)).run()
        let names = try FileManager.default.contentsOfDirectory(atPath: output)
        #expect(!names.contains("model-00003-of-00003.safetensors"), "the old directory is replaced, not merged")
        #expect(names.contains("config.json"))
        #expect(try SafetensorsCheckpoint(path: output).tensors.contains { $0.name.hasSuffix("q_proj.weight_scale") })
        #expect(try JobFixtures.listing(scratch) == ["out", "tiny-llama"], "no displaced or staging directory left")

        let (ggufScratch, gguf) = try JobFixtures.tinyGGUFCopy("overwrite-gguf")
        defer { try? FileManager.default.removeItem(at: ggufScratch) }
        let ggufOutput = ggufScratch.appendingPathComponent("out.gguf").path
        try Data([9, 9, 9]).write(to: URL(fileURLWithPath: ggufOutput))
        _ = try QuantizeJob(input: gguf, settings: .init(scheme: Scheme(name: .q8_0), output: ggufOutput, overwrite: true, check: nil)).run()
        #expect(try GGUFFile(path: ggufOutput).tensors.count == 21)
        #expect(try JobFixtures.listing(ggufScratch) == ["out.gguf", "out.gguf.quantize-manifest.json", "tiny-llama.gguf"])
    }

    @Test("replacing a GGUF output without the check leaves no stale accuracy report of the old output beside it")
    func noStaleReport() throws {
        let (scratch, gguf) = try JobFixtures.tinyGGUFCopy("stale-report")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out.gguf").path
        _ = try QuantizeJob(input: gguf, settings: .init(scheme: Scheme(name: .q8_0), output: output)).run()
        #expect(FileManager.default.fileExists(atPath: output + ".quantize-report.json"))
        _ = try QuantizeJob(input: gguf, settings: .init(scheme: Scheme(name: .q4_0), output: output, overwrite: true, check: nil)).run()
        if let report = try? String(contentsOfFile: output + ".quantize-report.json", encoding: .utf8) {
            #expect(!report.contains("\"q8_0\""), "out.gguf.quantize-report.json still describes the replaced q8_0 output")
        }
    }

    @Test("quantizing never changes the input files")
    func inputUnchanged() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("input-same")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let before = try JobFixtures.snapshot(model)
        #expect(before.count == 8, "two shards, the index, config, generation config and three tokenizer files")
        for (index, scheme) in [Scheme(name: .fp8), Scheme(name: .int4, symmetric: false)].enumerated() {
            _ = try QuantizeJob(input: model, settings: .init(scheme: scheme, output: scratch.path + "/out\(index)")).run()
        }
        #expect(try JobFixtures.snapshot(model) == before)

        let (ggufScratch, gguf) = try JobFixtures.tinyGGUFCopy("input-same-gguf")
        defer { try? FileManager.default.removeItem(at: ggufScratch) }
        let ggufBefore = try JobFixtures.snapshot(gguf)
        _ = try QuantizeJob(input: gguf, settings: .init(scheme: Scheme(name: .q4_K), output: ggufScratch.path + "/out.gguf")).run()
        #expect(try JobFixtures.snapshot(gguf) == ggufBefore)
    }
}

@Suite("quantize job on odd shapes")
struct QuantizeJobShapeTests {
    /// A single-file checkpoint: an odd [5, 70] linear weight, a 3-D expert stack, a [3, 256] linear weight.
    static func oddModel(in scratch: URL) throws -> String {
        let path = scratch.appendingPathComponent("odd.safetensors").path
        try SpecialInputs.writeSafetensors(path, [
            ("model.layers.0.mlp.up_proj.weight", [5, 70], SpecialInputs.weights(5 * 70, seed: 11)),
            ("model.layers.0.mlp.experts.weight", [2, 4, 64], SpecialInputs.weights(2 * 4 * 64, seed: 12)),
            ("model.layers.0.self_attn.o_proj.weight", [3, 256], SpecialInputs.weights(3 * 256, seed: 13)),
        ])
        return path
    }

    @Test("odd matrices are quantized with partial groups and blocks, 3-D tensors kept; oracle agrees",
          arguments: [("fp8", Scheme(name: .fp8), [String]()),
                      ("fp8 block", Scheme(name: .fp8, granularity: .block(rows: 128, columns: 128)), ["--granularity", "block"]),
                      ("int8", Scheme(name: .int8), []),
                      ("int4", Scheme(name: .int4), []),
                      ("int4 asym", Scheme(name: .int4, symmetric: false), ["--asymmetric"])])
    func oddShapes(label: String, scheme: Scheme, oracleArguments: [String]) throws {
        let scratch = try Fixtures.temporaryDirectory("odd")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let input = try Self.oddModel(in: scratch)
        let output = scratch.appendingPathComponent("out.safetensors").path
        let job = try QuantizeJob(input: input, settings: .init(scheme: scheme, output: output, check: nil))
        #expect(job.outputKind == .safetensorsFile)
        let experts = job.tensors.first { $0.source.name == "model.layers.0.mlp.experts.weight" }
        #expect(experts?.decision == TensorSelection.Decision(quantize: false, rule: "3-D tensor (not a matrix)"), "\(label)")
        #expect(job.tensors.filter(\.decision.quantize).count == 2, "\(label)")
        _ = try job.run()
        #expect(try JobFixtures.listing(scratch) == ["odd.safetensors", "out.safetensors", "out.safetensors.quantize-manifest.json"])
        let document = try JobFixtures.oracle(original: input, output: output, scheme: scheme.name.rawValue, extra: oracleArguments)
        JobFixtures.expectOraclePassed(document, label)
        #expect((document["kept"]?.array ?? []).compactMap(\.string) == ["model.layers.0.mlp.experts.weight"])
    }

    /// A small GGUF: a [8, 64] and a [8, 48] F32 linear weight (48 is not a multiple of 32).
    static func smallGGUF(in scratch: URL, nanAt: Int? = nil) throws -> String {
        let path = scratch.appendingPathComponent("small.gguf").path
        var up = SpecialInputs.weights(8 * 64, seed: 21)
        if let nanAt { up[nanAt] = .nan }
        let tensors = [("blk.0.ffn_up.weight", [8, 64], up),
                       ("blk.0.ffn_down.weight", [8, 48], SpecialInputs.weights(8 * 48, seed: 22))]
        let writer = try GGUFWriter(path: path, metadata: [("general.architecture", .string("llama")), ("general.file_type", .uint32(0))],
                                    tensors: tensors.map { GGUFWriter.Tensor(name: $0.0, type: .f32, shape: $0.1) })
        for tensor in tensors { try tensor.2.withUnsafeBytes { try writer.write($0) } }
        try writer.finish()
        return path
    }

    @Test("GGUF rows that are not a multiple of the block are kept, as llama.cpp does; none left is an error")
    func ggufOddRows() throws {
        let scratch = try Fixtures.temporaryDirectory("odd-gguf")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let input = try Self.smallGGUF(in: scratch)
        let output = scratch.appendingPathComponent("out.gguf").path
        let job = try QuantizeJob(input: input, settings: .init(scheme: Scheme(name: .q4_0), output: output, check: nil))
        let down = job.tensors.first { $0.source.name == "blk.0.ffn_down.weight" }
        #expect(down?.decision == TensorSelection.Decision(quantize: false, rule: "rows of 48 are not a multiple of the 32-element block (kept, as llama.cpp does)"))
        #expect(down?.outputs.map(\.type) == [.ggml(.f32)])
        _ = try job.run()
        let written = try GGUFFile(path: output)
        #expect(written.tensors.map(\.type) == [.q4_0, .f32])
        #expect(written["general.file_type"] == .uint32(2))
        #expect(written["general.quantization_version"] == .uint32(2), "added when the input lacks it")
        let document = try JobFixtures.oracle(original: input, output: output, scheme: "q4_0")
        JobFixtures.expectOraclePassed(document, "small q4_0")

        let error = #expect(throws: QuantizeJobError.self) {
            try QuantizeJob(input: input, settings: .init(scheme: Scheme(name: .q4_K), output: scratch.path + "/k.gguf"))
        }
        #expect(error?.code == .nothingToQuantize, "no row is a multiple of 256")
    }
}
