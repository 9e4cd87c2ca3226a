import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a checkpoint split into safetensors shards plus `model.safetensors.index.json`, the way
/// huggingface_hub and transformers do (formats.md §1.5), as a stream and atomically: shards are
/// written to hidden temporary files one at a time, and only ``finish()`` renames them into place,
/// the index last. A writer released or failed before then leaves nothing behind.
public final class SafetensorsShardedWriter {
    /// One planned output file.
    public struct Shard: Sendable, Hashable {
        /// The file name inside the directory (`model-00001-of-00003.safetensors`, or
        /// `model.safetensors` when there is only one).
        public let fileName: String
        /// Its tensors in the order their bytes must be written, with data offsets.
        public let tensors: [SafetensorsTensor]
        /// The sum of its tensors' bytes (headers excluded).
        public let tensorByteCount: Int
        /// Its `__metadata__`.
        public let metadata: [String: String]?
    }

    /// One output file as the caller lays it out (``init(directory:shards:order:indexFileName:indexMetadata:indexStyle:overwrite:)``):
    /// keeping an input's shard names and tensor placement, say.
    public struct PlannedShard: Sendable, Hashable {
        /// The file name inside the directory.
        public var fileName: String
        /// Its tensors.
        public var tensors: [SafetensorsEntry]
        /// Its `__metadata__` (nil for none).
        public var metadata: [String: String]?

        /// Creates a planned shard.
        public init(fileName: String, tensors: [SafetensorsEntry], metadata: [String: String]? = ["format": "pt"]) {
            self.fileName = fileName
            self.tensors = tensors
            self.metadata = metadata
        }
    }

    /// The output directory (must exist).
    public let directory: String
    /// The shards in file order; tensors must be written shard by shard, each in its order.
    public let shards: [Shard]
    /// `metadata.total_size` of the index: the sum of all tensor bytes.
    public let totalSize: Int
    /// The index file name, or nil when everything fits one shard (no index is written then).
    public let indexFileName: String?
    /// The metadata written in every shard's `__metadata__` (the first shard's when the shards
    /// were planned by the caller with their own).
    public let metadata: [String: String]?
    /// Extra members of the index's `metadata` object (for example `total_parameters`);
    /// `total_size` is always added.
    public let indexMetadata: [JSONMember]
    /// How the index is serialized (default: transformers' `json.dumps(indent=2, sort_keys=True)`).
    public let indexStyle: JSONStyle
    /// The order tensors are laid out in inside each shard.
    public let order: SafetensorsWriter.Order

    private let overwrite: Bool
    private let shardOfTensor: [String: Int]
    private var currentShard = 0
    private var writer: SafetensorsWriter?
    private var partialPaths: [String] = []
    private var finished = false

    /// Default shard limit of huggingface_hub and transformers (5 GB).
    public static let defaultMaxShardByteCount = 5_000_000_000

    /// Plans the shards and creates the first one.
    /// - Parameters:
    ///   - directory: an existing directory to write into.
    ///   - tensors: every tensor, in the order used for greedy splitting (the source order).
    ///   - maxShardByteCount: the shard limit in bytes of tensor data; a larger tensor gets a
    ///     shard of its own.
    ///   - metadata: each shard's `__metadata__` (default `{"format": "pt"}`).
    ///   - indexMetadata: extra members for the index's `metadata`.
    ///   - filePrefix: the file name stem (`model`).
    ///   - overwrite: whether existing outputs may be replaced.
    /// - Throws: ``FormatError`` `.invalidArgument` (duplicate names, bad shapes, a limit ≤ 0),
    ///   `.writeFailed` when an output exists (without `overwrite`) or cannot be created.
    public convenience init(directory: String, tensors: [SafetensorsEntry],
                maxShardByteCount: Int = SafetensorsShardedWriter.defaultMaxShardByteCount,
                metadata: [String: String]? = ["format": "pt"], indexMetadata: [JSONMember] = [],
                filePrefix: String = "model", overwrite: Bool = false) throws(FormatError) {
        guard maxShardByteCount > 0 else {
            throw FormatError(.invalidArgument, path: directory, message: "the maximum shard size must be positive")
        }
        try SafetensorsShardedWriter.checkUnique(tensors, path: directory)
        let groups = try SafetensorsShardedWriter.planShards(tensors, maxShardByteCount: maxShardByteCount, path: directory)
        let count = max(groups.count, 1)
        let planned = (0..<count).map { position in
            PlannedShard(fileName: count == 1
                            ? "\(filePrefix).safetensors"
                            : "\(filePrefix)-\(SafetensorsShardedWriter.fiveDigits(position + 1))-of-\(SafetensorsShardedWriter.fiveDigits(count)).safetensors",
                         tensors: position < groups.count ? groups[position] : [], metadata: metadata)
        }
        try self.init(directory: directory, shards: planned, order: .reference,
                      indexFileName: count > 1 ? "\(filePrefix).safetensors.index.json" : nil,
                      indexMetadata: indexMetadata, overwrite: overwrite)
    }

    /// Writes the shards the caller planned (file names, tensors and metadata per file), each in
    /// `order`, and an index when `indexFileName` is given (even for one shard, as an input that
    /// had one keeps it).
    /// - Throws: ``FormatError`` as ``init(directory:tensors:maxShardByteCount:metadata:indexMetadata:filePrefix:overwrite:)``.
    public init(directory: String, shards planned: [PlannedShard], order: SafetensorsWriter.Order = .reference,
                indexFileName: String?, indexMetadata: [JSONMember] = [], indexStyle: JSONStyle = .pythonIndented,
                overwrite: Bool = false) throws(FormatError) {
        guard !planned.isEmpty else {
            throw FormatError(.invalidArgument, path: directory, message: "a sharded checkpoint needs at least one shard")
        }
        self.directory = directory
        self.metadata = planned[0].metadata
        self.indexMetadata = indexMetadata
        self.indexStyle = indexStyle
        self.order = order
        self.overwrite = overwrite
        try SafetensorsShardedWriter.checkUnique(planned.flatMap(\.tensors), path: directory)
        var shards: [Shard] = []
        var total = 0
        for shard in planned {
            let plan = try SafetensorsWriter.plan(shard.tensors, metadata: shard.metadata, order: order, path: directory + "/" + shard.fileName)
            let bytes = plan.tensors.last?.dataOffsets.upperBound ?? 0
            total += bytes
            shards.append(Shard(fileName: shard.fileName, tensors: plan.tensors, tensorByteCount: bytes, metadata: shard.metadata))
        }
        self.shards = shards
        var shardOfTensor: [String: Int] = [:]
        for (position, shard) in shards.enumerated() {
            for tensor in shard.tensors { shardOfTensor[tensor.name] = position }
        }
        self.shardOfTensor = shardOfTensor
        self.totalSize = total
        self.indexFileName = indexFileName
        if !overwrite {
            for name in shards.map(\.fileName) + (indexFileName.map { [$0] } ?? [])
            where FileManager.default.fileExists(atPath: directory + "/" + name) {
                throw FormatError(.writeFailed, path: directory + "/" + name, message: "the output already exists",
                                  remedy: "choose another output directory or pass --force to replace it")
            }
        }
        try openShard(0)
    }

    private static func checkUnique(_ tensors: [SafetensorsEntry], path: String) throws(FormatError) {
        var names = Set<String>()
        for entry in tensors where !names.insert(entry.name).inserted {
            throw FormatError(.invalidArgument, path: path, tensor: entry.name,
                              message: "the tensor name is given twice", remedy: "give every tensor a unique name")
        }
    }

    /// Splits `tensors` greedily in the given order exactly as huggingface_hub's
    /// `split_state_dict_into_shards_factory`: a tensor larger than the limit is appended as a
    /// shard of its own at once; otherwise a shard is closed when the next tensor would push it
    /// over the limit.
    public static func planShards(_ tensors: [SafetensorsEntry], maxShardByteCount: Int, path: String = "<shards>")
        throws(FormatError) -> [[SafetensorsEntry]]
    {
        var shards: [[SafetensorsEntry]] = []
        var current: [SafetensorsEntry] = []
        var currentSize = 0
        for entry in tensors {
            guard let size = entry.byteCount else {
                throw FormatError(.invalidArgument, path: path, tensor: entry.name,
                                  message: "the shape \(entry.shape) of \(entry.dtype.rawValue) has a negative dimension, overflows, or does not fill whole bytes",
                                  remedy: "pass a valid shape")
            }
            if size > maxShardByteCount {
                shards.append([entry])
                continue
            }
            if currentSize + size > maxShardByteCount {
                shards.append(current)
                current = []
                currentSize = 0
            }
            current.append(entry)
            currentSize += size
        }
        if !current.isEmpty { shards.append(current) }
        return shards
    }

    /// The tensor whose bytes are expected next, or nil when all have been written.
    public var nextTensor: SafetensorsTensor? {
        var position = currentShard
        if let next = writer?.nextTensor { return next }
        position += 1
        while position < shards.count {
            if let first = shards[position].tensors.first { return first }
            position += 1
        }
        return nil
    }

    /// Appends the next chunk of tensor `name`, which must be ``nextTensor``.
    /// - Throws: ``FormatError`` `.invalidArgument` for a tensor out of order or too many bytes
    ///   (everything written so far is then discarded), `.writeFailed` on I/O errors.
    public func write(_ chunk: UnsafeRawBufferPointer, for name: String) throws(FormatError) {
        guard !finished, let current = writer else {
            throw FormatError(.invalidArgument, path: directory, tensor: name, message: "the writer is already finished or discarded")
        }
        // Move on once the current shard has nothing but (zero-byte) tensors left and the caller
        // has started on a later shard.
        var active: SafetensorsWriter? = current
        while let open = active, let target = shardOfTensor[name], target > currentShard, shardHasNoBytesLeft(open) {
            do { try advanceShard() } catch { fail(); throw error }
            active = writer
        }
        guard let active else {
            fail()
            throw FormatError(.invalidArgument, path: directory, tensor: name, message: "all tensors are already written")
        }
        do {
            try active.write(chunk, for: name)
        } catch {
            fail()
            throw error
        }
    }

    /// Appends the next chunk of tensor `name` from an array.
    public func write(_ chunk: [UInt8], for name: String) throws(FormatError) {
        var failure: FormatError?
        chunk.withUnsafeBytes { raw in
            do throws(FormatError) { try write(raw, for: name) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Completes the last shard, renames every shard into place, then writes the index (when
    /// there is more than one shard).
    /// - Throws: ``FormatError`` `.invalidArgument` naming the first incomplete tensor (everything
    ///   is discarded), `.writeFailed` on I/O errors.
    public func finish() throws(FormatError) {
        guard !finished else {
            throw FormatError(.invalidArgument, path: directory, message: "the writer is already finished or discarded")
        }
        do throws(FormatError) {
            while writer != nil { try advanceShard() }
            for (position, shard) in shards.enumerated() {
                let target = directory + "/" + shard.fileName
                if rename(partialPaths[position], target) != 0 {
                    let reason = String(cString: strerror(errno))
                    throw FormatError(.writeFailed, path: target, message: "cannot move the finished shard into place (\(reason))")
                }
            }
            partialPaths = []
            if let indexFileName {
                let index = try OutputFile(path: directory + "/" + indexFileName, overwrite: overwrite)
                try index.write(indexJSON())
                try index.commit()
            }
            finished = true
        } catch {
            fail()
            throw error
        }
    }

    /// The index document: `{"metadata": {…, "total_size": N}, "weight_map": {name: file}}`
    /// serialized as transformers does (`json.dumps(indent=2, sort_keys=True)` plus a newline).
    public func indexJSON() -> [UInt8] {
        var metadataMembers = indexMetadata.filter { $0.key != "total_size" }
        metadataMembers.append(JSONMember("total_size", .number(JSONNumber(totalSize))))
        var weightMap: [JSONMember] = []
        for shard in shards {
            for tensor in shard.tensors { weightMap.append(JSONMember(tensor.name, .string(shard.fileName))) }
        }
        let document = JSONValue.object([JSONMember("metadata", .object(metadataMembers)),
                                         JSONMember("weight_map", .object(weightMap))])
        return document.serialized(indexStyle) + [UInt8(ascii: "\n")]
    }

    /// Abandons the output; nothing is left on disk. Safe to call more than once.
    public func discard() { fail() }

    deinit { fail() }

    private func shardHasNoBytesLeft(_ writer: SafetensorsWriter) -> Bool {
        guard let next = writer.nextTensor else { return true }
        guard let position = writer.tensors.firstIndex(of: next) else { return true }
        return writer.tensors[position...].allSatisfy { $0.byteCount == 0 }
    }

    private func openShard(_ position: Int) throws(FormatError) {
        let shard = shards[position]
        let partial = directory + "/." + shard.fileName + ".partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let next = try SafetensorsWriter(path: partial, tensors: shard.tensors.map {
            SafetensorsEntry(name: $0.name, dtype: $0.dtype, shape: $0.shape)
        }, metadata: shard.metadata, order: .given, overwrite: false)
        partialPaths.append(partial)
        writer = next
        currentShard = position
    }

    /// Finishes the current shard under its temporary name and opens the next one, if any.
    private func advanceShard() throws(FormatError) {
        guard let current = writer else { return }
        try current.finish()
        writer = nil
        if currentShard + 1 < shards.count { try openShard(currentShard + 1) }
    }

    private func fail() {
        guard !finished else { return }
        finished = true
        writer?.discard()
        writer = nil
        for partial in partialPaths { unlink(partial) }
        partialPaths = []
    }

    private static func fiveDigits(_ value: Int) -> String {
        let text = String(value)
        return text.count >= 5 ? text : String(repeating: "0", count: 5 - text.count) + text
    }
}
