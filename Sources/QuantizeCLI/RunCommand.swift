import ArgumentParser
import Foundation
import Formats
import Model
import Quantize

extension QuantizeCommand {
    /// `quantize --to SCHEME INPUT`: the main job (`quantize run`).
    struct RunCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Quantize a checkpoint (the default command: `quantize --to fp8 MODEL`).",
            discussion: """
            Schemes: \(names(.safetensors)) write safetensors that vLLM and transformers load \
            (compressed-tensors layouts); \(names(.gguf)) write GGUF from a GGUF input. \
            llama.cpp mixtures (\(MixtureName.allCases.map(\.rawValue).joined(separator: ", "))) choose \
            each tensor's GGUF type by llama-quantize's rule (q2_k, q6_k and iq4_xs mean the \
            mixture, as in llama-quantize; add --pure for one type everywhere); --dry-run shows \
            each tensor's type and why. Layouts: formats/quantize-*.md.
            """)

        /// The schemes writing `container`, as the help lists them.
        static func names(_ container: SchemeContainer) -> String {
            SchemeDescriptor.all.filter { $0.container == container }.map(\.name.rawValue).joined(separator: ", ")
        }

        @Option(name: .long, help: "The scheme or llama.cpp mixture: \(QuantizeTarget.allValueStrings.joined(separator: ", ")).")
        var to: QuantizeTarget

        @Argument(help: "A .safetensors file, a model directory (or its model.safetensors.index.json), or a .gguf file.")
        var input: String

        @Option(name: [.short, .long], help: "Output path (default: beside the input, named after the scheme).")
        var output: String?

        @Flag(help: "Write the weight files compressed losslessly (byte planes + zstd, formats/compressed.md; FILE.bpz).")
        var compress = false

        @Flag(help: "Replace an existing output.")
        var force = false

        @Option(help: "fp8: channel (default), tensor or block (128×128); int4: group.")
        var granularity: GranularityRequest?

        @Option(help: "int4: weights per scale (32, 64 or 128; default 128). fp8 block: rows and columns of a block (default 128).")
        var groupSize: Int?

        @Flag(help: "int4: asymmetric groups with zero points.")
        var asymmetric = false

        @Flag(help: "int4/int8: per group, search the clipping scale that minimises squared error.")
        var search = false

        @Option(help: "int8/int4: scale dtype, bf16 (default), f16 or f32.")
        var scaleDtype: ScaleDTypeOption = .bf16

        @Option(help: ArgumentHelp("int8: pack-quantized (default: int32 words, the W8A16 layout vLLM loads) or int-quantized (I8 weights, which vLLM loads only with int8 activations).", valueName: "layout"))
        var int8Layout: Int8LayoutOption = .packQuantized

        @Option(parsing: .singleValue, help: ArgumentHelp("Quantize only tensors matching this glob (repeatable; first match wins).", valueName: "pattern"))
        var only: [SelectionGlob] = []

        @Option(parsing: .singleValue, help: ArgumentHelp("Keep tensors matching this glob unquantized (repeatable; first match wins).", valueName: "pattern"))
        var skip: [SelectionGlob] = []

        @Option(name: .customLong("tensor-type"), parsing: .singleValue,
                help: ArgumentHelp("Mixtures: give tensors whose name matches this regular expression another type, like llama-quantize's (repeatable; first match wins; a pattern that matches nothing is an error).", valueName: "pattern=type"))
        var tensorType: [String] = []

        @Flag(help: "Mixtures: every tensor the mixture quantizes gets its default type (llama-quantize --pure).")
        var pure = false

        @Option(help: ArgumentHelp("GGUF types and mixtures: weight the quantizers with this importance matrix (llama-quantize --imatrix; a GGUF imatrix or a legacy .dat, as `quantize imatrix` and llama-imatrix write them).", valueName: "file"))
        var imatrix: String?

        @Option(help: ArgumentHelp("GGUF output: split into shards of at most this much tensor data, as llama.cpp's gguf-split --split-max-size (500M, 50G: 10^6 and 10^9 bytes); NAME.gguf becomes NAME-00001-of-0000N.gguf …. A Hugging Face export: the safetensors shard limit.", valueName: "size"))
        var splitMaxSize: SplitSize?

        @Option(help: ArgumentHelp("GGUF output: split into shards of at most this many tensors (gguf-split --split-max-tensors).", valueName: "n"))
        var splitMaxTensors: Int?

        @Flag(help: "Print the plan (each tensor, its action, the rule that chose it, output bytes) and write nothing.")
        var dryRun = false

        @Flag(help: "Keep NaN/Inf weights (NaN → 0, ±Inf → the row's largest magnitude) instead of failing.")
        var allowNonFinite = false

        @Flag(help: "Skip the accuracy check.")
        var noCheck = false

        @Flag(help: "Write nothing if any tensor exceeds its accuracy threshold.")
        var strict = false

        @OptionGroup(title: "Accuracy check")
        var check: CheckOptions

        @OptionGroup(title: "Calibrated quantization")
        var calibration: CalibrationOptions

        @OptionGroup(title: "Activation quantization (W8A8)")
        var activation: ActivationOptions

        @OptionGroup(title: "KV cache")
        var kvCache: KVCacheOptions

        @Option(help: "Worker threads for the kernels (default: every core); the output bytes are the same for any count.")
        var threads: Int?

        @Option(help: ArgumentHelp("Evaluate the fresh output against the input on this text (quantize eval's protocol: perplexity, KL divergence) before it is moved into place; written as quantize-eval.json beside the accuracy report.", valueName: "file"))
        var evalText: String?

        @Option(help: "With --eval-text: tokens per chunk.")
        var evalContext: Int = 512

        @Option(help: "With --eval-text: evaluate only the first N chunks.")
        var evalChunks: Int?

        @Option(help: "With --eval-text: write nothing and exit 1 when the mean KL divergence is above this.")
        var maxKld: Double?

        @Flag(help: "No progress or summary on stderr.")
        var quiet = false

        @Flag(help: "Print one JSON summary document on stdout.")
        var json = false

        func validate() throws {
            if asymmetric && to != .scheme(.int4) { throw ValidationError("--asymmetric applies to int4 only") }
            if (!tensorType.isEmpty || pure) && to.mixture == nil {
                throw ValidationError("--tensor-type and --pure apply to llama.cpp mixtures (\(MixtureName.allCases.map(\.rawValue).joined(separator: ", "))), not to \(to.name)")
            }
            try activation.validate(target: to, granularity: granularity, groupSize: groupSize, calibration: calibration)
            try calibration.validate(scheme: to.schemeName, search: search, calibratesKVCache: kvCache.kvCache != nil,
                                     smoothing: activation.smooth != nil)
            try kvCache.validate(target: to, calibration: calibration)
            // Smoothing leaves the float K and V unchanged, so the scales' own float pass serves
            // --smooth with round-to-nearest; under GPTQ they come from GPTQ's pass, which the
            // smoothing pass runs without a K/V observer.
            if kvCache.kvCache != nil && activation.smooth != nil && calibration.method == .gptq {
                throw ValidationError("--kv-cache fp8 is not combined with --smooth and --method gptq yet (the smoothed GPTQ pass does not observe K and V): drop --method gptq, or --smooth")
            }
            if granularity != nil && to.schemeName.descriptor.container == .gguf { throw ValidationError("--granularity does not apply to GGUF types: their block is fixed") }
            if let g = groupSize, g <= 0 { throw ValidationError("--group-size must be positive") }
            if let t = threads, t <= 0 { throw ValidationError("--threads must be positive") }
            if let n = splitMaxTensors, n <= 0 { throw ValidationError("--split-max-tensors must be positive") }
            if (splitMaxSize != nil || splitMaxTensors != nil) && to.schemeName.descriptor.container != .gguf {
                throw ValidationError("--split-max-size and --split-max-tensors split GGUF outputs (and --split-max-size the shards of a GGUF → Hugging Face export); \(to.name) writes safetensors shards of the input's layout")
            }
            if splitMaxSize != nil && splitMaxTensors != nil { throw ValidationError("--split-max-size and --split-max-tensors do not combine (gguf-split takes one of them)") }
            if noCheck && (strict || check.maxError != nil || check.report != nil || check.activations != nil) {
                throw ValidationError("--no-check cannot be combined with --strict, --max-error, --report or --activations")
            }
        }

        /// The scheme asked for; the rules of what fits which scheme are in its descriptor (Quantize).
        func scheme() throws -> Scheme {
            do {
                return try Scheme(name: to.schemeName, requested: granularity, groupSize: groupSize, symmetric: !asymmetric)
            } catch {
                switch error {
                case .groupSizeNeeded(let name):
                    throw ValidationError("--granularity group needs --group-size for \(name.rawValue) (weights per scale, e.g. 128)")
                case .granularityNotApplicable(let requested, let name):
                    throw ValidationError("--granularity \(requested.rawValue) does not apply to \(name.rawValue)")
                case .groupSizeNotAllowed(let name, let size, let allowed, let reason):
                    let sizes = allowed.dropLast().map(String.init).joined(separator: ", ") + (allowed.count > 1 ? " or " : "") + (allowed.last.map(String.init) ?? "")
                    throw ValidationError("\(name.rawValue) groups are \(sizes) weights\(reason.map { " (\($0))" } ?? ""), not \(size)")
                }
            }
        }

        /// `--only`/`--skip` in command-line order (each glob carries its place; see ``SelectionGlob``).
        func patterns() -> [TensorSelection.Pattern] {
            let stamped = only.map { ($0.position, TensorSelection.Pattern(quantize: true, glob: $0.glob)) }
                + skip.map { ($0.position, TensorSelection.Pattern(quantize: false, glob: $0.glob)) }
            return stamped.sorted { $0.0 < $1.0 }.map(\.1)
        }

        func checkSettings() throws -> QuantizeJob.CheckSettings? {
            guard !noCheck else { return nil }
            return QuantizeJob.CheckSettings(activations: try check.source(), activationsFile: check.activations,
                                             maxError: check.maxError, strict: strict)
        }

        func run() throws {
            // A GGUF input with a directory output is the Hugging Face export (ExportInput.swift).
            let options = QuantizeOptions(allowNonFinite: allowNonFinite, scaleType: scaleDtype.dtype,
                                          search: search, packInt8: int8Layout == .packQuantized && !activation.forcesIntQuantized,
                                          halfQuadratic: calibration.method == .hqq, int8Activations: activation.actQuant == .int8)
            let inapplicable = [calibration.method != .rtn ? "--method \(calibration.method.rawValue)" : nil, imatrix.map { _ in "--imatrix" },
                                evalText.map { _ in "--eval-text" }, compress ? "--compress" : nil, activation.smooth.map { _ in "--smooth" },
                                kvCache.kvCache.map { _ in "--kv-cache" }].compactMap { $0 }
            let selection = TensorSelection(patterns: patterns())
            let exportQuantization = ExportInput.Quantization(scheme: scheme, options: options, selection: selection,
                                                              inapplicable: inapplicable)
            if let export = try ExportInput.job(input: input, target: to, output: output, force: force, maxShardByteCount: splitMaxSize?.bytes,
                                                threads: threads, quantization: exportQuantization) {
                try ExportInput.run(export, json: json, quiet: quiet, dryRun: dryRun, input: input, target: to.name)
                return
            }
            var settings = QuantizeJob.Settings(scheme: try scheme(), options: options, selection: selection,
                                                output: output, overwrite: force, check: try checkSettings())
            settings.compressOutput = compress
            settings.mixture = to.mixture
            settings.pure = pure
            settings.tensorTypes = try tensorType.map { try TensorTypeOverride(parsing: $0) }
            if let imatrix {
                settings.importance = (try ImportanceMatrix(contentsOf: imatrix), imatrix)
            }
            if let evalText {
                settings.evaluateStaged = try evaluation(text: evalText)
            }
            settings.threads = threads
            settings.splitMaxBytes = splitMaxSize?.bytes
            settings.splitMaxTensors = splitMaxTensors
            settings.conversion = try ConversionInput.plan(input: input, target: to)
            settings.calibrated = calibration.halfQuadraticRecord()
            var job = try QuantizeJob(input: input, settings: settings)
            let observed = dryRun ? nil : try kvCache.observerForGPTQ(job: job, method: calibration.method)
            if !dryRun, let calibrated = try activation.calibrate(job: job, input: input, calibration: calibration, threads: threads, verbose: !quiet && !json)
                ?? calibration.calibrate(job: job, input: input, threads: threads, verbose: !quiet && !json,
                                         keyValueObserver: observed.map { o -> KeyValueObserver in { o.observe($0) } }) {
                settings.calibrated = calibrated
                job = try QuantizeJob(input: input, settings: settings)
            }
            if !dryRun, let scales = try kvCache.scales(job: job, input: input, calibration: calibration, observed: observed,
                                                        threads: threads, verbose: !quiet && !json) {
                settings.keyValueCache = scales
                job = try QuantizeJob(input: input, settings: settings)
            }
            if dryRun {
                if json {
                    print(planJSON(job).serializedString(.document))
                } else {
                    printPlan(job)
                }
                return
            }
            let progress = ProgressReporter(totalItems: job.tensors.count, totalBytes: job.inputBytes, enabled: !quiet && !json)
            let summary = try job.run { index, count, done, _, name in progress.update(item: index, bytes: done, label: name) }
            progress.finish()
            if !quiet { for note in summary.notes { Format.note("note: " + note) } }
            let layouts = json ? ((try? TargetCheck.checks(path: summary.output, targets: [])) ?? []) : (quiet ? [] : TargetCheck.afterWrite(path: summary.output))
            if let accuracy = summary.report {
                try check.writeHTML([accuracy], title: "quantize --to \(to.name) \(input)", original: input, checkpoints: [summary.output])
            }
            if json {
                var document = summaryJSON(summary, job: job)
                if case .object(var members) = document {
                    members.append(JSONMember("runtimeLayout", .array(layouts.map { $0.json() })))
                    document = .object(members)
                }
                print(document.serializedString(.document))
            } else if !quiet {
                printSummary(summary, job: job)
            }
            if let accuracy = summary.report, !accuracy.passed { throw ExitCode(1) }
        }

        func printPlan(_ job: QuantizeJob) {
            var rows = [["tensor", "action", "rule", "output", "bytes in", "bytes out"]]
            for item in job.tensors {
                let output = item.outputs.map { "\($0.type)" }.joined(separator: "+")
                rows.append([item.source.name, item.decision.quantize ? "quantize" : "keep", item.decision.rule, output,
                             "\(item.source.byteCount)", "\(item.outputByteCount)"])
            }
            print(Format.table(rows, rightAligned: [4, 5]))
            let quantized = job.tensors.filter(\.decision.quantize).count
            print("\nplan: \(quantized) tensors quantized to \(to.name)\(quantizedTypes(job)), \(job.tensors.count - quantized) kept; \(Format.bytes(job.inputBytes)) → \(Format.bytes(job.outputBytes)) of tensor data; output \(job.outputPath) (\(job.outputKind.rawValue)); nothing written (--dry-run)")
        }

        /// For a mixture, how many tensors each type got (` (Q4_K ×96, Q6_K ×33)`); empty otherwise.
        func quantizedTypes(_ job: QuantizeJob) -> String {
            guard to.mixture != nil else { return "" }
            var counts: [String: Int] = [:]
            for item in job.tensors where item.decision.quantize { counts[item.scheme.name.rawValue.uppercased(), default: 0] += 1 }
            return " (" + counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ") + ")"
        }

        func planJSON(_ job: QuantizeJob) -> JSONValue {
            func number(_ value: Int) -> JSONValue { .number(JSONNumber(value)) }
            return .object([
                JSONMember("input", .string(input)),
                JSONMember("output", .string(job.outputPath)),
                JSONMember("outputKind", .string(job.outputKind.rawValue)),
                JSONMember("scheme", .string(to.name)),
                JSONMember("inputBytes", number(job.inputBytes)),
                JSONMember("outputBytes", number(job.outputBytes)),
                JSONMember("tensors", .array(job.tensors.map { item in
                    .object([
                        JSONMember("name", .string(item.source.name)),
                        JSONMember("action", .string(item.decision.quantize ? "quantize" : "keep")),
                        JSONMember("rule", .string(item.decision.rule)),
                        JSONMember("inputBytes", number(item.source.byteCount)),
                        JSONMember("outputs", .array(item.outputs.map { output in
                            .object([
                                JSONMember("name", .string(output.name)),
                                JSONMember("dtype", .string(output.type.description)),
                                JSONMember("shape", .array(output.shape.map(number))),
                                JSONMember("bytes", number(output.byteCount)),
                            ])
                        })),
                    ])
                })),
            ])
        }

        func printSummary(_ summary: QuantizeJob.Summary, job: QuantizeJob) {
            if let accuracy = summary.report {
                Format.note(accuracy.textTable(limit: 10))
            }
            var line = "quantized \(summary.quantizedCount) tensors to \(to.name)\(quantizedTypes(job)), kept \(summary.keptCount); "
            line += "\(Format.bytes(summary.inputBytes)) → \(Format.bytes(summary.outputBytes)) "
            line += String(format: "(%.2f×) in %@", Double(summary.inputBytes) / Double(max(summary.outputBytes, 1)), Format.duration(summary.seconds))
            if summary.report != nil { line += String(format: " (check %@)", Format.duration(summary.checkSeconds)) }
            if let peak = summary.peakResidentBytes { line += ", peak RSS \(Format.bytes(peak))" }
            Format.note(line)
            Format.note("wrote \(summary.output)" + (summary.reportPath.map { "; accuracy report \($0)" } ?? "") + (check.report.map { "; HTML \($0)" } ?? "")
                        + (summary.evaluationPath.map { "; model-level evaluation \($0)" } ?? ""))
            if let accuracy = summary.report, !accuracy.passed {
                Format.note("accuracy check FAILED: \(accuracy.failedCount) tensor(s) over the threshold (worst: \(accuracy.worstTensor ?? "?")); the output was written, exit code 1")
            }
        }

        /// The pre-commit evaluation of `--eval-text`: the staged output against the input, through
        /// the Model module; refuses the output (exit 1, nothing written) above `--max-kld`.
        func evaluation(text path: String) throws -> @Sendable (String, String) throws -> [UInt8] {
            if dryRun { throw ValidationError("--eval-text evaluates a written output; it does not combine with --dry-run") }
            if evalContext < 8 { throw ValidationError("--eval-context must be 8 or more") }
            if let evalChunks, evalChunks < 1 { throw ValidationError("--eval-chunks must be positive") }
            if let maxKld, !(maxKld >= 0) { throw ValidationError("--max-kld must be a non-negative number") }
            QuantizeCommand.EvalCommand.restartWithFasterBLASIfNeeded()
            let text = try QuantizeCommand.EvalCommand.readText(path)
            let (input, context, chunks, maxKld, verbose) = (self.input, evalContext, evalChunks, maxKld, !quiet && !json)
            return { staged, output in
                if verbose { Format.note("evaluating \(output) against \(input) on \(path) (context \(context))") }
                let report = try CheckpointEvaluation.run(originalPath: input, quantizedPath: staged, reportedPath: output, text: text,
                                                          context: context, chunks: chunks)
                if verbose {
                    Format.note(Format.table(report.tableRows, rightAligned: Set(1..<11)))
                    if let note = report.results[0].tokenizationNote { Format.note("warning: \(note)") }
                }
                if let maxKld, report.results[0].kld.mean > maxKld {
                    Format.note(String(format: "mean KLD %.6f is above --max-kld %g: nothing was written", report.results[0].kld.mean, maxKld))
                    throw ExitCode(1)
                }
                var bytes = Array(report.jsonValue.serializedString(.document).utf8)
                bytes.append(UInt8(ascii: "\n"))
                return bytes
            }
        }

        func summaryJSON(_ summary: QuantizeJob.Summary, job: QuantizeJob) -> JSONValue {
            func number(_ value: Int) -> JSONValue { .number(JSONNumber(value)) }
            func real(_ value: Double) -> JSONValue { .number(JSONNumber(value)) }
            var members: [JSONMember] = [
                JSONMember("input", .string(input)),
                JSONMember("output", .string(summary.output)),
                JSONMember("outputKind", .string(summary.kind.rawValue)),
                JSONMember("scheme", .string(to.name)),
                JSONMember("quantizedTensors", number(summary.quantizedCount)),
                JSONMember("keptTensors", number(summary.keptCount)),
                JSONMember("inputBytes", number(summary.inputBytes)),
                JSONMember("outputBytes", number(summary.outputBytes)),
                JSONMember("seconds", real(summary.seconds)),
                JSONMember("checkSeconds", real(summary.checkSeconds)),
                JSONMember("checkShare", real(summary.seconds > 0 ? summary.checkSeconds / summary.seconds : 0)),
                JSONMember("peakResidentBytes", summary.peakResidentBytes.map(number) ?? .null),
                JSONMember("reportPath", summary.reportPath.map(JSONValue.string) ?? .null),
            ]
            if let path = summary.evaluationPath, let document = try? JSONValue.parse(contentsOf: path) {
                members.append(JSONMember("evaluationPath", .string(path)))
                members.append(JSONMember("evaluation", document))
            }
            if let accuracy = summary.report {
                members.append(JSONMember("accuracy", .object([
                    JSONMember("passed", .bool(accuracy.passed)),
                    JSONMember("failedTensors", number(accuracy.failedCount)),
                    JSONMember("worstTensor", accuracy.worstTensor.map(JSONValue.string) ?? .null),
                ])))
            }
            return .object(members)
        }
    }
}
