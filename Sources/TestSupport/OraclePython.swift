import Foundation

/// Runs the Python oracle scripts in tools/ with the repository's virtual environment.
public enum OraclePython {
    /// The failure of an oracle run: the venv is missing, or the script exited non-zero.
    public struct Failure: Error, CustomStringConvertible {
        /// What happened, with the script's stderr.
        public let description: String
    }

    /// `<repo>/.venv/bin/python`, which tools/setup.sh creates.
    public static var interpreter: String { Fixtures.repositoryRoot.appendingPathComponent(".venv/bin/python").path }

    /// Runs `tools/SCRIPT ARGUMENTS…` and returns its stdout.
    /// - Throws: ``Failure`` saying to run tools/setup.sh when the venv is missing, or with the
    ///   script's exit status and stderr when it fails.
    public static func run(_ script: String, _ arguments: [String]) throws -> Data {
        guard FileManager.default.isExecutableFile(atPath: interpreter) else {
            throw Failure(description: "the oracle Python \(interpreter) is missing; run tools/setup.sh to create .venv with numpy, safetensors, gguf and ml_dtypes")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: interpreter)
        process.arguments = [Fixtures.repositoryRoot.appendingPathComponent("tools/" + script).path] + arguments
        // stderr goes to a file, so a chatty script cannot block on a full pipe while we read stdout.
        let errorPath = FileManager.default.temporaryDirectory.appendingPathComponent("oracle-\(UUID().uuidString).stderr")
        _ = FileManager.default.createFile(atPath: errorPath.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorPath) }
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: errorPath)
        try process.run()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errorData = (try? Data(contentsOf: errorPath)) ?? Data()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "tools/\(script) exited \(process.terminationStatus): \(String(decoding: errorData, as: UTF8.self))")
        }
        return output
    }
}
