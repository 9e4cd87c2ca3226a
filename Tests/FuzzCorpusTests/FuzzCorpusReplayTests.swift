import Foundation
import FuzzSupport
import Testing

/// Replays the saved fuzz corpus (fuzz/corpus/TARGET, minimised by tools/fuzz.sh) through the
/// same in-memory entry points the libFuzzer harness drives, without a sanitizer: every input
/// must be accepted or refused with a clear error, never trap.
@Suite("fuzz corpus replay")
struct FuzzCorpusReplayTests {
    /// fuzz/corpus, found from this file.
    static let corpusRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fuzz/corpus")

    /// Inputs replayed per target at most; a larger corpus is replayed through an evenly spaced,
    /// deterministic subset (sorted names, every k-th), so the suite stays fast in CI.
    static let maximumInputsPerTarget = 250
    /// Bytes replayed per target at most (same subsetting).
    static let maximumBytesPerTarget = 4 << 20

    /// The corpus files of `target`, sorted, subset as described above.
    static func inputs(of target: FuzzTarget) -> [URL] {
        let directory = corpusRoot.appendingPathComponent(target.rawValue)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { !$0.hasPrefix(".") }.sorted()
        let step = max(1, (names.count + maximumInputsPerTarget - 1) / maximumInputsPerTarget)
        var chosen: [URL] = []
        var bytes = 0
        for (position, name) in names.enumerated() where position % step == 0 {
            let url = directory.appendingPathComponent(name)
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
            if bytes + size > maximumBytesPerTarget { continue }
            bytes += size
            chosen.append(url)
        }
        return chosen
    }

    @Test("every saved input is accepted or refused with a clear error, and some are accepted", arguments: FuzzTarget.allCases)
    func replaysCorpus(_ target: FuzzTarget) throws {
        let files = FuzzCorpusReplayTests.inputs(of: target)
        #expect(!files.isEmpty, "fuzz/corpus/\(target.rawValue) is empty: run tools/fuzz.sh \(target.rawValue) SECONDS to seed it")
        var accepted = 0
        for file in files {
            let bytes = try [UInt8](Data(contentsOf: file))
            let outcome = target.run(bytes)
            #expect(outcome.isClear, "\(target.rawValue)/\(file.lastPathComponent): \(outcome.problem ?? "")")
            if case .accepted = outcome { accepted += 1 }
        }
        // A corpus that only ever fails the first check would replay nothing of the parser.
        #expect(accepted > 0, "no input of fuzz/corpus/\(target.rawValue) is accepted")
    }
}
