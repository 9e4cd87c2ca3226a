import ArgumentParser
import Formats

extension QuantizeCommand {
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show what is in a checkpoint file or directory.")
        @Argument(help: "A .safetensors or .gguf file, a model directory, or a model.safetensors.index.json.")
        var path: String
        @Flag(help: "Print one JSON document on stdout.") var json = false
        func run() throws {}
    }
}
