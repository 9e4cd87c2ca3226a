import Foundation
import Formats

extension FormatError.Code {
    /// An importance-matrix file (llama.cpp GGUF imatrix or legacy `.dat`) is malformed.
    public static let imatrixMalformed: Self = "imatrixMalformed"
    /// An importance matrix does not fit the tensor it is applied to (size, values).
    public static let imatrixMismatch: Self = "imatrixMismatch"
}

/// An importance matrix as llama.cpp keeps it: per weight tensor (GGUF name such as
/// `blk.3.attn_q.weight`) and per expert (one for a dense tensor; one per expert for a 3-D
/// `blk.N.ffn_down_exps.weight`) the sum of squared activations of every input column and the
/// number of tokens that went in, with the file's metadata (datasets, chunk count, chunk size).
///
/// Reads and writes both of llama.cpp's formats (formats/imatrix.md): the GGUF imatrix written by
/// `llama-imatrix` (`<name>.in_sum2` F32 `[experts, columns]`, `<name>.counts` F32 `[experts, 1]`,
/// `general.type = imatrix`, `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`) and
/// the legacy `.dat` file (`--output-format dat`), whose values are already means scaled by a call
/// count. Reading is bounded by the file's size and strict: every problem is a ``FormatError``
/// naming the file, the entry and what is wrong.
public struct ImportanceMatrix: Sendable, Equatable {
    /// What an entry's numbers mean, which follows from the file format they came from.
    public enum Storage: Sendable, Equatable {
        /// Raw sums: `sums` holds Σx² per column and expert, `counts` the tokens per expert
        /// (the GGUF format, and what collection produces).
        case sums
        /// The legacy `.dat` layout: `sums` holds (Σx²/count)·ncall per column and `counts` is
        /// `[ncall]` (llama-imatrix's `ceil(max count / chunk size)`).
        case legacyMeans
    }

    /// The two file formats.
    public enum FileFormat: String, Sendable, CaseIterable {
        /// llama.cpp's GGUF imatrix (the default of current llama-imatrix).
        case gguf
        /// The legacy binary `.dat` layout (`llama-imatrix --output-format dat`).
        case dat
    }

    /// One tensor's statistics.
    public struct Entry: Sendable, Equatable {
        /// Expert-major values, `experts × columns`: Σx² (``Storage/sums``) or the legacy scaled means.
        public var sums: [Float]
        /// Tokens per expert (``Storage/sums``), or `[ncall]` (``Storage/legacyMeans``).
        public var counts: [Int64]

        /// Creates an entry; `sums.count` must be a multiple of `counts.count`.
        public init(sums: [Float], counts: [Int64]) {
            self.sums = sums
            self.counts = counts
        }

        /// Matrices (experts) the entry covers: `counts.count` for raw sums.
        public var experts: Int { counts.count }
        /// Input columns per matrix (for a legacy entry, all of its values).
        public var columns: Int { counts.isEmpty ? 0 : sums.count / counts.count }
    }

    /// How the entries' numbers are to be read.
    public var storage: Storage
    /// The entries by GGUF tensor name.
    public var entries: [String: Entry]
    /// The texts the matrix was computed on (`imatrix.datasets`; the legacy trailer's one name).
    public var datasets: [String]
    /// Chunks the matrix was computed on (`imatrix.chunk_count`, the legacy trailer's count; 0 when absent).
    public var chunkCount: Int
    /// Tokens per chunk (`imatrix.chunk_size`; 0 when unknown, as in every legacy file).
    public var chunkSize: Int
    /// Whether a GGUF file carried all three `imatrix.*` keys (llama-quantize refuses a GGUF
    /// imatrix without them); always true for collected matrices and legacy files.
    public var hasMetadata: Bool

    /// A matrix of raw sums (what collection produces).
    public init(entries: [String: Entry], datasets: [String], chunkCount: Int, chunkSize: Int) {
        self.storage = .sums
        self.entries = entries
        self.datasets = datasets
        self.chunkCount = chunkCount
        self.chunkSize = chunkSize
        self.hasMetadata = true
    }

    /// The number of entries, as llama-quantize counts them for `quantize.imatrix.entries_count`.
    public var entryCount: Int { entries.count }

    /// The entry names in llama.cpp's order (byte-wise, as `std::sort` of `std::string`).
    public var sortedNames: [String] { entries.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } }

    // MARK: Reading

    /// Reads an importance matrix, choosing the format from the content (a GGUF file starts with
    /// `GGUF`; anything else is read as the legacy `.dat` layout), never from the extension.
    /// - Throws: ``FormatError`` (`.imatrixMalformed`, `.truncated`, the GGUF reader's codes) naming
    ///   the file, the entry and what is wrong.
    public init(contentsOf path: String) throws {
        let file = try MappedFile(path: path)
        try file.load(0..<min(4, file.count))
        let bytes = file.bytes
        if bytes.count >= 4, bytes[0] == 0x47, bytes[1] == 0x47, bytes[2] == 0x55, bytes[3] == 0x46 {
            self = try ImportanceMatrix.readGGUF(GGUFFile(file: file), path: path)
        } else {
            try file.load(0..<file.count)
            self = try ImportanceMatrix.readLegacy(bytes, path: path)
        }
    }

    private static func malformed(_ path: String, offset: Int? = nil, entry: String? = nil, _ message: String,
                                  remedy: String = "the file is not an importance matrix llama-imatrix wrote; make a new one with `quantize imatrix`") -> FormatError {
        FormatError(.imatrixMalformed, path: path, offset: offset, tensor: entry, message: message, remedy: remedy)
    }

    private static func readGGUF(_ gguf: GGUFFile, path: String) throws -> ImportanceMatrix {
        var matrix = ImportanceMatrix(entries: [:], datasets: [], chunkCount: 0, chunkSize: 0)
        let datasetsValue = gguf["imatrix.datasets"], countValue = gguf["imatrix.chunk_count"], sizeValue = gguf["imatrix.chunk_size"]
        if let datasetsValue {
            guard let array = datasetsValue.array, datasetsValue.elementType == .string else {
                throw malformed(path, "imatrix.datasets is \(datasetsValue.type), expected an array of strings")
            }
            matrix.datasets = array.compactMap(\.string)
        }
        // llama.cpp reads both counts with gguf_get_val_u32, which aborts on another type.
        for (key, value) in [("imatrix.chunk_count", countValue), ("imatrix.chunk_size", sizeValue)] {
            if let value, case .uint32 = value {} else if let value {
                throw malformed(path, "\(key) is \(value.type), expected uint32 (llama.cpp aborts on any other type)")
            }
        }
        matrix.chunkCount = countValue?.int ?? 0
        matrix.chunkSize = sizeValue?.int ?? 0
        matrix.hasMetadata = datasetsValue != nil && countValue != nil && sizeValue != nil

        var sums: [String: GGUFTensorInfo] = [:], counts: [String: GGUFTensorInfo] = [:]
        for tensor in gguf.tensors {
            if tensor.name.hasSuffix(".in_sum2") {
                sums[String(tensor.name.dropLast(".in_sum2".count))] = tensor
            } else if tensor.name.hasSuffix(".counts") {
                counts[String(tensor.name.dropLast(".counts".count))] = tensor
            }
        }
        guard !sums.isEmpty || !counts.isEmpty else {
            let kind = gguf["general.type"]?.string.map { " (general.type = \($0))" } ?? ""
            throw malformed(path, "the GGUF file\(kind) holds no <name>.in_sum2 / <name>.counts tensors, so it is not an importance matrix",
                            remedy: "pass the file llama-imatrix or `quantize imatrix` wrote, not a model")
        }
        for name in Set(sums.keys).union(counts.keys) {
            guard let s = sums[name], let c = counts[name] else {
                throw malformed(path, entry: name, "\(sums[name] == nil ? "\(name).in_sum2" : "\(name).counts") is missing (every entry needs both tensors)")
            }
            guard s.type == .f32, c.type == .f32 else {
                throw malformed(path, entry: name, "in_sum2 is \(s.type.name) and counts is \(c.type.name); both must be F32")
            }
            let experts = c.elementCount
            guard experts >= 1, s.elementCount >= 1, s.elementCount % experts == 0 else {
                throw malformed(path, entry: name, "in_sum2 holds \(s.elementCount) values and counts \(experts); the values must be a non-empty multiple of the counts (one row of columns per expert)")
            }
            if s.dimensions.count >= 2, s.dimensions.dropFirst().reduce(1, *) != experts {
                throw malformed(path, entry: name, "in_sum2 has shape \(s.shape) but counts holds \(experts) experts")
            }
            let sumBytes = try gguf.readData(for: s), countBytes = try gguf.readData(for: c)
            guard sumBytes.count == s.elementCount * 4, countBytes.count == experts * 4 else {
                throw FormatError(.truncated, path: path, tensor: name, message: "the data of \(name) lies outside the file", remedy: "the file is truncated; copy it again")
            }
            let values = (0..<s.elementCount).map { Float(bitPattern: UInt32(littleEndian: sumBytes.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            if let bad = values.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
                throw malformed(path, entry: name, "Σx² of column \(bad % (s.elementCount / experts)) of expert \(bad / (s.elementCount / experts)) is \(values[bad]); a sum of squares is finite and not negative")
            }
            var tokenCounts: [Int64] = []
            tokenCounts.reserveCapacity(experts)
            for e in 0..<experts {
                let v = Float(bitPattern: UInt32(littleEndian: countBytes.loadUnaligned(fromByteOffset: e * 4, as: UInt32.self)))
                guard v.isFinite, v >= 0, v == v.rounded(.towardZero), v <= 9.0e15 else {
                    throw malformed(path, entry: name, "the token count of expert \(e) is \(v); counts are non-negative whole numbers")
                }
                tokenCounts.append(Int64(v))
            }
            matrix.entries[name] = Entry(sums: values, counts: tokenCounts)
        }
        return matrix
    }

    private static func readLegacy(_ bytes: UnsafeRawBufferPointer, path: String) throws -> ImportanceMatrix {
        var reader = ByteReader(bytes, path: path)
        guard bytes.count >= 4 else {
            throw malformed(path, offset: 0, "the file has \(bytes.count) bytes: it is neither a GGUF file nor a legacy .dat importance matrix")
        }
        let declared = Int(try reader.read(Int32.self, "the entry count"))
        // The smallest entry is 4 (name length) + 1 (name) + 4 (ncall) + 4 (nval) + 4 (one value) bytes.
        guard declared >= 1, declared <= (bytes.count - 4) / 17 else {
            throw malformed(path, offset: 0, "it declares \(declared) entries, but a legacy .dat file of \(bytes.count) bytes holds between 1 and \((bytes.count - 4) / 17) (and a GGUF file starts with 'GGUF')")
        }
        var matrix = ImportanceMatrix(entries: [:], datasets: [], chunkCount: 0, chunkSize: 0)
        matrix.storage = .legacyMeans
        for index in 0..<declared {
            let start = reader.offset
            let length = Int(try reader.read(Int32.self, "the name length of entry \(index + 1)"))
            guard length >= 1, length <= min(reader.remaining, 1 << 16) else {
                throw malformed(path, offset: start, "entry \(index + 1) of \(declared) declares a name of \(length) bytes (\(reader.remaining) bytes are left)")
            }
            let nameBytes = try reader.take(length, "the name of entry \(index + 1)")
            guard let name = String(validating: nameBytes, as: UTF8.self), !name.contains("\0") else {
                throw malformed(path, offset: start + 4, "the name of entry \(index + 1) is not valid UTF-8 text")
            }
            let ncall = try reader.read(Int32.self, "the call count of \(name)")
            let valuesAt = reader.offset
            let count = Int(try reader.read(Int32.self, "the value count of \(name)"))
            guard ncall >= 0 else { throw malformed(path, offset: valuesAt - 4, entry: name, "the call count is \(ncall); it cannot be negative") }
            guard count >= 1, count <= reader.remaining / 4 else {
                throw malformed(path, offset: valuesAt, entry: name, "it declares \(count) values, but \(reader.remaining) bytes (\(reader.remaining / 4) values) are left in the file")
            }
            let raw = try reader.take(count * 4, "the values of \(name)")
            let values = (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            if let bad = values.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
                throw malformed(path, offset: valuesAt + 4 + bad * 4, entry: name, "value \(bad) is \(values[bad]); the values are finite, non-negative means of squares")
            }
            guard matrix.entries[name] == nil else {
                throw malformed(path, offset: start, entry: name, "the entry appears twice")
            }
            matrix.entries[name] = Entry(sums: values, counts: [Int64(ncall)])
        }
        // The trailer is optional: the chunk count, then the dataset name (length-prefixed).
        if reader.remaining > 0 {
            matrix.chunkCount = Int(try reader.read(Int32.self, "the chunk count after the entries"))
            guard matrix.chunkCount >= 0 else { throw malformed(path, offset: reader.offset - 4, "the chunk count is \(matrix.chunkCount); it cannot be negative") }
            if reader.remaining > 0 {
                let at = reader.offset
                let length = Int(try reader.read(Int32.self, "the dataset name length"))
                guard length >= 0, length <= reader.remaining else {
                    throw malformed(path, offset: at, "the dataset name declares \(length) bytes, but \(reader.remaining) are left")
                }
                if length > 0 {
                    let name = try reader.take(length, "the dataset name")
                    // llama.cpp reads the name as a C string.
                    let text = name.prefix { $0 != 0 }
                    guard let dataset = String(validating: text, as: UTF8.self) else {
                        throw malformed(path, offset: at + 4, "the dataset name is not valid UTF-8 text")
                    }
                    matrix.datasets = [dataset]
                }
            }
            guard reader.remaining == 0 else {
                throw malformed(path, offset: reader.offset, "\(reader.remaining) unexpected bytes follow the trailer (chunk count and dataset name)")
            }
        }
        return matrix
    }

    // MARK: Use

    /// The array llama-quantize hands `ggml_quantize_chunk` as `imatrix` for the tensor `name`
    /// with rows of `columns` weights and `experts` matrices (`ne[0]` and `ne[2]`; 1 for a 2-D
    /// tensor): expert-major, `experts × columns` floats, expert `e`'s row at `e · columns`
    /// (llama-quant.cpp `imatrix_for_row`: row r of the tensor uses expert `r / rows_per_expert`).
    ///
    /// The values are tools/quantize/quantize.cpp `load_imatrix`'s: for a GGUF matrix the mean
    /// Σx²/count per expert in FP32 (`sums[e·n + i] / Float(count[e])`), and 1 for every column
    /// of an expert with no tokens; for a legacy file `value / ncall` (the stored value itself when
    /// ncall is 0).
    /// - Returns: nil when the matrix has no entry of that name (llama-quantize quantizes the
    ///   tensor without one), and nil for `token_embd.weight` / `per_layer_token_embd.weight` whose
    ///   entry has the wrong size (llama-quantize ignores it there).
    /// - Throws: ``FormatError`` `.imatrixMismatch` when the entry does not hold `columns × experts`
    ///   values (llama-quantize's "imatrix size … is different from tensor size"; like it, only the
    ///   total is compared), or
    ///   when a value is not finite ("imatrix contains non-finite value"); `.imatrixMalformed` for
    ///   a GGUF file without the `imatrix.*` metadata ("missing imatrix metadata").
    public func quantizationWeights(forTensor name: String, columns: Int, experts: Int = 1) throws -> [Float]? {
        try checkMetadata()
        guard let entry = entries[name] else { return nil }
        let values = ImportanceMatrix.means(of: entry, storage: storage)
        guard let expected = CheckedSize.multiply(columns, max(experts, 1)), values.count == expected else {
            if name == "token_embd.weight" || name == "per_layer_token_embd.weight" { return nil }
            throw FormatError(.imatrixMismatch, path: datasets.first.map { "importance matrix (computed on \($0))" } ?? "importance matrix", tensor: name,
                              message: "the importance matrix holds \(values.count) values for \(name), but the tensor needs \(columns) columns × \(max(experts, 1)) experts = \(columns * max(experts, 1))",
                              remedy: "the matrix was made for another model (or for split experts); make one for this model with `quantize imatrix`")
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw FormatError(.imatrixMismatch, path: "importance matrix", tensor: name, message: "value \(bad) of \(name) is \(values[bad]) (llama-quantize refuses an imatrix with non-finite values)")
        }
        return values
    }

    /// The checks llama-quantize makes once, before quantizing anything: a GGUF matrix carries
    /// its `imatrix.*` metadata, and every entry's values are finite.
    /// - Throws: ``FormatError`` as ``quantizationWeights(forTensor:columns:experts:)`` does.
    public func validateForQuantization() throws {
        try checkMetadata()
        for name in sortedNames {
            let values = ImportanceMatrix.means(of: entries[name]!, storage: storage)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw FormatError(.imatrixMismatch, path: "importance matrix", tensor: name, message: "value \(bad) of \(name) is \(values[bad]) (llama-quantize refuses an imatrix with non-finite values)")
            }
        }
    }

    private func checkMetadata() throws {
        guard storage == .legacyMeans || hasMetadata else {
            throw FormatError(.imatrixMalformed, path: "importance matrix", message: "the GGUF importance matrix lacks imatrix.datasets, imatrix.chunk_count or imatrix.chunk_size, and llama-quantize refuses it (\"missing imatrix metadata\")",
                              remedy: "make it again with llama-imatrix or `quantize imatrix`")
        }
    }

    private static func means(of entry: Entry, storage: Storage) -> [Float] {
        switch storage {
        case .sums:
            let n = entry.columns
            var out = [Float](repeating: 0, count: entry.sums.count)
            for e in 0..<entry.experts {
                let count = Float(entry.counts[e])
                for i in 0..<n { out[e * n + i] = count > 0 ? entry.sums[e * n + i] / count : 1 }
            }
            return out
        case .legacyMeans:
            let ncall = entry.counts.first ?? 0
            return ncall > 0 ? entry.sums.map { $0 / Float(ncall) } : entry.sums
        }
    }

    /// The metadata llama-quantize adds to its output when given this matrix as `--imatrix PATH`
    /// (tools/quantize/quantize.cpp, applied as KV overrides in src/llama-quant.cpp), in its order:
    ///
    /// 1. `quantize.imatrix.file` (string): `imatrixPath` exactly as passed on the command line,
    ///    cut to its first 127 bytes (`strncpy(…, 127)`);
    /// 2. `quantize.imatrix.dataset` (string): ``datasets``[0] cut to 127 bytes; only when
    ///    there is a dataset;
    /// 3. `quantize.imatrix.entries_count` (uint32): ``entryCount`` (llama-quantize counts after
    ///    its `--include-weights`/`--exclude-weights` filters, which we do not have);
    /// 4. `quantize.imatrix.chunks_count` (uint32): ``chunkCount``; only when it is above 0.
    ///
    /// llama-quantize writes each with `gguf_set_val_*`, which removes the key where the input
    /// already had it and appends it: the four come after every key copied from the input and after
    /// `general.quantization_version` and `general.file_type` (set the same way, in that order).
    /// A cut that would split a UTF-8 character is made before it (llama.cpp would write the
    /// broken byte; GGUFValue strings are valid UTF-8) — only paths over 127 bytes differ.
    public func quantizeMetadata(imatrixPath: String) -> [(key: String, value: GGUFValue)] {
        func cut(_ s: String) -> String {
            var bytes = Array(s.utf8.prefix(127))
            while String(validating: bytes, as: UTF8.self) == nil { bytes.removeLast() }
            return String(decoding: bytes, as: UTF8.self)
        }
        var out: [(key: String, value: GGUFValue)] = [("quantize.imatrix.file", .string(cut(imatrixPath)))]
        if let first = datasets.first { out.append(("quantize.imatrix.dataset", .string(cut(first)))) }
        out.append(("quantize.imatrix.entries_count", .uint32(UInt32(truncatingIfNeeded: entryCount))))
        if chunkCount > 0 { out.append(("quantize.imatrix.chunks_count", .uint32(UInt32(truncatingIfNeeded: chunkCount)))) }
        return out
    }

    // MARK: Writing

    /// The matrix as raw sums: itself when it holds sums; a legacy matrix converted as
    /// llama-imatrix converts a `.dat` it loads with `--in-file` (values × chunk size, counts
    /// ncall × chunk size, `chunk_size` the given one, chunk count = largest ncall).
    public func asSums(chunkSize legacyChunkSize: Int = 512) -> ImportanceMatrix {
        guard storage == .legacyMeans else { return self }
        let size = chunkSize > 0 ? chunkSize : legacyChunkSize
        var out = ImportanceMatrix(entries: [:], datasets: datasets, chunkCount: 0, chunkSize: size)
        var largest: Int64 = 0
        for (name, entry) in entries {
            let ncall = entry.counts.first ?? 0
            out.entries[name] = Entry(sums: entry.sums.map { $0 * Float(size) }, counts: [ncall * Int64(size)])
            largest = max(largest, ncall * Int64(size))
        }
        out.chunkCount = Int(largest / Int64(size))
        return out
    }

    /// The GGUF file llama-imatrix's `save_imatrix` writes for this matrix: `general.type`,
    /// `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`, then per entry in byte-wise
    /// name order `<name>.in_sum2` (F32, `[experts, columns]`, 1-D when there is one expert) and
    /// `<name>.counts` (F32, `[experts, 1]`, 1-D when one), aligned to 32 bytes.
    /// - Throws: ``FormatError`` from the writer (a name of 64 bytes or more cannot be stored).
    public func writeGGUF(to path: String, overwrite: Bool = false) throws {
        let matrix = asSums()
        let names = matrix.sortedNames.filter { !(matrix.entries[$0]!.sums.isEmpty || matrix.entries[$0]!.counts.isEmpty) }
        var tensors: [GGUFWriter.Tensor] = []
        for name in names {
            let entry = matrix.entries[name]!
            let experts = entry.experts
            tensors.append(GGUFWriter.Tensor(name: name + ".in_sum2", type: .f32, shape: experts > 1 ? [experts, entry.columns] : [entry.sums.count]))
            tensors.append(GGUFWriter.Tensor(name: name + ".counts", type: .f32, shape: experts > 1 ? [experts, 1] : [1]))
        }
        let metadata: [(key: String, value: GGUFValue)] = [
            ("general.type", .string("imatrix")),
            ("imatrix.datasets", .array(.string, matrix.datasets.map { .string($0) })),
            ("imatrix.chunk_count", .uint32(UInt32(truncatingIfNeeded: matrix.chunkCount))),
            ("imatrix.chunk_size", .uint32(UInt32(truncatingIfNeeded: matrix.chunkSize))),
        ]
        let writer = try GGUFWriter(path: path, metadata: metadata, tensors: tensors, overwrite: overwrite)
        for name in names {
            let entry = matrix.entries[name]!
            try writer.writeTensor(ImportanceMatrix.littleEndianBytes(entry.sums))
            try writer.writeTensor(ImportanceMatrix.littleEndianBytes(entry.counts.map { Float($0) }))
        }
        try writer.finish()
    }

    /// The bytes of the legacy `.dat` file llama-imatrix's `save_imatrix_legacy` writes: the entry
    /// count, per entry (byte-wise name order; entries without any token skipped) the name, ncall =
    /// ⌈largest count / chunk size⌉ and (Σx²/count)·ncall per value in FP32 (1·ncall where an
    /// expert saw no token), then the chunk count and the first dataset name. A legacy matrix is
    /// written back as it was read.
    /// - Throws: ``FormatError`` `.invalidArgument` when raw sums have no chunk size to scale by.
    public func legacyBytes() throws -> [UInt8] {
        var out: [UInt8] = []
        func int32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        var stored: [(String, Int32, [Float])] = []
        switch storage {
        case .legacyMeans:
            for name in sortedNames {
                let entry = entries[name]!
                stored.append((name, Int32(truncatingIfNeeded: entry.counts.first ?? 0), entry.sums))
            }
        case .sums:
            guard chunkSize > 0 else {
                throw FormatError(.invalidArgument, path: "importance matrix", message: "the legacy .dat layout scales the means by ncall = ⌈count / chunk size⌉, but this matrix has no chunk size (imatrix.chunk_size is 0)",
                                  remedy: "write it as GGUF (--format gguf)")
            }
            for name in sortedNames {
                let entry = entries[name]!
                guard !entry.counts.isEmpty, entry.counts.contains(where: { $0 != 0 }) else { continue }
                let size = Int64(chunkSize)
                let ncall = Int32(truncatingIfNeeded: (entry.counts.max()! + size - 1) / size)
                let perMatrix = entry.sums.count / entry.counts.count
                var values = [Float](repeating: 0, count: entry.sums.count)
                for i in 0..<values.count {
                    var count = Float(entry.counts[i / perMatrix]), value = entry.sums[i]
                    if count == 0 { value = 1; count = 1 }
                    values[i] = (value / count) * Float(ncall)
                }
                stored.append((name, ncall, values))
            }
        }
        int32(Int32(truncatingIfNeeded: stored.count))
        for (name, ncall, values) in stored {
            int32(Int32(name.utf8.count))
            out.append(contentsOf: name.utf8)
            int32(ncall)
            int32(Int32(truncatingIfNeeded: values.count))
            out.append(contentsOf: ImportanceMatrix.littleEndianBytes(values))
        }
        int32(Int32(truncatingIfNeeded: chunkCount))
        let dataset = datasets.last.map { Array($0.utf8) } ?? []
        int32(Int32(dataset.count))
        out.append(contentsOf: dataset)
        return out
    }

    /// Writes the matrix in `format` to `path` (atomically: a temporary file renamed into place).
    /// - Throws: ``FormatError`` from the writers.
    public func write(to path: String, format: FileFormat, overwrite: Bool = false) throws {
        switch format {
        case .gguf: try writeGGUF(to: path, overwrite: overwrite)
        case .dat:
            let file = try OutputFile(path: path, overwrite: overwrite)
            try file.write(try legacyBytes())
            try file.commit()
        }
    }

    private static func littleEndianBytes(_ values: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 4)
        for (i, v) in values.enumerated() {
            let bits = v.bitPattern.littleEndian
            withUnsafeBytes(of: bits) { b in for k in 0..<4 { out[i * 4 + k] = b[k] } }
        }
        return out
    }
}
