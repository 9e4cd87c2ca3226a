import ArgumentParser
import Foundation
import Formats
import Quantize

extension QuantizeCommand {
    /// `quantize verify ORIGINAL QUANTIZED`: the accuracy check from two files.
    struct VerifyCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Measure how much accuracy a quantized checkpoint costs against its original.",
            discussion: """
            Each quantized weight is decoded and compared with the original through an FP32 OpenBLAS matmul on \
            probe activations: relative output error, SQNR, cosine similarity, max abs error, weight error and \
            bits per weight. Works on our outputs, compressed-tensors and vLLM fp8 checkpoints, and every GGUF \
            type quantize can decode (compare a GGUF with its F16/BF16 GGUF original). Exit 1 when a tensor is \
            over its threshold.

            With --target transformers|vllm|llama.cpp (repeatable), each checkpoint's layout is checked against \
            what that runtime's loader expects — config keys and versions, tensor names, dtypes, packed shapes, \
            the scheme or kernel it picks — naming the runtime versions the rules come from; one path checks the \
            layout only. --target transformers also loads the checkpoint with transformers on the CPU when a \
            Python with torch, transformers and compressed-tensors is at hand (QUANTIZE_PYTHON, else python3; \
            --no-load skips it). Exit 1 when a runtime would refuse a checkpoint.
            """)

        @Argument(help: "The original checkpoint (file or directory).")
        var original: String

        @Argument(help: "The quantized checkpoint (file or directory); several compare variants side by side. With --target and no quantized checkpoint, the first path is the one whose layout is checked.")
        var quantized: [String] = []

        @Option(help: ArgumentHelp("Check each checkpoint's layout against this runtime's loader (repeatable).", valueName: "transformers|vllm|llama.cpp"))
        var target: [RuntimeTarget] = []

        @Flag(help: "With --target transformers: check the layout only, do not load the checkpoint with Python.")
        var noLoad = false

        @OptionGroup(title: "Accuracy check")
        var check: CheckOptions

        @Option(help: "Write the JSON report to this file.")
        var output: String?

        @Flag(help: "Print the JSON report on stdout.")
        var json = false

        @Flag(help: "No table on stderr.")
        var quiet = false

        func validate() throws {
            if quantized.isEmpty && target.isEmpty { throw ValidationError("name at least one quantized checkpoint after the original (or check a layout with --target)") }
        }

        func run() throws {
            if quantized.isEmpty { return try runTargets(paths: [original]) }
            try runAccuracy()
            if !target.isEmpty { try runTargets(paths: quantized) }
        }

        /// The layout checks of `--target` for `paths`: text on stderr (or JSON on stdout), exit 1
        /// when a runtime would refuse one.
        func runTargets(paths: [String]) throws {
            var documents: [JSONValue] = []
            var refused = false
            for path in paths {
                for check in try TargetCheck.checks(path: path, targets: target) {
                    var document = check.json()
                    var load: TargetCheck.PythonLoad?
                    if check.target == .transformers, !noLoad {
                        load = TargetCheck.loadWithTransformers(path: path)
                        if case .object(var members) = document {
                            members.append(JSONMember("python_load", load.map { .object([JSONMember("loaded", .bool($0.loaded)), JSONMember("detail", .string($0.detail))]) }
                                                      ?? .string("not run: no Python with torch, transformers and compressed-tensors (set QUANTIZE_PYTHON)")))
                            document = .object(members)
                        }
                    }
                    refused = refused || !check.loads || load?.loaded == false
                    documents.append(document)
                    if !json && !quiet {
                        Format.note("== \(path)")
                        for line in check.textLines(limit: 40) { Format.note(line) }
                        if check.target == .transformers, !noLoad {
                            Format.note(load.map { "  python load: " + ($0.loaded ? "loaded and ran a forward pass (\($0.detail))" : "FAILED — \($0.detail)") }
                                        ?? "  python load: not run (no Python with torch, transformers and compressed-tensors; set QUANTIZE_PYTHON)")
                        }
                    }
                }
            }
            let data = Data((documents.count == 1 ? documents[0] : .object([JSONMember("targets", .array(documents))])).serialized(.document))
            if let output, quantized.isEmpty { try OutputFile.write([UInt8](data), to: output, overwrite: true) }
            if json { print(String(decoding: data, as: UTF8.self)) }
            if refused { throw ExitCode(1) }
        }

        /// The accuracy check of each quantized checkpoint against the original.
        func runAccuracy() throws {
            let source = try check.source()
            var reports: [AccuracyReport] = []
            var unmatched: [(String, [String])] = []
            for path in quantized {
                let job = try VerifyJob(original: original, quantized: path)
                let progress = ProgressReporter(totalItems: job.pairs.count, totalBytes: job.pairs.count, enabled: !quiet && !json)
                let report = try job.run(activations: source, activationsFile: check.activations, maxError: check.maxError) {
                    index, _, name in progress.update(item: index, bytes: index, label: name)
                }
                progress.finish()
                reports.append(report)
                unmatched.append((path, job.unmatched))
            }
            // One quantized checkpoint: its report; several: {"reports": [...]} in argument order.
            let data: Data
            if reports.count == 1 {
                data = try reports[0].jsonData()
            } else {
                data = Data(JSONValue.object([JSONMember("reports", .array(try reports.map { try $0.json() }))]).serialized(.document))
            }
            if let output {
                try OutputFile.write([UInt8](data), to: output, overwrite: true)
            }
            try check.writeHTML(reports, title: "quantize verify \(original)", original: original, checkpoints: quantized)
            if json {
                print(String(decoding: data, as: UTF8.self))
            } else if !quiet {
                for ((path, missing), report) in zip(unmatched, reports) {
                    Format.note("== \(path)")
                    Format.note(report.textTable(limit: 20))
                    if !missing.isEmpty {
                        Format.note("\(missing.count) weight(s) of the original have no counterpart: " +
                                    missing.prefix(5).joined(separator: ", ") + (missing.count > 5 ? ", …" : ""))
                    }
                }
            }
            if reports.contains(where: { !$0.passed }) { throw ExitCode(1) }
        }
    }
}
