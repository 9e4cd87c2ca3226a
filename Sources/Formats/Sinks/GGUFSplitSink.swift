import Foundation

/// A GGUF output split into shards the way llama.cpp's `gguf-split --split` writes them
/// (tools/gguf-split/gguf-split.cpp), which llama.cpp loads from the first shard:
/// `NAME-00001-of-0000N.gguf` …, the tensors in the given order, a new shard whenever the next
/// tensor (its bytes padded to 32) would take the shard's tensor data above `maxBytes`, or every
/// `maxTensors` tensors; the first shard holds all the metadata followed by `split.no` (u16),
/// `split.count` (u16) and `split.tensors.count` (i32), the others only those three keys.
///
/// Staged in one transaction: shards 2…N are companions of the first, moved into place before
/// it, and removed again when a move fails, so the set appears whole or not at all.
public final class GGUFSplitSink: CheckpointSink {
    /// The staging transaction (its target is the first shard).
    public let transaction: OutputTransaction
    /// The tensors in write order.
    public let writeOrder: [String]
    /// The shard file paths, in order.
    public let shardPaths: [String]
    /// The tensors of each shard.
    public let shards: [[GGUFWriter.Tensor]]

    private let metadata: [[(key: String, value: GGUFValue)]]
    private let shardOfTensor: [String: Int]
    private var writer: GGUFWriter?
    private var current = -1
    private var finished: [String] = []

    /// gguf-split's shard name: `PREFIX-00001-of-00003.gguf` (`llama_split_path`), the prefix being
    /// `target` without its `.gguf` extension.
    public static func shardPath(target: String, index: Int, count: Int) -> String {
        let prefix = target.lowercased().hasSuffix(".gguf") ? String(target.dropLast(5)) : target
        func five(_ value: Int) -> String { let text = String(value); return String(repeating: "0", count: max(0, 5 - text.count)) + text }
        return "\(prefix)-\(five(index + 1))-of-\(five(count)).gguf"
    }

    /// gguf-split's plan: tensors in order, a new shard when the next tensor's padded bytes would
    /// take the shard above `maxBytes` (`--split-max-size`), or at every multiple of `maxTensors`
    /// (`--split-max-tensors`; llama.cpp takes one mode, size when both are given here).
    /// - Throws: ``FormatError`` `.invalidArgument` when a shard would hold no tensor (a tensor
    ///   larger than the limit first in the file), as gguf-split refuses it.
    public static func plan(_ tensors: [GGUFWriter.Tensor], maxBytes: Int?, maxTensors: Int?, path: String) throws(FormatError) -> [[GGUFWriter.Tensor]] {
        var shards: [[GGUFWriter.Tensor]] = [[]]
        var size = 0
        for (index, tensor) in tensors.enumerated() {
            let bytes = tensor.type.byteCount(elementCount: tensor.shape.reduce(1, *)) ?? 0
            let padded = (bytes + GGUFFile.defaultAlignment - 1) / GGUFFile.defaultAlignment * GGUFFile.defaultAlignment
            let split: Bool
            if let maxBytes {
                split = size + padded > maxBytes
            } else if let maxTensors, maxTensors > 0 {
                split = index > 0 && index % maxTensors == 0
            } else {
                split = false
            }
            if split {
                guard !(shards.last?.isEmpty ?? true) else {
                    throw FormatError(.invalidArgument, path: path, tensor: tensor.name,
                                      message: "a shard would hold no tensor: \(tensor.name) alone (\(padded) bytes) is larger than --split-max-size",
                                      remedy: "raise --split-max-size above the largest tensor")
                }
                shards.append([])
                size = padded
            } else {
                size += padded
            }
            shards[shards.count - 1].append(tensor)
        }
        return shards
    }

    /// Stages the shards of `target` (`NAME.gguf` → `NAME-0000i-of-0000N.gguf`) with `metadata`,
    /// `fileType`, `quantizationVersion` and `trailing` placed as ``GGUFFileSink`` places them.
    /// - Throws: ``FormatError`` from the plan, ``OutputTransaction/init(target:directory:)`` and ``GGUFWriter``.
    public init(target: String, metadata base: [(key: String, value: GGUFValue)], tensors: [GGUFWriter.Tensor],
                fileType: UInt32? = nil, quantizationVersion: UInt32? = nil, trailing: [(key: String, value: GGUFValue)] = [],
                maxBytes: Int?, maxTensors: Int?) throws(FormatError) {
        var first = base
        func set(_ key: String, _ value: GGUFValue) {
            first.removeAll { $0.key == key }
            first.append((key, value))
        }
        if let quantizationVersion { set("general.quantization_version", .uint32(quantizationVersion)) }
        if let fileType { set("general.file_type", .uint32(fileType)) }
        for (key, value) in trailing { set(key, value) }
        let shards = try GGUFSplitSink.plan(tensors, maxBytes: maxBytes, maxTensors: maxTensors, path: target)
        self.shards = shards
        let count = shards.count
        shardPaths = (0..<count).map { GGUFSplitSink.shardPath(target: target, index: $0, count: count) }
        guard let count16 = UInt16(exactly: count), let total = Int32(exactly: tensors.count) else {
            throw FormatError(.invalidArgument, path: target, message: "\(count) shards or \(tensors.count) tensors do not fit gguf-split's split.count (u16) and split.tensors.count (i32)")
        }
        var metadata: [[(key: String, value: GGUFValue)]] = []
        for index in 0..<count {
            var keys = index == 0 ? first : []
            keys.removeAll { $0.key.hasPrefix("split.") }
            keys.append(("split.no", .uint16(UInt16(index))))
            keys.append(("split.count", .uint16(count16)))
            keys.append(("split.tensors.count", .int32(total)))
            metadata.append(keys)
        }
        self.metadata = metadata
        var owner: [String: Int] = [:]
        for (index, shard) in shards.enumerated() { for tensor in shard { owner[tensor.name] = index } }
        shardOfTensor = owner
        writeOrder = tensors.map(\.name)
        transaction = try OutputTransaction(target: shardPaths[0])
        try open(0)
    }

    private func name(_ index: Int) -> String { URL(fileURLWithPath: shardPaths[index]).lastPathComponent }

    private func open(_ index: Int) throws(FormatError) {
        if let writer {
            do { try writer.finish() } catch { throw transaction.publicError(error) }
            finished.append(transaction.path(name(current)))
        }
        writer = nil
        do {
            writer = try GGUFWriter(path: transaction.path(name(index)), metadata: metadata[index], tensors: shards[index])
        } catch { throw transaction.publicError(error) }
        current = index
    }

    /// Appends bytes of tensor `name`, opening its shard when it is the first of a new one.
    public func write(_ chunk: UnsafeRawBufferPointer, for name: String) throws(FormatError) {
        guard let index = shardOfTensor[name] else {
            throw FormatError(.invalidArgument, path: transaction.target, tensor: name, message: "the tensor was not declared for this split output")
        }
        while current < index { try open(current + 1) }
        do { try writer?.write(chunk) } catch { throw transaction.publicError(error) }
    }

    /// Completes every shard (empty trailing shards are opened and finished too); returns their staged paths.
    public func finishTensors() throws(FormatError) -> [String] {
        while current < shards.count - 1 { try open(current + 1) }
        if let writer {
            do { try writer.finish() } catch { throw transaction.publicError(error) }
            finished.append(transaction.path(name(current)))
        }
        writer = nil
        for index in 1..<max(shards.count, 1) { transaction.addStagedCompanion(name(index), finalPath: shardPaths[index]) }
        return finished
    }

    /// Moves shards 2…N and then the first shard into place.
    public func commit() throws(FormatError) { try transaction.commit(.file(named: name(0))) }
}
