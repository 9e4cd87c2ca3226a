import Foundation

extension FormatError.Code {
    /// `model.safetensors.index.json` is JSON but not a valid index (no `weight_map`, a value
    /// that is not a file name, a name that leaves the directory).
    public static let invalidIndex: Self = "invalidIndex"
    /// A shard the index names does not exist.
    public static let shardMissing: Self = "shardMissing"
    /// The index maps a tensor to a shard that does not hold it.
    public static let tensorMissingFromShard: Self = "tensorMissingFromShard"
    /// A shard holds a tensor the index does not list.
    public static let tensorNotInIndex: Self = "tensorNotInIndex"
}

/// A safetensors checkpoint: one file, a directory of `*.safetensors` files, or a sharded
/// checkpoint with `model.safetensors.index.json` (formats.md §1.5), every file opened once and
/// validated, and cross-checked against the index.
public final class SafetensorsCheckpoint: @unchecked Sendable {
    /// The path it was opened from (file, directory or index).
    public let path: String
    /// The directory holding the files.
    public let directory: String
    /// The index file, when the checkpoint has one.
    public let indexPath: String?
    /// The files, in order: sorted by file name (UTF-8 byte order).
    public let shards: [SafetensorsFile]
    /// Every tensor, ordered by file then data offset; `fileIndex` points into ``shards``.
    public let tensors: [TensorRecord]
    /// The index's `metadata` object (`total_size`, sometimes `total_parameters`), or nil.
    public let indexMetadata: JSONValue?

    private let positionByName: [String: Int]

    /// The index file names looked for in a directory, in order of preference.
    public static let indexFileName = "model.safetensors.index.json"

    /// Opens a checkpoint.
    /// - Parameter path: a `.safetensors` file; a `*.safetensors.index.json` file; or a
    ///   directory, in which `model.safetensors.index.json` (or the only `*.safetensors.index.json`)
    ///   is used when present, otherwise every non-hidden `*.safetensors` file.
    /// - Throws: ``FormatError``: any error of ``SafetensorsFile``; `.invalidIndex`,
    ///   `.shardMissing`, `.tensorMissingFromShard`, `.tensorNotInIndex`, `.duplicateTensor`
    ///   (naming the tensor and the files); `.notThisFormat` for a directory without safetensors.
    public init(path: String) throws(FormatError) {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw FormatError(.io, path: path, message: "no such file or directory", remedy: "check the path")
        }
        let url = URL(fileURLWithPath: path)
        var indexPath: String? = nil
        var files: [String] = []
        if isDirectory.boolValue {
            directory = path
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: path)
            } catch {
                throw FormatError(.io, path: path, message: "cannot list the directory (\(error.localizedDescription))")
            }
            let visible = names.filter { !$0.hasPrefix(".") }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            let indexes = visible.filter { $0.hasSuffix(".safetensors.index.json") }
            if indexes.contains(SafetensorsCheckpoint.indexFileName) {
                indexPath = url.appendingPathComponent(SafetensorsCheckpoint.indexFileName).path
            } else if indexes.count == 1 {
                indexPath = url.appendingPathComponent(indexes[0]).path
            } else if indexes.count > 1 {
                throw FormatError(.invalidIndex, path: path,
                                  message: "the directory has several index files (\(indexes.joined(separator: ", "))) and none is \(SafetensorsCheckpoint.indexFileName)",
                                  remedy: "pass the index file to use")
            } else {
                files = visible.filter { $0.hasSuffix(".safetensors") || $0.hasSuffix(".safetensors.bpz") }
                if files.isEmpty {
                    throw FormatError(.notThisFormat, path: path, message: "the directory has no .safetensors files",
                                      remedy: "point at a directory with safetensors weights (run `git lfs pull` if they are missing)")
                }
            }
        } else if path.hasSuffix(".json") {
            directory = url.deletingLastPathComponent().path
            indexPath = path
        } else {
            directory = url.deletingLastPathComponent().path
            files = [url.lastPathComponent]
        }
        self.indexPath = indexPath

        var shards: [SafetensorsFile] = []
        var records: [TensorRecord] = []
        var positionByName: [String: Int] = [:]
        if let indexPath {
            let index = try SafetensorsCheckpoint.readIndex(indexPath)
            indexMetadata = index.metadata
            // Files in name order; each opened once.
            let fileNames = Set(index.weightMap.map(\.file)).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            var fileIndexByName: [String: Int] = [:]
            for (position, name) in fileNames.enumerated() {
                let listedPath = URL(fileURLWithPath: directory).appendingPathComponent(name).path
                // A compressed checkpoint keeps the index as it was; its shards carry `.bpz`.
                let shardPath = CompressedFormat.existingPath(listedPath) ?? listedPath
                if !FileManager.default.fileExists(atPath: shardPath) {
                    let first = index.weightMap.first { $0.file == name }?.tensor
                    throw FormatError(.shardMissing, path: shardPath, tensor: first,
                                      message: "the index \(URL(fileURLWithPath: indexPath).lastPathComponent) maps tensors (first '\(first ?? "")') to \(name), but that file does not exist",
                                      remedy: "download the missing shard (all files listed in the index are needed)")
                }
                shards.append(try SafetensorsFile(path: shardPath))
                fileIndexByName[name] = position
            }
            // Where each tensor actually is; a name in two files is ambiguous.
            var location: [String: Int] = [:]
            for (fileIndex, shard) in shards.enumerated() {
                for tensor in shard.tensors {
                    if let other = location[tensor.name] {
                        throw FormatError(.duplicateTensor, path: shard.path, tensor: tensor.name,
                                          message: "the tensor is stored in two shards, \(fileNames[other]) and \(fileNames[fileIndex])",
                                          remedy: "the checkpoint is inconsistent; download it again")
                    }
                    location[tensor.name] = fileIndex
                }
            }
            var listed = Set<String>()
            for entry in index.weightMap {
                listed.insert(entry.tensor)
                guard let fileIndex = fileIndexByName[entry.file] else { continue }
                if location[entry.tensor] != fileIndex {
                    let elsewhere = location[entry.tensor].map { " (it is in \(fileNames[$0]))" } ?? ""
                    throw FormatError(.tensorMissingFromShard, path: shards[fileIndex].path, tensor: entry.tensor,
                                      message: "the index maps the tensor to \(entry.file), but that file does not hold it\(elsewhere)",
                                      remedy: "the index and the shards do not match; download the checkpoint again")
                }
            }
            for (fileIndex, shard) in shards.enumerated() {
                for tensor in shard.tensors where !listed.contains(tensor.name) {
                    throw FormatError(.tensorNotInIndex, path: shard.path, tensor: tensor.name,
                                      message: "\(fileNames[fileIndex]) holds the tensor but the index \(URL(fileURLWithPath: indexPath).lastPathComponent) does not list it",
                                      remedy: "the index and the shards do not match; download the checkpoint again")
                }
            }
        } else {
            indexMetadata = nil
            for name in files {
                shards.append(try SafetensorsFile(path: URL(fileURLWithPath: directory).appendingPathComponent(name).path))
            }
            var location: [String: Int] = [:]
            for (fileIndex, shard) in shards.enumerated() {
                for tensor in shard.tensors {
                    if let other = location[tensor.name] {
                        throw FormatError(.duplicateTensor, path: shard.path, tensor: tensor.name,
                                          message: "the tensor is in two files, \(files[other]) and \(files[fileIndex])",
                                          remedy: "remove the extra file from the directory, or pass one file")
                    }
                    location[tensor.name] = fileIndex
                }
            }
        }
        for (fileIndex, shard) in shards.enumerated() {
            for record in shard.records(fileIndex: fileIndex) {
                positionByName[record.name] = records.count
                records.append(record)
            }
        }
        self.shards = shards
        self.tensors = records
        self.positionByName = positionByName
    }

    /// The record of tensor `name`, if the checkpoint has it.
    public func tensor(named name: String) -> TensorRecord? {
        positionByName[name].map { tensors[$0] }
    }

    /// The tensor's bytes in its mapped file (no copy; valid while this object lives).
    public func data(for record: TensorRecord) -> UnsafeRawBufferPointer {
        let file = shards[record.fileIndex].file
        file.loadForView(record.fileOffset..<(record.fileOffset + record.byteCount))
        return UnsafeRawBufferPointer(rebasing: file.bytes[record.fileOffset..<(record.fileOffset + record.byteCount)])
    }

    /// The tensor's bytes, as ``data(for:)``, decompressing a compressed shard's chunks first.
    /// - Throws: ``FormatError`` `.checksumMismatch` naming the tensor when a chunk is damaged.
    public func readData(for record: TensorRecord) throws(FormatError) -> UnsafeRawBufferPointer {
        try shards[record.fileIndex].file.load(record.fileOffset..<(record.fileOffset + record.byteCount))
        return data(for: record)
    }

    /// The sum of all tensors' bytes (what an index calls `total_size`).
    public var totalTensorByteCount: Int { tensors.reduce(0) { $0 + $1.byteCount } }

    /// A parsed index: its `metadata` object and its `weight_map` (tensor → file), in file order.
    package struct Index {
        /// The `metadata` object, or nil.
        package var metadata: JSONValue?
        /// The tensor → file pairs, in the order the index lists them.
        package var weightMap: [(tensor: String, file: String)]
    }

    private static func readIndex(_ path: String) throws(FormatError) -> Index {
        try parseIndex(JSONValue.parse(contentsOf: path), path: path)
    }

    /// Checks a parsed `model.safetensors.index.json` (`path` names it in errors) and returns its
    /// weight map, in file order, and its metadata.
    package static func parseIndex(_ document: JSONValue, path: String) throws(FormatError) -> Index {
        func invalid(_ message: String, tensor: String? = nil) -> FormatError {
            FormatError(.invalidIndex, path: path, tensor: tensor, message: message,
                        remedy: "the index is damaged; download it again (or remove it to load every .safetensors file in the directory)")
        }
        guard case .object = document else { throw invalid("the index is \(document.kindDescription), not a JSON object") }
        guard let map = document["weight_map"] else { throw invalid("the index has no \"weight_map\"") }
        guard case .object(let members) = map else { throw invalid("\"weight_map\" is \(map.kindDescription), not an object") }
        var weightMap: [(tensor: String, file: String)] = []
        weightMap.reserveCapacity(members.count)
        for member in members {
            guard case .string(let file) = member.value else {
                throw invalid("the weight_map value is \(member.value.kindDescription), not a file name", tensor: member.key)
            }
            if file.isEmpty || file.contains("/") || file.contains("\\") || file == "." || file == ".." {
                throw invalid("the weight_map names \"\(DisplayText.shortened(file))\", which is not a plain file name in the index's directory", tensor: member.key)
            }
            weightMap.append((member.key, file))
        }
        if weightMap.isEmpty { throw invalid("\"weight_map\" lists no tensors") }
        let metadata = document["metadata"]
        if let metadata, !metadata.isNull, metadata.object == nil {
            throw invalid("\"metadata\" is \(metadata.kindDescription), not an object")
        }
        return Index(metadata: metadata, weightMap: weightMap)
    }
}
