import Foundation

/// A model checkpoint opened for reading, whatever its format: one .safetensors file, a Hugging
/// Face model directory (sharded or not, with config.json), or a .gguf file (or any shard of a
/// gguf-split set, which opens the whole set as one model).
///
/// Only headers are read when opening; tensor data stays in the mapped files until asked for, so
/// a checkpoint of hundreds of GB opens in milliseconds.
public final class Checkpoint: @unchecked Sendable {
    /// The container format.
    public enum Format: String, Sendable, Codable {
        /// safetensors, one file or sharded.
        case safetensors
        /// GGUF (ggml).
        case gguf
    }

    /// The path as given.
    public let path: String
    /// The container format.
    public let format: Format
    /// The model directory (the file's directory for a single file).
    public let directory: String
    /// Every tensor, in file order; `fileIndex` points into ``files``.
    public let tensors: [TensorRecord]
    /// The opened safetensors checkpoint, when ``format`` is safetensors.
    public let safetensors: SafetensorsCheckpoint?
    /// The opened GGUF file, when ``format`` is GGUF: the first shard of a split set, which holds
    /// the metadata.
    public let gguf: GGUFFile?
    /// Every shard of a gguf-split set in split order (one file when not split); empty for safetensors.
    public let ggufShards: [GGUFFile]
    /// The parsed config.json of the model directory, if there is one.
    public let config: JSONValue?
    /// The architecture from config.json or GGUF metadata, if declared.
    public let architecture: ModelArchitecture?

    /// Opens a checkpoint.
    /// - Parameter path: a .safetensors or .gguf file, a model directory, or a
    ///   `*.safetensors.index.json` file.
    /// - Throws: ``FormatError`` from the format's reader, or `.notThisFormat` when the path holds
    ///   no weights.
    public init(path: String) throws(FormatError) {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw FormatError(.io, path: path, message: "no such file or directory", remedy: "check the path")
        }
        var ggufPath: String? = nil
        if isDirectory.boolValue {
            directory = path
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            let hasSafetensors = names.contains { $0.hasSuffix(".safetensors") || $0.hasSuffix(".safetensors.index.json") || $0.hasSuffix(".safetensors.bpz") }
            let ggufs = names.filter { ($0.hasSuffix(".gguf") || $0.hasSuffix(".gguf.bpz")) && !$0.hasPrefix(".") }.sorted()
            if !hasSafetensors && ggufs.count == 1 {
                ggufPath = (path as NSString).appendingPathComponent(ggufs[0])
            } else if !hasSafetensors {
                let found = ggufs.isEmpty ? "no .safetensors or .gguf file" : "several .gguf files (\(ggufs.joined(separator: ", ")))"
                throw FormatError(.notThisFormat, path: path, message: "the directory holds \(found)",
                                  remedy: ggufs.isEmpty ? "point at a model directory with weights, or at a weight file"
                                      : "name the .gguf file to use")
            }
        } else {
            directory = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
            if Checkpoint.startsWithGGUFMagic(path) || path.hasSuffix(".gguf") || CompressedFormat.originalFormat(atPath: path) == .gguf { ggufPath = path }
        }
        if let ggufPath {
            let shards = try GGUFFile.splitSet(containing: try GGUFFile(path: ggufPath))
            let file = shards[0]
            format = .gguf
            gguf = file
            ggufShards = shards
            safetensors = nil
            tensors = shards.enumerated().flatMap { index, shard in shard.records(fileIndex: index) }
            config = nil
            architecture = ModelArchitecture(ggufValue: { key in file[key].flatMap(Checkpoint.plainValue) })
        } else {
            let checkpoint = try SafetensorsCheckpoint(path: path)
            format = .safetensors
            safetensors = checkpoint
            gguf = nil
            ggufShards = []
            tensors = checkpoint.tensors
            let configPath = (checkpoint.directory as NSString).appendingPathComponent("config.json")
            if FileManager.default.fileExists(atPath: configPath) {
                let parsed = try JSONValue.parse(contentsOf: configPath)
                config = parsed
                architecture = ModelArchitecture(config: parsed)
            } else {
                config = nil
                architecture = nil
            }
        }
    }

    /// A checkpoint of one opened GGUF file (which may be an in-memory copy), in the directory
    /// `directory`; what ``init(path:)`` builds for a .gguf path.
    package init(gguf file: GGUFFile, directory: String) {
        path = file.path
        self.directory = directory
        format = .gguf
        gguf = file
        ggufShards = [file]
        safetensors = nil
        tensors = file.records(fileIndex: 0)
        config = nil
        architecture = ModelArchitecture(ggufValue: { key in file[key].flatMap(Checkpoint.plainValue) })
    }

    /// The tensor infos of every GGUF shard, in split order (empty for safetensors).
    public var ggufTensors: [GGUFTensorInfo] { ggufShards.flatMap(\.tensors) }

    /// The paths of the files holding tensor data, indexed by ``TensorRecord/fileIndex``.
    public var files: [String] {
        if gguf != nil { return ggufShards.map(\.path) }
        return safetensors?.shards.map(\.path) ?? []
    }

    /// The byte sizes of ``files``.
    public var fileByteCounts: [Int] {
        if gguf != nil { return ggufShards.map(\.file.count) }
        return safetensors?.shards.map(\.file.count) ?? []
    }

    /// The mapped file behind ``files``[index].
    public func mappedFile(_ index: Int) -> MappedFile {
        if gguf != nil { return ggufShards[index].file }
        return safetensors!.shards[index].file
    }

    /// The bytes of one tensor, without copying (decompressed into memory the checkpoint owns when
    /// the file is a compressed container; prefer ``readData(for:)``, which reports a damaged chunk).
    public func data(for tensor: TensorRecord) -> UnsafeRawBufferPointer {
        let file = mappedFile(tensor.fileIndex)
        file.loadForView(tensor.fileOffset..<(tensor.fileOffset + tensor.byteCount))
        return UnsafeRawBufferPointer(rebasing: file.bytes[tensor.fileOffset..<(tensor.fileOffset + tensor.byteCount)])
    }

    /// The bytes of one tensor, as ``data(for:)``, decompressing a compressed file's chunks first.
    /// - Throws: ``FormatError`` `.checksumMismatch` naming the tensor when a chunk is damaged.
    public func readData(for tensor: TensorRecord) throws(FormatError) -> UnsafeRawBufferPointer {
        try mappedFile(tensor.fileIndex).load(tensor.fileOffset..<(tensor.fileOffset + tensor.byteCount))
        return data(for: tensor)
    }

    /// Gives back the memory holding one tensor's bytes once a reader is done with it: the pages of
    /// a plain file, the decoded chunks of a compressed one (decoded again if read again).
    public func release(_ tensor: TensorRecord) {
        mappedFile(tensor.fileIndex).advise(tensor.fileOffset..<(tensor.fileOffset + tensor.byteCount), willNeed: false)
    }

    /// Whether any file of the checkpoint is a compressed container (formats/compressed.md).
    public var isCompressed: Bool { (0..<files.count).contains { mappedFile($0).compressed != nil } }

    /// The total number of elements of all tensors.
    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.elementCount } }

    /// The total bytes of tensor data.
    public var tensorByteCount: Int { tensors.reduce(0) { $0 + $1.byteCount } }

    private static func startsWithGGUFMagic(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let magic = (try? handle.read(upToCount: 4)) ?? Data()
        return magic == Data("GGUF".utf8)
    }

    /// A GGUF value as the plain Swift value ``ModelArchitecture`` expects.
    static func plainValue(_ value: GGUFValue) -> Any? {
        if let string = value.string { return string }
        if let array = value.array { return array.count > 0 && array[0].double != nil ? array.compactMap(\.double) as [Any] : array.count }
        if let double = value.double { return double }
        if let int = value.int { return Double(int) }
        return nil
    }
}
