import CBLAS
import Dispatch
import Formats
import Foundation

/// One `quantize --to SCHEME INPUT` run: the plan (which tensor becomes what, where it goes) and
/// its execution, streaming tensor by tensor from the mapped input into atomically written outputs.
///
/// Memory: the input is mapped, never read whole; pages of tensors already done are released, so
/// resident memory follows the largest tensor, not the model: about 4 bytes per weight of the
/// tensor being quantized for its FP32 copy, plus its encoded output, plus (with the accuracy
/// check) 4 bytes per weight for the decoded copy.
public final class QuantizeJob {
    /// What a run is asked to do.
    public struct Settings: Sendable {
        /// The scheme to write.
        public var scheme: Scheme
        /// Kernel options (non-finite handling, scale dtype, clipping search).
        public var options: QuantizeOptions
        /// Which tensors are quantized.
        public var selection: TensorSelection
        /// The output path; nil derives one from the input (`model` → `model-fp8`).
        public var output: String?
        /// Whether an existing output may be replaced.
        public var overwrite: Bool
        /// The accuracy check; nil skips it (`--no-check`).
        public var check: CheckSettings?
        /// Worker threads for the kernels (`--threads`); nil uses every core. The output bytes do
        /// not depend on it: work is split into the same row bands whatever the count.
        public var threads: Int? = nil
        /// Input bytes from which a large tensor of a GGUF output is encoded piece by piece from
        /// the mapping (a quarter of this per piece) rather than from a copy of the whole tensor;
        /// the bytes written are the same either way.
        public var chunkedEncodingBytes = QuantizeJob.chunkedEncodingBytes
        /// Write the weight files as byte-plane zstd containers (formats/compressed.md, `--compress`):
        /// a file output gets `.bpz` appended, a directory's shards become `NAME.safetensors.bpz`.
        public var compressOutput = false
        /// Runs on the complete staged output (the staged model directory or file, with config.json
        /// and side files) before it is moved into place, and returns a JSON document written beside
        /// the accuracy report: `quantize-eval.json` inside a directory output, `OUT.quantize-eval.json`
        /// beside a file output. `--eval-text` evaluates the fresh output here; the job above Quantize
        /// that supplies it knows the forward pass, Quantize does not. A throw leaves nothing behind.
        public var evaluateStaged: (@Sendable (_ stagedPath: String, _ outputPath: String) throws -> [UInt8])?
        /// A llama.cpp mixture (`q4_k_m`, …) for a GGUF output: every tensor's type is chosen by
        /// ``MixturePlanner`` (llama-quantize's rule) instead of one scheme for all; ``scheme`` is
        /// then the mixture's default type. The output is written in llama-quantize's tensor order
        /// with the mixture's `general.file_type`.
        public var mixture: MixtureDescriptor? = nil
        /// `--tensor-type PATTERN=TYPE` overrides of a mixture's choices (first match wins).
        public var tensorTypes: [TensorTypeOverride] = []
        /// `--pure`: every tensor the mixture quantizes gets its default type (llama-quantize `--pure`).
        public var pure = false
        /// `--imatrix FILE`: the importance matrix GGUF encoders weight their fit with (llama-quantize
        /// `--imatrix`), and the path as given (written into `quantize.imatrix.file`).
        public var importance: (matrix: ImportanceMatrix, path: String)? = nil
        /// Tensors a calibrated method (`--method gptq`) encoded before the run, written instead of
        /// round-to-nearest; its record goes into the config (``CalibratedWeights``).
        public var calibrated: CalibratedWeights? = nil
        /// FP8 KV-cache scales (`--kv-cache fp8`) added to a safetensors output with
        /// `kv_cache_scheme` (``KeyValueCacheScales``); nil for none.
        public var keyValueCache: KeyValueCacheScales? = nil
        /// A Hugging Face checkpoint → GGUF conversion (built by the Model module): with it a
        /// safetensors input writes GGUF, the tensors and metadata are the plan's, and the output is
        /// what llama-quantize writes from llama.cpp's F32 conversion of the same directory.
        public var conversion: ConversionPlan? = nil
        /// A GGUF output split as llama.cpp's `gguf-split --split` writes it (``GGUFSplitSink``): at most
        /// this many bytes of tensor data per shard (`--split-max-size`), nil for one file.
        public var splitMaxBytes: Int? = nil
        /// A GGUF output split every this many tensors (`--split-max-tensors`), nil for no tensor limit.
        public var splitMaxTensors: Int? = nil

        /// Creates settings.
        public init(scheme: Scheme, options: QuantizeOptions = QuantizeOptions(), selection: TensorSelection = TensorSelection(),
                    output: String? = nil, overwrite: Bool = false, check: CheckSettings? = CheckSettings()) {
            self.scheme = scheme
            self.options = options
            self.selection = selection
            self.output = output
            self.overwrite = overwrite
            self.check = check
        }
    }

    /// How the accuracy check runs during quantization.
    public struct CheckSettings: Sendable {
        /// Where probe activations come from.
        public var activations: ProbeActivationSource
        /// The `--activations` file, for the report.
        public var activationsFile: String?
        /// Overrides the per-scheme threshold (`--max-error`).
        public var maxError: Double?
        /// Refuse to write the output when a tensor fails (`--strict`).
        public var strict: Bool
        /// Row sampling of large tensors, keeping the check's cost within a quarter of the run.
        public var accuracy: AccuracyOptions

        /// Creates check settings; large tensors are checked on about a million sampled weights.
        public init(activations: ProbeActivationSource = ProbeActivationSource(), activationsFile: String? = nil,
                    maxError: Double? = nil, strict: Bool = false,
                    accuracy: AccuracyOptions = AccuracyOptions(maxCheckedWeights: 1 << 20)) {
            self.activations = activations
            self.activationsFile = activationsFile
            self.maxError = maxError
            self.strict = strict
            self.accuracy = accuracy
        }
    }

    /// The container written.
    public enum OutputKind: String, Sendable {
        /// A Hugging Face model directory (config.json, shards, tokenizer files).
        case safetensorsDirectory = "safetensors-directory"
        /// A single .safetensors file.
        case safetensorsFile = "safetensors"
        /// A GGUF file.
        case gguf
    }

    /// One output tensor.
    public struct OutputTensor: Sendable, Hashable {
        /// Its name in the output.
        public var name: String
        /// Its storage type.
        public var type: TensorType
        /// Its row-major shape.
        public var shape: [Int]
        /// Its size in bytes.
        public var byteCount: Int
    }

    /// What happens to one input tensor.
    public struct PlannedTensor: Sendable {
        /// The input tensor.
        public var source: TensorRecord
        /// Quantize or keep, and why.
        public var decision: TensorSelection.Decision
        /// What it becomes (itself when kept).
        public var outputs: [OutputTensor]
        /// Rows and columns of the matrix it is quantized as (3-D experts fold their leading dims).
        public var matrix: (rows: Int, columns: Int)?
        /// The scheme it is quantized with: the run's scheme, or its mixture's choice for this tensor.
        public var scheme: Scheme
        /// The importance-matrix values its encoder weights with (``TensorQuantizer/importance``),
        /// nil without `--imatrix` or without an entry for this tensor.
        public var importance: [Float]? = nil
        /// Rows per importance slice (the rows of one expert of a 3-D expert tensor).
        public var rowsPerExpert: Int? = nil
        /// Its entry of ``Settings/conversion`` (GGUF name, Q/K permutation), nil outside a conversion.
        public var conversion: ConversionPlan.Tensor? = nil
        /// Output bytes.
        public var outputByteCount: Int { outputs.reduce(0) { $0 + $1.byteCount } }
    }

    /// What a finished run reports.
    public struct Summary: Sendable {
        /// The output path.
        public var output: String
        /// The container written.
        public var kind: OutputKind
        /// Tensors quantized.
        public var quantizedCount: Int
        /// Tensors copied unchanged.
        public var keptCount: Int
        /// Input tensor bytes.
        public var inputBytes: Int
        /// Output tensor bytes.
        public var outputBytes: Int
        /// Wall time of the run.
        public var seconds: Double
        /// Seconds spent in the accuracy check.
        public var checkSeconds: Double
        /// Peak resident memory of the process, where known.
        public var peakResidentBytes: Int?
        /// The accuracy report, when the check ran.
        public var report: AccuracyReport?
        /// Where the report's JSON was written.
        public var reportPath: String?
        /// What the run cleaned up or skipped (leftovers of interrupted runs, side-file links it
        /// did not follow), as sentences for the user.
        public var notes: [String] = []
        /// Where the document of ``Settings/evaluateStaged`` was written, when it ran.
        public var evaluationPath: String? = nil
    }

    /// Progress of a run: tensor index (1-based), count, input bytes done, total, and the tensor's name.
    public typealias ProgressHandler = (_ index: Int, _ count: Int, _ bytesDone: Int, _ bytesTotal: Int, _ name: String) -> Void

    /// FP32 working memory reused from tensor to tensor (fresh pages for every tensor cost more
    /// kernel time in page faults than the quantization itself).
    private let scratch = ScratchBuffer()
    /// Encoded output parts, reused from tensor to tensor for the same reason.
    private let outputBuffers = ByteBuffers()
    /// The guarded copy of each tensor's input bytes and the input digests (QuantizeJob+Integrity.swift).
    let integrity = JobIntegrity()

    /// The input.
    public let checkpoint: Checkpoint
    /// The settings.
    public let settings: Settings
    /// The output path (given or derived).
    public let outputPath: String
    /// The container written.
    public let outputKind: OutputKind
    /// Every input tensor with its fate, in the output's order: the input's, or llama-quantize's
    /// (by layer, then name) for a mixture.
    public let tensors: [PlannedTensor]

    /// Opens the input and makes the plan; nothing is written.
    /// - Throws: ``FormatError`` for unreadable input, ``QuantizeJobError`` for impossible requests
    ///   (conversion between containers, existing output without `overwrite`, patterns that match
    ///   nothing, nothing to quantize), ``QuantizeError`` for unsupported scheme options.
    public init(input: String, settings: Settings) throws {
        let checkpoint = try Checkpoint(path: input)
        self.checkpoint = checkpoint
        self.settings = settings
        let scheme = settings.scheme
        let writesGGUF = scheme.descriptor.container == .gguf
        switch (checkpoint.format, writesGGUF) {
        case (.gguf, true):
            outputKind = .gguf
        case (.safetensors, false):
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory)
            outputKind = isDirectory.boolValue || input.hasSuffix(".index.json") ? .safetensorsDirectory : .safetensorsFile
        case (.safetensors, true) where settings.conversion != nil:
            outputKind = .gguf
        case (.safetensors, true):
            throw QuantizeJobError(.unsupportedConversion,
                "\(input) is a Hugging Face safetensors checkpoint, and \(scheme.name.rawValue) is a GGUF type: writing GGUF from it needs the model conversion (llama.cpp tensor names, the Q/K permutation, tokenizer metadata), which quantize does not do yet. Convert it with llama.cpp's convert_hf_to_gguf.py (--outtype f16) and run quantize on the .gguf, or choose fp8, int8 or int4 for a safetensors output")
        case (.gguf, false):
            throw QuantizeJobError(.unsupportedConversion,
                "\(input) is a GGUF file, and \(scheme.name.rawValue) writes a Hugging Face safetensors layout for vLLM/transformers, which needs the original model's tensor names and config.json. Choose a GGUF type (q8_0, q4_k, q6_k, …) or start from the Hugging Face checkpoint")
        }
        outputPath = CompressedContainer.outputName(settings.output ?? QuantizeJob.defaultOutputPath(input: input, kind: outputKind, scheme: scheme,
                                                                                                                  label: settings.mixture?.name.rawValue)
                                                        + (settings.conversion != nil ? ".gguf" : ""),
                                                    compressed: settings.compressOutput && outputKind != .safetensorsDirectory)
        try QuantizeJob.checkOutputSpares(input: input, checkpoint: checkpoint, kind: outputKind, output: outputPath)
        try QuantizeJob.checkOutputName(outputPath, kind: outputKind, compressed: settings.compressOutput)
        if FileManager.default.fileExists(atPath: outputPath) {
            if !settings.overwrite {
                throw QuantizeJobError(.outputExists, "the output \(outputPath) already exists; pass --force to replace it, or name another output with -o")
            }
            try QuantizeJob.checkReplaceable(outputPath, kind: outputKind, checkpoint: checkpoint)
        }

        var selection = settings.selection
        selection.allowsStackedExperts = outputKind == .gguf
        let unmatched = selection.unmatchedPatterns(in: checkpoint.tensors.map(\.name))
        if !unmatched.isEmpty {
            let examples = checkpoint.tensors.prefix(3).map { "'\($0.name)'" }.joined(separator: ", ")
            throw QuantizeJobError(.patternMatchedNothing,
                "\(unmatched.map(\.label).joined(separator: ", ")) matched no tensor of \(input); tensor names look like \(examples). Patterns are globs on whole names (`*` matches dots too); check them with --dry-run")
        }

        if let importance = settings.importance {
            guard outputKind == .gguf else {
                throw QuantizeJobError(.unsupportedConversion, "--imatrix weights the GGUF quantizers (llama-quantize --imatrix); \(scheme.name.rawValue) writes safetensors and does not use an importance matrix")
            }
            try importance.matrix.validateForQuantization()
        }
        if let scales = settings.keyValueCache {
            try QuantizeJob.checkKeyValueCache(scales, kind: outputKind, checkpoint: checkpoint, scheme: scheme)
        }
        if let conversion = settings.conversion {
            tensors = try QuantizeJob.planConversion(conversion, checkpoint: checkpoint, settings: settings, selection: selection, input: input)
            return
        }
        if let mixture = settings.mixture {
            tensors = try QuantizeJob.planMixture(mixture, checkpoint: checkpoint, settings: settings, selection: selection, input: input)
            return
        }
        if !settings.tensorTypes.isEmpty || settings.pure {
            throw QuantizeJobError(.unsupportedConversion, "--tensor-type and --pure apply to llama.cpp mixtures (q2_k, q3_k_s … q6_k, iq4_xs); \(scheme.name.rawValue) writes one type for every selected tensor")
        }

        var planned: [PlannedTensor] = []
        for tensor in checkpoint.tensors {
            var decision = selection.decide(name: tensor.name, type: tensor.type, shape: tensor.shape)
            var outputs = [OutputTensor(name: tensor.name, type: tensor.type, shape: tensor.shape, byteCount: tensor.byteCount)]
            var matrix: (rows: Int, columns: Int)? = nil
            var plannedImportance: ([Float]?, Int?) = (nil, nil)
            if decision.quantize {
                let columns = tensor.shape.last ?? 0
                let rows = columns > 0 ? tensor.elementCount / columns : 0
                let (importance, rowsPerExpert) = try QuantizeJob.importance(settings.importance?.matrix, name: tensor.name, shape: tensor.shape, scheme: scheme)
                switch Result(catching: { () throws(QuantizeError) in
                    try TensorQuantizer(scheme: scheme, rows: rows, columns: columns, tensorName: tensor.name, options: settings.options,
                                        importance: importance, rowsPerExpert: rowsPerExpert)
                }) {
                case .success(let quantizer):
                    matrix = (rows, columns)
                    plannedImportance = (importance, rowsPerExpert)
                    outputs = QuantizeJob.outputs(of: quantizer, name: tensor.name, shape: tensor.shape)
                case .failure(.shapeNotDivisible(_, _, let blockSize)):
                    decision = TensorSelection.Decision(quantize: false,
                        rule: "rows of \(columns) are not a multiple of the \(blockSize)-element block (kept, as llama.cpp does)")
                case .failure(let error):
                    throw error
                }
            }
            planned.append(PlannedTensor(source: tensor, decision: decision, outputs: outputs, matrix: matrix, scheme: scheme,
                                         importance: plannedImportance.0, rowsPerExpert: plannedImportance.1))
        }
        tensors = planned
        if !planned.contains(where: { $0.decision.quantize }) {
            throw QuantizeJobError(.nothingToQuantize,
                "no tensor of \(input) would be quantized (\(planned.count) tensors, none a 2-D floating-point linear weight that the rules select); see --dry-run for each tensor's rule, and use --only to name tensors explicitly")
        }
    }

    /// The output tensors `quantizer` writes for the weight `name` of row-major `shape`: the weight
    /// itself at its shape (GGUF blocks, packed codes) and its parts (scales, zero points) at theirs.
    static func outputs(of quantizer: TensorQuantizer, name: String, shape: [Int]) -> [OutputTensor] {
        quantizer.layouts.map { part in
            OutputTensor(name: QuantizedTensor.tensorName(weightName: name, suffix: part.suffix), type: part.type,
                         shape: part.suffix.isEmpty ? shape : part.shape, byteCount: part.byteCount)
        }
    }

    /// Refuses a file output whose name does not end in its container's extension (`.gguf`,
    /// `.safetensors`): loaders pick the format by it, and so does the check of what was written.
    /// A compressed output (`--compress`) is checked without its container extension.
    static func checkOutputName(_ output: String, kind: OutputKind, compressed: Bool = false) throws {
        let container = "." + CompressedFormat.fileExtension
        let output = compressed && output.hasSuffix(container) ? String(output.dropLast(container.count)) : output
        let ext: String
        switch kind {
        case .safetensorsDirectory: return
        case .safetensorsFile: ext = ".safetensors"
        case .gguf: ext = ".gguf"
        }
        guard output.lowercased().hasSuffix(ext) else {
            let name = DisplayText.shortened(URL(fileURLWithPath: output).lastPathComponent)
            throw QuantizeJobError(.invalidOutputName,
                "the output \(name) is a \(kind == .gguf ? "GGUF" : "safetensors") file but its name does not end in \(ext); llama.cpp, transformers and quantize itself recognise the format by it. Name it with -o NAME\(ext)")
        }
    }

    /// With `--force`, refuses to replace an existing output that does not look like one of ours:
    /// a directory where a file goes (or the reverse), or a directory holding anything quantize
    /// does not write (weights, indexes, config.json, its report, the input's side files) — the
    /// user's own files would be deleted with it.
    static func checkReplaceable(_ output: String, kind: OutputKind, checkpoint: Checkpoint) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        _ = fm.fileExists(atPath: output, isDirectory: &isDirectory)
        let wantsDirectory = kind == .safetensorsDirectory
        if isDirectory.boolValue != wantsDirectory {
            throw QuantizeJobError(.outputNotOurs,
                "--force would replace \(output), which is a \(isDirectory.boolValue ? "directory" : "file"), with a \(wantsDirectory ? "model directory" : "file"); quantize only replaces its own outputs. Remove it yourself or name another output with -o")
        }
        guard wantsDirectory else { return }
        let sideFiles = Set((try? fm.contentsOfDirectory(atPath: checkpoint.directory)) ?? [])
        let entries = (try? fm.contentsOfDirectory(atPath: output)) ?? []
        let foreign = entries.sorted().filter { name in
            var entryIsDirectory: ObjCBool = false
            _ = fm.fileExists(atPath: output + "/" + name, isDirectory: &entryIsDirectory)
            if entryIsDirectory.boolValue || name.hasPrefix(".") { return true }
            if name.hasSuffix(".safetensors") || name.hasSuffix(".safetensors.\(CompressedFormat.fileExtension)") || name.hasSuffix(".safetensors.index.json") { return false }
            if name == "config.json" || name == "quantize-report.json" || name == "quantize-eval.json" || name == IntegrityManifest.directoryFileName { return false }
            return !sideFiles.contains(name)
        }
        if !foreign.isEmpty {
            let shown = foreign.prefix(3).map { "'\(DisplayText.shortened($0))'" }.joined(separator: ", ") + (foreign.count > 3 ? " and \(foreign.count - 3) more" : "")
            throw QuantizeJobError(.outputNotOurs,
                "--force would replace the directory \(output), which holds \(shown) that quantize did not write (nor the input has); replacing it would delete them. Move them out, or name another output with -o")
        }
    }

    /// Refuses an output that would overwrite or modify the input: the input itself, any of its
    /// files, a directory that contains the input (replacing it would delete the input), or — for
    /// a model directory — anything inside that directory.
    static func checkOutputSpares(input: String, checkpoint: Checkpoint, kind: OutputKind, output: String) throws {
        func resolved(_ path: String) -> String {
            // Resolve what exists (symlinks included), then append the part that does not exist yet.
            var url = URL(fileURLWithPath: path).standardizedFileURL
            var tail: [String] = []
            while !FileManager.default.fileExists(atPath: url.path), url.pathComponents.count > 1 {
                tail.insert(url.lastPathComponent, at: 0)
                url.deleteLastPathComponent()
            }
            var result = url.resolvingSymlinksInPath()
            for component in tail { result.appendPathComponent(component) }
            return result.path
        }
        func isSameOrInside(_ path: String, _ directory: String) -> Bool {
            path == directory || path.hasPrefix(directory.hasSuffix("/") ? directory : directory + "/")
        }
        let target = resolved(output)
        var protected = checkpoint.files.map(resolved) + [resolved(input)]
        if kind == .safetensorsDirectory { protected.append(resolved(checkpoint.directory)) }
        for path in protected where isSameOrInside(path, target) {
            throw QuantizeJobError(.outputIsInput,
                "the output \(output) is the input or contains it (\(path)); writing there would replace the input, and quantize never modifies its input. Name another output with -o")
        }
        if kind == .safetensorsDirectory, isSameOrInside(target, resolved(checkpoint.directory)) {
            throw QuantizeJobError(.outputIsInput,
                "the output \(output) is inside the input model directory \(checkpoint.directory); quantize never modifies its input. Name an output outside it with -o")
        }
    }

    /// The default output: a sibling of the input named after the scheme (or `label`: a mixture's name).
    public static func defaultOutputPath(input: String, kind: OutputKind, scheme: Scheme, label: String? = nil) -> String {
        let label = label ?? scheme.outputLabel
        var url = URL(fileURLWithPath: CompressedFormat.originalName(input))
        if input.hasSuffix(".index.json") { url = url.deletingLastPathComponent() }
        let trimmed = url.standardizedFileURL
        switch kind {
        case .safetensorsDirectory:
            return trimmed.deletingLastPathComponent().appendingPathComponent(trimmed.lastPathComponent + "-" + label).path
        case .safetensorsFile, .gguf:
            let ext = trimmed.pathExtension
            let stem = trimmed.deletingPathExtension().lastPathComponent
            let name = ext.isEmpty ? "\(stem)-\(label)" : "\(stem)-\(label).\(ext)"
            return trimmed.deletingLastPathComponent().appendingPathComponent(name).path
        }
    }

    /// Input bytes of all tensors.
    public var inputBytes: Int { tensors.reduce(0) { $0 + $1.source.byteCount } }
    /// Output bytes of all tensors.
    public var outputBytes: Int { tensors.reduce(0) { $0 + $1.outputByteCount } }

    // MARK: - Running

    /// Runs the plan: streams every tensor into the output's sink (staged beside the output),
    /// checks what was written, then commits it into place.
    /// - Throws: ``FormatError``, ``QuantizeError`` (non-finite weights, scale overflow),
    ///   ``QuantizeJobError`` (`outputCheckFailed`, `accuracyCheckFailed` with `strict`). Nothing is
    ///   left at the output path when it throws.
    public func run(progress: ProgressHandler? = nil) throws -> Summary {
        let start = Date()
        let sink = try makeSink()
        do {
            return try run(into: sink, start: start, progress: progress)
        } catch let error as FormatError {
            throw sink.transaction.publicError(error)
        } catch let error as QuantizeJobError {
            throw QuantizeJobError(error.code, sink.transaction.publicText(error.message))
        }
    }

    private func run(into sink: CheckpointSink, start: Date, progress: ProgressHandler?) throws -> Summary {
        // The lock is held from here: nothing else writes this output until commit or discard.
        sink.transaction.replacesExisting = settings.overwrite
        var notes = sink.transaction.notes
        let companionReport = outputPath + ".quantize-report.json"
        if outputKind != .safetensorsDirectory, let note = sink.transaction.removeOrphanedCompanion(companionReport) {
            notes.append(note)
        }
        if outputKind != .safetensorsDirectory, let note = sink.transaction.removeOrphanedCompanion(outputPath + ".quantize-eval.json") {
            notes.append(note)
        }
        try startInputDigests()

        var entries: [AccuracyReport.Entry] = []
        var checkSeconds = 0.0
        var done = 0
        var index = 0
        let total = inputBytes
        for planned in writeOrder {
            index += 1
            progress?(index, tensors.count, done, total, planned.source.name)
            let file = checkpoint.mappedFile(planned.source.fileIndex)
            let range = planned.source.fileOffset..<(planned.source.fileOffset + planned.source.byteCount)
            try file.checkIntact(range)
            if let result = try process(planned, write: { output, bytes in try sink.write(bytes, for: output.name) }) {
                entries.append(result.entry)
                checkSeconds += result.checkSeconds
            }
            try file.checkIntact(range)
            done += planned.source.byteCount
            file.advise(range, willNeed: false)
            progress?(index, tensors.count, done, total, planned.source.name)
        }
        try writeKeyValueCacheScales(write: { output, bytes in try sink.write(bytes, for: output.name) })
        // Every input byte has been hashed once; a mismatch with a recorded checksum stops here.
        var inputs = try finishInputDigests() + smallInputEntries()
        let stagedFiles = try sink.finishTensors()

        try OutputVerifier.verify(files: stagedFiles, plan: tensors, checkpoint: checkpoint)
        if settings.compressOutput {
            // The verified staged files, compressed before the output is moved into place.
            for path in stagedFiles { _ = try CompressedContainer.compressStaged(path, appendExtension: outputKind == .safetensorsDirectory) }
        }

        var report: AccuracyReport? = nil
        var reportPath: String? = nil
        if let check = settings.check {
            let source = check.activations
            let built = AccuracyReport(tensors: entries, probe: AccuracyReport.Probe(source: source, file: check.activationsFile))
            report = built
            if check.strict && !built.passed {
                throw QuantizeJobError(.accuracyCheckFailed,
                    "\(built.failedCount) tensor(s) exceed the accuracy threshold (worst: \(built.worstTensor ?? "?")); with --strict nothing was written. Choose a scheme with more bits, skip the worst tensors with --skip, or raise the limit with --max-error")
            }
        }

        if let directory = sink as? SafetensorsDirectorySink {
            notes += try directory.copySideFiles(from: checkpoint.directory)
            inputs += directory.copiedSideFiles
            if case .object(var members)? = checkpoint.config, let config = try quantizationConfig() {
                members.removeAll { $0.key == "quantization_config" || $0.key == CalibratedWeights.configKey }
                members.append(JSONMember("quantization_config", config))
                if let calibrated = settings.calibrated { members.append(JSONMember(CalibratedWeights.configKey, calibrated.record)) }
                members.removeAll { $0.key == KeyValueCacheScales.configKey }
                if let scales = settings.keyValueCache { members.append(JSONMember(KeyValueCacheScales.configKey, scales.record)) }
                try directory.writeConfig(.object(members))
            }
        }
        // The model-level evaluation of the complete staged output, before anything is in place.
        var evaluation: [UInt8]? = nil
        if let evaluate = settings.evaluateStaged {
            let staged = outputKind == .safetensorsDirectory
                ? sink.transaction.stagingDirectory : sink.transaction.path(URL(fileURLWithPath: outputPath).lastPathComponent)
            evaluation = try evaluate(staged, outputPath)
        }
        // The documents that belong to the output: inside a directory output; beside a file output,
        // staged and synced with it and moved into place just before it (a document without its
        // output is what an interrupt can leave, and the next run removes it). Where this run has
        // none, a stale one of an earlier output of the same name is removed before the new output lands.
        func stageDocument(_ bytes: [UInt8]?, named name: String) throws -> String? {
            if let directory = sink as? SafetensorsDirectorySink {
                guard let bytes else { return nil }
                try directory.transaction.write(bytes, named: name)
                return outputPath + "/" + name
            }
            let path = outputPath + "." + name
            if let bytes {
                try sink.transaction.writeCompanion(bytes, stagedName: name, finalPath: path)
                return path
            }
            if FileManager.default.fileExists(atPath: path) { try? FileManager.default.removeItem(atPath: path) }
            return nil
        }
        reportPath = try stageDocument(try report.map { [UInt8](try $0.jsonData()) }, named: "quantize-report.json")
        let evaluationPath = try stageDocument(evaluation, named: "quantize-eval.json")
        sink.transaction.manifest = manifestTemplate(inputs: inputs)
        try sink.commit()

        return Summary(output: sink.target, kind: outputKind, quantizedCount: tensors.filter(\.decision.quantize).count,
                       keptCount: tensors.filter { !$0.decision.quantize }.count, inputBytes: inputBytes, outputBytes: outputBytes,
                       seconds: Date().timeIntervalSince(start), checkSeconds: checkSeconds,
                       peakResidentBytes: ProcessMemory.peakResidentBytes(), report: report, reportPath: reportPath,
                       notes: notes, evaluationPath: evaluationPath)
    }

    /// The planned tensors in the order the sink takes their bytes: shard by shard (input order
    /// within a shard) for safetensors, input order for GGUF.
    var writeOrder: [PlannedTensor] {
        guard outputKind != .gguf else { return tensors }
        return checkpoint.files.indices.flatMap { shard in tensors.filter { $0.source.fileIndex == shard } }
    }

    /// The sink for this run's output: every output tensor declared, the input's layout kept (the
    /// same shard names, the index when the input had one, the GGUF metadata with the new file type).
    func makeSink() throws -> CheckpointSink {
        switch outputKind {
        case .gguf:
            guard let metadata = settings.conversion?.metadata ?? checkpoint.gguf?.metadata, settings.scheme.name.ggmlType != nil,
                  let fileType = settings.mixture?.llamaFileType ?? settings.scheme.descriptor.llamaFileType else {
                preconditionFailure("GGUF output without GGUF input")
            }
            let infos = tensors.flatMap { item in
                item.outputs.map { output -> GGUFWriter.Tensor in
                    guard case .ggml(let type) = output.type else { preconditionFailure("GGUF output of a safetensors type") }
                    return GGUFWriter.Tensor(name: output.name, type: type, shape: output.shape)
                }
            }
            let trailing = settings.importance.map { $0.matrix.quantizeMetadata(imatrixPath: $0.path) } ?? []
            if settings.splitMaxBytes != nil || settings.splitMaxTensors != nil {
                return try GGUFSplitSink(target: outputPath, metadata: metadata, tensors: infos, fileType: fileType, quantizationVersion: 2,
                                         trailing: trailing, maxBytes: settings.splitMaxBytes, maxTensors: settings.splitMaxTensors)
            }
            return try GGUFFileSink(target: outputPath, metadata: metadata, tensors: infos,
                                    fileType: fileType, quantizationVersion: 2, trailing: trailing)
        case .safetensorsFile, .safetensorsDirectory:
            var shards: [SafetensorsShardedWriter.PlannedShard] = []
            for (shard, path) in checkpoint.files.enumerated() {
                let entries = tensors.filter { $0.source.fileIndex == shard }.flatMap { item in
                    item.outputs.map { output -> SafetensorsEntry in
                        guard case .dtype(let dtype) = output.type else { preconditionFailure("safetensors output of a GGUF type") }
                        return SafetensorsEntry(name: output.name, dtype: dtype, shape: output.shape)
                    }
                }
                var metadata = checkpoint.safetensors?.shards[shard].metadata ?? [:]
                if metadata["format"] == nil { metadata["format"] = "pt" }
                if outputKind == .safetensorsFile, let config = try quantizationConfig() {
                    // A lone file has no config.json: it carries its layout in its own metadata.
                    metadata["quantization_config"] = config.serializedString(.compact)
                    if let calibrated = settings.calibrated { metadata[CalibratedWeights.configKey] = calibrated.record.serializedString(.compact) }
                    if let scales = settings.keyValueCache { metadata[KeyValueCacheScales.configKey] = scales.record.serializedString(.compact) }
                }
                shards.append(SafetensorsShardedWriter.PlannedShard(fileName: CompressedFormat.originalName(URL(fileURLWithPath: path).lastPathComponent),
                                                                    tensors: entries, metadata: metadata))
            }
            appendKeyValueCacheEntries(to: &shards)
            if outputKind == .safetensorsFile {
                return try SafetensorsFileSink(target: outputPath, tensors: shards[0].tensors, metadata: shards[0].metadata)
            }
            let indexed = checkpoint.safetensors?.indexPath != nil || shards.count > 1
            let indexName = checkpoint.safetensors?.indexPath.map { URL(fileURLWithPath: $0).lastPathComponent } ?? SafetensorsCheckpoint.indexFileName
            let totalParameters = tensors.reduce(0) { $0 + $1.source.elementCount }
            return try SafetensorsDirectorySink(target: outputPath, shards: shards, indexFileName: indexed ? indexName : nil,
                                                indexMetadata: [JSONMember("total_parameters", .number(JSONNumber(totalParameters)))])
        }
    }

    /// The `quantization_config` for this run: the scheme's config with the Linear modules left
    /// unquantized (the output head, MoE routers, anything `--skip` kept) in its ignore list.
    private func quantizationConfig() throws -> JSONValue? {
        let ignore = QuantizeJob.ignoredModules(tensors.filter { !$0.decision.quantize }.map { ($0.source.name, $0.source.shape) },
                                                tiedHead: checkpoint.config?["tie_word_embeddings"]?.bool == true
                                                    && !tensors.contains { $0.source.name == "lm_head.weight" && $0.decision.quantize })
        return withKeyValueCacheScheme(settings.scheme.quantizationConfig(ignore: ignore, options: settings.options, activationOrder: settings.calibrated?.activationOrder))
    }

    /// The modules of kept tensors that belong in `quantization_config.ignore`: 2-D `.weight`s of
    /// Linear modules (the output head, MoE routers, anything `--skip` kept; not embeddings or norms).
    /// `tiedHead`: the model ties its output head to the embedding (`tie_word_embeddings`), so
    /// `lm_head` is a Linear module without a tensor of its own; it is ignored too (transformers
    /// would otherwise quantize the tied module and fail to load: "Linear has no attribute weight").
    static func ignoredModules(_ kept: [(name: String, shape: [Int])], tiedHead: Bool = false) -> [String] {
        var modules = kept.filter { $0.shape.count == 2 && $0.name.hasSuffix(".weight")
            && TensorSelection.conventionallyKept($0.name).map { $0 == "output head (lm_head)" || $0 == "MoE router" } ?? true }
            .map { String($0.name.dropLast(".weight".count)) }
        if tiedHead && !modules.contains("lm_head") { modules.append("lm_head") }
        return modules.sorted()
    }

    // MARK: - One tensor

    private struct TensorResult {
        var entry: AccuracyReport.Entry
        var checkSeconds: Double
    }

    /// Copies or quantizes one tensor and hands its output bytes to `write`.
    private func process(_ planned: PlannedTensor, write: (OutputTensor, UnsafeRawBufferPointer) throws -> Void) throws -> TensorResult? {
        if let values = planned.conversion?.values {  // computed by the conversion, nothing to read
            try values.withUnsafeBytes { try write(planned.outputs[0], $0) }
            return nil
        }
        if planned.conversion == nil, !planned.decision.quantize || planned.matrix == nil,
           let values = settings.calibrated?.smoothed(planned.source.name) {
            // Kept, but changed by a calibrated method (AWQ's norms): the new values in its dtype.
            try writeSmoothed(values, planned: planned, write: write)
            return nil
        }
        if planned.conversion == nil, !planned.decision.quantize || planned.matrix == nil {
            // Kept: copied byte for byte, piece by piece, so the tensor is never held whole.
            try copyGuardedPieces(of: planned.source) { piece in try write(planned.outputs[0], piece) }
            return nil
        }
        var planned = planned
        var source: UnsafeRawBufferPointer
        var decodedSource: UnsafeMutableBufferPointer<Float>? = nil
        defer { decodedSource?.deallocate() }
        let chunked = encodesInChunks(planned)
        if let decoding = planned.conversion?.decoding {
            // A quantized source weight (fp8, compressed-tensors): decoded to FP32 first; from here
            // the tensor is processed as the F32 tensor the converter's twin holds.
            let (values, record) = try decodedConversionSource(planned, decoding: decoding)
            decodedSource = values
            planned.source = record
            source = UnsafeRawBufferPointer(values)
        } else if chunked {
            // Read piece by piece while it is encoded (below): the whole input is never copied.
            source = UnsafeRawBufferPointer(start: nil, count: 0)
        } else {
            source = try guardedData(for: planned.source)
        }
        // A conversion reorders Q/K rows into a copy of this one tensor, and keeps tensors as F32.
        let conversion = planned.conversion
        var permutedCopy: UnsafeMutableRawBufferPointer? = nil
        defer { permutedCopy?.deallocate() }
        if let conversion, conversion.permuteHeads != nil {
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: source.count, alignment: 64)
            permutedCopy = copy
            QuantizeJob.permuteRows(source, entry: conversion, into: copy)
            source = UnsafeRawBufferPointer(copy)
        }
        guard planned.decision.quantize, let matrix = planned.matrix else {
            // A conversion's kept tensor (other kept tensors were written above).
            try writeConverted(source, planned: planned, scratch: scratch.floats(planned.source.elementCount), write: write)
            return nil
        }
        let quantizer = try TensorQuantizer(scheme: planned.scheme, rows: matrix.rows, columns: matrix.columns,
                                            tensorName: planned.source.name, options: settings.options,
                                            importance: planned.importance, rowsPerExpert: planned.rowsPerExpert)
        let buffers = outputBuffers.buffers(quantizer.layouts.map(\.byteCount))
        // The FP32 rows the check compares against: only the sampled rows of a large tensor, else all.
        let selectedRows = settings.check.flatMap { $0.accuracy.checkedRows(rows: matrix.rows, columns: matrix.columns) }
        let weights: UnsafeMutableBufferPointer<Float>
        if chunked {
            // Encoded piece by piece; `weights` gets the checked rows as the pieces go by.
            weights = scratch.floats(settings.check == nil ? 0 : (selectedRows?.count ?? matrix.rows) * matrix.columns)
            try encodeInChunks(planned, quantizer: quantizer, into: buffers, checkedRows: settings.check == nil ? [] : selectedRows, weights: weights)
        } else {
            if let calibrated = settings.calibrated, let tensor = calibrated.tensor(planned.source.name) {
                try calibrated.copy(tensor, into: buffers, layouts: quantizer.layouts, name: planned.source.name)
            } else {
                try QuantizeJob.encodeStreaming(source, type: planned.source.type, with: quantizer, into: buffers, threads: settings.threads)
            }
            if settings.check == nil {
                weights = scratch.floats(0)
            } else if let selectedRows {
                weights = scratch.floats(selectedRows.count * matrix.columns)
                let rowBytes = source.count / matrix.rows
                for (i, row) in selectedRows.enumerated() {
                    try QuantizeJob.convertToFloat32(UnsafeRawBufferPointer(rebasing: source[(row * rowBytes)..<((row + 1) * rowBytes)]),
                                                     type: planned.source.type,
                                                     into: UnsafeMutableBufferPointer(rebasing: weights[(i * matrix.columns)..<((i + 1) * matrix.columns)]),
                                                     name: planned.source.name, threads: settings.threads)
                }
            } else {
                weights = scratch.floats(matrix.rows * matrix.columns)
                try QuantizeJob.convertToFloat32(source, type: planned.source.type, into: weights, name: planned.source.name, threads: settings.threads)
            }
        }
        let smoothed = settings.calibrated?.smoothed(planned.source.name)
        if let smoothed { try QuantizeJob.copy(smoothed, rows: selectedRows, columns: matrix.columns, into: weights, name: planned.source.name) }
        let encoded = zip(quantizer.layouts, buffers).map { layout, buffer in
            EncodedPart(suffix: layout.suffix, type: layout.type, shape: layout.shape, bytes: UnsafeRawBufferPointer(buffer))
        }
        var measured: TensorResult? = nil
        if let check = settings.check {
            let started = Date()
            let activations = try check.activations.activations(forTensor: planned.source.name, columns: matrix.columns)
            let accuracy: TensorAccuracy
            if let selected = selectedRows, let subset = QuantizeJob.rows(selected, rows: matrix.rows, columns: matrix.columns, of: encoded) {
                // Large tensor: decode and measure only the sampled rows (the same rows the check
                // would pick from the whole tensor), instead of decoding every weight.
                let original = Array(weights)
                let decoded = try dequantized(subset, tensorName: planned.source.name)
                var options = check.accuracy
                options.maxCheckedWeights = nil
                options.rowFraction = nil
                let measured = try TensorAccuracy.measure(original: original, decoded: decoded, rows: selected.count, columns: matrix.columns,
                                                          activations: activations, tensorName: planned.source.name, options: options)
                accuracy = TensorAccuracy(rows: matrix.rows, columns: matrix.columns, checkedRows: selected.count,
                                          probeRows: measured.probeRows, probe: measured.probe, relativeError: measured.relativeError,
                                          sqnrDecibels: measured.sqnrDecibels, cosineSimilarity: measured.cosineSimilarity,
                                          maxAbsoluteError: measured.maxAbsoluteError, relativeWeightError: measured.relativeWeightError,
                                          bitsPerWeight: Double(planned.outputByteCount * 8) / Double(matrix.rows * matrix.columns))
            } else {
                var weights = weights
                if selectedRows != nil {  // sampled rows were converted, but this layout decodes only whole
                    if chunked { source = try guardedData(for: planned.source) }
                    weights = scratch.floats(matrix.rows * matrix.columns)
                    try QuantizeJob.convertToFloat32(source, type: planned.source.type, into: weights, name: planned.source.name, threads: settings.threads)
                    if let smoothed { try QuantizeJob.copy(smoothed, rows: nil, columns: matrix.columns, into: weights, name: planned.source.name) }
                }
                let whole = QuantizedTensor(rows: matrix.rows, columns: matrix.columns, parts: encoded.map {
                    QuantizedTensor.Part(suffix: $0.suffix, type: $0.type, shape: $0.shape, data: Array($0.bytes))
                })
                let decoded = try dequantized(whole, tensorName: planned.source.name)
                accuracy = try decoded.withUnsafeBufferPointer { decodedBuffer in
                    try TensorAccuracy.measure(original: UnsafeBufferPointer(weights), decoded: decodedBuffer, rows: matrix.rows,
                                               columns: matrix.columns, activations: activations,
                                               storedByteCount: planned.outputByteCount, tensorName: planned.source.name,
                                               options: check.accuracy)
                }
            }
            let threshold = AccuracyThresholds.maxRelativeError(forSchemeNamed: planned.scheme.name.rawValue, override: check.maxError)
            measured = TensorResult(entry: AccuracyReport.Entry(name: planned.source.name, scheme: planned.scheme.name.rawValue,
                                                                accuracy: accuracy, threshold: threshold),
                                    checkSeconds: Date().timeIntervalSince(started))
        }
        for (part, output) in zip(encoded, planned.outputs) {
            try write(output, part.bytes)
        }
        return measured
    }

    /// One stored part of an encoded tensor, viewed in place.
    struct EncodedPart {
        var suffix: String
        var type: TensorType
        var shape: [Int]
        var bytes: UnsafeRawBufferPointer
    }

    /// The given rows of a quantized tensor, as a quantized tensor of those rows alone, when its
    /// layout stores every row independently (per-channel or per-group scales, GGUF blocks, a
    /// per-tensor scale); nil for layouts that share data across rows (128×128 blocks, zero points
    /// packed along the rows).
    static func rows(_ selected: [Int], rows: Int, columns: Int, of encoded: [EncodedPart]) -> QuantizedTensor? {
        let count = selected.count
        var parts: [QuantizedTensor.Part] = []
        for part in encoded {
            switch part.suffix {
            case "weight_shape":
                var bytes: [UInt8] = []
                for value in [Int64(count), Int64(columns)] { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
                parts.append(QuantizedTensor.Part(suffix: part.suffix, type: part.type, shape: part.shape, data: bytes))
            case "weight_scale" where part.shape.reduce(1, *) == 1:
                parts.append(QuantizedTensor.Part(suffix: part.suffix, type: part.type, shape: part.shape, data: Array(part.bytes)))
            case "", "weight", "weight_packed", "weight_scale":
                let leading = part.suffix.isEmpty ? part.shape.dropLast().reduce(1, *) : (part.shape.first ?? 0)
                guard leading == rows, rows > 0, part.bytes.count % rows == 0 else { return nil }
                let stride = part.bytes.count / rows
                var data = [UInt8](repeating: 0, count: count * stride)
                data.withUnsafeMutableBytes { target in
                    for (i, row) in selected.enumerated() {
                        target.baseAddress!.advanced(by: i * stride).copyMemory(from: part.bytes.baseAddress!.advanced(by: row * stride), byteCount: stride)
                    }
                }
                var shape = part.shape
                if part.suffix.isEmpty { shape = [count, columns] } else { shape[0] = count }
                parts.append(QuantizedTensor.Part(suffix: part.suffix, type: part.type, shape: shape, data: data))
            default:
                return nil
            }
        }
        return QuantizedTensor(rows: count, columns: columns, parts: parts)
    }

    /// ``rows(_:rows:columns:of:)`` for a quantized tensor held in arrays.
    static func rows(_ selected: [Int], of tensor: QuantizedTensor) -> QuantizedTensor? {
        func viewing(_ index: Int, _ views: [EncodedPart]) -> QuantizedTensor? {
            guard index < tensor.parts.count else { return rows(selected, rows: tensor.rows, columns: tensor.columns, of: views) }
            let part = tensor.parts[index]
            return part.data.withUnsafeBytes { raw in
                viewing(index + 1, views + [EncodedPart(suffix: part.suffix, type: part.type, shape: part.shape, bytes: raw)])
            }
        }
        return viewing(0, [])
    }

    /// Input bytes from which a tensor of a GGUF output is encoded piece by piece from the mapped
    /// input instead of from a copy of the whole tensor (``encodesInChunks(_:)``; 64 MiB: the
    /// pieces are a quarter of that).
    static let chunkedEncodingBytes = 64 << 20

    /// Converts and encodes a tensor block by block on all cores: each task converts a band of
    /// rows (about 128 kB of FP32, so it stays in cache) and encodes it at once, so the tensor is
    /// never held in FP32. Schemes whose scale spans the tensor (FP8 per-tensor) get one extra
    /// pass for the tensor's amax.
    /// `rows`: the rows of the tensor that `source` holds (the whole tensor when nil), for
    /// encoding a tensor piece by piece; a piece starts at a multiple of the quantizer's row alignment.
    static func encodeStreaming(_ source: UnsafeRawBufferPointer, type: TensorType, with quantizer: TensorQuantizer,
                                into output: [UnsafeMutableRawBufferPointer], rows piece: Range<Int>? = nil, threads: Int? = nil) throws {
        let dtype = try floatDType(type, name: quantizer.tensorName)
        let first = piece?.lowerBound ?? 0
        let rows = piece?.count ?? quantizer.rows, columns = quantizer.columns
        precondition(piece == nil || !quantizer.needsTensorAmax, "a tensor-wide scale is not encoded in pieces")
        let rowBytes = columns * dtype.bitWidth / 8
        let align = quantizer.rowAlignment
        let band = ((max(1, QuantizeJob.bandFloats / columns) + align - 1) / align) * align
        let bands = (rows + band - 1) / band
        let failure = UncheckedSendable(value: ErrorBox())
        let shared = UncheckedSendable(value: (source, output, quantizer))
        var tensorAmax: Float? = nil
        if quantizer.needsTensorAmax {
            let partial = UncheckedSendable(value: UnsafeMutableBufferPointer<Float>.allocate(capacity: bands))
            defer { partial.value.deallocate() }
            QuantizeJob.perform(iterations: bands, threads: threads) { i in
                let r0 = i * band, r1 = min(rows, r0 + band)
                withUnsafeTemporaryAllocation(of: Float.self, capacity: (r1 - r0) * columns) { floats in
                    do throws(FormatError) {
                        try ElementConversion.toFloat32(UnsafeRawBufferPointer(rebasing: shared.value.0[(r0 * rowBytes)..<(r1 * rowBytes)]),
                                                        from: dtype, into: floats)
                        partial.value[i] = TensorQuantizer.amax(UnsafeBufferPointer(floats), allowNonFinite: true)
                    } catch {
                        failure.value.record(.unsupportedLayout(tensor: quantizer.tensorName, found: error.description), chunk: i)
                    }
                }
            }
            if let error = failure.value.first { throw error }
            tensorAmax = partial.value.max() ?? 0
        }
        quantizer.writeShape(into: output)
        let amax = tensorAmax
        QuantizeJob.perform(iterations: bands, threads: threads) { i in
            let r0 = i * band, r1 = min(rows, r0 + band)
            withUnsafeTemporaryAllocation(of: Float.self, capacity: (r1 - r0) * columns) { floats in
                do throws(FormatError) {
                    try ElementConversion.toFloat32(UnsafeRawBufferPointer(rebasing: shared.value.0[(r0 * rowBytes)..<(r1 * rowBytes)]),
                                                    from: dtype, into: floats)
                } catch {
                    failure.value.record(.unsupportedLayout(tensor: quantizer.tensorName, found: error.description), chunk: i)
                    return
                }
                do throws(QuantizeError) {
                    try shared.value.2.encode(rows: (first + r0)..<(first + r1), input: UnsafeBufferPointer(floats), tensorAmax: amax, into: shared.value.1)
                } catch {
                    failure.value.record(error, chunk: i)
                }
            }
        }
        if let error = failure.value.first { throw error }
    }

    /// Runs `body` for every iteration on at most `threads` workers (all cores when nil); worker
    /// `w` takes iterations `w, w + threads, …`, so what each iteration computes does not depend on
    /// the count.
    static func perform(iterations: Int, threads: Int?, _ body: @Sendable (Int) -> Void) {
        guard let threads, threads > 0, threads < iterations else {
            DispatchQueue.concurrentPerform(iterations: iterations, execute: body)
            return
        }
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            for i in stride(from: worker, to: iterations, by: threads) { body(i) }
        }
    }

    /// FP32 values converted per task in ``encodeStreaming(_:type:with:into:)``: 512 kB, which
    /// stays in a core's L2 and amortises each call's per-row-block work (measured with
    /// `QuantizeBench quantize`: 32 k values ran ~10 % slower on BF16 input).
    public static let bandFloats = 131_072

    /// The element type of a float tensor that can be converted to FP32.
    static func floatDType(_ type: TensorType, name: String) throws(QuantizeError) -> DType {
        switch type {
        case .dtype(let d): return d
        case .ggml(let g) where g == .f32: return .f32
        case .ggml(let g) where g == .f16: return .f16
        case .ggml(let g) where g == .bf16: return .bf16
        case .ggml(let g):
            throw QuantizeError.unsupportedLayout(tensor: name, found: "a \(g.name) tensor, which is already quantized")
        }
    }

    /// Converts a float tensor's bytes to FP32 on all cores.
    static func convertToFloat32(_ source: UnsafeRawBufferPointer, type: TensorType, into output: UnsafeMutableBufferPointer<Float>,
                                 name: String, threads: Int? = nil) throws {
        let dtype = try floatDType(type, name: name)
        let elementBytes = dtype.bitWidth / 8
        let count = output.count
        let chunk = 1 << 18
        let chunks = (count + chunk - 1) / chunk
        let shared = UncheckedSendable(value: (source, output))
        let failure = UncheckedSendable(value: ErrorBox())
        QuantizeJob.perform(iterations: chunks, threads: threads) { i in
            let lo = i * chunk, hi = min(count, lo + chunk)
            let (src, dst) = shared.value
            do throws(FormatError) {
                try ElementConversion.toFloat32(UnsafeRawBufferPointer(rebasing: src[(lo * elementBytes)..<(hi * elementBytes)]), from: dtype,
                                                into: UnsafeMutableBufferPointer(rebasing: dst[lo..<hi]))
            } catch {
                failure.value.record(.unsupportedLayout(tensor: name, found: error.description), chunk: i)
            }
        }
        if let error = failure.value.first { throw error }
    }
}

/// A growable buffer of floats kept for the life of a job: it grows to the largest tensor and is
/// reused, so each tensor's working copy touches pages that are already mapped.
final class ScratchBuffer {
    private var storage = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)

    /// A buffer of exactly `count` floats (contents undefined), valid until the next call.
    func floats(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        if storage.count < count {
            storage.deallocate()
            storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        }
        return UnsafeMutableBufferPointer(rebasing: storage[0..<count])
    }

    deinit { storage.deallocate() }
}

/// Byte buffers kept for the life of a job, one per output part, grown as needed and reused.
final class ByteBuffers {
    private var storage: [UnsafeMutableRawBufferPointer] = []

    /// Buffers of exactly the given sizes (contents undefined), valid until the next call.
    func buffers(_ sizes: [Int]) -> [UnsafeMutableRawBufferPointer] {
        while storage.count < sizes.count { storage.append(UnsafeMutableRawBufferPointer(start: nil, count: 0)) }
        return sizes.enumerated().map { index, size in
            if storage[index].count < size {
                storage[index].deallocate()
                storage[index] = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
            }
            return UnsafeMutableRawBufferPointer(rebasing: storage[index][0..<size])
        }
    }

    deinit { storage.forEach { $0.deallocate() } }
}
