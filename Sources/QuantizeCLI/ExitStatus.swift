import ArgumentParser
import Fit
import Formats
import Quantize

/// The one mapping from a failure to what the user sees and the exit status (DESIGN.md's
/// contract): 0 success, 1 a failed check (accuracy over its limit, a model that does not fit),
/// 2 bad usage or bad input.
enum ExitStatus {
    /// The status to exit with after `error`, and the text for stderr (stdout for `--help`).
    struct Outcome {
        /// The exit status.
        var code: Int32
        /// What to print, nil for nothing.
        var message: String?
        /// Whether `message` goes to stdout (help and version text) instead of stderr.
        var toStandardOutput = false
    }

    /// What `error` means for the user.
    static func outcome(of error: Error, command: ParsableCommand.Type) -> Outcome {
        switch error {
        case let error as FormatError: return Outcome(code: 2, message: "error: \(error.description)")
        case let error as QuantizeError: return Outcome(code: 2, message: "error: \(error.description)")
        case let error as QuantizeJobError:
            return Outcome(code: error.code == .accuracyCheckFailed ? 1 : 2, message: "error: \(error.description)")
        case let error as FitError: return Outcome(code: 2, message: "error: \(error.description)")
        case let error as ExitCode: return Outcome(code: error.rawValue, message: nil)
        default:
            if String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") || error is ValidationError || error is CleanExit {
                let code = command.exitCode(for: error).rawValue
                let message = command.fullMessage(for: error)
                // The parser's usage status (EX_USAGE, 64) is our 2.
                return Outcome(code: code == 0 ? 0 : (code == 64 ? 2 : code), message: message.isEmpty ? nil : message,
                               toStandardOutput: code == 0)
            }
            return Outcome(code: 2, message: "error: \(error)")
        }
    }
}
