import CKernels
import Foundation
import Formats
import Quantize
import TestSupport
import Testing

/// fixtures/mixtures/ (tools/mixture_oracle.py): llama-quantize --dry-run's type of every tensor
/// for every mixture, on GGUF headers shaped like real models.
struct MixtureOracle: Decodable {
    let model: String
    let metadata: [String: JSONScalar]
    let tensors: [[JSONScalar]]
    let order: [String]
    let expected: [String: [String]]
    /// Where llama-quantize --dry-run --imatrix chooses another type: mixture → tensor → type.
    let expected_imatrix_changes: [String: [String: String]]?

    enum JSONScalar: Decodable {
        case string(String), number(Double), array([Int])
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .string(s) } else if let a = try? c.decode([Int].self) { self = .array(a) } else { self = .number(try c.decode(Double.self)) }
        }
    }

    static let models = ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen2.5-0.5b", "qwen3-30b-a3b"]

    static func load(_ model: String) throws -> MixtureOracle {
        try JSONDecoder().decode(MixtureOracle.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("mixtures/\(model).json"))))
    }

    var ggufMetadata: [String: GGUFValue] {
        metadata.mapValues { v in
            switch v {
            case .string(let s): return .string(s)
            case .number(let d): return d == d.rounded() ? .uint32(UInt32(d)) : .float32(Float(d))
            case .array(let a): return .array(.uint32, a.map { .uint32(UInt32($0)) })
            }
        }
    }

    func mixtureTensors() throws -> [MixtureTensor] {
        try tensors.map { t in
            guard case .string(let name) = t[0], case .array(let shape) = t[1], case .string(let type) = t[2], let ggml = GGMLType.named(type) else {
                throw QuantizeJobError(.invalidActivations, "malformed tensor entry in mixtures/\(model).json")
            }
            return MixtureTensor(name: name, shape: shape, type: ggml)
        }
    }
}

@Suite("Mixtures choose llama-quantize's type for every tensor")
struct MixtureTests {
    @Test("every mixture on every model header: our per-tensor types equal llama-quantize --dry-run's",
          arguments: MixtureOracle.models)
    func matchesLlamaQuantize(_ model: String) throws {
        let oracle = try MixtureOracle.load(model)
        let facts = try MixtureModel(metadata: oracle.ggufMetadata)
        let tensors = try oracle.mixtureTensors()
        #expect(MixturePlanner.llamaOrder(tensors).map(\.name) == oracle.order, "llama-quantize's tensor order")
        #expect(Set(oracle.expected.keys) == Set(MixtureName.allCases.map(\.rawValue)))
        for mixture in MixtureDescriptor.all {
            let expected = try #require(oracle.expected[mixture.name.rawValue])
            let plan = try MixturePlanner.plan(mixture, model: facts, tensors: tensors)
            #expect(plan.map(\.name) == oracle.order)
            let wrong = zip(plan, expected).filter { $0.0.type.name != $0.1 }
            #expect(wrong.isEmpty, "\(model) \(mixture.llamaName): \(wrong.count) tensors differ, first: \(wrong.prefix(3).map { "\($0.0.name) ours \($0.0.type.name) (\($0.0.reason)) llama \($0.1)" })")
        }
    }

    @Test("with an importance matrix: our per-tensor types equal llama-quantize --dry-run --imatrix's",
          arguments: MixtureOracle.models)
    func matchesLlamaQuantizeWithImatrix(_ model: String) throws {
        let oracle = try MixtureOracle.load(model)
        let facts = try MixtureModel(metadata: oracle.ggufMetadata)
        let tensors = try oracle.mixtureTensors()
        let changes = try #require(oracle.expected_imatrix_changes, "mixtures/\(model).json has no expected_imatrix_changes")
        #expect(Set(changes.keys) == Set(MixtureName.allCases.map(\.rawValue)))
        for mixture in MixtureDescriptor.all {
            let plain = try #require(oracle.expected[mixture.name.rawValue])
            let changed = try #require(changes[mixture.name.rawValue])
            let expected = zip(oracle.order, plain).map { changed[$0.0] ?? $0.1 }
            let plan = try MixturePlanner.plan(mixture, model: facts, tensors: tensors, hasImportanceMatrix: true)
            #expect(plan.map(\.name) == oracle.order)
            let wrong = zip(plan, expected).filter { $0.0.type.name != $0.1 }
            #expect(wrong.isEmpty, "\(model) \(mixture.llamaName) --imatrix: \(wrong.count) tensors differ, first: \(wrong.prefix(3).map { "\($0.0.name) ours \($0.0.type.name) (\($0.0.reason)) llama \($0.1)" })")
        }
        // The fixture shows the imatrix branch (IQ4_XS keeps the first ffn_down layers), so this test can fail.
        #expect(!(changes["iq4_xs"] ?? [:]).isEmpty)
    }

    @Test("the fixtures exercise the rules they are meant to: GQA, 70B, 8 experts, tied embeddings and the row-length fallbacks")
    func fixturesCoverTheRules() throws {
        let llama70 = try MixtureModel(metadata: MixtureOracle.load("llama-3.1-70b").ggufMetadata)
        #expect(llama70.is70B && llama70.gqa == 8)
        let mixtral = try MixtureModel(metadata: MixtureOracle.load("mixtral-8x7b").ggufMetadata)
        #expect(mixtral.expertCount == 8 && !mixtral.is70B)
        let qwen = try MixtureOracle.load("qwen2.5-0.5b")
        let plan = try MixturePlanner.plan(MixtureName.q4_K_M.descriptor, model: MixtureModel(metadata: qwen.ggufMetadata), tensors: qwen.mixtureTensors())
        let embd = try #require(plan.first { $0.name == "token_embd.weight" })
        #expect(embd.type == .q8_0 && embd.reason.contains("tied"))
        #expect(plan.contains { $0.type == .q5_0 && $0.reason.contains("falls back") })
    }

    @Test("--tensor-type overrides the rule for matching tensors; one that matches nothing, a bad type or a bad pattern is an error")
    func overrides() throws {
        let oracle = try MixtureOracle.load("llama-3.1-8b")
        let facts = try MixtureModel(metadata: oracle.ggufMetadata), tensors = try oracle.mixtureTensors()
        let plan = try MixturePlanner.plan(MixtureName.q4_K_M.descriptor, model: facts, tensors: tensors,
                                           overrides: [TensorTypeOverride(parsing: "ATTN_K=q8_0"), TensorTypeOverride(parsing: "blk\\.1\\.ffn_up=q5_k")])
        #expect(plan.filter { $0.name.hasSuffix("attn_k.weight") }.allSatisfy { $0.type == .q8_0 && $0.reason.contains("--tensor-type attn_k=q8_0") })
        #expect(plan.first { $0.name == "blk.1.ffn_up.weight" }?.type == .q5_K)
        #expect(plan.first { $0.name == "blk.10.ffn_up.weight" }?.type == .q4_K)
        #expect(plan.first { $0.name == "blk.0.attn_norm.weight" }?.type == .f32)
        #expect(throws: QuantizeJobError.self) {
            _ = try MixturePlanner.plan(MixtureName.q4_K_M.descriptor, model: facts, tensors: tensors, overrides: [TensorTypeOverride(parsing: "attn_zz=q8_0")])
        }
        for bad in ["attn_k", "=q8_0", "attn_k=q9_9", "attn_k=", "attn_[k=q8_0"] {
            #expect(throws: QuantizeJobError.self, "\(bad)") { _ = try TensorTypeOverride(parsing: bad) }
        }
    }

    @Test("mixture names and llama file types are llama.cpp's")
    func names() {
        #expect(MixtureDescriptor.all.map(\.name) == MixtureName.allCases)
        #expect(MixtureDescriptor.named("Q4_K_M")?.llamaFileType == 15)
        #expect(MixtureDescriptor.all.map(\.llamaFileType) == [10, 11, 12, 13, 14, 15, 16, 17, 18, 30])
        #expect(MixtureDescriptor.named("q4_k_x") == nil)
    }
}

/// fixtures/mixtures/tiny-llama-bytes.json (tools/mixture_bytes_oracle.py): llama-quantize's real
/// output of fixtures/tiny-llama.gguf for every mixture, as per-tensor type and sha256.
struct MixtureBytesOracle: Decodable {
    struct Output: Decodable { let file_type: UInt32; let tensors: [[String]]; let file_sha256: String }
    struct WithImatrix: Decodable { let types: [String]; let file_sha256: String; let differs_without: Bool }
    let input_sha256: String
    let mixtures: [String: Output]
    let imatrix_path: String?
    let imatrix: [String: WithImatrix]?
    let imatrix_dat_path: String?
    let imatrix_dat: [String: WithImatrix]?
}

@Suite("Mixture tensors are byte-identical to llama-quantize's on tiny-llama")
struct MixtureBytesTests {
    @Test("every mixture: the planned type, order and encoded bytes of every tensor equal llama-quantize's output",
          arguments: MixtureName.allCases)
    func tensorsMatch(_ name: MixtureName) throws {
        let oracle = try JSONDecoder().decode(MixtureBytesOracle.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("mixtures/tiny-llama-bytes.json"))))
        let expected = try #require(oracle.mixtures[name.rawValue])
        #expect(expected.file_type == name.descriptor.llamaFileType)
        let gguf = try GGUFFile(path: Fixtures.path("tiny-llama.gguf"))
        let bytes = gguf.file.bytes
        #expect(SHA256.hex(bytes) == oracle.input_sha256, "fixtures/tiny-llama.gguf changed; rerun tools/mixture_bytes_oracle.py")
        let metadata = Dictionary(gguf.metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        let plan = try MixturePlanner.plan(name.descriptor, model: MixtureModel(metadata: metadata),
                                           tensors: gguf.tensors.map { MixtureTensor(name: $0.name, shape: $0.dimensions, type: $0.type) })
        #expect(plan.map(\.name) == expected.tensors.map { $0[0] })
        for (decision, want) in zip(plan, expected.tensors) {
            #expect(decision.type.name == want[1], "\(name.rawValue) \(decision.name): \(decision.type.name) (\(decision.reason)), llama-quantize \(want[1])")
            let info = try #require(gguf.tensor(named: decision.name))
            let source = gguf.data(for: info)
            var out: [UInt8]
            if decision.converts {
                var x = [Float](repeating: 0, count: info.elementCount)
                try x.withUnsafeMutableBufferPointer { try dequantizeGGML(info.type, bytes: source, elementCount: info.elementCount, into: $0, tensorName: info.name) }
                let type = decision.type
                out = [UInt8](repeating: 0, count: try #require(type.byteCount(elementCount: info.elementCount)))
                let status = x.withUnsafeBufferPointer { p in
                    out.withUnsafeMutableBufferPointer { qk_quant_ggml_encode(type.id, p.baseAddress!, $0.baseAddress!, info.elementCount / type.blockSize, type.blockSize, nil) }
                }
                #expect(status == -1)
            } else {
                out = [UInt8](source)
            }
            #expect(SHA256.hex(out) == want[2], "\(name.rawValue) \(decision.name) as \(decision.type.name): bytes differ from llama-quantize's")
        }
    }
}

@Suite("Mixture runs write llama-quantize's file byte for byte")
struct MixtureJobTests {
    static let models = ["tiny-llama.gguf", "mixtures/odd-llama.gguf"]

    @Test("quantize --to MIXTURE: the whole output file equals llama-quantize's (tensor order, metadata order, file type, every byte)",
          arguments: models, MixtureName.allCases)
    func wholeFileMatches(_ model: String, _ name: MixtureName) throws {
        let oracleName = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent + "-bytes.json"
        let oracle = try JSONDecoder().decode(MixtureBytesOracle.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("mixtures/\(oracleName)"))))
        let expected = try #require(oracle.mixtures[name.rawValue])
        let input = try GGUFFile(path: Fixtures.path(model))
        #expect(withExtendedLifetime(input) { SHA256.hex(input.file.bytes) } == oracle.input_sha256, "\(model) changed; rerun tools/mixture_bytes_oracle.py")
        let scratch = try Fixtures.temporaryDirectory("mixture-job")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out.gguf").path
        let scheme = try #require(SchemeDescriptor.writing(name.descriptor.defaultType)).name
        var settings = QuantizeJob.Settings(scheme: Scheme(name: scheme), output: output, check: nil)
        settings.mixture = name.descriptor
        settings.threads = 2
        let job = try QuantizeJob(input: Fixtures.path(model), settings: settings)
        #expect(job.tensors.map(\.source.name) == expected.tensors.map { $0[0] })
        _ = try job.run()
        let written = try GGUFFile(path: output)
        #expect(written.tensors.map { $0.type.name } == expected.tensors.map { $0[1] })
        #expect(withExtendedLifetime(written) { SHA256.hex(written.file.bytes) } == expected.file_sha256, "\(model) \(name.rawValue): the output differs from llama-quantize's")
    }

    @Test("quantize --to MIXTURE --imatrix: the whole file equals llama-quantize --imatrix's with the same matrix (GGUF imatrix; legacy .dat on tiny-llama)",
          arguments: ["tiny-llama.gguf", "mixtures/odd-llama.gguf", "tiny-llama.gguf dat"], MixtureName.allCases)
    func wholeFileMatchesWithImatrix(_ model: String, _ name: MixtureName) throws {
        let dat = model.hasSuffix(" dat")
        let modelPath = dat ? String(model.dropLast(4)) : model
        let oracleName = URL(fileURLWithPath: modelPath).deletingPathExtension().lastPathComponent + "-bytes.json"
        let oracle = try JSONDecoder().decode(MixtureBytesOracle.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("mixtures/\(oracleName)"))))
        let matrixPath = try #require(dat ? oracle.imatrix_dat_path : oracle.imatrix_path)
        let expected = try #require((dat ? oracle.imatrix_dat : oracle.imatrix)?[name.rawValue])
        #expect(expected.differs_without, "llama-quantize's output with the matrix must differ from the one without, or this test proves nothing")
        let scratch = try Fixtures.temporaryDirectory("mixture-imatrix")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out.gguf").path
        let scheme = try #require(SchemeDescriptor.writing(name.descriptor.defaultType)).name
        var settings = QuantizeJob.Settings(scheme: Scheme(name: scheme), output: output, check: nil)
        settings.mixture = name.descriptor
        // The path as llama-quantize was given it (relative to the repository): it is recorded in quantize.imatrix.file.
        settings.importance = (try ImportanceMatrix(contentsOf: Fixtures.repositoryRoot.appendingPathComponent(matrixPath).path), matrixPath)
        _ = try QuantizeJob(input: Fixtures.path(modelPath), settings: settings).run()
        let written = try GGUFFile(path: output)
        #expect(written.tensors.map { $0.type.name } == expected.types)
        #expect(withExtendedLifetime(written) { SHA256.hex(written.file.bytes) } == expected.file_sha256,
                "\(model) \(name.rawValue) --imatrix: the output differs from llama-quantize's")
    }

    @Test("--imatrix refuses a safetensors scheme, and a matrix made for another model")
    func imatrixRefusals() throws {
        let matrix = try ImportanceMatrix(contentsOf: Fixtures.path("mixtures/odd-llama.imatrix.gguf"))
        var settings = QuantizeJob.Settings(scheme: Scheme(name: .q4_K), output: "/nonexistent/out.gguf", check: nil)
        settings.mixture = MixtureName.q4_K_M.descriptor
        settings.importance = (matrix, "odd-llama.imatrix.gguf")
        #expect(throws: (any Error).self, "odd-llama's matrix has 160 columns where tiny-llama has 256") {
            _ = try QuantizeJob(input: Fixtures.path("tiny-llama.gguf"), settings: settings)
        }
        var fp8 = QuantizeJob.Settings(scheme: Scheme(name: .fp8), output: "/nonexistent/out", check: nil)
        fp8.importance = (matrix, "odd-llama.imatrix.gguf")
        #expect(throws: QuantizeJobError.self) { _ = try QuantizeJob(input: Fixtures.path("tiny-llama"), settings: fp8) }
    }

    @Test("the second model exercises every row-length fallback (no row a multiple of 256; ffn_down's not even of 32)")
    func oddModelCoversFallbacks() throws {
        let oracle = try JSONDecoder().decode(MixtureBytesOracle.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("mixtures/odd-llama-bytes.json"))))
        let types = Set(oracle.mixtures.values.flatMap { $0.tensors.map { $0[1] } })
        #expect(types.isSuperset(of: ["Q4_0", "Q5_0", "Q5_1", "Q8_0", "IQ4_NL", "F16"]))
        #expect(!types.contains { $0.hasSuffix("_K") || $0 == "IQ4_XS" })
    }

    @Test("a mixture with --skip keeps the tensor, --only is refused, requantizing is refused")
    func selectionRules() throws {
        var settings = QuantizeJob.Settings(scheme: Scheme(name: .q4_K), selection: TensorSelection(patterns: [.init(quantize: false, glob: "blk.0.*")]),
                                            output: "/nonexistent/out.gguf", check: nil)
        settings.mixture = MixtureName.q4_K_M.descriptor
        let job = try QuantizeJob(input: Fixtures.path("tiny-llama.gguf"), settings: settings)
        #expect(job.tensors.filter { $0.source.name.hasPrefix("blk.0.") }.allSatisfy { !$0.decision.quantize && $0.decision.rule.contains("--skip") })
        #expect(job.tensors.first { $0.source.name == "blk.1.ffn_down.weight" }?.scheme.name == .q6_K)
        settings.selection = TensorSelection(patterns: [.init(quantize: true, glob: "blk.*")])
        #expect(throws: QuantizeJobError.self) { _ = try QuantizeJob(input: Fixtures.path("tiny-llama.gguf"), settings: settings) }

        let scratch = try Fixtures.temporaryDirectory("mixture-requant")
        defer { try? FileManager.default.removeItem(at: scratch) }
        var q8 = QuantizeJob.Settings(scheme: Scheme(name: .q8_0), output: scratch.appendingPathComponent("q8.gguf").path, check: nil)
        _ = try QuantizeJob(input: Fixtures.path("tiny-llama.gguf"), settings: q8).run()
        q8.mixture = MixtureName.q4_K_M.descriptor
        q8.scheme = Scheme(name: .q4_K)
        q8.output = scratch.appendingPathComponent("again.gguf").path
        do {
            _ = try QuantizeJob(input: scratch.appendingPathComponent("q8.gguf").path, settings: q8)
            Issue.record("requantizing Q8_0 tensors was accepted")
        } catch let error as QuantizeJobError {
            #expect(error.message.contains("already") || error.message.contains("stored as"), "\(error.message)")
        }
    }

    @Test("--pure gives every quantized tensor the default type, output and embedding included")
    func pure() throws {
        var settings = QuantizeJob.Settings(scheme: Scheme(name: .q4_K), output: "/nonexistent/out.gguf", check: nil)
        settings.mixture = MixtureName.q4_K_M.descriptor
        settings.pure = true
        let job = try QuantizeJob(input: Fixtures.path("tiny-llama.gguf"), settings: settings)
        let quantized = job.tensors.filter(\.decision.quantize)
        #expect(quantized.count == 16)
        #expect(quantized.allSatisfy { $0.scheme.name == .q4_K && $0.decision.rule.contains("--pure") })
    }
}
