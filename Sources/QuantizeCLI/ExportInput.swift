import ArgumentParser
import Foundation
import Formats
import Model
import Quantize

/// Wiring of the GGUF → Hugging Face export into `quantize --to f32|f16|bf16 model.gguf -o DIR`:
/// a GGUF input whose output is not a `.gguf` file gets an ``ExportPlan`` from the Model module
/// (its refusals come from the GGUF header alone) and runs as an ``ExportJob``.
enum ExportInput {
    /// The export job when `input` is a GGUF file and the output names a directory (anything not
    /// ending in `.gguf`) for a 32/16-bit float type; nil otherwise (the quantize job then runs or
    /// refuses as before).
    /// - Throws: ``QuantizeJobError`` for a GGUF the export does not carry, or for fp8/int8/int4
    ///   asked of a GGUF (not built: the message says how to get there in two steps).
    static func job(input: String, target: QuantizeTarget, output: String?, force: Bool, maxShardByteCount: Int?,
                    threads: Int?) throws -> ExportJob? {
        guard isGGUF(input) else { return nil }
        let dtype: DType
        switch target {
        case .scheme(.f32): dtype = .f32
        case .scheme(.f16): dtype = .f16
        case .scheme(.bf16): dtype = .bf16
        case .scheme(let name) where name.descriptor.container == .safetensors:
            throw QuantizeJobError(.unsupportedConversion,
                "\(input) is a GGUF file; \(name.rawValue) straight from a GGUF is not built yet. Export it first (quantize --to bf16 \(input) -o MODEL_DIR), then quantize the directory (quantize --to \(name.rawValue) MODEL_DIR)")
        default: return nil
        }
        guard let output, !isGGUFName(output) else { return nil }
        guard let gguf = try Checkpoint(path: input).gguf else { return nil }
        let plan = try HuggingFaceExport.plan(for: gguf)
        var trimmed = output
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        var settings = ExportJob.Settings(dtype: dtype, output: trimmed, overwrite: force, threads: threads)
        if let maxShardByteCount { settings.maxShardByteCount = maxShardByteCount }
        return try ExportJob(input: input, plan: plan, settings: settings)
    }

    /// Runs `job` with progress and prints its summary (one JSON document with `json`); with
    /// `dryRun`, prints the tensor mapping and the files instead and writes nothing.
    static func run(_ job: ExportJob, json: Bool, quiet: Bool, dryRun: Bool, input: String, target: String) throws {
        if dryRun {
            var rows = [["gguf tensor", "hugging face tensor", "shape", "unpermute heads", "shard"]]
            for shard in job.shards {
                for tensor in shard.tensors {
                    let entry = job.plan.tensors.first { $0.name == tensor.name }
                    rows.append([entry?.source ?? "?", tensor.name, "\(tensor.shape)", entry?.unpermuteHeads.map(String.init) ?? "", shard.fileName])
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
            ])
            print(document.serializedString(.document))
            return
        }
        guard !quiet else { return }
        for note in summary.notes { Format.note("note: " + note) }
        var line = "exported \(summary.tensorCount) tensors to \(target) safetensors (\(summary.shardNames.count) shard\(summary.shardNames.count == 1 ? "" : "s")); "
        line += "\(Format.bytes(summary.inputBytes)) → \(Format.bytes(summary.outputBytes)) in \(Format.duration(summary.seconds))"
        if let peak = summary.peakResidentBytes { line += ", peak RSS \(Format.bytes(peak))" }
        Format.note(line)
        Format.note("wrote \(summary.output) (config.json, generation_config.json, tokenizer files; transformers loads it with from_pretrained)")
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
