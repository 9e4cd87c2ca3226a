import Foundation
import Testing

/// The conversion fixtures of `tools/hf_to_gguf_oracle.py families` (fixtures/hf-to-gguf/<family>.json).
public enum ConversionFixtures {
    /// The families the oracle recorded.
    public static let families = ["llama3-bpe", "qwen2-bpe", "mistral-sliding", "qwen3-bpe"]

    /// The oracle document of `family`.
    public static func oracle(_ family: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hf-to-gguf/\(family).json")))
        guard let doc = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: "hf-to-gguf/\(family).json"])
        }
        return doc
    }

    /// The family's directory under `scratch`, assembled as the oracle assembled it (`made_of`:
    /// files, or `folder/*` for every file of a folder but expected-logits.json, later ones replacing
    /// earlier ones of the same name); returns its path.
    public static func assemble(_ family: String, in scratch: URL) throws -> String {
        let doc = try oracle(family)
        guard let name = doc["directory_name"] as? String, let parts = doc["made_of"] as? [String] else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: "hf-to-gguf/\(family).json"])
        }
        let target = scratch.appendingPathComponent(name)
        let fm = FileManager.default
        try fm.createDirectory(at: target, withIntermediateDirectories: true)
        func copy(_ path: String) throws {
            let to = target.appendingPathComponent(URL(fileURLWithPath: path).lastPathComponent).path
            if fm.fileExists(atPath: to) { try fm.removeItem(atPath: to) }
            try fm.copyItem(atPath: path, toPath: to)
        }
        for part in parts {
            let path = Fixtures.repositoryRoot.appendingPathComponent(part).path
            if part.hasSuffix("/*") {
                let folder = String(path.dropLast(2))
                for file in try fm.contentsOfDirectory(atPath: folder).sorted() where file != "expected-logits.json" { try copy(folder + "/" + file) }
            } else {
                try copy(path)
            }
        }
        return target.path
    }
}
