import Foundation
import Formats
import Testing
import TestSupport
@testable import Quantize

/// Our `quantization_config` against the one llm-compressor writes for the same preset
/// (fixtures/quantize/llmcompressor-configs.json, from tools/llmcompressor_reference.py configs).
@Suite("quantization_config equals llm-compressor's")
struct LLMCompressorConfigTests {
    static let reference: JSONValue? = try? JSONValue.parse(contentsOf: Fixtures.path("quantize/llmcompressor-configs.json"))

    /// Objects compared member by member whatever the order; `version` only for being a string.
    func differences(_ ours: JSONValue, _ theirs: JSONValue, at path: String = "") -> [String] {
        switch (ours, theirs) {
        case (.object(let a), .object(let b)):
            let ak = Dictionary(a.map { ($0.key, $0.value) }, uniquingKeysWith: { x, _ in x })
            let bk = Dictionary(b.map { ($0.key, $0.value) }, uniquingKeysWith: { x, _ in x })
            var out: [String] = []
            for key in Set(ak.keys).union(bk.keys).sorted() {
                let where_ = path.isEmpty ? key : path + "." + key
                switch (ak[key], bk[key]) {
                case (nil, _): out.append("\(where_): missing in ours")
                case (_, nil): out.append("\(where_): only in ours")
                case (let x?, let y?):
                    if key == "version" {
                        if x.string == nil { out.append("\(where_): not a string") }
                    } else {
                        out += differences(x, y, at: where_)
                    }
                }
            }
            return out
        case (.array(let a), .array(let b)):
            guard a.count == b.count else { return ["\(path): \(a.count) elements vs \(b.count)"] }
            return zip(a, b).enumerated().flatMap { differences($0.element.0, $0.element.1, at: "\(path)[\($0.offset)]") }
        default:
            return ours == theirs ? [] : ["\(path): ours \(ours.serializedString()) vs llm-compressor \(theirs.serializedString())"]
        }
    }

    @Test("every preset we write has llm-compressor's keys, spellings and values",
          arguments: [
            ("W4A16", Scheme(name: .int4), QuantizeOptions()),
            ("W4A16_G32", Scheme(name: .int4, granularity: .group(size: 32)), QuantizeOptions()),
            ("W4A16_ASYM", Scheme(name: .int4, symmetric: false), QuantizeOptions()),
            ("W8A16", Scheme(name: .int8, granularity: .group(size: 128)), QuantizeOptions(packInt8: true)),
            ("FP8_DYNAMIC", Scheme(name: .fp8), QuantizeOptions()),
          ])
    func matchesPreset(_ preset: String, _ scheme: Scheme, _ options: QuantizeOptions) throws {
        let reference = try #require(Self.reference, "fixtures/quantize/llmcompressor-configs.json is missing or not JSON")
        let theirs = try #require(reference[preset], "the fixture has no \(preset) entry")
        let ours = try #require(scheme.quantizationConfig(ignore: ["lm_head"], options: options))
        let found = differences(ours, theirs)
        #expect(found.isEmpty, "\(preset): \(found.joined(separator: "; "))")
    }

    @Test("the asymmetric config spells the observer as llm-compressor does, leaves out null keys, names the version")
    func asymmetricKeys() throws {
        let config = try #require(Scheme(name: .int4, symmetric: false).quantizationConfig(ignore: []))
        let weights = try #require(config["config_groups"]?["group_0"]?["weights"])
        #expect(weights["symmetric"]?.bool == false && weights["zp_dtype"] == nil)
        #expect(weights["observer"]?.string == "memoryless_minmax")
        #expect(weights["actorder"] == nil && weights["observer_kwargs"] == nil && weights["block_structure"] == nil)
        #expect(config["version"]?.string == Scheme.compressedTensorsVersion)
    }

    @Test("GPTQ with activation order writes actorder static, as GPTQModifier does")
    func activationOrder() throws {
        let config = try #require(Scheme(name: .int4).quantizationConfig(ignore: [], activationOrder: "static"))
        #expect(config["config_groups"]?["group_0"]?["weights"]?["actorder"]?.string == "static")
    }
}
