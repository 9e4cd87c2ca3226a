import Foundation
import Formats
import Testing
import TestSupport
@testable import Quantize

@Suite("quantize verify")
struct VerifyJobTests {
    static let original = Fixtures.path("tiny-llama.gguf")

    @Test("on GGUFs quantized by gguf-py, verify's weight errors equal numpy's", arguments: ["q8_0", "q4_0", "q5_1"])
    func weightErrorsEqualNumpy(type: String) throws {
        let directory = try Fixtures.temporaryDirectory("verify-oracle")
        defer { try? FileManager.default.removeItem(at: directory) }
        _ = try OraclePython.run("oracle_verify_fixture.py", [directory.path])
        let expected = try JSONValue.parse(contentsOf: directory.appendingPathComponent("expected.json").path)
        let job = try VerifyJob(original: Self.original, quantized: directory.appendingPathComponent("\(type).gguf").path)
        let report = try job.run()
        let quantized = report.tensors.filter { $0.scheme == type }
        let oracle = try #require(expected[type]?.object)
        #expect(quantized.count == oracle.count)
        for member in oracle {
            let entry = try #require(quantized.first { $0.name == member.key }, "verify did not measure \(member.key)")
            let numpy = try #require(member.value["relative_weight_error"]?.double)
            #expect(abs(entry.accuracy.relativeWeightError - numpy) <= 1e-6 * max(numpy, 1e-12),
                    "\(member.key): verify \(entry.accuracy.relativeWeightError), numpy \(numpy)")
            #expect(entry.accuracy.bitsPerWeight == Double(GGMLType.named(type)!.bitsPerWeight))
        }
    }

    @Test("a checkpoint against itself has zero error everywhere")
    func selfComparisonIsExact() throws {
        for path in [Fixtures.path("tiny-llama"), Self.original] {
            let report = try VerifyJob(original: path, quantized: path).run()
            #expect(!report.tensors.isEmpty)
            #expect(report.passed)
            for entry in report.tensors {
                #expect(entry.accuracy.relativeError == 0, "\(entry.name)")
                #expect(entry.accuracy.relativeWeightError == 0, "\(entry.name)")
            }
        }
    }

    @Test("our fp8 output verifies within its threshold, and doubled scales are caught")
    func brokenScalesAreCaught() throws {
        let directory = try Fixtures.temporaryDirectory("verify-broken")
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = directory.appendingPathComponent("fp8").path
        let job = try QuantizeJob(input: Fixtures.path("tiny-llama"), settings: .init(scheme: Scheme(name: .fp8), output: good, check: nil))
        _ = try job.run()
        let report = try VerifyJob(original: Fixtures.path("tiny-llama"), quantized: good).run()
        #expect(report.passed)
        let fp8 = report.tensors.filter { $0.scheme == "fp8" }
        #expect(fp8.count == 14)

        // Rewrite the output with every weight_scale doubled: a decoder or writer bug of this kind
        // must fail the check.
        let broken = directory.appendingPathComponent("broken")
        try FileManager.default.copyItem(atPath: good, toPath: broken.path)
        for name in try FileManager.default.contentsOfDirectory(atPath: good) where name.hasSuffix(".safetensors") {
            let source = try SafetensorsFile(path: good + "/" + name)
            let target = broken.appendingPathComponent(name).path
            try FileManager.default.removeItem(atPath: target)
            let writer = try SafetensorsWriter(path: target, tensors: source.tensors.map { SafetensorsEntry(name: $0.name, dtype: $0.dtype, shape: $0.shape) },
                                               metadata: source.metadata, order: .given)
            for tensor in source.tensors {
                var bytes = Array(source.data(for: tensor))
                if tensor.name.hasSuffix("weight_scale") {
                    for i in stride(from: 0, to: bytes.count, by: 4) {
                        let value = Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24) * 2
                        withUnsafeBytes(of: value.bitPattern.littleEndian) { raw in for k in 0..<4 { bytes[i + k] = raw[k] } }
                    }
                }
                try writer.write(bytes, for: tensor.name)
            }
            try writer.finish()
        }
        let brokenReport = try VerifyJob(original: Fixtures.path("tiny-llama"), quantized: broken.path).run()
        #expect(!brokenReport.passed)
        #expect(brokenReport.failedCount == 14)
        for entry in brokenReport.tensors where entry.scheme == "fp8" {
            #expect(entry.accuracy.relativeError > 0.9, "\(entry.name): \(entry.accuracy.relativeError)")
        }
    }

    @Test("a GGUF against a Hugging Face original matches nothing and says why")
    func mismatchedNamingIsRefused() throws {
        #expect {
            _ = try VerifyJob(original: Fixtures.path("tiny-llama"), quantized: Self.original)
        } throws: { error in
            (error as? QuantizeJobError)?.code == .unsupportedConversion
        }
    }
}
