import ArgumentParser
import Foundation
import Formats
import Model
import Quantize

/// Wiring of the GGUF → Hugging Face export into `quantize --to f32|f16|bf16 model.gguf -o DIR`:
/// a GGUF input whose output is not a `.gguf` file gets an ``ExportPlan`` from the Model module
/// (its refusals come from the GGUF header alone) and runs as an ``ExportJob``.
enum ExportInput {
    /// What a quantized export needs from the command line.
    struct Quantization {
        /// The scheme (`--to`, `--group-size`, `--asymmetric`, `--granularity`).
        var scheme: () throws -> Scheme
        var options: QuantizeOptions
        var selection: TensorSelection
        /// Options that apply only to a Hugging Face input (`--method gptq`, `--imatrix` …), by flag, when given.
        var inapplicable: [String]
    }

    /// The export job when `input` is a GGUF file and the output names a directory (anything not
    /// ending in `.gguf`): F32/F16/BF16, or a safetensors scheme (fp8, int8, int4 …) whose selected
    /// linear weights are quantized straight from the decoded GGUF (the rest as BF16); nil
    /// otherwise (the quantize job then runs or refuses as before).
    /// - Throws: ``QuantizeJobError`` for a GGUF the export does not carry, or for options that
    ///   need a Hugging Face input.
    static func job(input: String, target: QuantizeTarget, output: String?, force: Bool, maxShardByteCount: Int?,
                    threads: Int?, quantization: Quantization) throws -> ExportJob? {
        guard isGGUF(input) else { return nil }
        let dtype: DType
        var scheme: Scheme? = nil
        switch target {
        case .scheme(.f32): dtype = .f32
        case .scheme(.f16): dtype = .f16
        case .scheme(.bf16): dtype = .bf16
        case .scheme(let name) where name.descriptor.container == .safetensors:
            if let flag = quantization.inapplicable.first {
                throw QuantizeJobError(.unsupportedConversion,
                    "\(flag) runs on a Hugging Face input only; \(input) is a GGUF file. Export it first (quantize --to bf16 \(input) -o MODEL_DIR), then run quantize --to \(name.rawValue) \(flag) on the directory")
            }
            dtype = .bf16
            scheme = try quantization.scheme()
        default: return nil
        }
        // Without -o, a quantized export goes beside the input: model.gguf → model-int4/.
        let outputPath = output ?? scheme.map { scheme in
            let url = URL(fileURLWithPath: input).standardizedFileURL
            return url.deletingLastPathComponent().appendingPathComponent(url.deletingPathExtension().lastPathComponent + "-" + scheme.outputLabel).path
        }
        guard let outputPath, !isGGUFName(outputPath) else {
            if scheme != nil {
                throw QuantizeJobError(.unsupportedConversion, "\(target.name) writes a Hugging Face safetensors directory; name one with -o DIR (not a .gguf file)")
            }
            return nil
        }
        let checkpoint = try Checkpoint(path: input)
        guard let gguf = checkpoint.gguf else { return nil }
        let plan = try HuggingFaceExport.plan(for: gguf, shards: checkpoint.ggufShards)
        var trimmed = outputPath
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        var settings = ExportJob.Settings(dtype: dtype, output: trimmed, overwrite: force, threads: threads)
        if let maxShardByteCount { settings.maxShardByteCount = maxShardByteCount }
        settings.scheme = scheme
        settings.options = quantization.options
        settings.selection = quantization.selection
        return try ExportJob(input: input, plan: plan, settings: settings)
    }

    /// Runs `job` with progress and prints its summary (one JSON document with `json`); with
    /// `dryRun`, prints the tensor mapping and the files instead and writes nothing.
    static func run(_ job: ExportJob, json: Bool, quiet: Bool, dryRun: Bool, input: String, target: String) throws {
        if dryRun {
            var rows = [["gguf tensor", "hugging face tensor", "shape", "unpermute heads", "action", "shard"]]
            var owners: [String: ExportPlan.Tensor] = [:]
            for entry in job.plan.tensors { for output in job.fates[entry.name]?.outputs ?? [] { owners[output.name] = entry } }
            for shard in job.shards {
                for tensor in shard.tensors {
                    let entry = owners[tensor.name]
                    let fate = entry.flatMap { job.fates[$0.name] }
                    let action = fate.map { ($0.decision.quantize ? "quantize: " : "keep: ") + $0.decision.rule } ?? ""
                    rows.append([entry?.source ?? "?", tensor.name, "\(tensor.shape)", entry?.unpermuteHeads.map(String.init) ?? "", action, shard.fileName])
                }
            }
            print(Format.table(rows, rightAligned: []))
            print("\nplan: \(job.plan.tensors.count) tensors as \(target) in \(job.shards.count) shard(s), config.json, " + job.plan.files.map(\.name).joined(separator: ", ")
                  + "; \(Format.bytes(job.inputBytes)) → \(Format.bytes(job.outputBytes)); output \(job.settings.output); nothing written (--dry-run)")
            return
        }
        let progress = ProgressReporter(totalItems: job.plan.tensors.count, totalBytes: job.plan.tensors.count, enabled: !quiet && !json)
        let summary = try job.run { index, _, name in progress.update(item: index, bytes: index, label: name) }
        progress.finish()
        if json {
            func number(_ value: Int) -> JSONValue { .number(JSONNumber(value)) }
            let document: JSONValue = .object([
                JSONMember("input", .string(input)), JSONMember("output", .string(summary.output)),
                JSONMember("outputKind", .string("safetensors-directory")), JSONMember("scheme", .string(target)),
                JSONMember("export", .string("huggingface")),
                JSONMember("tensors", number(summary.tensorCount)), JSONMember("shards", .array(summary.shardNames.map(JSONValue.string))),
                JSONMember("inputBytes", number(summary.inputBytes)), JSONMember("outputBytes", number(summary.outputBytes)),
                JSONMember("seconds", .number(JSONNumber(summary.seconds))),
                JSONMember("peakResidentBytes", summary.peakResidentBytes.map(number) ?? .null),
                JSONMember("notes", .array(summary.notes.map(JSONValue.string))),
                JSONMember("runtimeLayout", .array(((try? TargetCheck.checks(path: summary.output, targets: [])) ?? []).map { $0.json() })),
            ])
            print(document.serializedString(.document))
            return
        }
        guard !quiet else { return }
        for note in summary.notes { Format.note("note: " + note) }
        if job.settings.scheme != nil {
            Format.note("note: the per-tensor accuracy check does not run on a GGUF export; measure the result with quantize eval")
        }
        var line = "exported \(summary.tensorCount) tensors to \(target) safetensors\(job.settings.scheme != nil ? " (\(job.quantizedCount) quantized, the rest BF16)" : "") (\(summary.shardNames.count) shard\(summary.shardNames.count == 1 ? "" : "s")); "
        line += "\(Format.bytes(summary.inputBytes)) → \(Format.bytes(summary.outputBytes)) in \(Format.duration(summary.seconds))"
        if let peak = summary.peakResidentBytes { line += ", peak RSS \(Format.bytes(peak))" }
        Format.note(line)
        Format.note("wrote \(summary.output) (config.json, generation_config.json, tokenizer files; transformers loads it with from_pretrained)")
        if job.settings.scheme != nil { _ = TargetCheck.afterWrite(path: summary.output) }
    }

    /// Whether `path` is a GGUF file (by its magic, compressed containers by their name).
    static func isGGUF(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { return false }
        if isGGUFName(path) { return true }
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    /// Whether a file name ends in `.gguf` (or a compressed `.gguf.bpz`).
    static func isGGUFName(_ path: String) -> Bool {
        let lower = path.lowercased()
        return lower.hasSuffix(".gguf") || lower.hasSuffix(".gguf." + CompressedFormat.fileExtension)
    }
}

/// `--split-max-size`: a size with llama.cpp's gguf-split units, `M` (10^6 bytes) or `G` (10^9 bytes).
struct SplitSize: ExpressibleByArgument {
    /// The size in bytes.
    var bytes: Int

    init?(argument: String) {
        guard let unit = argument.last, let count = Int(argument.dropLast()), count > 0 else { return nil }
        let scale: Int
        switch unit {
        case "M": scale = 1_000_000
        case "G": scale = 1_000_000_000
        default: return nil
        }
        let (product, overflow) = count.multipliedReportingOverflow(by: scale)
        guard !overflow else { return nil }
        bytes = product
    }

    static var defaultCompletionKind: CompletionKind { .default }
}
