import ArgumentParser
import Foundation
import Formats
import Quantize

extension RuntimeTarget: ExpressibleByArgument {
    /// `--target transformers|vllm|llama.cpp` (also `llamacpp`, `llama-cpp`).
    public init?(argument: String) {
        switch argument.lowercased() {
        case "transformers", "hf": self = .transformers
        case "vllm": self = .vllm
        case "llama.cpp", "llamacpp", "llama-cpp", "gguf": self = .llamaCpp
        default: return nil
        }
    }

    /// The spellings `--help` lists.
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

/// The runtime-layout checks of `quantize verify --target` and of every write.
enum TargetCheck {
    /// The checks of `path` for `targets` (or the natural targets of its format when empty).
    static func checks(path: String, targets: [RuntimeTarget]) throws -> [LayoutCheck] {
        let checkpoint = try Checkpoint(path: path)
        let chosen = targets.isEmpty ? RuntimeTarget.natural(for: checkpoint.format) : targets
        return chosen.map { RuntimeLayout.check(checkpoint, target: $0) }
    }

    /// The short report after a write: one verdict line per natural target, then its errors (a
    /// layout a runtime refuses is worth knowing before the upload, not after).
    static func afterWrite(path: String) -> [LayoutCheck] {
        guard let checks = try? checks(path: path, targets: []) else { return [] }
        for check in checks {
            let lines = check.textLines(limit: 3)
            Format.note("layout " + lines[0] + (check.findings.count > 3 ? " — `quantize verify --target \(check.target.rawValue) \(path)` lists all" : ""))
            for line in lines.dropFirst().dropLast() { Format.note(line) }
        }
        return checks
    }

    /// The result of loading a checkpoint with transformers in a Python process.
    struct PythonLoad {
        /// Whether `from_pretrained` and one forward pass succeeded with finite logits.
        var loaded: Bool
        /// The versions used, or the error.
        var detail: String
    }

    /// Loads `path` with `AutoModelForCausalLM` on the CPU in the checkpoint's own dtype (`dtype="auto"`,
    /// as a user loads it) and runs one forward pass, when a Python with
    /// torch, transformers and compressed-tensors is at hand (`QUANTIZE_PYTHON`, else `python3` on PATH);
    /// nil when none is.
    static func loadWithTransformers(path: String) -> PythonLoad? {
        let python = ProcessInfo.processInfo.environment["QUANTIZE_PYTHON"] ?? "python3"
        let script = """
        import json, sys, warnings
        warnings.filterwarnings("ignore")
        try:
            import torch, transformers, compressed_tensors
        except Exception as e:
            print(json.dumps({"missing": str(e)})); sys.exit(0)
        out = {"versions": f"transformers {transformers.__version__}, compressed-tensors {compressed_tensors.__version__}, torch {torch.__version__}"}
        try:
            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype="auto")
            model.eval()
            vocab = model.config.get_text_config().vocab_size
            ids = torch.tensor([[(7 * k + 1) % vocab for k in range(8)]])
            with torch.no_grad():
                logits = model(ids).logits
            out["loaded"] = bool(torch.isfinite(logits).all())
            if not out["loaded"]: out["error"] = "the forward pass gave non-finite logits"
        except Exception as e:
            out["loaded"] = False
            out["error"] = (type(e).__name__ + ": " + str(e)).strip().splitlines()[-1][:400]
        print(json.dumps(out))
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", script, path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard let line = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).last,
              let result = try? JSONValue.parse(String(line)), result["missing"] == nil else { return nil }
        let versions = result["versions"]?.string ?? "?"
        if result["loaded"]?.bool == true { return PythonLoad(loaded: true, detail: versions) }
        return PythonLoad(loaded: false, detail: (result["error"]?.string ?? "the loader failed") + " (\(versions))")
    }
}
