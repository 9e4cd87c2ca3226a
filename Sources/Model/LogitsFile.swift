import Foundation
import Formats

/// The log-probabilities of a base model, in llama-perplexity's `--kl-divergence-base` file format,
/// so a large original is run once and compared many times, by us or by llama.cpp (either way).
///
/// Layout (little-endian, formats/eval.md): `_logits_` (8 bytes), `n_ctx`, `n_vocab`, `n_chunk`
/// (Int32 each), the `n_chunk · n_ctx` token ids (Int32, as tokenized, before BOS replacement), then
/// per chunk and per scored position (`n_ctx − 1 − n_ctx/2` of them) one record of
/// `nv = 2·⌈n_vocab/2⌉ + 4` UInt16: two Float32 (scale, minimum log-probability) followed by
/// `n_vocab` codes, log p ≈ scale · code + minimum over the range [max − 16, max] (codes pad to `nv`).
public enum LogitsFile {
    /// The magic at the start of the file.
    public static let magic = Array("_logits_".utf8)

    /// UInt16 values per scored position.
    public static func recordLength(vocabulary: Int) -> Int { 2 * ((vocabulary + 1) / 2) + 4 }

    /// Bytes of a file for these sizes.
    public static func byteCount(context: Int, vocabulary: Int, chunks: Int) -> Int {
        20 + 4 * context * chunks + 2 * recordLength(vocabulary: vocabulary) * chunks * (context - 1 - context / 2)
    }

    /// Encodes one position's log-probabilities (`vocabulary` values) as llama.cpp does.
    public static func encode(_ logProbabilities: UnsafeBufferPointer<Float>, into record: UnsafeMutableBufferPointer<UInt16>) {
        var maximum = -Float.infinity, minimum = Float.infinity
        for v in logProbabilities { maximum = max(maximum, v); minimum = min(minimum, v) }
        minimum = max(minimum, maximum - 16)
        let scale = (maximum - minimum) / 65535
        let raw = UnsafeMutableRawBufferPointer(record)
        raw.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: 0, as: UInt32.self)
        raw.storeBytes(of: minimum.bitPattern.littleEndian, toByteOffset: 4, as: UInt32.self)
        let codes = UnsafeMutableBufferPointer(rebasing: record[4...])
        for i in codes.indices { codes[i] = 0 }
        guard scale > 0 else { return }
        let inverse = 1 / scale
        for (i, v) in logProbabilities.enumerated() where v > minimum {
            codes[i] = UInt16(min(65535, max(0, (inverse * (v - minimum)).rounded(.toNearestOrEven)))).littleEndian
        }
    }

    /// Decodes one record into `vocabulary` log-probabilities (values at the floor read as the minimum).
    public static func decode(_ record: UnsafeBufferPointer<UInt16>, vocabulary: Int, into out: UnsafeMutableBufferPointer<Float>) {
        let raw = UnsafeRawBufferPointer(record)
        let scale = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        let minimum = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        for i in 0..<vocabulary { out[i] = scale * Float(UInt16(littleEndian: record[4 + i])) + minimum }
    }

    /// A file being written, chunk by chunk.
    public final class Writer {
        private let handle: FileHandle
        private let path: String
        private let vocabulary: Int

        /// Creates `path` and writes the header and the tokens.
        public init(path: String, context: Int, vocabulary: Int, tokens: [Int32], chunks: Int) throws {
            guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
                throw ModelError.invalidInput(reason: "\(path): cannot create the logits file; check the directory exists and is writable")
            }
            self.handle = handle
            self.path = path
            self.vocabulary = vocabulary
            var header = LogitsFile.magic
            for v in [Int32(context), Int32(vocabulary), Int32(chunks)] { withUnsafeBytes(of: v.littleEndian) { header += $0 } }
            tokens.prefix(context * chunks).withUnsafeBytes { header += $0 }
            try handle.write(contentsOf: header)
        }

        /// Appends the records of `positions` scored positions (`positions × vocabulary` log-probabilities).
        public func append(logProbabilities: [Float], positions: Int) throws {
            let length = LogitsFile.recordLength(vocabulary: vocabulary)
            var records = [UInt16](repeating: 0, count: positions * length)
            logProbabilities.withUnsafeBufferPointer { lp in
                records.withUnsafeMutableBufferPointer { r in
                    for p in 0..<positions {
                        LogitsFile.encode(UnsafeBufferPointer(rebasing: lp[(p * vocabulary)..<((p + 1) * vocabulary)]),
                                          into: UnsafeMutableBufferPointer(rebasing: r[(p * length)..<((p + 1) * length)]))
                    }
                }
            }
            try records.withUnsafeBytes { try handle.write(contentsOf: Data($0)) }
        }

        /// Closes the file.
        public func close() throws { try handle.close() }
    }

    /// A file opened for reading (mapped; records are decoded on demand).
    public final class Reader: @unchecked Sendable {
        /// The context length the file was made with.
        public let context: Int
        /// The vocabulary size.
        public let vocabulary: Int
        /// Chunks stored.
        public let chunks: Int
        /// The evaluated tokens (`chunks · context`).
        public let tokens: [Int32]
        private let file: MappedFile
        private let recordsStart: Int

        /// Opens and checks `path`.
        public init(path: String) throws {
            file = try MappedFile(path: path)
            let bytes = file.bytes
            func bad(_ what: String) -> ModelError {
                .invalidInput(reason: "\(path): \(what); it is not a complete logits file written by `quantize eval --save-logits` or `llama-perplexity --kl-divergence-base`")
            }
            guard bytes.count >= 20, Array(bytes[0..<8]) == LogitsFile.magic else { throw bad("the file does not start with _logits_") }
            func int(_ offset: Int) -> Int { Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self))) }
            context = int(8); vocabulary = int(12); chunks = int(16)
            guard context >= 4, vocabulary > 0, chunks > 0 else { throw bad("the header says n_ctx \(context), n_vocab \(vocabulary), n_chunk \(chunks)") }
            let expected = LogitsFile.byteCount(context: context, vocabulary: vocabulary, chunks: chunks)
            guard bytes.count >= expected else { throw bad("it holds \(bytes.count) bytes but its header implies \(expected)") }
            let n = context * chunks
            var tokens = [Int32](repeating: 0, count: n)
            tokens.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[20..<(20 + 4 * n)])) }
            self.tokens = tokens.map { Int32(littleEndian: $0) }
            recordsStart = 20 + 4 * n
        }

        /// The log-probabilities of chunk `chunk`'s scored positions (`positions × vocabulary`).
        public func logProbabilities(chunk: Int) -> [Float] {
            let length = LogitsFile.recordLength(vocabulary: vocabulary)
            let positions = context - 1 - context / 2
            var out = [Float](repeating: 0, count: positions * vocabulary)
            let start = recordsStart + chunk * positions * length * 2
            var record = [UInt16](repeating: 0, count: length)
            out.withUnsafeMutableBufferPointer { o in
                for p in 0..<positions {
                    record.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: file.bytes[(start + p * length * 2)..<(start + (p + 1) * length * 2)])) }
                    record.withUnsafeBufferPointer {
                        LogitsFile.decode($0, vocabulary: vocabulary, into: UnsafeMutableBufferPointer(rebasing: o[(p * vocabulary)..<((p + 1) * vocabulary)]))
                    }
                }
            }
            return out
        }
    }
}
