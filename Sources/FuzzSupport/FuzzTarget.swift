import Fit
import Formats
import Model
import Quantize

/// The parsers and decoders that coverage-guided fuzzing drives (fuzz/README.md), each with an
/// in-memory entry point: ``run(_:)`` feeds it one input exactly as the tool would meet it in a
/// file and returns what happened.
///
/// The same entry points serve the libFuzzer harness (`fuzz/Harness`, built with
/// `-sanitize=fuzzer,address` by tools/fuzz.sh) and the corpus replay test that CI runs without
/// a sanitizer (Tests/FuzzCorpusTests). An input must either be accepted or be refused with a
/// clear error (``FuzzOutcome/isClear``); anything else (a trap, a sanitizer report, a hang) is
/// a finding.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A safetensors file: header, validation, every tensor's data and its float conversion.
    case safetensors
    /// A GGUF file: header, metadata, tensor infos, data ranges, the checkpoint built on it
    /// (architecture, transformer configuration, quantization), its tokenizer and a decode of
    /// each tensor's first blocks.
    case gguf
    /// `model.safetensors.index.json`.
    case index
    /// A Hugging Face config.json, read by Formats (``ModelConfig``, ``ModelArchitecture``), Fit
    /// (``ModelShape``) and the forward pass (``TransformerConfiguration``).
    case config
    /// tokenizer.json (the `tokenizers` serialization), then a few texts encoded and decoded.
    case tokenizerJSON = "tokenizer-json"
    /// tokenizer.model (SentencePiece protobuf), then a few texts encoded and decoded.
    case sentencepiece
    /// A byte-plane zstd container (formats/compressed.md), its checksums fixed up so mutations
    /// reach the index and chunk decoders, then the original file read through it.
    case compressed
    /// Every ggml block decoder and the compressed-tensors layouts: the first byte picks the type,
    /// the second how the sizes are given (exact or wrong on purpose), the rest is the blocks.
    case decoders

    /// The file name the input is presented under (errors name it).
    public var inputName: String {
        switch self {
        case .safetensors: return "fuzz-input.safetensors"
        case .gguf: return "fuzz-input.gguf"
        case .index: return "model.safetensors.index.json"
        case .config: return "config.json"
        case .tokenizerJSON: return "tokenizer.json"
        case .sentencepiece: return "tokenizer.model"
        case .compressed: return "fuzz-input.bpz"
        case .decoders: return "fuzz-input.blocks"
        }
    }

    /// Runs one input through the target.
    public func run(_ bytes: UnsafeRawBufferPointer) -> FuzzOutcome {
        do {
            switch self {
            case .safetensors: return try FuzzEntries.safetensors(bytes, path: inputName)
            case .gguf: return try FuzzEntries.gguf(bytes, path: inputName)
            case .index: return try FuzzEntries.index(bytes, path: inputName)
            case .config: return try FuzzEntries.config(bytes, path: inputName)
            case .tokenizerJSON: return try FuzzEntries.tokenizerJSON(bytes, path: inputName)
            case .sentencepiece: return try FuzzEntries.sentencePiece(bytes, path: inputName)
            case .compressed: return try FuzzEntries.compressed(bytes, path: inputName)
            case .decoders: return try FuzzEntries.decoders(bytes)
            }
        } catch let error as UnclearError {
            return .violation(error.problem)
        } catch {
            return .rejected(String(describing: error))
        }
    }

    /// ``run(_:)`` on an array of bytes.
    public func run(_ bytes: [UInt8]) -> FuzzOutcome {
        bytes.withUnsafeBytes { run($0) }
    }
}

/// What one fuzz input led to.
public enum FuzzOutcome: Sendable, Equatable {
    /// The input was read; the text summarises what was found.
    case accepted(String)
    /// The input was refused with this error message.
    case rejected(String)
    /// The input was accepted or refused against the rules (a wrong size decoded, an error message
    /// that is empty or unbounded): a finding, with what was wrong.
    case violation(String)

    /// The longest error message counted as clear (bytes): names are shortened to
    /// ``DisplayText/nameLimit`` characters, so a message beyond this carries text it should not.
    public static let maximumMessageByteCount = 4096

    /// Whether this is an acceptance, or a refusal whose message is non-empty and bounded.
    public var isClear: Bool { problem == nil }

    /// Why the outcome is not clear, nil when it is.
    public var problem: String? {
        switch self {
        case .accepted: return nil
        case .violation(let what): return what
        case .rejected(let message):
            if message.isEmpty { return "the error message is empty" }
            if message.utf8.count > FuzzOutcome.maximumMessageByteCount {
                return "the error message is \(message.utf8.count) bytes (over \(FuzzOutcome.maximumMessageByteCount)): \(message.prefix(300))…"
            }
            return nil
        }
    }
}
