import Foundation
import Testing

/// Runs the built `quantize` executable for end-to-end tests: the one runner every test target
/// uses (QuantizeCLITests, FitTests).
public enum CLI {
    /// What one run produced.
    public struct Result {
        /// The exit status.
        public var status: Int32
        /// Everything written to standard output.
        public var stdout: String
        /// Everything written to standard error.
        public var stderr: String
        /// Standard error's non-empty lines.
        public var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: true) }
    }

    /// Thrown after the failure is recorded, when the executable cannot be found.
    public struct BinaryMissing: Error {}

    /// Where the executable may be: `$QUANTIZE_BINARY`, next to the test bundle (Linux runs the
    /// `.xctest` executable from the build directory; macOS loads a bundle there), then
    /// `<repo>/.build/debug/quantize`.
    public static var candidates: [URL] {
        var result: [URL] = []
        if let explicit = ProcessInfo.processInfo.environment["QUANTIZE_BINARY"], !explicit.isEmpty {
            result.append(URL(fileURLWithPath: explicit))
        }
        var directories = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        if let executable = Bundle.main.executableURL { directories.append(executable.deletingLastPathComponent()) }
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            directories.append(bundle.bundleURL.deletingLastPathComponent())
        }
        if let first = CommandLine.arguments.first, first.contains("/") {
            directories.append(URL(fileURLWithPath: first).deletingLastPathComponent())
        }
        result += directories.map { $0.appendingPathComponent("quantize") }
        result.append(Fixtures.repositoryRoot.appendingPathComponent(".build/debug/quantize"))
        return result
    }

    /// The `quantize` executable; records an issue naming every place tried when it is missing.
    public static func binary(sourceLocation: SourceLocation = #_sourceLocation) throws -> URL {
        for candidate in candidates {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue,
               FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
        }
        Issue.record("the quantize executable was not found (tried \(candidates.map(\.path).joined(separator: ", "))); build it with `swift build` or set QUANTIZE_BINARY",
                     sourceLocation: sourceLocation)
        throw BinaryMissing()
    }

    /// Runs `quantize arguments…` in `directory` (default: the repository root), output captured
    /// through files so that large outputs cannot block on a pipe.
    public static func run(_ arguments: [String], in directory: URL = Fixtures.repositoryRoot,
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> Result {
        let executable = try binary(sourceLocation: sourceLocation)
        let capture = try Fixtures.temporaryDirectory("cli-capture")
        defer { try? FileManager.default.removeItem(at: capture) }
        let outURL = capture.appendingPathComponent("stdout"), errURL = capture.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
                      stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    /// Parses the whole of `text` as one JSON object.
    public static func jsonObject(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let value = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try #require(value as? [String: Any], "stdout is not one JSON object: \(text.prefix(200))", sourceLocation: sourceLocation)
    }

    /// A copy of fixtures/tiny-llama in a fresh scratch directory: (scratch, model path).
    public static func tinyLlamaCopy(_ label: String) throws -> (URL, String) {
        let scratch = try Fixtures.temporaryDirectory(label)
        let model = scratch.appendingPathComponent("tiny-llama").path
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-llama"), toPath: model)
        return (scratch, model)
    }

    /// Names in a directory, hidden ones included, sorted.
    public static func listing(_ directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
    }
}
