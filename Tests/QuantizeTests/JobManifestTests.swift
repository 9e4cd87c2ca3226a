import Foundation
import Testing
import TestSupport
@testable import Formats
@testable import Quantize

/// The integrity manifest every quantize run writes, the input checksums it computes in the same
/// pass, and the checks of inputs that carry checksums (formats/integrity.md).
@Suite("quantize job: integrity manifest and input checksums")
struct JobManifestTests {
    static func sha256(ofFileAt path: String) throws -> String {
        SHA256.hex([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    @Test("a directory output lists every file it holds with its SHA-256, and every input read")
    func directoryManifest() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("manifest-dir")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.path + "/out"
        var settings = QuantizeJob.Settings(scheme: Scheme(name: .int4), output: output)
        settings.options.search = true
        let job = try QuantizeJob(input: model, settings: settings)
        _ = try job.run()
        let manifest = try IntegrityManifest.read(output + "/" + IntegrityManifest.directoryFileName)
        let names = try FileManager.default.contentsOfDirectory(atPath: output).filter { $0 != IntegrityManifest.directoryFileName }.sorted()
        #expect(manifest.files.map(\.name).sorted() == names)
        for entry in manifest.files {
            #expect(entry.sha256 == (try Self.sha256(ofFileAt: output + "/" + entry.name)), "\(entry.name)")
        }
        #expect(manifest.scheme == "int4" && manifest.options["group_size"] == "128" && manifest.options["search"] == "true")
        #expect(manifest.toolVersion == IntegrityManifest.quantizeVersion)
        // Inputs: both shards (hashed from the job's reads), config.json, and the copied side files.
        for shard in job.checkpoint.files {
            let entry = try #require(manifest.inputs.first { $0.name == shard })
            #expect(entry.sha256 == (try Self.sha256(ofFileAt: shard)))
        }
        #expect(manifest.inputs.contains { $0.name.hasSuffix("/config.json") })
        #expect(manifest.inputs.contains { $0.name.hasSuffix("/tokenizer.json") })
        // Every byte of every shard (headers included) was hashed once, by the shards' digest threads.
        #expect(job.inputBytesHashed == job.checkpoint.fileByteCounts.reduce(0, +))
        #expect(try manifest.verify(relativeTo: output) == names.count)
    }

    @Test("a GGUF output's manifest sits beside it and lists it and its report; a mixture's out-of-order reads still hash the whole input")
    func fileManifest() throws {
        let (scratch, model) = try JobFixtures.tinyGGUFCopy("manifest-gguf")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.path + "/out.gguf"
        var settings = QuantizeJob.Settings(scheme: Scheme(name: .q4_K), output: output)
        settings.mixture = MixtureName.q4_K_M.descriptor
        let job = try QuantizeJob(input: model, settings: settings)
        _ = try job.run()
        let manifest = try IntegrityManifest.read(output + IntegrityManifest.fileSuffix)
        #expect(manifest.files.map(\.name) == ["out.gguf", "out.gguf.quantize-report.json"])
        #expect(manifest.files[0].sha256 == (try Self.sha256(ofFileAt: output)))
        #expect(manifest.scheme == "q4_k_m")
        #expect(manifest.inputs.map(\.name) == [model])
        #expect(manifest.inputs[0].sha256 == (try Self.sha256(ofFileAt: model)))
        // Every byte hashed exactly once, in file order, although the mixture reads its tensors in
        // llama-quantize's order.
        #expect(job.inputBytesHashed == job.checkpoint.fileByteCounts[0])
        #expect(try JobFixtures.listing(scratch) == ["out.gguf", "out.gguf.quantize-manifest.json", "out.gguf.quantize-report.json", "tiny-llama.gguf"])
    }

    @Test("an input whose sidecar records another checksum is refused before anything is written")
    func inputChecksumMismatchWritesNothing() throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("manifest-sidecar")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let shard = model + "/model-00002-of-00002.safetensors"
        let good = try Self.sha256(ofFileAt: shard)
        try Data("\(good)  model-00002-of-00002.safetensors\n".utf8).write(to: URL(fileURLWithPath: shard + ".sha256"))
        let output = scratch.path + "/out"
        _ = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8), output: output, check: nil)).run()
        try FileManager.default.removeItem(atPath: output)

        let wrong = String(good.reversed())
        try Data("\(wrong)  model-00002-of-00002.safetensors\n".utf8).write(to: URL(fileURLWithPath: shard + ".sha256"))
        let job = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8), output: output, check: nil))
        do {
            _ = try job.run()
            Issue.record("a run on an input that differs from its sidecar succeeded")
        } catch let error as FormatError {
            #expect(error.code == .checksumDiffers)
            #expect(error.path == shard)
            #expect(error.message.contains(good) && error.message.contains(wrong) && error.message.contains(".sha256"))
        }
        #expect(try JobFixtures.listing(scratch) == ["tiny-llama"])
    }

    @Test("an earlier output used as input is checked against its own manifest")
    func chainedOutputIsVerified() throws {
        let (scratch, model) = try JobFixtures.tinyGGUFCopy("manifest-chain")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let first = scratch.path + "/f16.gguf"
        _ = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .f16), output: first, check: nil)).run()
        let firstManifest = try IntegrityManifest.read(first + IntegrityManifest.fileSuffix)
        let second = scratch.path + "/q8.gguf"
        _ = try QuantizeJob(input: first, settings: .init(scheme: Scheme(name: .q8_0), output: second, check: nil)).run()
        let secondManifest = try IntegrityManifest.read(second + IntegrityManifest.fileSuffix)
        #expect(secondManifest.inputs.first?.sha256 == firstManifest.files.first?.sha256)
        try FileManager.default.removeItem(atPath: second)
        try FileManager.default.removeItem(atPath: second + IntegrityManifest.fileSuffix)

        // One byte of tensor data changed after the first output was written.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: first)))
        bytes[bytes.count - 3] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: first))
        do {
            _ = try QuantizeJob(input: first, settings: .init(scheme: Scheme(name: .q8_0), output: second, check: nil)).run()
            Issue.record("a changed input passed its manifest")
        } catch let error as FormatError {
            #expect(error.code == .checksumDiffers && error.path == first)
            #expect(error.message.contains("f16.gguf.quantize-manifest.json"))
        }
        #expect(!FileManager.default.fileExists(atPath: second))
    }

    @Test("a shard truncated while the run reads it is a truncated-input error or, when every byte was read first, a complete output",
          arguments: [0, 1, 2, 3])
    func truncatedDuringRun(_ variant: Int) throws {
        let (scratch, model) = try JobFixtures.tinyLlamaCopy("trunc-during-\(variant)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let reference = scratch.path + "/reference"
        _ = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8), output: reference, check: nil)).run()
        let output = scratch.path + "/out"
        let shard = model + "/model-00001-of-00002.safetensors"
        let size = try #require(try FileManager.default.attributesOfItem(atPath: shard)[.size] as? Int)
        let job = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: .fp8), output: output, check: nil))
        let done = DispatchSemaphore(value: 0)
        var started = false
        do {
            _ = try job.run { index, _, _, _, _ in
                guard !started, index == 1 + variant else { return }
                started = true
                if variant == 0 {
                    _ = truncate(shard, off_t(size / 3))   // before the tensor: the size check sees it
                    done.signal()
                } else {
                    // From another thread, at some moment while this and the next tensors are read
                    // (the guarded copy or the size check sees it).
                    DispatchQueue.global().asyncAfter(deadline: .now() + .microseconds(100 * variant)) {
                        _ = truncate(shard, off_t(size / 3))
                        done.signal()
                    }
                }
            }
            // Only possible when the cut came after the run had read the whole shard.
            #expect(variant != 0, "the run succeeded although its input was truncated before a tensor")
            for name in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
                #expect(try Data(contentsOf: URL(fileURLWithPath: output + "/" + name)) == (try Data(contentsOf: URL(fileURLWithPath: reference + "/" + name))))
            }
            try FileManager.default.removeItem(atPath: output)
        } catch let error as FormatError {
            #expect(error.code == .truncated, "\(error)")
            #expect(error.path == shard)
        }
        done.wait()
        #expect(try JobFixtures.listing(scratch) == ["reference", "tiny-llama"])
    }
}
