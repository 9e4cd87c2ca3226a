import Formats
import Foundation
import Testing
import TestSupport

@Suite("StoredQuantization: what config.json says about stored weights")
struct StoredQuantizationTests {
    /// fixtures/tiny-llama copied with `quantization` as its config.json's quantization_config.
    static func checkpoint(quantization: [String: Any]) throws -> (Checkpoint, URL) {
        let scratch = try Fixtures.temporaryDirectory("stored-quantization")
        for name in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"] {
            try FileManager.default.copyItem(atPath: "fixtures/tiny-llama/" + name, toPath: scratch.appendingPathComponent(name).path)
        }
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "fixtures/tiny-llama/config.json"))) as? [String: Any])
        config["quantization_config"] = quantization
        try JSONSerialization.data(withJSONObject: config).write(to: scratch.appendingPathComponent("config.json"))
        return (try Checkpoint(path: scratch.path), scratch)
    }

    @Test("a compressed-tensors block strategy carries its block_structure (llm-compressor's FP8_BLOCK)")
    func compressedTensorsBlocks() throws {
        let (checkpoint, scratch) = try Self.checkpoint(quantization: [
            "quant_method": "compressed-tensors", "format": "float-quantized",
            "config_groups": ["group_0": ["targets": ["Linear"], "weights": ["num_bits": 8, "type": "float", "strategy": "block",
                                                                              "block_structure": [128, 128], "symmetric": true]]],
        ])
        defer { try? FileManager.default.removeItem(at: scratch) }
        let stored = try #require(checkpoint.quantization)
        #expect(stored.schemeName == "fp8" && stored.strategy == "block")
        #expect(stored.blockSize == [128, 128])
        #expect(stored.summary.contains("blocks 128×128"), "\(stored.summary)")
    }

    @Test("a group strategy has no block size")
    func compressedTensorsGroups() throws {
        let (checkpoint, scratch) = try Self.checkpoint(quantization: [
            "quant_method": "compressed-tensors", "format": "pack-quantized",
            "config_groups": ["group_0": ["targets": ["Linear"], "weights": ["num_bits": 4, "type": "int", "strategy": "group",
                                                                              "group_size": 32, "symmetric": true]]],
        ])
        defer { try? FileManager.default.removeItem(at: scratch) }
        let stored = try #require(checkpoint.quantization)
        #expect(stored.schemeName == "int4-g32" && stored.groupSize == 32 && stored.blockSize == nil)
    }
}
