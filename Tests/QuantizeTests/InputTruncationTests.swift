import Foundation
import Testing
import Formats
import Quantize
import TestSupport

/// An input that shrinks while a run reads it (a download or copy still in progress, another
/// program rewriting it): reading mapped pages past the new end would raise SIGBUS, so the job
/// checks each input file's size before and after every tensor and fails with an error instead
/// (formats/reliability.md says what this does not cover).
@Suite("input truncated during a run")
struct InputTruncationTests {
    @Test("a shard truncated after planning is a truncated-input error, and nothing is written",
          arguments: ["safetensors", "gguf"])
    func truncatedShard(_ kind: String) throws {
        let (scratch, model) = kind == "gguf" ? try JobFixtures.tinyGGUFCopy("trunc-gguf") : try JobFixtures.tinyLlamaCopy("trunc-st")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.path + (kind == "gguf" ? "/out.gguf" : "/out")
        let job = try QuantizeJob(input: model, settings: .init(scheme: Scheme(name: kind == "gguf" ? .q8_0 : .fp8), output: output))
        let shard = kind == "gguf" ? model : model + "/model-00002-of-00002.safetensors"
        let size = try #require(try FileManager.default.attributesOfItem(atPath: shard)[.size] as? Int)
        #expect(truncate(shard, off_t(size / 2)) == 0)
        do {
            _ = try job.run()
            Issue.record("the run succeeded on a truncated input")
        } catch let error as FormatError {
            #expect(error.code == .truncated)
            #expect(error.path == shard)
            #expect(error.message == "the file shrank from \(size) to \(size / 2) bytes while it was being read (another program truncated or rewrote it)")
        }
        #expect(try JobFixtures.listing(scratch) == [URL(fileURLWithPath: model).lastPathComponent])
    }
}
