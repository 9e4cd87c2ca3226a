import ArgumentParser

extension QuantizeCommand {
    struct FitCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "fit", abstract: "Which GPU, multi-GPU or offload setup a model variant fits, and how fast it runs there.")
        func run() throws {}
    }
}
