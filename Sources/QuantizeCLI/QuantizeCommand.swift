import ArgumentParser
import Foundation
import Formats
import Quantize

@main
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize LLM checkpoints to FP8, INT8 and INT4, check their accuracy, and tell which GPUs they fit.",
        version: "0.1.0",
        subcommands: [RunCommand.self, InspectCommand.self, VerifyCommand.self, EvalCommand.self, FitCommand.self, Compress.self, Decompress.self],
        defaultSubcommand: RunCommand.self
    )

    /// Runs the command; a failure prints one clear sentence on stderr and exits with the status
    /// ``ExitStatus`` maps it to (DESIGN.md's contract).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let outcome = ExitStatus.outcome(of: error, command: self)
            if let message = outcome.message { outcome.toStandardOutput ? print(message) : Format.note(message) }
            Foundation.exit(outcome.code)
        }
    }
}
