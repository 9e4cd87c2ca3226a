import Foundation
import Formats

/// A runtime whose loader a checkpoint's layout is checked against (`quantize verify --target`).
public enum RuntimeTarget: String, CaseIterable, Sendable, Hashable {
    /// Hugging Face transformers with compressed-tensors (`AutoModelForCausalLM.from_pretrained`).
    case transformers
    /// vLLM's compressed-tensors and fp8 loaders.
    case vllm
    /// llama.cpp's GGUF model loader (`llama_model_load`).
    case llamaCpp = "llama.cpp"

    /// The runtime versions whose loader source the rules were read from.
    public var rulesFrom: String {
        switch self {
        case .transformers:
            return "transformers 5.23–5.24 with compressed-tensors 0.20.0–0.20.1 (compressors/pack_quantized, quantization/lifecycle/initialize.py)"
        case .vllm:
            return "vLLM main of 2026 (quantization/compressed_tensors/compressed_tensors.py _get_scheme_from_parts, utils/marlin_utils.py) with compressed-tensors 0.20"
        case .llamaCpp:
            return "llama.cpp vendored by llama-cpp-python 0.3.36 (src/llama-model.cpp load_hparams, src/models/{llama,qwen2,qwen3}.cpp, src/llama-vocab.cpp, src/llama-model-loader.cpp)"
        }
    }

    /// The targets a checkpoint of this storage format is meant for: GGUF → llama.cpp, safetensors
    /// → vLLM and transformers.
    public static func natural(for format: Checkpoint.Format) -> [RuntimeTarget] {
        format == .gguf ? [.llamaCpp] : [.vllm, .transformers]
    }
}

/// One thing a runtime's loader would reject (error) or handle worse than expected (warning).
public struct LayoutFinding: Sendable, Hashable {
    /// How bad it is.
    public enum Severity: String, Sendable, Hashable {
        /// The loader refuses the checkpoint (or would compute garbage).
        case error
        /// The checkpoint loads, but not the way a user expects (a slower kernel, a cast).
        case warning
    }

    /// Error or warning.
    public var severity: Severity
    /// What it is about: a tensor, a module, a config key or a file (empty for the whole checkpoint).
    public var subject: String
    /// What is wrong and what to do, in one sentence or two.
    public var message: String

    /// Creates a finding.
    public init(_ severity: Severity, _ subject: String, _ message: String) {
        self.severity = severity
        self.subject = subject
        self.message = message
    }
}

/// The result of checking one checkpoint against one runtime's loader rules.
public struct LayoutCheck: Sendable {
    /// The runtime.
    public var target: RuntimeTarget
    /// The checkpoint's path.
    public var path: String
    /// What the loader will make of it (the scheme or architecture it picks), in words.
    public var summary: String
    /// Tensors (or quantized modules) whose layout was checked.
    public var checkedCount: Int
    /// Everything found, errors first.
    public var findings: [LayoutFinding]

    /// Whether the runtime's loader accepts it (no error).
    public var loads: Bool { !findings.contains { $0.severity == .error } }

    /// The findings of one severity.
    public func findings(_ severity: LayoutFinding.Severity) -> [LayoutFinding] { findings.filter { $0.severity == severity } }

    /// The check as JSON (`quantize verify --target … --json`).
    public func json() -> JSONValue {
        .object([
            JSONMember("target", .string(target.rawValue)),
            JSONMember("path", .string(path)),
            JSONMember("loads", .bool(loads)),
            JSONMember("summary", .string(summary)),
            JSONMember("checked", .number(JSONNumber(checkedCount))),
            JSONMember("rules_from", .string(target.rulesFrom)),
            JSONMember("findings", .array(findings.map {
                .object([JSONMember("severity", .string($0.severity.rawValue)), JSONMember("subject", .string($0.subject)),
                         JSONMember("message", .string($0.message))])
            })),
        ])
    }

    /// The check as text lines: a verdict, then up to `limit` findings (the rest counted).
    public func textLines(limit: Int = 12) -> [String] {
        let errors = findings(.error).count, warnings = findings(.warning).count
        var verdict = "\(target.rawValue): " + (loads ? "loads" : "DOES NOT LOAD") + " — \(summary)"
        if errors + warnings > 0 {
            verdict += " (\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s"))"
        }
        var lines = [verdict]
        for finding in findings.prefix(limit) {
            let subject = finding.subject.isEmpty ? "" : DisplayText.shortened(finding.subject, limit: 80) + ": "
            lines.append("  \(finding.severity.rawValue): \(subject)\(finding.message)")
        }
        if findings.count > limit { lines.append("  … and \(findings.count - limit) more (--json lists them all)") }
        lines.append("  rules from \(target.rulesFrom)")
        return lines
    }
}

/// Checks a checkpoint's layout — config keys and versions, tensor names, dtypes, packed shapes —
/// against what a runtime's loader expects, from the headers alone (no tensor data is read).
public enum RuntimeLayout {
    /// The check of `checkpoint` for `target`.
    public static func check(_ checkpoint: Checkpoint, target: RuntimeTarget) -> LayoutCheck {
        switch (target, checkpoint.format) {
        case (.llamaCpp, .gguf):
            return LlamaCppLayout.check(checkpoint)
        case (.llamaCpp, _):
            return LayoutCheck(target: target, path: checkpoint.path, summary: "not a GGUF file", checkedCount: 0, findings: [
                LayoutFinding(.error, "", "llama.cpp loads GGUF files only; convert this checkpoint with `quantize --to q8_0 \(checkpoint.path)` (or another GGUF type)")])
        case (_, .gguf):
            return LayoutCheck(target: target, path: checkpoint.path, summary: "a GGUF file", checkedCount: 0, findings: [
                LayoutFinding(.error, "", "\(target.rawValue) loads Hugging Face safetensors directories, not GGUF; write one with `quantize --to bf16 \(checkpoint.path) -o DIR/` (or fp8/int8/int4)")])
        default:
            return CompressedTensorsLayout.check(checkpoint, target: target)
        }
    }
}
