import Formats
import Foundation
import Model
import Quantize
import Testing
import TestSupport

/// Large tensors of a GGUF output are encoded piece by piece from the mapped input
/// (``QuantizeJob/Settings/chunkedEncodingBytes``, 64 MiB by default) instead of from a copy of the
/// whole tensor. With the threshold at one byte every float tensor of the fixtures goes that way,
/// in pieces of one aligned row group: the bytes must be llama-quantize's still, and the accuracy
/// report the one the whole-tensor path makes (within float rounding: it goes through BLAS).
@Suite("large tensors encoded piece by piece from the mapping write the same bytes and report")
struct ChunkedEncodingTests {
    static func run(_ input: String, _ name: MixtureName, conversion: ConversionPlan?, pieces: Bool, check: Bool,
                    imatrix: String? = nil) throws -> (sha256: String, report: [String: Double]) {
        let scratch = try Fixtures.temporaryDirectory("chunked-encoding")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out.gguf").path
        let scheme = try #require(SchemeDescriptor.writing(name.descriptor.defaultType)).name
        var settings = QuantizeJob.Settings(scheme: Scheme(name: scheme), output: output, check: check ? QuantizeJob.CheckSettings() : nil)
        settings.mixture = name.descriptor
        settings.conversion = conversion
        settings.threads = 2
        if pieces { settings.chunkedEncodingBytes = 1 }
        if let imatrix {
            settings.importance = (try ImportanceMatrix(contentsOf: Fixtures.repositoryRoot.appendingPathComponent(imatrix).path), imatrix)
        }
        let summary = try QuantizeJob(input: input, settings: settings).run()
        var report: [String: Double] = [:]
        for entry in summary.report?.tensors ?? [] { report[entry.name] = entry.accuracy.relativeError }
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
        return (SHA256.hex(bytes), report)
    }

    @Test("Hugging Face → GGUF conversion of trained-llama (BF16): every mixture's file is llama-quantize's",
          arguments: [MixtureName.q4_K_M, .q6_K, .q3_K_S])
    func conversion(_ name: MixtureName) throws {
        let model = Fixtures.path("trained-llama")
        let plan = try LlamaConversion.plan(for: try Checkpoint(path: model))
        let oracle = try ConversionFixtures.oracle("trained-llama")
        let expected = try #require((oracle["outputs"] as? [[String: Any]])?.first { $0["to"] as? String == name.rawValue }?["sha256"] as? String)
        let pieces = try Self.run(model, name, conversion: plan, pieces: true, check: true)
        let whole = try Self.run(model, name, conversion: plan, pieces: false, check: true)
        #expect(pieces.sha256 == expected, "\(name.rawValue) in pieces differs from llama-quantize of the F32 twin")
        #expect(whole.sha256 == expected)
        // The report's errors come through BLAS (the probe's sgemm), whose rounding may follow the
        // buffers' alignment: equal within float rounding, not bit for bit.
        #expect(pieces.report.count > 20 && Set(pieces.report.keys) == Set(whole.report.keys))
        for (tensor, error) in whole.report {
            let other = pieces.report[tensor] ?? .nan
            #expect(abs(other - error) <= 1e-4 * max(abs(error), 1e-6), "\(name.rawValue) \(tensor): \(other) vs \(error)")
        }
    }

    @Test("GGUF → GGUF with an importance matrix (tiny-llama): the file is llama-quantize --imatrix's")
    func requantization() throws {
        let oracle = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("mixtures/tiny-llama-bytes.json")))) as? [String: Any]
        let matrix = try #require(oracle?["imatrix_path"] as? String)
        let expected = try #require(((oracle?["imatrix"] as? [String: Any])?["q4_k_m"] as? [String: Any])?["file_sha256"] as? String)
        let pieces = try Self.run(Fixtures.path("tiny-llama.gguf"), .q4_K_M, conversion: nil, pieces: true, check: false, imatrix: matrix)
        #expect(pieces.sha256 == expected)
    }
}
