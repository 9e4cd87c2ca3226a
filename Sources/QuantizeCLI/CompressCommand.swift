import ArgumentParser
import Foundation
import Formats

extension QuantizeCommand {
    /// `quantize compress INPUT [-o OUTPUT]`: lossless byte-plane zstd compression of weight files.
    struct Compress: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compress a weight file or model directory losslessly (byte planes + zstd; formats/compressed.md).",
            discussion: """
            A .safetensors or .gguf file becomes FILE.bpz; a model directory becomes a directory with the same \
            files, weight files compressed (NAME.safetensors.bpz) and the rest copied. Every command of quantize \
            reads the result as it reads the original; `quantize decompress` restores the very same bytes.
            """)

        @Argument(help: "A .safetensors or .gguf file, or a model directory.")
        var input: String

        @Option(name: [.short, .customLong("output")], help: "The output (default: INPUT.bpz).")
        var output: String?

        @Flag(help: "Replace an existing output.")
        var force = false

        @Option(help: "Original bytes per independently compressed chunk, in KiB (default 1024).")
        var chunkKilobytes: Int = CompressedFormat.defaultChunkByteCount / 1024

        @Flag(help: "Print one JSON document on stdout.")
        var json = false

        func validate() throws {
            if chunkKilobytes < 1 || chunkKilobytes > CompressedFormat.maxChunkByteCount / 1024 {
                throw ValidationError("--chunk-kilobytes must be between 1 and \(CompressedFormat.maxChunkByteCount / 1024)")
            }
        }

        func run() throws {
            let (path, summary) = try CompressedContainer.compress(input, to: output, overwrite: force, chunkByteCount: chunkKilobytes * 1024)
            report(CompressionReport(command: "compress", input: input, output: path, summary: summary), json: json)
        }
    }

    /// `quantize decompress INPUT [-o OUTPUT]`: restores the original bytes of a compressed file or directory.
    struct Decompress: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore the original bytes of a file or directory made by `quantize compress`.")

        @Argument(help: "A .bpz file, or a directory made by `quantize compress`.")
        var input: String

        @Option(name: [.short, .customLong("output")], help: "The output (default: INPUT without .bpz).")
        var output: String?

        @Flag(help: "Replace an existing output.")
        var force = false

        @Flag(help: "Print one JSON document on stdout.")
        var json = false

        func run() throws {
            let (path, summary) = try CompressedContainer.decompress(input, to: output, overwrite: force)
            report(CompressionReport(command: "decompress", input: input, output: path, summary: summary), json: json)
        }
    }
}

/// What `compress` and `decompress` print.
struct CompressionReport {
    var command: String
    var input: String
    var output: String
    var summary: CompressionSummary

    var json: JSONValue {
        .object([
            JSONMember("command", .string(command)),
            JSONMember("input", .string(input)),
            JSONMember("output", .string(output)),
            JSONMember("inputBytes", .number(JSONNumber(summary.inputByteCount))),
            JSONMember("outputBytes", .number(JSONNumber(summary.outputByteCount))),
            JSONMember("weightFiles", .number(JSONNumber(summary.weightFileCount))),
            JSONMember("copiedFiles", .number(JSONNumber(summary.copiedFileCount))),
            JSONMember("seconds", .number(JSONNumber(summary.seconds))),
        ])
    }
}

private func report(_ report: CompressionReport, json: Bool) {
    if json {
        print(report.json.serializedString(JSONStyle(indent: 2, sortKeys: false, escapeNonASCII: false)))
        return
    }
    let s = report.summary
    let ratio = s.inputByteCount > 0 ? String(format: "%.1f %%", 100 * Double(s.outputByteCount) / Double(s.inputByteCount)) : "-"
    let rate = s.seconds > 0 ? String(format: "%.2f GB/s", Double(s.inputByteCount) / s.seconds / 1e9) : "-"
    let copied = s.copiedFileCount > 0 ? ", copied \(s.copiedFileCount) other file(s)" : ""
    Format.note("\(report.command)ed \(s.weightFileCount) weight file(s)\(copied): \(Format.bytes(s.inputByteCount)) → \(Format.bytes(s.outputByteCount)) (\(ratio)) in \(Format.duration(s.seconds)) (\(rate))")
    Format.note("wrote \(report.output)")
}
