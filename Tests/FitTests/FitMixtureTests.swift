import Fit
import Formats
import Foundation
import Quantize
import Testing
import TestSupport

@Suite("Fit sizes llama.cpp mixtures by llama-quantize's own per-tensor types")
struct FitMixtureTests {
    /// fixtures/mixtures/MODEL.json (tools/mixture_oracle.py): the tensors of a real GGUF header and
    /// llama-quantize --dry-run's type for each, per mixture.
    struct Oracle: Decodable {
        let tensors: [[Field]]
        let order: [String]
        let expected: [String: [String]]
        enum Field: Decodable {
            case text(String), shape([Int])
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let s = try? c.decode(String.self) { self = .text(s) } else { self = .shape(try c.decode([Int].self)) }
            }
        }
    }

    @Test("q4_k_m … iq4_xs of Llama-3.1-8B and -70B and Mixtral-8x7B: the quantized bytes equal those of llama-quantize's plan on the real header",
          arguments: [("llama-3.1-8b", "llama-3.1-8b"), ("llama-3.1-70b", "llama-3.1-70b"), ("mixtral-8x7b", "mixtral-8x7b")])
    func matchesLlamaQuantizePlan(_ preset: String, _ header: String) throws {
        let oracle = try JSONDecoder().decode(Oracle.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("mixtures/\(header).json"))))
        var shapes: [String: [Int]] = [:]
        for t in oracle.tensors { if case .text(let name) = t[0], case .shape(let shape) = t[1] { shapes[name] = shape } }
        let shape = try #require(try ModelShape.preset(named: preset))
        for mixture in MixtureName.allCases {
            let types = try #require(oracle.expected[mixture.rawValue])
            var expected = 0
            for (name, typeName) in zip(oracle.order, types) {
                let type = try #require(GGMLType.named(typeName))
                guard type.isQuantized, let dims = shapes[name] else { continue }
                expected += try #require(type.byteCount(elementCount: dims.reduce(1, *)))
            }
            let variant = try Variant.parse(mixture.rawValue)
            #expect(variant.mixture == mixture && variant.isGGUF)
            let bytes = try #require(variant.weightBytes(of: shape))
            #expect(bytes.total - bytes.other == expected, "\(preset) \(mixture.rawValue): Fit \(bytes.total - bytes.other) B, llama-quantize's plan \(expected) B")
        }
    }

    @Test("a mixture is a GGUF variant named as llama-quantize names it; unknown names list the mixtures")
    func parsing() throws {
        #expect(try Variant.parse("Q4_K_M").name == "q4_k_m")
        #expect(try Variant.parse("q4_k").mixture == nil)
        #expect(try Variant.parse("q6_k").mixture == .q6_K)
        let error = #expect(throws: FitError.self) { _ = try Variant.parse("q4_k_x") }
        #expect(error?.message.contains("q4_k_m") == true)
    }
}
