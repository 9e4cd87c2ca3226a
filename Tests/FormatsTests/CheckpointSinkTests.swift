import Foundation
import Testing
import TestSupport
@testable import Formats

@Suite("checkpoint sinks and the output transaction")
struct CheckpointSinkTests {
    @Test("nothing appears at the target before commit; discarding leaves nothing behind")
    func stagedUntilCommit() throws {
        let scratch = try Fixtures.temporaryDirectory("sink-discard")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let target = scratch.appendingPathComponent("out.safetensors").path
        do {
            let sink = try SafetensorsFileSink(target: target, tensors: [SafetensorsEntry(name: "a", dtype: .u8, shape: [4])])
            try [UInt8]([1, 2, 3, 4]).withUnsafeBytes { try sink.write($0, for: "a") }
            _ = try sink.finishTensors()
            #expect(!FileManager.default.fileExists(atPath: target))
            sink.transaction.discard()
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty, "no staging directory left")
    }

    @Test("a directory sink keeps the caller's shard names, writes the index and side files, and replaces an existing target")
    func directorySink() throws {
        let scratch = try Fixtures.temporaryDirectory("sink-directory")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let source = scratch.appendingPathComponent("source")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: source.appendingPathComponent("tokenizer.json"))
        try Data("x".utf8).write(to: source.appendingPathComponent("weights.bin"))
        let target = scratch.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try Data("old".utf8).write(to: URL(fileURLWithPath: target + "/stale.txt"))

        let shards = [
            SafetensorsShardedWriter.PlannedShard(fileName: "first.safetensors", tensors: [SafetensorsEntry(name: "b", dtype: .u8, shape: [2]),
                                                                                         SafetensorsEntry(name: "a", dtype: .u8, shape: [1])]),
            SafetensorsShardedWriter.PlannedShard(fileName: "second.safetensors", tensors: [SafetensorsEntry(name: "c", dtype: .u8, shape: [3])]),
        ]
        let sink = try SafetensorsDirectorySink(target: target, shards: shards, indexFileName: "model.safetensors.index.json",
                                                indexMetadata: [JSONMember("total_parameters", .number(JSONNumber(6)))])
        #expect(sink.writeOrder == ["b", "a", "c"], "the given order, shard by shard")
        for (name, bytes) in [("b", [UInt8]([1, 2])), ("a", [3]), ("c", [4, 5, 6])] {
            try bytes.withUnsafeBytes { try sink.write($0, for: name) }
        }
        let staged = try sink.finishTensors()
        #expect(staged.map { URL(fileURLWithPath: $0).lastPathComponent } == ["first.safetensors", "second.safetensors"])
        try sink.copySideFiles(from: source.path)
        try sink.writeConfig(["model_type": "llama"])
        try sink.commit()

        let names = try FileManager.default.contentsOfDirectory(atPath: target).sorted()
        #expect(names == ["config.json", "first.safetensors", "model.safetensors.index.json", "second.safetensors", "tokenizer.json"])
        let index = try JSONValue.parse(contentsOf: target + "/model.safetensors.index.json")
        #expect(index["metadata"]?["total_size"]?.int == 6)
        #expect(index["metadata"]?["total_parameters"]?.int == 6)
        #expect(index["weight_map"]?["c"]?.string == "second.safetensors")
        let reread = try SafetensorsCheckpoint(path: target)
        #expect(reread.tensors.map(\.name) == ["b", "a", "c"])
        #expect(try String(contentsOfFile: target + "/config.json", encoding: .utf8) == "{\n  \"model_type\": \"llama\"\n}\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted() == ["out", "source"], "no staging left")
    }

    @Test("a GGUF sink moves general.quantization_version, then general.file_type, to the end with their new values (llama-quantize's order)")
    func ggufSink() throws {
        let scratch = try Fixtures.temporaryDirectory("sink-gguf")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let target = scratch.appendingPathComponent("out.gguf").path
        let sink = try GGUFFileSink(target: target, metadata: [("general.architecture", .string("llama")), ("general.file_type", .uint32(0))],
                                    tensors: [GGUFWriter.Tensor(name: "t", type: .f32, shape: [2])], fileType: 7, quantizationVersion: 2)
        try [Float(1), 2].withUnsafeBytes { try sink.write($0, for: "t") }
        _ = try sink.finishTensors()
        try sink.commit()
        let file = try GGUFFile(path: target)
        #expect(file.metadata.map(\.key) == ["general.architecture", "general.quantization_version", "general.file_type"])
        #expect(file["general.file_type"]?.int == 7)
        #expect(file["general.quantization_version"]?.int == 2)
    }
}

@Suite("JSON: Codable on JSONValue")
struct JSONCodingTests {
    struct Sample: Codable, Equatable {
        var name: String
        var count: Int
        var ratio: Double
        var whole: Double
        var optional: Int?
        var list: [Int]
        var nested: [String: Bool]
    }

    @Test("encodes in one style: sorted keys, '\"key\": value', whole doubles as integers, nil optionals left out; decodes back")
    func roundTrip() throws {
        let sample = Sample(name: "a/b", count: 3, ratio: 0.25, whole: 2, optional: nil, list: [], nested: ["y": true, "x": false])
        let text = String(decoding: try JSONValueEncoder().encodeBytes(sample), as: UTF8.self)
        #expect(text == """
        {
          "count": 3,
          "list": [],
          "name": "a/b",
          "nested": {
            "x": false,
            "y": true
          },
          "ratio": 0.25,
          "whole": 2
        }
        """)
        #expect(try JSONValueDecoder().decode(Sample.self, from: Array(text.utf8)) == sample)
    }

    @Test("non-finite numbers cannot be encoded; a wrong type names its path")
    func errors() throws {
        #expect(throws: EncodingError.self) { try JSONValueEncoder().encode([Double.infinity]) }
        let error = try #require(throws: DecodingError.self) {
            try JSONValueDecoder().decode(Sample.self, from: Array(#"{"name": 1}"#.utf8))
        }
        guard case .typeMismatch(_, let context) = error else { Issue.record("expected a type mismatch, got \(error)"); return }
        #expect(context.codingPath.map(\.stringValue) == ["name"])
    }
}

@Suite("model facts: one config reader, one set of tensor-role rules")
struct ModelFactsTests {
    @Test("config.json aliases and text_config are read the one way")
    func configAliases() throws {
        let config = try JSONValue.parse(#"{"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"], "text_config": {"n_layer": 4, "n_embd": 64, "n_head": 4, "vocab_size": 100}}"#)
        let reader = ModelConfig(config)
        #expect(reader.int(.layers) == 4)
        #expect(reader.int(.hiddenSize) == 64)
        let architecture = try #require(ModelArchitecture(config: config))
        #expect(architecture.layers == 4 && architecture.headSize == 16)
    }

    @Test("tensor roles: BERT's token-type embedding is an embedding, a shared-expert gate a router", arguments: [
        ("embeddings.token_type_embeddings.weight", TensorRole.embedding),
        ("embeddings.word_embeddings.weight", .embedding),
        ("model.layers.0.mlp.shared_expert_gate.weight", .router),
        ("model.layers.0.mlp.gate.weight", .router),
        ("blk.0.ffn_gate_inp.weight", .router),
        ("model.layers.0.mlp.experts.3.down_proj.weight", .expertProjection),
        ("model.layers.0.mlp.shared_expert.down_proj.weight", .projection),
        ("embed_out.weight", .outputHead),
        ("model.layers.0.self_attn.q_proj.bias", .nonWeight),
        ("model.norm.weight", .norm),
    ])
    func roles(_ name: String, _ role: TensorRole) {
        #expect(TensorRole(name: name) == role, "\(name)")
    }
}
