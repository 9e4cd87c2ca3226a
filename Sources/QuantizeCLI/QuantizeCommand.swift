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
        subcommands: [QuantizeRun.self, Inspect.self, Verify.self, Eval.self, FitCommand.self],
        defaultSubcommand: QuantizeRun.self
    )

    /// Runs the command; errors about the user's input (a malformed file, an impossible request)
    /// print one clear sentence on stderr and exit 2, as DESIGN.md's contract says.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as FormatError {
            Format.note("error: \(error.description)")
            Foundation.exit(2)
        } catch let error as QuantizeError {
            Format.note("error: \(error.description)")
            Foundation.exit(2)
        } catch let error as QuantizeJobError {
            Format.note("error: \(error.description)")
            Foundation.exit(error.code == .accuracyCheckFailed ? 1 : 2)
        } catch {
            if let exitCode = error as? ExitCode { Foundation.exit(exitCode.rawValue) }
            if String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") || error is ValidationError || error is CleanExit {
                let code = exitCode(for: error).rawValue
                let message = fullMessage(for: error)
                if !message.isEmpty { (code == 0 ? print(message) : Format.note(message)) }
                Foundation.exit(code == 0 ? 0 : (code == 64 ? 2 : code))
            }
            Format.note("error: \(error)")
            Foundation.exit(2)
        }
    }
}
