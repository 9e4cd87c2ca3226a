import ArgumentParser
import Foundation
import Formats
import Quantize

@main
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize LLM checkpoints to FP8, INT8 and INT4, check their accuracy, and tell which GPUs they fit.",
        version: IntegrityManifest.quantizeVersion,
        subcommands: [RunCommand.self, InspectCommand.self, VerifyCommand.self, EvalCommand.self, ImatrixCommand.self, FitCommand.self, Compress.self, Decompress.self],
        defaultSubcommand: RunCommand.self
    )

    /// Runs the command; a failure prints one clear sentence on stderr and exits with the status
    /// ``ExitStatus`` maps it to (DESIGN.md's contract).
    static func main() {
        do {
            var command = try parseAsRoot()
            if command is RunCommand || command is ImatrixCommand { Interrupts.install() }
            Interrupts.installBusErrorHandler()
            try command.run()
        } catch {
            let outcome = ExitStatus.outcome(of: error, command: self)
            if let message = outcome.message { outcome.toStandardOutput ? print(message) : Format.note(message) }
            Foundation.exit(outcome.code)
        }
    }
}

/// SIGINT and SIGTERM during a run: every open output transaction is discarded (its staging
/// directory removed), one line says what happened, and the process exits 130 or 143. Handled on
/// a dispatch queue (not in signal context), so removing files is safe; a commit in progress
/// finishes first (the transaction registry's lock), and the line then says the output is complete.
enum Interrupts {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    /// Installs the handlers (once, before the job starts).
    static func install() {
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global(qos: .userInitiated))
            source.setEventHandler {
                OutputTransaction.discardAll()
                let line = OutputTransaction.hasCommitted
                    ? "quantize: interrupted (\(name)) after the output was moved into place; it is complete\n"
                    : "quantize: interrupted (\(name)); nothing was written\n"
                FileHandle.standardError.write(line.data(using: .utf8)!)
                _exit(128 + number)
            }
            source.resume()
            sources.append(source)
        }
    }

    /// A bus error from reading a mapped input that another program truncated (outside the guarded
    /// copies of the quantize job: eval, imatrix, verify, compress, inspect): the staging folders
    /// are removed and one line names the file; exit status 2. Every command installs it.
    static func installBusErrorHandler() {
        let number = SIGUSR2
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global(qos: .userInitiated))
        source.setEventHandler {
            guard let address = MappedFile.lastBusErrorAddress else { return }  // a SIGUSR2 from elsewhere
            OutputTransaction.discardAll()
            let place = MappedFile.file(containing: address).map { "\($0.path) (at byte \($0.offset))" } ?? "an input file"
            let line = "error: \(place) became shorter while quantize was reading it: another program truncated or rewrote it. "
                + (OutputTransaction.hasCommitted ? "The output had already been moved into place." : "Nothing was written.")
                + " Let the download or copy finish, then run again"
            FileHandle.standardError.write(Data((DisplayText.sentence(line) + "\n").utf8))
            _exit(2)
        }
        source.resume()
        sources.append(source)
        MappedFile.handOnBusErrors(as: number)
    }
}
