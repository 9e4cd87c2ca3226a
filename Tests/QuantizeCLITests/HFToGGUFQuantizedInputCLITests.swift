import Formats
import Foundation
import Testing
import TestSupport

/// `quantize --to TYPE DIR -o OUT.gguf` from a directory that is already quantized — compressed-tensors
/// fp8 / int8 int-quantized / int4 (symmetric g128, asymmetric g32) made by our own `--to`, and
/// DeepSeek-style block FP8 made by tools/make_fp8_block_checkpoint.py — against llama.cpp, as
/// recorded by `tools/hf_to_gguf_oracle.py quantized` in fixtures/hf-to-gguf/quantized-inputs.json:
/// the converter's `dequant_model` decodes such weights to FP32 (`weight.float() * scale`), and so do we.
@Suite("quantize --to TYPE from an fp8 / compressed-tensors directory")
struct HFToGGUFQuantizedInputCLITests {
    static func oracle() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hf-to-gguf/quantized-inputs.json")))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static var names: [String] {
        ((try? oracle())?["cases"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
    }

    /// The sha256 of every tensor's bytes of the GGUF at `path`, by name.
    static func tensorDigests(_ path: String) throws -> [String: String] {
        let written = try Checkpoint(path: path)
        var digests: [String: String] = [:]
        for tensor in written.tensors { digests[tensor.name] = SHA256.hex([UInt8](try written.readData(for: tensor))) }
        return digests
    }

    /// Makes the case's quantized directory as the oracle made it, and checks it is the same file.
    static func makeInput(_ entry: [String: Any], in scratch: URL) throws -> String {
        let name = try #require(entry["name"] as? String)
        let how = try #require(entry["made_with"] as? [String])
        let target = scratch.appendingPathComponent(name).path
        let source = Fixtures.path("trained-llama")
        if how.first == "quantize" {
            let result = try CLI.run(Array(how.dropFirst()) + [source, "-o", target, "--no-check", "--quiet"])
            #expect(result.status == 0, "\(result.stderr)")
        } else {
            _ = try OraclePython.run(how[0], [source, target] + how.dropFirst())
        }
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: target + "/model.safetensors")))
        #expect(SHA256.hex(bytes) == entry["input_sha256"] as? String,
                "\(name): the directory made here is not the one the oracle converted (\(how.joined(separator: " ")))")
        return target
    }

    @Test("q8_0 and q4_k_m are byte-identical to llama-quantize of the converter's F32 file; f32 has its tensors",
          arguments: names)
    func matchesLlamaCpp(name: String) throws {
        let doc = try Self.oracle()
        let entry = try #require((doc["cases"] as? [[String: Any]])?.first { $0["name"] as? String == name })
        let scratch = try Fixtures.temporaryDirectory("hf-to-gguf-quantized")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let model = try Self.makeInput(entry, in: scratch)
        for output in try #require(entry["outputs"] as? [[String: Any]]) {
            let type = try #require(output["to"] as? String)
            let path = scratch.appendingPathComponent("\(type).gguf").path
            let result = try CLI.run(["--to", type, model, "-o", path, "--no-check", "--quiet"])
            #expect(result.status == 0, "\(result.stderr)")
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(SHA256.hex(bytes) == output["sha256"] as? String,
                    "\(name) --to \(type) differs from llama-quantize \(output["llama_quantize"] ?? "") of the converter's F32 file")
        }
        // --to f32: the converter's decoded tensors, byte for byte (llama-quantize's order, so by name).
        let path = scratch.appendingPathComponent("f32.gguf").path
        let result = try CLI.run(["--to", "f32", model, "-o", path, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let ours = try Self.tensorDigests(path)
        let twin = try #require(entry["twin_tensors"] as? [[String: Any]])
        #expect(ours.count == twin.count)
        for tensor in twin {
            let tensorName = try #require(tensor["name"] as? String)
            #expect(ours[tensorName] == tensor["sha256"] as? String, "\(name): \(tensorName) differs from the converter's F32 decoding")
        }
    }

    @Test("int8 pack-quantized, which the converter refuses (it asserts group strategy), decodes to the int-quantized layout's tensors")
    func packedInt8() throws {
        let scratch = try Fixtures.temporaryDirectory("hf-to-gguf-int8")
        defer { try? FileManager.default.removeItem(at: scratch) }
        var digests: [[String: String]] = []
        for layout in ["pack-quantized", "int-quantized"] {
            let model = scratch.appendingPathComponent(layout).path, path = model + ".gguf"
            var result = try CLI.run(["--to", "int8", "--int8-layout", layout, Fixtures.path("trained-llama"), "-o", model, "--no-check", "--quiet"])
            #expect(result.status == 0, "\(result.stderr)")
            result = try CLI.run(["--to", "f32", model, "-o", path, "--no-check", "--quiet"])
            #expect(result.status == 0, "\(result.stderr)")
            digests.append(try Self.tensorDigests(path))
        }
        #expect(digests[0].count == 39)
        #expect(digests[0] == digests[1])
    }

    @Test("a stored part that is missing is a clear error naming it, and nothing is written")
    func damagedParts() throws {
        let scratch = try Fixtures.temporaryDirectory("hf-to-gguf-damaged")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let model = scratch.appendingPathComponent("int4").path
        var result = try CLI.run(["--to", "int4", Fixtures.path("trained-llama"), "-o", model, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        // Rename one weight_scale in the header (same length, so the file stays valid): the weight
        // it belongs to can no longer be decoded.
        let path = model + "/model.safetensors"
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        let key = Data("model.layers.1.mlp.up_proj.weight_scale\"".utf8)
        let range = try #require(data.range(of: key))
        data.replaceSubrange(range, with: Data("model.layers.1.mlp.up_proj.weight_scalX\"".utf8))
        try data.write(to: URL(fileURLWithPath: path))
        let output = scratch.appendingPathComponent("out.gguf").path
        result = try CLI.run(["--to", "q8_0", model, "-o", output, "--quiet"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("no model.layers.1.mlp.up_proj.weight_scale"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: output))
    }
}

/// `quantize --to TYPE fixtures/trained-llama --imatrix M`: the conversion with an importance matrix
/// (keyed by GGUF names) equals `llama-quantize --imatrix M` of the converter's F32 file, as
/// recorded by `tools/hf_to_gguf_oracle.py imatrix` in fixtures/hf-to-gguf/trained-llama-imatrix.json.
@Suite("quantize --to TYPE DIR --imatrix: the conversion with an importance matrix")
struct HFToGGUFImatrixCLITests {
    static func oracle() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hf-to-gguf/trained-llama-imatrix.json")))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static var types: [String] { ((try? oracle())?["outputs"] as? [[String: Any]] ?? []).compactMap { $0["to"] as? String } }

    @Test("the file is byte-identical to llama-quantize --imatrix of the converter's F32 file", arguments: types)
    func byteIdentical(type: String) throws {
        let doc = try Self.oracle()
        let entry = try #require((doc["outputs"] as? [[String: Any]])?.first { $0["to"] as? String == type })
        #expect(entry["differs_without"] as? Bool == true, "the matrix must change llama-quantize's \(type) file, or this proves nothing")
        let matrix = try #require(doc["imatrix"] as? String)
        let bytes = try [UInt8](Data(contentsOf: Fixtures.repositoryRoot.appendingPathComponent(matrix)))
        #expect(SHA256.hex(bytes) == doc["imatrix_sha256"] as? String, "\(matrix) changed; rerun tools/hf_to_gguf_oracle.py imatrix")
        let scratch = try Fixtures.temporaryDirectory("hf-to-gguf-imatrix")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out.gguf").path
        // The matrix is named as llama-quantize was given it: the path is recorded in quantize.imatrix.file.
        let result = try CLI.run(["--to", type, "fixtures/trained-llama", "-o", output, "--imatrix", matrix, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
        #expect(SHA256.hex(written) == entry["sha256"] as? String, "--to \(type) --imatrix differs from \(entry["llama_quantize"] ?? "")")
    }
}
