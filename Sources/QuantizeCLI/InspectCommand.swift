import ArgumentParser
import Foundation
import Formats

extension QuantizeCommand {
    /// `quantize inspect PATH`: what is in a checkpoint, from its headers.
    struct InspectCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "inspect",
            abstract: "Show what is in a checkpoint file or directory: tensors, totals, metadata, architecture.",
            discussion: "Reads headers only, so even a checkpoint of hundreds of GB inspects in well under a second.")

        @Argument(help: "A .safetensors or .gguf file, a model directory, or a model.safetensors.index.json.")
        var path: String

        @Flag(help: "Print one JSON document on stdout (schema: formats/inspect.md).")
        var json = false

        @Option(help: "Show at most this many tensors in the text table (all in JSON).")
        var limit: Int?

        @Flag(help: "Check the files against the output's quantize-manifest.json and any FILE.sha256 sidecars; a file that differs is an error naming it.")
        var verifyChecksums = false

        func run() throws {
            if verifyChecksums {
                // Before reading any header: a damaged file is named by its checksum, and an
                // importance matrix (not a model) is checked too.
                let checks = try IntegrityManifest.verifyChecksums(of: path, files: InspectCommand.sidecarCandidates(path))
                let note = checks.isEmpty ? ["no quantize-manifest.json or .sha256 sidecar records a checksum for \(path)"] : checks
                for line in note { FileHandle.standardError.write(Data(("checksums: " + line + "\n").utf8)) }
            }
            // An importance matrix is shown as one (ImatrixInspect.swift), not as a model.
            let checkpoint: Checkpoint
            do {
                if let imatrix = try ImatrixInspect.detect(path) { return print(json ? imatrix.json.serializedString(.document) : imatrix.text) }
                checkpoint = try Checkpoint(path: path)
            } catch {
                guard let imatrix = ImatrixInspect.legacy(path) else { throw error }
                return print(json ? imatrix.json.serializedString(.document) : imatrix.text)
            }
            let report = InspectReport(checkpoint)
            if json {
                print(report.json().serializedString(.document))
            } else {
                print(report.text(limit: limit))
            }
        }

        /// The files whose `.sha256` sidecars `--verify-checksums` checks: the file itself, or every
        /// regular file of a directory (the weights, the index, config.json, tokenizer files).
        static func sidecarCandidates(_ path: String) -> [String] {
            let fm = FileManager.default
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return [path] }
            return ((try? fm.contentsOfDirectory(atPath: path)) ?? []).sorted()
                .filter { !$0.hasPrefix(".") && !$0.hasSuffix(".sha256") }
                .map { (path as NSString).appendingPathComponent($0) }
                .filter { fm.fileExists(atPath: $0 + ".sha256") }
        }
    }
}

/// What `inspect` reports, built once and rendered as text or JSON.
struct InspectReport {
    let checkpoint: Checkpoint

    init(_ checkpoint: Checkpoint) { self.checkpoint = checkpoint }

    /// Tensors, parameters and bytes per storage type, most bytes first.
    var histogram: [(type: String, tensors: Int, parameters: Int, bytes: Int)] {
        var table: [String: (Int, Int, Int)] = [:]
        for tensor in checkpoint.tensors {
            let entry = table[tensor.type.description] ?? (0, 0, 0)
            table[tensor.type.description] = (entry.0 + 1, entry.1 + tensor.elementCount, entry.2 + tensor.byteCount)
        }
        return table.map { (type: $0.key, tensors: $0.value.0, parameters: $0.value.1, bytes: $0.value.2) }
            .sorted { $0.bytes != $1.bytes ? $0.bytes > $1.bytes : $0.type < $1.type }
    }

    /// Metadata as JSON: safetensors strings as they are; GGUF values typed, long arrays summarised.
    var metadata: JSONValue {
        if let gguf = checkpoint.gguf {
            return .object(gguf.metadata.map { JSONMember($0.key, InspectReport.json($0.value)) })
        }
        var members: [JSONMember] = []
        for (index, shard) in (checkpoint.safetensors?.shards ?? []).enumerated() {
            guard let metadata = shard.metadata else { continue }
            for key in metadata.keys.sorted() where !members.contains(where: { $0.key == key }) {
                members.append(JSONMember(key, .string(metadata[key]!)))
            }
            _ = index
        }
        return .object(members)
    }

    static let arrayHead = 8

    static func json(_ value: GGUFValue) -> JSONValue {
        func scalar(_ value: GGUFValue) -> JSONValue {
            if let string = value.string { return .string(string) }
            if let bool = value.bool { return .bool(bool) }
            if let int = value.int { return .number(JSONNumber(int)) }
            if let double = value.double { return double.isFinite ? .number(JSONNumber(double)) : .string("\(double)") }
            return .null
        }
        if let array = value.array {
            var members = [JSONMember("type", .string(value.type.description)), JSONMember("count", .number(JSONNumber(array.count)))]
            if array.count > arrayHead {
                members.append(JSONMember("head", .array(array.prefix(arrayHead).map(scalar))))
            } else {
                members.append(JSONMember("values", .array(array.map(scalar))))
            }
            return .object(members)
        }
        return .object([JSONMember("type", .string(value.type.description)), JSONMember("value", scalar(value))])
    }

    func architectureJSON(_ a: ModelArchitecture) -> JSONValue {
        func int(_ v: Int?) -> JSONValue { v.map { .number(JSONNumber($0)) } ?? .null }
        return .object([
            JSONMember("name", .string(a.name)),
            JSONMember("family", a.family.map(JSONValue.string) ?? .null),
            JSONMember("layers", int(a.layers)),
            JSONMember("hiddenSize", int(a.hiddenSize)),
            JSONMember("intermediateSize", int(a.intermediateSize)),
            JSONMember("attentionHeads", int(a.attentionHeads)),
            JSONMember("keyValueHeads", int(a.keyValueHeads)),
            JSONMember("headSize", int(a.headSize)),
            JSONMember("vocabularySize", int(a.vocabularySize)),
            JSONMember("contextLength", int(a.contextLength)),
            JSONMember("tiedEmbeddings", a.tiedEmbeddings.map(JSONValue.bool) ?? .null),
            JSONMember("expertCount", int(a.expertCount)),
            JSONMember("expertsPerToken", int(a.expertsPerToken)),
            JSONMember("slidingWindow", int(a.slidingWindow)),
            JSONMember("source", .string(a.source)),
        ])
    }

    func json() -> JSONValue {
        let files = checkpoint.files
        let sizes = checkpoint.fileByteCounts
        var members: [JSONMember] = [
            JSONMember("format", .string(checkpoint.format.rawValue)),
            JSONMember("path", .string(checkpoint.path)),
            JSONMember("files", .array(zip(files, sizes).map { file, size in
                .object([JSONMember("path", .string(file)), JSONMember("bytes", .number(JSONNumber(size)))])
            })),
            JSONMember("tensorCount", .number(JSONNumber(checkpoint.tensors.count))),
            JSONMember("parameterCount", .number(JSONNumber(checkpoint.logicalParameterCount))),
            JSONMember("tensorBytes", .number(JSONNumber(checkpoint.tensorByteCount))),
            JSONMember("dtypes", .object(histogram.map { entry in
                JSONMember(entry.type, .object([
                    JSONMember("tensors", .number(JSONNumber(entry.tensors))),
                    JSONMember("parameters", .number(JSONNumber(entry.parameters))),
                    JSONMember("bytes", .number(JSONNumber(entry.bytes))),
                ]))
            })),
            JSONMember("architecture", checkpoint.architecture.map(architectureJSON) ?? .null),
        ]
        if let quantization = checkpoint.quantization {
            // Only quantized checkpoints carry these (formats/inspect.md): the stored elements
            // (packed words, scales) beside the logical count, and the scheme.
            members.insert(JSONMember("storedElementCount", .number(JSONNumber(checkpoint.parameterCount))), at: 5)
            members.append(JSONMember("quantization", (try? JSONValueEncoder().encode(quantization)) ?? .null))
        }
        if let gguf = checkpoint.gguf {
            members.append(JSONMember("gguf", .object([
                JSONMember("version", .number(JSONNumber(Int(gguf.version)))),
                JSONMember("alignment", .number(JSONNumber(gguf.alignment))),
                JSONMember("dataStart", .number(JSONNumber(gguf.dataStart))),
            ])))
        }
        members.append(JSONMember("metadata", metadata))
        members.append(JSONMember("tensors", .array(checkpoint.tensors.map { tensor in
            .object([
                JSONMember("name", .string(tensor.name)),
                JSONMember("dtype", .string(tensor.type.description)),
                JSONMember("shape", .array(tensor.shape.map { .number(JSONNumber($0)) })),
                JSONMember("parameters", .number(JSONNumber(tensor.elementCount))),
                JSONMember("bytes", .number(JSONNumber(tensor.byteCount))),
                JSONMember("offset", .number(JSONNumber(tensor.fileOffset))),
                JSONMember("file", .string((files[tensor.fileIndex] as NSString).lastPathComponent)),
            ])
        })))
        return .object(members)
    }

    func text(limit: Int?) -> String {
        var lines: [String] = []
        let files = checkpoint.files
        let sizes = checkpoint.fileByteCounts
        var header = "\(checkpoint.path): \(checkpoint.format.rawValue)"
        if let gguf = checkpoint.gguf { header += " v\(gguf.version), alignment \(gguf.alignment)" }
        header += ", \(files.count) file\(files.count == 1 ? "" : "s"), \(Format.bytes(sizes.reduce(0, +)))"
        lines.append(header)
        let parameters = checkpoint.logicalParameterCount
        lines.append("parameters: \(Format.count(parameters)) (\(parameters)) in \(checkpoint.tensors.count) tensors, \(Format.bytes(checkpoint.tensorByteCount)) of tensor data")
        if let quantization = checkpoint.quantization {
            lines.append("quantization: \(quantization.summary); \(checkpoint.parameterCount) stored elements")
        }
        if let a = checkpoint.architecture {
            var parts: [String] = []
            func add(_ label: String, _ value: Int?) { if let value { parts.append("\(label) \(value)") } }
            add("layers", a.layers); add("hidden", a.hiddenSize); add("intermediate", a.intermediateSize)
            add("heads", a.attentionHeads); add("kv heads", a.keyValueHeads); add("head size", a.headSize)
            add("vocab", a.vocabularySize); add("context", a.contextLength)
            add("experts", a.expertCount); add("experts/token", a.expertsPerToken); add("sliding window", a.slidingWindow)
            if let tied = a.tiedEmbeddings { parts.append(tied ? "tied embeddings" : "untied embeddings") }
            lines.append("architecture: \(a.name) (\(a.source)): " + parts.joined(separator: ", "))
        } else {
            lines.append("architecture: not declared (no config.json or GGUF architecture metadata)")
        }
        lines.append("")
        var typeRows = [["dtype", "tensors", "parameters", "bytes", "share"]]
        let total = max(checkpoint.tensorByteCount, 1)
        for entry in histogram {
            typeRows.append([entry.type, "\(entry.tensors)", Format.count(entry.parameters), Format.bytes(entry.bytes),
                             String(format: "%.1f%%", Double(entry.bytes) * 100 / Double(total))])
        }
        lines.append(Format.table(typeRows, rightAligned: [1, 2, 3, 4]))
        if let gguf = checkpoint.gguf {
            lines.append("")
            lines.append("metadata (\(gguf.metadata.count) keys):")
            for (key, value) in gguf.metadata { lines.append("  \(key) = \(value.summary)") }
        } else if case .object(let members) = metadata, !members.isEmpty {
            lines.append("")
            lines.append("metadata: " + members.map { "\($0.key)=\($0.value.string ?? "")" }.joined(separator: ", "))
        }
        lines.append("")
        var rows = [["name", "dtype", "shape", "parameters", "bytes", "offset", "file"]]
        let shown = limit.map { Array(checkpoint.tensors.prefix($0)) } ?? checkpoint.tensors
        for tensor in shown {
            rows.append([tensor.name, tensor.type.description, "[" + tensor.shape.map(String.init).joined(separator: ", ") + "]",
                         "\(tensor.elementCount)", "\(tensor.byteCount)", "\(tensor.fileOffset)",
                         (files[tensor.fileIndex] as NSString).lastPathComponent])
        }
        lines.append(Format.table(rows, rightAligned: [3, 4, 5]))
        if shown.count < checkpoint.tensors.count {
            lines.append("… \(checkpoint.tensors.count - shown.count) more tensors (use --json for all)")
        }
        return lines.joined(separator: "\n")
    }
}
