import Foundation
import Formats
import Quantize

/// What `inspect` shows for an importance matrix (a GGUF with `general.type = imatrix`, or a
/// legacy `.dat` file): its metadata and one line per entry instead of a model's tensor table.
struct ImatrixInspect {
    let path: String
    let matrix: ImportanceMatrix
    let fileFormat: ImportanceMatrix.FileFormat

    /// The importance matrix at `path` when it is a GGUF whose `general.type` is `imatrix` (read,
    /// with its errors, as such); nil for anything else.
    static func detect(_ path: String) throws -> ImatrixInspect? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { return nil }
        guard let gguf = try? GGUFFile(path: path) else { return nil }
        guard gguf["general.type"]?.string == "imatrix" else { return nil }
        return ImatrixInspect(path: path, matrix: try ImportanceMatrix(contentsOf: path), fileFormat: .gguf)
    }

    /// A legacy `.dat` matrix at `path`, nil when the file does not read as one.
    static func legacy(_ path: String) -> ImatrixInspect? {
        // Real .dat files are a few MB; a large file that is no checkpoint is not read whole.
        guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size < 1 << 30 else { return nil }
        guard let matrix = try? ImportanceMatrix(contentsOf: path), matrix.storage == .legacyMeans else { return nil }
        return ImatrixInspect(path: path, matrix: matrix, fileFormat: .dat)
    }

    private func tokens(_ entry: ImportanceMatrix.Entry) -> String {
        guard let low = entry.counts.min(), let high = entry.counts.max() else { return "-" }
        return low == high ? "\(low)" : "\(low)–\(high)"
    }

    var text: String {
        var lines = ["\(path): importance matrix (\(fileFormat == .gguf ? "llama.cpp GGUF imatrix" : "legacy .dat")), \(matrix.entryCount) entries"]
        lines.append("chunks: \(matrix.chunkCount)" + (matrix.chunkSize > 0 ? " × \(matrix.chunkSize) tokens" : " (chunk size not recorded)"))
        lines.append("datasets: " + (matrix.datasets.isEmpty ? "none recorded" : matrix.datasets.joined(separator: ", ")))
        if fileFormat == .gguf && !matrix.hasMetadata { lines.append("warning: imatrix.* metadata is incomplete; llama-quantize refuses this file") }
        var rows = [[fileFormat == .gguf ? "entry" : "entry", "columns", "experts", fileFormat == .gguf ? "tokens" : "ncall", "mean x²"]]
        for name in matrix.sortedNames {
            let entry = matrix.entries[name]!
            let weights = (try? matrix.quantizationWeights(forTensor: name, columns: entry.columns, experts: entry.experts)) ?? nil
            let mean = weights.map { $0.reduce(0, +) / Float(max($0.count, 1)) }
            rows.append([name, "\(entry.columns)", fileFormat == .gguf ? "\(entry.experts)" : "?", tokens(entry), mean.map { String(format: "%.4g", $0) } ?? "-"])
        }
        lines.append("")
        lines.append(Format.table(rows, rightAligned: [1, 2, 3, 4]))
        return lines.joined(separator: "\n")
    }

    var json: JSONValue {
        .object([
            JSONMember("format", .string(fileFormat == .gguf ? "imatrix-gguf" : "imatrix-dat")),
            JSONMember("path", .string(path)),
            JSONMember("entryCount", .number(JSONNumber(matrix.entryCount))),
            JSONMember("chunkCount", .number(JSONNumber(matrix.chunkCount))),
            JSONMember("chunkSize", .number(JSONNumber(matrix.chunkSize))),
            JSONMember("datasets", .array(matrix.datasets.map { .string($0) })),
            JSONMember("hasMetadata", .bool(matrix.hasMetadata)),
            JSONMember("entries", .array(matrix.sortedNames.map { name in
                let entry = matrix.entries[name]!
                return .object([
                    JSONMember("name", .string(name)),
                    JSONMember("columns", .number(JSONNumber(entry.columns))),
                    JSONMember("experts", fileFormat == .gguf ? .number(JSONNumber(entry.experts)) : .null),
                    JSONMember(fileFormat == .gguf ? "counts" : "ncall", .array(entry.counts.map { .number(JSONNumber(Int($0))) })),
                ])
            })),
        ])
    }
}
