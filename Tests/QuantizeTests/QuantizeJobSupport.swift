import Foundation
import Testing
import TestSupport
@testable import Formats
@testable import Quantize

/// Helpers for the quantize job tests: scratch copies of the shipped model, file snapshots, and
/// the Python oracle `tools/oracle_check_quantized.py`.
enum JobFixtures {
    /// The 14 linear weights of tiny-llama (Hugging Face names), which every scheme quantizes.
    static let hfLinearNames: Set<String> = Set((0..<2).flatMap { layer in
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"].map { "model.layers.\(layer).\($0).weight" }
    })

    /// The 14 linear weights of tiny-llama.gguf (llama.cpp names).
    static let ggufLinearNames: Set<String> = Set((0..<2).flatMap { layer in
        ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"].map { "blk.\(layer).\($0).weight" }
    })

    /// Copies `fixtures/tiny-llama/` into a fresh temporary directory as `<tmp>/tiny-llama`;
    /// returns (scratch directory, model directory). Tests never write into fixtures/.
    static func tinyLlamaCopy(_ label: String) throws -> (scratch: URL, model: String) {
        let scratch = try Fixtures.temporaryDirectory(label)
        let model = scratch.appendingPathComponent("tiny-llama")
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-llama"), toPath: model.path)
        return (scratch, model.path)
    }

    /// Copies `fixtures/tiny-llama.gguf` into a fresh temporary directory.
    static func tinyGGUFCopy(_ label: String) throws -> (scratch: URL, model: String) {
        let scratch = try Fixtures.temporaryDirectory(label)
        let model = scratch.appendingPathComponent("tiny-llama.gguf")
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-llama.gguf"), toPath: model.path)
        return (scratch, model.path)
    }

    /// Every regular file under `root` (relative path → bytes), hidden files included.
    static func snapshot(_ root: String) throws -> [String: Data] {
        var result: [String: Data] = [:]
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) else { return [:] }
        if !isDirectory.boolValue { return ["": try Data(contentsOf: URL(fileURLWithPath: root))] }
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            let path = root + "/" + relative
            var directory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &directory), !directory.boolValue {
                result[relative] = try Data(contentsOf: URL(fileURLWithPath: path))
            }
        }
        return result
    }

    /// Names in a directory, hidden ones included, sorted.
    static func listing(_ directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
    }

    /// Runs `tools/oracle_check_quantized.py ORIGINAL OUTPUT --scheme … extra` with `<repo>/.venv`
    /// and returns its JSON document; records an issue when the venv is missing or the script fails.
    static func oracle(original: String, output: String, scheme: String, extra: [String] = [],
                       sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
        let data: Data
        do {
            data = try OraclePython.run("oracle_check_quantized.py", [original, output, "--scheme", scheme] + extra)
        } catch let failure as OraclePython.Failure {
            Issue.record("\(failure)", sourceLocation: sourceLocation)
            throw OracleMissing()
        }
        return try JSONValue.parse([UInt8](data), path: "oracle output")
    }

    /// Expects the oracle document to report every check passed, naming the failed ones otherwise.
    static func expectOraclePassed(_ document: JSONValue, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let failed = document["failed"]?.array ?? []
        #expect(document["passed"]?.bool == true,
                "oracle checks failed for \(label): \(failed.prefix(5).map { $0.serializedString() })", sourceLocation: sourceLocation)
        #expect((document["checkCount"]?.int ?? 0) > 0, "the oracle ran no check for \(label)", sourceLocation: sourceLocation)
    }
}

/// Thrown after the failure is recorded, to stop a test whose oracle cannot run.
struct OracleMissing: Error {}

extension JSONValue {
    /// The object's keys in order (empty for non-objects).
    var memberKeys: [String] { object?.map(\.key) ?? [] }
}
