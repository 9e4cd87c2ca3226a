import Foundation
import Testing
import TestSupport
@testable import Formats
@testable import Quantize

/// One safetensors scheme run on tiny-llama, with what formats/quantize-fp8.md and
/// formats/quantize-int.md say it must write.
struct HFSchemeCase: CustomTestStringConvertible, Sendable {
    let label: String
    let scheme: Scheme
    /// Extra arguments for tools/oracle_check_quantized.py.
    let oracleArguments: [String]
    /// The config.json `quantization_config` expectations.
    let config: ConfigExpectation

    enum ConfigExpectation: Sendable {
        /// compressed-tensors with this format, bits, weight type, strategy, group size, symmetry.
        case compressedTensors(format: String, bits: Int, type: String, strategy: String, groupSize: Int?, symmetric: Bool)
        /// The DeepSeek/vLLM `fp8` block config.
        case fp8Block(fmt: String, block: Int)
    }

    var testDescription: String { label }

    /// The output tensors (name, dtype, shape) one `[rows, columns]` linear weight becomes.
    func outputs(of name: String, rows: Int, columns: Int) -> [(String, DType, [Int])] {
        let stem = String(name.dropLast("weight".count))
        func up(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
        switch (scheme.name, scheme.granularity) {
        case (.fp8, .tensor):
            return [(name, .f8E4M3, [rows, columns]), (stem + "weight_scale", .f32, [1])]
        case (.fp8, .block(let r, let c)):
            return [(name, .f8E4M3, [rows, columns]), (stem + "weight_scale_inv", .f32, [up(rows, r), up(columns, c)])]
        case (.fp8, .group(let g)):
            return [(name, .f8E4M3, [rows, columns]), (stem + "weight_scale", .f32, [rows, up(columns, g)])]
        case (.fp8, _):
            return [(name, .f8E4M3, [rows, columns]), (stem + "weight_scale", .f32, [rows, 1])]
        case (.fp8E5M2, _):
            return [(name, .f8E5M2, [rows, columns]), (stem + "weight_scale", .f32, [rows, 1])]
        case (.int8, .group(let g)):
            return [(name, .i8, [rows, columns]), (stem + "weight_scale", .bf16, [rows, up(columns, g)])]
        case (.int8, _):
            return [(name, .i8, [rows, columns]), (stem + "weight_scale", .bf16, [rows, 1])]
        case (.int4, .group(let g)):
            var parts: [(String, DType, [Int])] = [(stem + "weight_packed", .i32, [rows, up(columns, 8)]),
                                                   (stem + "weight_scale", .bf16, [rows, up(columns, g)])]
            if !scheme.symmetric { parts.append((stem + "weight_zero_point", .i32, [up(rows, 8), up(columns, g)])) }
            parts.append((stem + "weight_shape", .i64, [2]))
            return parts
        default:
            Issue.record("no expectation for \(label)")
            return []
        }
    }

    static let all: [HFSchemeCase] = [
        HFSchemeCase(label: "fp8 per channel", scheme: Scheme(name: .fp8), oracleArguments: [],
                     config: .compressedTensors(format: "float-quantized", bits: 8, type: "float", strategy: "channel", groupSize: nil, symmetric: true)),
        HFSchemeCase(label: "fp8 per tensor", scheme: Scheme(name: .fp8, granularity: .tensor), oracleArguments: ["--granularity", "tensor"],
                     config: .compressedTensors(format: "float-quantized", bits: 8, type: "float", strategy: "tensor", groupSize: nil, symmetric: true)),
        HFSchemeCase(label: "fp8 128x128 blocks", scheme: Scheme(name: .fp8, granularity: .block(rows: 128, columns: 128)),
                     oracleArguments: ["--granularity", "block"], config: .fp8Block(fmt: "e4m3", block: 128)),
        HFSchemeCase(label: "fp8-e5m2 per channel", scheme: Scheme(name: .fp8E5M2), oracleArguments: [],
                     config: .compressedTensors(format: "float-quantized", bits: 8, type: "float", strategy: "channel", groupSize: nil, symmetric: true)),
        HFSchemeCase(label: "int8 per channel", scheme: Scheme(name: .int8), oracleArguments: [],
                     config: .compressedTensors(format: "int-quantized", bits: 8, type: "int", strategy: "channel", groupSize: nil, symmetric: true)),
        HFSchemeCase(label: "fp8 groups of 64", scheme: Scheme(name: .fp8, granularity: .group(size: 64)),
                     oracleArguments: ["--granularity", "group", "--group-size", "64"],
                     config: .compressedTensors(format: "float-quantized", bits: 8, type: "float", strategy: "group", groupSize: 64, symmetric: true)),
        HFSchemeCase(label: "int8 groups of 64", scheme: Scheme(name: .int8, granularity: .group(size: 64)),
                     oracleArguments: ["--granularity", "group", "--group-size", "64"],
                     config: .compressedTensors(format: "int-quantized", bits: 8, type: "int", strategy: "group", groupSize: 64, symmetric: true)),
        HFSchemeCase(label: "int4 groups of 32", scheme: Scheme(name: .int4, granularity: .group(size: 32)), oracleArguments: ["--group-size", "32"],
                     config: .compressedTensors(format: "pack-quantized", bits: 4, type: "int", strategy: "group", groupSize: 32, symmetric: true)),
        HFSchemeCase(label: "int4 groups of 128", scheme: Scheme(name: .int4), oracleArguments: [],
                     config: .compressedTensors(format: "pack-quantized", bits: 4, type: "int", strategy: "group", groupSize: 128, symmetric: true)),
        HFSchemeCase(label: "int4 asymmetric groups of 128", scheme: Scheme(name: .int4, symmetric: false), oracleArguments: ["--asymmetric"],
                     config: .compressedTensors(format: "pack-quantized", bits: 4, type: "int", strategy: "group", groupSize: 128, symmetric: false)),
    ]
}

/// One GGUF type written from tiny-llama.gguf, with the llama.cpp `llama_ftype` it must declare.
struct GGUFSchemeCase: CustomTestStringConvertible, Sendable {
    let scheme: SchemeName
    let type: GGMLType
    let fileType: UInt32
    var testDescription: String { scheme.rawValue }

    static let all: [GGUFSchemeCase] = [
        GGUFSchemeCase(scheme: .q8_0, type: .q8_0, fileType: 7),
        GGUFSchemeCase(scheme: .q4_0, type: .q4_0, fileType: 2),
        GGUFSchemeCase(scheme: .q4_1, type: .q4_1, fileType: 3),
        GGUFSchemeCase(scheme: .q5_0, type: .q5_0, fileType: 8),
        GGUFSchemeCase(scheme: .q5_1, type: .q5_1, fileType: 9),
        GGUFSchemeCase(scheme: .q4_K, type: .q4_K, fileType: 14),
        GGUFSchemeCase(scheme: .q6_K, type: .q6_K, fileType: 18),
        GGUFSchemeCase(scheme: .f16, type: .f16, fileType: 1),
        GGUFSchemeCase(scheme: .bf16, type: .bf16, fileType: 32),
    ]
}

@Suite("quantize job on tiny-llama")
struct QuantizeJobTests {
    /// The rule each kept tiny-llama tensor must be kept by (TensorSelection's words).
    static func expectedKeptRule(_ name: String) -> String? {
        if name.hasSuffix("norm.weight") { return "1-D tensor" }
        if name == "model.embed_tokens.weight" || name == "token_embd.weight" { return "embedding" }
        if name == "lm_head.weight" || name == "output.weight" { return "output head (lm_head)" }
        return nil
    }

    @Test("safetensors schemes: plan, directory layout, index, config.json, side files, read-back", arguments: HFSchemeCase.all)
    func safetensorsScheme(_ testCase: HFSchemeCase) throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("job-hf")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outputPath = scratch.appendingPathComponent("out").path
        let original = try SafetensorsCheckpoint(path: model)

        let job = try QuantizeJob(input: model, settings: .init(scheme: testCase.scheme, output: outputPath))
        #expect(job.outputKind == .safetensorsDirectory)
        #expect(job.outputPath == outputPath)
        // Plan: the 14 linear weights are quantized as linear layers; the rest kept by their rule.
        #expect(job.tensors.map(\.source.name) == original.tensors.map(\.name), "the plan follows the input's order")
        for item in job.tensors {
            let name = item.source.name
            if JobFixtures.hfLinearNames.contains(name) {
                #expect(item.decision == TensorSelection.Decision(quantize: true, rule: "linear layer weight"), "\(name)")
                let expected = testCase.outputs(of: name, rows: item.source.shape[0], columns: item.source.shape[1])
                #expect(item.outputs.map(\.name) == expected.map(\.0), "output names of \(name)")
                #expect(item.outputs.map(\.type) == expected.map { TensorType.dtype($0.1) }, "output types of \(name)")
                #expect(item.outputs.map(\.shape) == expected.map(\.2), "output shapes of \(name)")
            } else {
                #expect(item.decision == TensorSelection.Decision(quantize: false, rule: Self.expectedKeptRule(name) ?? "?"), "\(name)")
                #expect(item.outputs.map(\.name) == [name])
                #expect(item.outputs.first?.type == item.source.type)
            }
        }

        let summary = try job.run()
        #expect(summary.output == outputPath)
        #expect(summary.kind == .safetensorsDirectory)
        #expect(summary.quantizedCount == 14)
        #expect(summary.keptCount == 7)
        #expect(summary.inputBytes == 4_196_864)
        #expect(summary.report?.tensors.count == 14, "one accuracy entry per quantized tensor")
        #expect(summary.reportPath == outputPath + "/quantize-report.json")

        // Nothing but the input and the output in the parent: no staging directory left behind.
        #expect(try JobFixtures.listing(scratch) == ["out", "tiny-llama"])

        // Layout: same shard names, the index, config.json and every side file, plus the report.
        let inputNames = try FileManager.default.contentsOfDirectory(atPath: model).sorted()
        let outputNames = try FileManager.default.contentsOfDirectory(atPath: outputPath).sorted()
        #expect(outputNames == (inputNames + ["quantize-report.json", "quantize-manifest.json"]).sorted())
        for side in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
            let copied = try Data(contentsOf: URL(fileURLWithPath: outputPath + "/" + side))
            let source = try Data(contentsOf: URL(fileURLWithPath: model + "/" + side))
            #expect(copied == source, "\(side) is copied byte for byte")
        }

        // Every output file reads back, holding exactly the planned tensors with the spec's dtypes and shapes.
        let written = try SafetensorsCheckpoint(path: outputPath)
        #expect(written.shards.map { URL(fileURLWithPath: $0.path).lastPathComponent }
                == original.shards.map { URL(fileURLWithPath: $0.path).lastPathComponent })
        #expect(written.shards.map(\.metadata) == original.shards.map(\.metadata), "shard __metadata__ preserved")
        var expectedTensors: [String: (DType, [Int], Int)] = [:]  // name → dtype, shape, shard index
        for tensor in original.tensors {
            let parts = JobFixtures.hfLinearNames.contains(tensor.name)
                ? testCase.outputs(of: tensor.name, rows: tensor.shape[0], columns: tensor.shape[1])
                : [(tensor.name, tensor.type.dtype ?? .bf16, tensor.shape)]
            for part in parts { expectedTensors[part.0] = (part.1, part.2, tensor.fileIndex) }
        }
        #expect(Set(written.tensors.map(\.name)) == Set(expectedTensors.keys))
        for tensor in written.tensors {
            guard let expected = expectedTensors[tensor.name] else { continue }
            #expect(tensor.type == .dtype(expected.0), "dtype of \(tensor.name)")
            #expect(tensor.shape == expected.1, "shape of \(tensor.name)")
            #expect(tensor.fileIndex == expected.2, "\(tensor.name) stays in its input shard")
        }
        #expect(summary.outputBytes == written.totalTensorByteCount)

        // Kept tensors are byte-identical.
        for tensor in original.tensors where !JobFixtures.hfLinearNames.contains(tensor.name) {
            let copy = try #require(written.tensor(named: tensor.name))
            #expect(Data(written.data(for: copy)) == Data(original.data(for: tensor)), "\(tensor.name) copied byte for byte")
        }

        // The index maps every output tensor to its shard, and total_size sums the tensor bytes.
        let index = try JSONValue.parse(contentsOf: outputPath + "/model.safetensors.index.json")
        let weightMap = try #require(index["weight_map"]?.object)
        #expect(Set(weightMap.map(\.key)) == Set(written.tensors.map(\.name)))
        for member in weightMap {
            let record = written.tensor(named: member.key)
            #expect(record.map { URL(fileURLWithPath: written.shards[$0.fileIndex].path).lastPathComponent } == member.value.string,
                    "weight_map entry of \(member.key)")
        }
        #expect(index["metadata"]?["total_size"]?.int == written.totalTensorByteCount)

        // config.json: every original key kept with its value, plus quantization_config.
        let originalConfig = try JSONValue.parse(contentsOf: model + "/config.json")
        let config = try JSONValue.parse(contentsOf: outputPath + "/config.json")
        #expect(config.memberKeys == originalConfig.memberKeys + ["quantization_config"])
        for key in originalConfig.memberKeys {
            #expect(config[key] == originalConfig[key], "config.json key \(key) preserved")
        }
        let quantization = try #require(config["quantization_config"])
        switch testCase.config {
        case let .compressedTensors(format, bits, type, strategy, groupSize, symmetric):
            #expect(quantization["quant_method"]?.string == "compressed-tensors")
            #expect(quantization["format"]?.string == format)
            #expect(quantization["quantization_status"]?.string == "compressed")
            #expect(quantization["ignore"] == .array([.string("lm_head")]))
            let group = quantization["config_groups"]?["group_0"]
            #expect(group?["targets"] == .array([.string("Linear")]))
            #expect(group?["format"]?.string == format)
            let weights = group?["weights"]
            #expect(weights?["num_bits"]?.int == bits)
            #expect(weights?["type"]?.string == type)
            #expect(weights?["strategy"]?.string == strategy)
            #expect(weights?["symmetric"]?.bool == symmetric)
            if let groupSize { #expect(weights?["group_size"]?.int == groupSize) } else { #expect(weights?["group_size"]?.isNull == true) }
        case let .fp8Block(fmt, block):
            #expect(quantization["quant_method"]?.string == "fp8")
            #expect(quantization["fmt"]?.string == fmt)
            #expect(quantization["activation_scheme"]?.string == "dynamic")
            #expect(quantization["weight_block_size"] == .array([.number(JSONNumber(block)), .number(JSONNumber(block))]))
            #expect(quantization["ignored_layers"] == .array([.string("lm_head")]))
        }
    }

    @Test("safetensors outputs agree with numpy/ml_dtypes evaluations of formats/quantize-*.md", arguments: HFSchemeCase.all)
    func safetensorsOracle(_ testCase: HFSchemeCase) throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("job-oracle")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outputPath = scratch.appendingPathComponent("out").path
        let summary = try QuantizeJob(input: model, settings: .init(scheme: testCase.scheme, output: outputPath, check: nil)).run()
        #expect(summary.report == nil && summary.reportPath == nil, "no check, no report")
        #expect(!FileManager.default.fileExists(atPath: outputPath + "/quantize-report.json"))
        let document = try JobFixtures.oracle(original: model, output: outputPath, scheme: testCase.scheme.name.rawValue,
                                              extra: testCase.oracleArguments)
        JobFixtures.expectOraclePassed(document, testCase.label)
        #expect(Set((document["quantized"]?.array ?? []).compactMap(\.string)) == JobFixtures.hfLinearNames)
        #expect((document["kept"]?.array ?? []).count == 7)
    }

    @Test("GGUF types: plan, metadata (file type updated), tensor types, read-back", arguments: GGUFSchemeCase.all)
    func ggufScheme(_ testCase: GGUFSchemeCase) throws {
        let (scratch, model) = try JobFixtures.tinyGGUFCopy("job-gguf")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outputPath = scratch.appendingPathComponent("out.gguf").path
        let original = try GGUFFile(path: model)

        let job = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: testCase.scheme), output: outputPath))
        #expect(job.outputKind == .gguf)
        for item in job.tensors {
            let name = item.source.name
            if JobFixtures.ggufLinearNames.contains(name) {
                #expect(item.decision == TensorSelection.Decision(quantize: true, rule: "linear layer weight"), "\(name)")
                #expect(item.outputs.map(\.type) == [.ggml(testCase.type)], "\(name)")
            } else {
                #expect(item.decision == TensorSelection.Decision(quantize: false, rule: Self.expectedKeptRule(name) ?? "?"), "\(name)")
                #expect(item.outputs.map(\.type) == [item.source.type], "\(name)")
            }
        }
        let summary = try job.run()
        #expect(summary.kind == .gguf)
        #expect(summary.quantizedCount == 14)
        #expect(summary.keptCount == 7)
        #expect(try JobFixtures.listing(scratch) == ["out.gguf", "out.gguf.quantize-manifest.json", "out.gguf.quantize-report.json", "tiny-llama.gguf"])

        let written = try GGUFFile(path: outputPath)
        // Metadata: the input's keys in their order, then the quantization version and the file
        // type moved to the end with new values (llama-quantize's gguf_set_val_u32 order).
        let moved = ["general.quantization_version", "general.file_type"]
        #expect(written.metadata.map(\.key) == original.metadata.map(\.key).filter { !moved.contains($0) } + moved)
        for (key, value) in original.metadata {
            switch key {
            case "general.file_type": #expect(written[key] == .uint32(testCase.fileType), "general.file_type for \(testCase.scheme)")
            case "general.quantization_version": #expect(written[key] == .uint32(2))
            default: #expect(written[key] == value, "metadata \(key) preserved")
            }
        }
        // Tensors: input order and shapes, quantized ones with the scheme's type, kept ones byte-identical.
        #expect(written.tensors.map(\.name) == original.tensors.map(\.name))
        for (ours, source) in zip(written.tensors, original.tensors) {
            #expect(ours.shape == source.shape, "shape of \(ours.name)")
            if JobFixtures.ggufLinearNames.contains(source.name) {
                #expect(ours.type == testCase.type, "type of \(ours.name)")
            } else {
                #expect(ours.type == source.type, "type of \(ours.name)")
                #expect(Data(written.data(for: ours)) == Data(original.data(for: source)), "\(ours.name) copied byte for byte")
            }
        }
        #expect(summary.outputBytes == written.tensors.reduce(0) { $0 + $1.byteCount })
    }

    @Test("GGUF outputs agree with gguf-py (bytes for q8_0…q5_1, f16, bf16; error bound for k-quants)", arguments: GGUFSchemeCase.all)
    func ggufOracle(_ testCase: GGUFSchemeCase) throws {
        let (scratch, model) = try JobFixtures.tinyGGUFCopy("job-gguf-oracle")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outputPath = scratch.appendingPathComponent("out.gguf").path
        _ = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: testCase.scheme), output: outputPath, check: nil)).run()
        let document = try JobFixtures.oracle(original: model, output: outputPath, scheme: testCase.scheme.rawValue)
        JobFixtures.expectOraclePassed(document, testCase.scheme.rawValue)
        if testCase.scheme != .f16 {  // f16 from F16 leaves every tensor as it was
            #expect(Set((document["quantized"]?.array ?? []).compactMap(\.string)) == JobFixtures.ggufLinearNames)
        }
    }

    @Test("the default output path is a sibling named after the scheme")
    func defaultOutputPath() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("job-default")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let fp8 = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8)))
        #expect(fp8.outputPath == scratch.appendingPathComponent("tiny-llama-fp8").standardizedFileURL.path)
        let block = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8, granularity: .block(rows: 128, columns: 128))))
        #expect(URL(fileURLWithPath: block.outputPath).lastPathComponent == "tiny-llama-fp8-block")
        let asym = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .int4, symmetric: false)))
        #expect(URL(fileURLWithPath: asym.outputPath).lastPathComponent == "tiny-llama-int4-asym")
        let (ggufScratch, gguf) = try JobFixtures.tinyGGUFCopy("job-default-gguf")
        defer { try? FileManager.default.removeItem(at: ggufScratch) }
        let q4 = try QuantizeJob(input: gguf, settings: .init(scheme: Scheme(name: .q4_K)))
        #expect(URL(fileURLWithPath: q4.outputPath).lastPathComponent == "tiny-llama-q4_k.gguf")
    }

    @Test("the default output of a file without an extension has no trailing dot")
    func defaultOutputWithoutExtension() {
        let file = QuantizeJob.defaultOutputPath(input: "/models/weights", kind: .safetensorsFile, scheme: Scheme(name: .fp8))
        #expect(file == "/models/weights-fp8", "got \(file)")
        let gguf = QuantizeJob.defaultOutputPath(input: "/models/llama", kind: .gguf, scheme: Scheme(name: .q8_0))
        #expect(gguf == "/models/llama-q8_0", "got \(gguf)")
        #expect(QuantizeJob.defaultOutputPath(input: "/models/w.safetensors", kind: .safetensorsFile, scheme: Scheme(name: .int4, granularity: .group(size: 32)))
                == "/models/w-int4-g32.safetensors")
    }
}

extension TensorType {
    /// The safetensors dtype, nil for GGML types.
    var dtype: DType? {
        if case .dtype(let d) = self { return d }
        return nil
    }
}
