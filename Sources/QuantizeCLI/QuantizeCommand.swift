import ArgumentParser
import Formats

@main
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize LLM checkpoints to FP8, INT8 and INT4, check their accuracy, and tell which GPUs they fit.",
        version: "0.1.0",
        subcommands: [Inspect.self, FitCommand.self]
    )
}
