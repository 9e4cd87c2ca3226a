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
            """)

        @Argument(help: "The original checkpoint (file or directory).")
        var original: String

        @Argument(help: "The quantized checkpoint (file or directory); several compare variants side by side.")
        var quantized: [String]

        @OptionGroup(title: "Accuracy check")
        var check: CheckOptions

        @Option(help: "Write the JSON report to this file.")
        var output: String?

        @Flag(help: "Print the JSON report on stdout.")
        var json = false

        @Flag(help: "No table on stderr.")
        var quiet = false

        func validate() throws {
            if quantized.isEmpty { throw ValidationError("name at least one quantized checkpoint after the original") }
        }

        func run() throws {
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
