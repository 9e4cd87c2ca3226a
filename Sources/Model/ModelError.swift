import Formats

/// An error of the model module (forward pass, tokenizers, evaluation): what is wrong, where, and
/// what to do about it.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The checkpoint's architecture is not one the forward pass implements.
    case unsupportedArchitecture(path: String, architecture: String, supported: [String])
    /// A tensor the architecture needs is absent from the checkpoint.
    case missingTensor(path: String, tensor: String)
    /// A tensor's shape disagrees with the model configuration.
    case shapeMismatch(path: String, tensor: String, shape: [Int], expected: [Int])
    /// A configuration value is absent or out of range.
    case invalidConfiguration(path: String, key: String, reason: String)
    /// The tokenizer files are absent or of a kind this module does not read.
    case unsupportedTokenizer(path: String, reason: String)
    /// The input text or token list cannot be evaluated as asked.
    case invalidInput(reason: String)

    /// A sentence saying what is wrong, where, and what to do, with names longer than
    /// ``DisplayText/nameLimit`` shortened (a hostile file's names may be megabytes).
    public var description: String { DisplayText.shorteningLongWords(fullDescription) }

    private var fullDescription: String {
        switch self {
        case let .unsupportedArchitecture(path, architecture, supported):
            return "\(path): architecture '\(architecture)' is not supported by the forward pass; supported: \(supported.joined(separator: ", "))"
        case let .missingTensor(path, tensor):
            return "\(path): tensor '\(tensor)' is missing; the checkpoint is incomplete or of another architecture than its config says"
        case let .shapeMismatch(path, tensor, shape, expected):
            return "\(path): tensor '\(tensor)' has shape \(shape) but the configuration implies \(expected); check config.json against the weights"
        case let .invalidConfiguration(path, key, reason):
            return "\(path): configuration key '\(key)' \(reason)"
        case let .unsupportedTokenizer(path, reason):
            return "\(path): \(reason); pass --tokens FILE (a JSON array of token ids) to bypass tokenization"
        case let .invalidInput(reason):
            return reason
        }
    }
}
