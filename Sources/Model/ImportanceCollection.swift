import Foundation
import Formats
import Quantize

/// An expert of a mixture-of-experts tensor that saw too few tokens for its importance values to
/// mean much (llama-quantize uses 1 for every column of an expert with no tokens).
public struct SparseExpert: Sendable, Equatable {
    /// The GGUF tensor name (`blk.3.ffn_down_exps.weight`).
    public var tensor: String
    /// The expert index.
    public var expert: Int
    /// Tokens routed to it.
    public var tokens: Int64
    /// The threshold it fell under: a tenth of an even share of the layer's routed tokens.
    public var threshold: Int64
}

/// What ``ImportanceCollection/run(model:dataset:progress:)`` produced.
public struct ImportanceCollectionResult: Sendable {
    /// The matrix (raw sums, ready to write in either format).
    public var matrix: ImportanceMatrix
    /// Chunks evaluated.
    public var chunks: Int
    /// Tokens evaluated (chunks × context).
    public var tokens: Int
    /// Tokens of the whole text (BOS included).
    public var inputTokens: Int
    /// Wall seconds of the forward passes and accumulation.
    public var seconds: Double
    /// Experts that saw no or few tokens, in name and expert order; never dropped from the matrix.
    public var sparseExperts: [SparseExpert]

    /// Tokens per second of the whole collection.
    public var tokensPerSecond: Double { Double(tokens) / max(seconds, 1e-9) }

    /// One line per tensor with sparse experts, for the command's text and notes.
    public var sparseExpertNotes: [String] {
        var byTensor: [(String, [SparseExpert])] = []
        for s in sparseExperts {
            if let last = byTensor.last, last.0 == s.tensor { byTensor[byTensor.count - 1].1.append(s) } else { byTensor.append((s.tensor, [s])) }
        }
        return byTensor.map { tensor, list in
            let none = list.filter { $0.tokens == 0 }.map { "\($0.expert)" }
            let few = list.filter { $0.tokens > 0 }.map { "\($0.expert) (\($0.tokens))" }
            var parts: [String] = []
            if !none.isEmpty { parts.append("no tokens for expert\(none.count == 1 ? "" : "s") \(none.joined(separator: ", ")) (llama-quantize weighs their columns 1)") }
            if !few.isEmpty { parts.append("fewer than \(list[0].threshold) tokens for expert\(few.count == 1 ? "" : "s") \(few.joined(separator: ", "))") }
            return "\(tensor): " + parts.joined(separator: "; ")
        }
    }
}

/// Collects an importance matrix the way llama-imatrix does (tools/imatrix/imatrix.cpp), with this
/// module's forward pass:
///
/// - the text (one trailing newline removed, as llama.cpp's `-f` does) is tokenized with BOS in
///   front where the tokenizer adds one; it must hold at least 2 × context tokens;
/// - chunks of `context` tokens, at most `chunks` of them and at most tokens / context; each
///   chunk's first token is replaced by BOS (where the tokenizer adds one);
/// - for every matrix multiply on a `blk.*` weight (and `output.weight` with `processOutput`, never
///   a tied embedding), Σx² per input column accumulates over every token, and the token count;
/// - an expert tensor (`ffn_*_exps`, llama.cpp's MUL_MAT_ID) has one row of sums and one count per
///   expert, counting the tokens routed to it;
/// - a dense matrix multiply over fewer than 16 tokens is skipped, as llama-imatrix skips it:
///   llama.cpp runs max(1, 2048 / context) chunks per batch and splits them into micro-batches of
///   512 tokens (each sequence contributing ⌊512 / sequences⌋ positions), so the positions of a
///   micro-batch under 16 tokens are left out of the dense tensors (``skippedPositions(sequences:)``);
/// - chunk count = the largest count / context, chunk size = context, datasets = [the text's path].
///
/// Sums accumulate in Double (llama.cpp uses Float), so ours are the more exact; the two agree to
/// a few 1e-5 relative on short texts.
public struct ImportanceCollection {
    /// Tokens per chunk (llama-imatrix's `--ctx-size`).
    public let context: Int
    /// Chunks that will be evaluated.
    public let chunks: Int
    /// The text's tokens.
    public let tokens: [Int32]
    /// The BOS id replacing each chunk's first token (nil: none).
    public let bosTokenID: Int32?
    /// Whether `output.weight` is collected (llama-imatrix's `--process-output`).
    public let processOutput: Bool
    /// Chunks run through the model at once (memory; never changes the values beyond rounding).
    public var chunksPerBatch: Int

    /// llama-imatrix's default `--batch-size` and `--ubatch-size`.
    static let llamaBatch = 2048, llamaMicroBatch = 512

    /// Prepares a collection.
    /// - Throws: ``ModelError/invalidInput(reason:)`` when the context is under 8 or the tokens are
    ///   fewer than 2 × context (llama-imatrix's minimum).
    public init(tokens: [Int32], context: Int, chunks requested: Int? = nil, bosTokenID: Int32?, processOutput: Bool = false, chunksPerBatch: Int = 4) throws {
        guard context >= 8 else { throw ModelError.invalidInput(reason: "--ctx \(context) is too small; use 8 or more (llama-imatrix's default is 512)") }
        guard tokens.count >= 2 * context else {
            throw ModelError.invalidInput(reason: "the text has \(tokens.count) tokens; a context of \(context) needs at least \(2 * context), as llama-imatrix requires (use a longer text or a smaller --ctx)")
        }
        if let requested, requested < 1 { throw ModelError.invalidInput(reason: "--chunks must be 1 or more") }
        self.context = context
        chunks = min(tokens.count / context, requested ?? Int.max)
        self.tokens = tokens
        self.bosTokenID = bosTokenID
        self.processOutput = processOutput
        self.chunksPerBatch = max(1, chunksPerBatch)
    }

    /// The ids of `text` as llama-imatrix evaluates them: one trailing newline dropped (llama.cpp's
    /// `-f`), then BOS (where the tokenizer adds one) and the text's ids.
    public static func tokens(of text: String, tokenizer: TextTokenizer) throws -> [Int32] {
        var bytes = Array(text.utf8)
        if bytes.last == 0x0A { bytes.removeLast() }
        return try tokenizer.evaluationTokens(String(decoding: bytes, as: UTF8.self))
    }

    /// The chunk `index` as evaluated: its tokens with the first replaced by BOS.
    public func chunk(_ index: Int) -> [Int32] {
        var c = Array(tokens[(index * context)..<((index + 1) * context)])
        if let bosTokenID { c[0] = bosTokenID }
        return c
    }

    /// The positions of a chunk whose dense matrix multiplies llama-imatrix skips (a micro-batch of
    /// fewer than 16 tokens) when `sequences` chunks share its batch.
    public func skippedPositions(sequences: Int) -> [Bool] {
        let perBatch = max(1, Self.llamaBatch / context)
        let batch = min(Self.llamaBatch, perBatch * context)
        var skipped = [Bool](repeating: false, count: context)
        var start = 0
        while start < context {
            let end = min(context, start + batch)
            // llama.cpp's split_equal (split_simple for one sequence): every sequence of the batch
            // contributes the same ⌊ubatch / sequences⌋ positions (at least 1) to each micro-batch.
            let step = max(1, Self.llamaMicroBatch / sequences)
            var p = start
            while p < end {
                let q = min(end, p + step)
                if (q - p) * sequences < 16 { for i in p..<q { skipped[i] = true } }
                p = q
            }
            start = end
        }
        return skipped
    }

    /// Runs the model over the chunks and returns the matrix.
    /// - Parameters:
    ///   - dataset: the text's path as the user gave it (`imatrix.datasets`).
    ///   - progress: called after each batch with (chunks done, chunks, seconds so far).
    /// - Throws: ``ModelError`` from the forward pass, `.invalidInput` when an activation is not finite.
    public func run(model: Transformer, dataset: String, progress: ((Int, Int, Double) -> Void)? = nil) throws -> ImportanceCollectionResult {
        let config = model.weights.configuration
        let hasOutput = model.weights.has(.output)
        let expertCount = config.mixtureOfExperts?.expertCount ?? 1
        let perLlamaBatch = max(1, Self.llamaBatch / context)
        var accumulators: [String: Accumulator] = [:]
        var failure: ModelError?
        let start = Date()
        var done = 0
        while done < chunks {
            let count = min(chunksPerBatch, chunks - done)
            let sequences = (done..<(done + count)).map(chunk)
            // Per sequence of this batch, the positions llama-imatrix leaves out of dense tensors.
            let masks: [[Bool]] = (done..<(done + count)).map { i in
                let group = i / perLlamaBatch
                return skippedPositions(sequences: min(perLlamaBatch, chunks - group * perLlamaBatch))
            }
            let anySkipped = masks.contains { $0.contains(true) }
            let length = context
            let observer: LinearObserver = { input in
                guard failure == nil else { return }
                guard let (name, expert) = input.role.ggufName else {
                    failure = .invalidInput(reason: "the linear layer \(input.module) has no llama.cpp GGUF name, so its importance values could not be matched to a GGUF tensor; convert the model to GGUF first (convert_hf_to_gguf.py) and collect on that")
                    return
                }
                if name == "output.weight" {
                    guard processOutput, hasOutput else { return }
                } else if !name.hasPrefix("blk.") {
                    return
                }
                let columns = input.columns
                let experts = expert == nil ? 1 : expertCount
                let accumulator = accumulators[name] ?? Accumulator(columns: columns, experts: experts)
                accumulators[name] = accumulator
                guard accumulator.columns == columns, accumulator.experts == experts else {
                    failure = .invalidInput(reason: "\(name) was seen with \(columns) columns × \(experts) experts after \(accumulator.columns) × \(accumulator.experts)")
                    return
                }
                if let expert {
                    accumulator.add(input.values, rows: 0..<input.rows, expert: expert, include: nil)
                } else if anySkipped, input.rows == count * length {
                    for s in 0..<count {
                        accumulator.add(input.values, rows: (s * length)..<((s + 1) * length), expert: 0, include: masks[s])
                    }
                } else {
                    accumulator.add(input.values, rows: 0..<input.rows, expert: 0, include: nil)
                }
                if !accumulator.isFinite { failure = .invalidInput(reason: "the inputs of \(name) hold non-finite values (the checkpoint's weights or the text overflow FP32); llama-imatrix stops the same way") }
            }
            let positions = processOutput && hasOutput ? 0..<length : (length - 1)..<length
            _ = try model.logits(sequences: sequences, positions: positions, observer: observer)
            if let failure { throw failure }
            done += count
            progress?(done, chunks, Date().timeIntervalSince(start))
        }
        let seconds = Date().timeIntervalSince(start)

        var entries: [String: ImportanceMatrix.Entry] = [:]
        var largest: Int64 = 0
        var sparse: [SparseExpert] = []
        for (name, a) in accumulators {
            entries[name] = ImportanceMatrix.Entry(sums: a.sums.map { Float($0) }, counts: a.counts)
            largest = max(largest, a.counts.max() ?? 0)
            if a.experts > 1 {
                let routed = a.counts.reduce(0, +)
                let threshold = max(1, routed / Int64(a.experts) / 10)
                for (e, c) in a.counts.enumerated() where c < threshold {
                    sparse.append(SparseExpert(tensor: name, expert: e, tokens: c, threshold: threshold))
                }
            }
        }
        sparse.sort { $0.tensor.utf8.lexicographicallyPrecedes($1.tensor.utf8) || ($0.tensor == $1.tensor && $0.expert < $1.expert) }
        let matrix = ImportanceMatrix(entries: entries, datasets: [dataset], chunkCount: Int(largest / Int64(context)), chunkSize: context)
        return ImportanceCollectionResult(matrix: matrix, chunks: chunks, tokens: chunks * context, inputTokens: tokens.count, seconds: seconds, sparseExperts: sparse)
    }

    /// Σx² per column and tokens per expert of one tensor, in Double.
    final class Accumulator {
        let columns: Int
        let experts: Int
        var sums: [Double]
        var counts: [Int64]
        var isFinite = true

        init(columns: Int, experts: Int) {
            self.columns = columns
            self.experts = experts
            sums = [Double](repeating: 0, count: columns * experts)
            counts = [Int64](repeating: 0, count: experts)
        }

        /// Adds the rows of `values` (row-major, `columns` wide) whose position is not skipped.
        func add(_ values: UnsafeBufferPointer<Float>, rows: Range<Int>, expert: Int, include skipped: [Bool]?) {
            let n = columns
            var added: Int64 = 0
            sums.withUnsafeMutableBufferPointer { s in
                let acc = s.baseAddress! + expert * n
                for r in rows {
                    if let skipped, skipped[r - rows.lowerBound] { continue }
                    let x = values.baseAddress! + r * n
                    // The square in FP32 as llama.cpp forms it, the sum in Double.
                    for j in 0..<n { acc[j] += Double(x[j] * x[j]) }
                    added += 1
                }
                if added > 0 {
                    for j in 0..<n where !acc[j].isFinite { isFinite = false; break }
                }
            }
            counts[expert] += added
        }
    }
}
