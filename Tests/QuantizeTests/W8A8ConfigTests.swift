import Foundation
import Formats
import Testing
import TestSupport
@testable import Quantize

/// The W8A8 INT8 `quantization_config` against the one llm-compressor writes for its `W8A8` preset
/// (fixtures/quantize/llmcompressor-w8a8-config.json, tools/smoothquant_reference.py config).
@Suite("W8A8 quantization_config equals llm-compressor's")
struct W8A8ConfigTests {
    static let reference: JSONValue? = try? JSONValue.parse(contentsOf: Fixtures.path("quantize/llmcompressor-w8a8-config.json"))

    @Test("int8 int-quantized with int8 activations has llm-compressor's W8A8 keys, spellings and values, key for key")
    func matchesPreset() throws {
        let reference = try #require(Self.reference, "fixtures/quantize/llmcompressor-w8a8-config.json is missing or not JSON")
        let theirs = try #require(reference["W8A8"], "the fixture has no W8A8 entry")
        let ours = try #require(Scheme(name: .int8).quantizationConfig(ignore: ["lm_head"], options: QuantizeOptions(int8Activations: true)))
        let found = LLMCompressorConfigTests().differences(ours, theirs)
        #expect(found.isEmpty, "W8A8: \(found.joined(separator: "; "))")
    }

    @Test("llm-compressor stores W8A8 weights as I8 with a per-channel scale, as the int-quantized layout does")
    func tensorsMatch() throws {
        let reference = try #require(Self.reference)
        let tensors = try #require(reference["_q_proj_tensors"])
        #expect(tensors["model.layers.0.self_attn.q_proj.weight"]?[0]?.string == "I8")
        #expect(tensors["model.layers.0.self_attn.q_proj.weight_scale"]?[1]?.array?.count == 2)
        #expect(tensors["model.layers.0.self_attn.q_proj.weight_scale"]?[1]?[1]?.int == 1, "one scale per output channel")
    }

    @Test("activations are declared only for int-quantized INT8: packed INT8 and int4 stay weight-only")
    func onlyIntQuantized() throws {
        let packed = try #require(Scheme(name: .int8).quantizationConfig(ignore: [], options: QuantizeOptions(packInt8: true, int8Activations: true)))
        #expect(packed["config_groups"]?["group_0"]?["input_activations"]?.isNull == true)
        let int4 = try #require(Scheme(name: .int4).quantizationConfig(ignore: [], options: QuantizeOptions(int8Activations: true)))
        #expect(int4["config_groups"]?["group_0"]?["input_activations"]?.isNull == true)
        let w8a8 = try #require(Scheme(name: .int8).quantizationConfig(ignore: [], options: QuantizeOptions(int8Activations: true)))
        #expect(w8a8["config_groups"]?["group_0"]?["input_activations"]?["type"]?.string == "int")
    }
}
