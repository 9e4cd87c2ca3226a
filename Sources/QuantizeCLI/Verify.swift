import ArgumentParser
import Foundation
import Formats
import Quantize

extension QuantizeCommand {
    /// `quantize verify ORIGINAL QUANTIZED`: the accuracy check from two files.
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
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

        @Argument(help: "The quantized checkpoint (file or directory).")
        var quantized: String

        @OptionGroup(title: "Accuracy check")
        var check: CheckOptions

        @Option(help: "Write the JSON report to this file.")
        var output: String?

        @Flag(help: "Print the JSON report on stdout.")
        var json = false

        @Flag(help: "No table on stderr.")
        var quiet = false

        func run() throws {
            let job = try VerifyJob(original: original, quantized: quantized)
            let progress = ProgressReporter(totalItems: job.pairs.count, totalBytes: job.pairs.count, enabled: !quiet && !json)
            let report = try job.run(activations: try check.source(), activationsFile: check.activations, maxError: check.maxError) {
                index, _, name in progress.update(item: index, bytes: index, label: name)
            }
            progress.finish()
            let data = try report.jsonData()
            if let output {
                let file = try OutputFile(path: output, overwrite: true)
                try file.write([UInt8](data))
                try file.commit()
            }
            try check.writeHTML(report, title: "quantize verify \(original) \(quantized)")
            if json {
                print(String(decoding: data, as: UTF8.self))
            } else if !quiet {
                Format.note(report.textTable(limit: 20))
                if !job.unmatched.isEmpty {
                    Format.note("\(job.unmatched.count) weight(s) of the original have no counterpart: " +
                                job.unmatched.prefix(5).joined(separator: ", ") + (job.unmatched.count > 5 ? ", …" : ""))
                }
            }
            if !report.passed { throw ExitCode(1) }
        }
    }
}
