import Foundation

extension FormatError.Code {
    /// A shard of a gguf-split set is missing, misnamed, or disagrees with the others
    /// (`split.no`, `split.count`, `split.tensors.count`, a tensor in two shards).
    public static let ggufSplitInvalid: Self = "ggufSplitInvalid"
}

extension GGUFFile {
    /// Every shard of the gguf-split set `file` belongs to, first shard first; `[file]` when its
    /// `split.count` is absent or 1.
    ///
    /// llama.cpp's loader (llama-model-loader.cpp, `llama_split_path`): the shards are named
    /// `PREFIX-%05d-of-%05d.gguf`, the first holds all the metadata, each holds `split.no` (its
    /// index), `split.count`, and the first `split.tensors.count`; no tensor may be in two shards.
    /// Unlike llama.cpp (which refuses any but the first shard), any shard names the set.
    /// - Throws: ``FormatError`` `.ggufSplitInvalid` naming the shard and what is wrong, or the
    ///   shard's own parse error.
    public static func splitSet(containing file: GGUFFile) throws(FormatError) -> [GGUFFile] {
        guard let count = file["split.count"]?.int, count > 1 else { return [file] }
        guard let index = file["split.no"]?.int, index >= 0, index < count else {
            throw FormatError(.ggufSplitInvalid, path: file.path,
                              message: "split.count is \(count) but split.no is \(file["split.no"]?.int.map(String.init) ?? "missing") (must be 0 to \(count - 1))",
                              remedy: "re-split the model with llama-gguf-split, or merge it (llama-gguf-split --merge)")
        }
        let name = (file.path as NSString).lastPathComponent
        let suffix = shardSuffix(index: index, count: count)
        guard name.hasSuffix(suffix) else {
            throw FormatError(.ggufSplitInvalid, path: file.path,
                              message: "this is shard \(index + 1) of \(count) of a gguf-split set, but its name does not end in \(suffix), so the other shards cannot be found",
                              remedy: "keep gguf-split's names (PREFIX-00001-of-\(String(format: "%05d", count)).gguf …) for every shard")
        }
        let prefix = String(file.path.dropLast(suffix.count))
        var shards: [GGUFFile] = []
        for shardIndex in 0..<count {
            if shardIndex == index { shards.append(file); continue }
            let path = prefix + shardSuffix(index: shardIndex, count: count)
            guard FileManager.default.fileExists(atPath: path) else {
                throw FormatError(.ggufSplitInvalid, path: path,
                                  message: "shard \(shardIndex + 1) of \(count) of \(name)'s split set is missing",
                                  remedy: "put every shard of the set in the same directory")
            }
            let shard = try GGUFFile(path: path)
            guard shard["split.count"]?.int == count, shard["split.no"]?.int == shardIndex else {
                throw FormatError(.ggufSplitInvalid, path: path,
                                  message: "is named shard \(shardIndex + 1) of \(count) but says split.no \(shard["split.no"]?.int.map(String.init) ?? "missing"), split.count \(shard["split.count"]?.int.map(String.init) ?? "missing")",
                                  remedy: "the shards come from different splits: download the set again")
            }
            shards.append(shard)
        }
        var seen = Set<String>()
        for shard in shards {
            for tensor in shard.tensors where !seen.insert(tensor.name).inserted {
                throw FormatError(.ggufSplitInvalid, path: shard.path, tensor: tensor.name,
                                  message: "the tensor is in two shards of the set", remedy: "the shards come from different splits: download the set again")
            }
        }
        if let total = shards[0]["split.tensors.count"]?.int, total != seen.count {
            throw FormatError(.ggufSplitInvalid, path: shards[0].path,
                              message: "split.tensors.count says \(total) tensors but the \(count) shards hold \(seen.count)",
                              remedy: "a shard is damaged or from another split: download the set again")
        }
        return shards
    }

    /// `-0000i-of-0000n.gguf` for the shard at zero-based `index` of `count`, as llama_split_path writes it.
    static func shardSuffix(index: Int, count: Int) -> String {
        String(format: "-%05d-of-%05d.gguf", index + 1, count)
    }
}
