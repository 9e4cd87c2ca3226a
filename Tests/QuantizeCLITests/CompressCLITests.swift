import Foundation
import Testing
import TestSupport

/// `quantize compress` / `decompress`, and every other command reading the compressed result.
@Suite("compress and decompress, end to end")
struct CompressCLITests {
    private func files(_ directory: String) throws -> [String: Data] {
        var result: [String: Data] = [:]
        // The integrity manifests differ by design (each records its own inputs and options).
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where !name.hasPrefix(".") && name != "quantize-manifest.json" {
            result[name] = try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent(name))
        }
        return result
    }

    @Test("compress then decompress a model directory restores every file byte for byte; --json reports sizes")
    func roundTrip() throws {
        let scratch = try Fixtures.temporaryDirectory("cli-compress")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let packed = scratch.appendingPathComponent("tiny.bpz").path
        let result = try CLI.run(["compress", "fixtures/tiny-llama", "-o", packed, "--json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let document = try CLI.jsonObject(result.stdout)
        let input = try #require((document["inputBytes"] as? NSNumber)?.intValue)
        let output = try #require((document["outputBytes"] as? NSNumber)?.intValue)
        #expect(output < input * 3 / 4, "BF16 weights shrink by more than a quarter")
        #expect((document["weightFiles"] as? NSNumber)?.intValue == 2)
        // The output exists: a second run is refused without --force, accepted with it.
        #expect(try CLI.run(["compress", "fixtures/tiny-llama", "-o", packed]).status == 2)
        #expect(try CLI.run(["compress", "fixtures/tiny-llama", "-o", packed, "--force"]).status == 0)
        let restored = scratch.appendingPathComponent("tiny").path
        let back = try CLI.run(["decompress", packed, "-o", restored])
        #expect(back.status == 0, "stderr: \(back.stderr)")
        #expect(try files(restored) == (try files(Fixtures.path("tiny-llama"))))
        #expect(try CLI.listing(scratch).allSatisfy { !$0.hasPrefix(".") }, "no staging left beside the outputs")
    }

    @Test("inspect, fit, verify and quantize accept compressed inputs and give the same results")
    func commandsReadCompressedInputs() throws {
        let scratch = try Fixtures.temporaryDirectory("cli-compressed-inputs")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let packed = scratch.appendingPathComponent("tiny.bpz").path
        #expect(try CLI.run(["compress", "fixtures/tiny-llama", "-o", packed]).status == 0)

        let plainInspect = try CLI.run(["inspect", "fixtures/tiny-llama", "--json"])
        let packedInspect = try CLI.run(["inspect", packed, "--json"])
        #expect(packedInspect.status == 0, "stderr: \(packedInspect.stderr)")
        let a = try CLI.jsonObject(plainInspect.stdout), b = try CLI.jsonObject(packedInspect.stdout)
        #expect((a["parameterCount"] as? NSNumber) == (b["parameterCount"] as? NSNumber))
        #expect((a["tensors"] as? [[String: Any]])?.count == (b["tensors"] as? [[String: Any]])?.count)

        let plainFit = try CLI.run(["fit", "fixtures/tiny-llama", "--gpu", "h100-sxm-80gb", "--json"])
        let packedFit = try CLI.run(["fit", packed, "--gpu", "h100-sxm-80gb", "--json"])
        #expect(packedFit.status == plainFit.status, "stderr: \(packedFit.stderr)")
        let fitA = try CLI.jsonObject(plainFit.stdout), fitB = try CLI.jsonObject(packedFit.stdout)
        #expect(fitA["memory"] != nil)
        #expect((fitA["memory"] as? NSDictionary) == (fitB["memory"] as? NSDictionary), "same memory plan")

        // Quantizing the compressed model writes exactly what quantizing the original writes.
        let fromPlain = scratch.appendingPathComponent("fp8-plain").path
        let fromPacked = scratch.appendingPathComponent("fp8-packed").path
        #expect(try CLI.run(["--to", "fp8", "fixtures/tiny-llama", "-o", fromPlain, "--no-check", "--quiet"]).status == 0)
        let quantized = try CLI.run(["--to", "fp8", packed, "-o", fromPacked, "--no-check", "--quiet"])
        #expect(quantized.status == 0, "stderr: \(quantized.stderr)")
        #expect(try files(fromPacked) == (try files(fromPlain)), "same output files, same bytes")

        // verify: compressed original against a compressed quantized output, same report as plain.
        let packedFP8 = scratch.appendingPathComponent("fp8.bpz").path
        #expect(try CLI.run(["compress", fromPlain, "-o", packedFP8]).status == 0)
        let plainVerify = try CLI.run(["verify", "fixtures/tiny-llama", fromPlain, "--json"])
        let packedVerify = try CLI.run(["verify", packed, packedFP8, "--json"])
        #expect(packedVerify.status == 0, "stderr: \(packedVerify.stderr)")
        let reportA = try CLI.jsonObject(plainVerify.stdout), reportB = try CLI.jsonObject(packedVerify.stdout)
        #expect((reportA["tensors"] as? [[String: Any]])?.count == (reportB["tensors"] as? [[String: Any]])?.count)
        let errorsA = (reportA["tensors"] as? [[String: Any]] ?? []).compactMap { ($0["relative_error"] as? NSNumber)?.doubleValue }
        let errorsB = (reportB["tensors"] as? [[String: Any]] ?? []).compactMap { ($0["relative_error"] as? NSNumber)?.doubleValue }
        #expect(!errorsA.isEmpty && errorsA == errorsB, "identical bytes in, identical metrics out")

        // A compressed GGUF quantizes to the same bytes as the plain GGUF.
        let packedGGUF = scratch.appendingPathComponent("tiny.gguf.bpz").path
        #expect(try CLI.run(["compress", "fixtures/tiny-llama.gguf", "-o", packedGGUF]).status == 0)
        let q8Plain = scratch.appendingPathComponent("a-q8_0.gguf").path, q8Packed = scratch.appendingPathComponent("b-q8_0.gguf").path
        #expect(try CLI.run(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", q8Plain, "--no-check", "--quiet"]).status == 0)
        #expect(try CLI.run(["--to", "q8_0", packedGGUF, "-o", q8Packed, "--no-check", "--quiet"]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: q8Packed)) == (try Data(contentsOf: URL(fileURLWithPath: q8Plain))))
    }

    @Test("a damaged compressed file exits 2 with one error naming the tensor")
    func damagedInput() throws {
        let scratch = try Fixtures.temporaryDirectory("cli-damaged")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let packed = scratch.appendingPathComponent("m.safetensors.bpz").path
        #expect(try CLI.run(["compress", "fixtures/tiny-llama/model-00002-of-00002.safetensors", "-o", packed]).status == 0)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: packed)))
        bytes[bytes.count * 3 / 4] ^= 0x10  // inside the chunk area, well before the index
        try Data(bytes).write(to: URL(fileURLWithPath: packed))
        let result = try CLI.run(["decompress", packed, "-o", scratch.appendingPathComponent("out.safetensors").path])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("checksum") && result.stderr.contains("tensor '"), "stderr: \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.appendingPathComponent("out.safetensors").path))
    }

    @Test("--to SCHEME --compress writes compressed weight files that decompress to the plain output")
    func quantizeCompressed() throws {
        let scratch = try Fixtures.temporaryDirectory("cli-quantize-compress")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let plain = scratch.appendingPathComponent("fp8").path, packed = scratch.appendingPathComponent("fp8-packed").path
        #expect(try CLI.run(["--to", "fp8", "fixtures/tiny-llama", "-o", plain, "--no-check", "--quiet"]).status == 0)
        let result = try CLI.run(["--to", "fp8", "fixtures/tiny-llama", "-o", packed, "--compress", "--no-check", "--quiet"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: packed).sorted()
        #expect(names.contains("model-00001-of-00002.safetensors.bpz") && !names.contains("model-00001-of-00002.safetensors"), "\(names)")
        let restored = scratch.appendingPathComponent("fp8-restored").path
        #expect(try CLI.run(["decompress", packed, "-o", restored]).status == 0)
        #expect(try files(restored) == (try files(plain)), "decompressed output equals the plain output")

        // A file output gets .bpz appended.
        let gguf = scratch.appendingPathComponent("q8.gguf").path
        #expect(try CLI.run(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", gguf, "--compress", "--no-check", "--quiet"]).status == 0)
        #expect(FileManager.default.fileExists(atPath: gguf + ".bpz") && !FileManager.default.fileExists(atPath: gguf))
        let inspect = try CLI.run(["inspect", gguf + ".bpz", "--json"])
        #expect(inspect.status == 0, "stderr: \(inspect.stderr)")
        #expect(try CLI.jsonObject(inspect.stdout)["format"] as? String == "gguf")
    }
}
