import Foundation
import Formats

/// A value with its standard error (llama-perplexity's "±").
public struct Estimate: Sendable, Equatable, Codable {
    /// The value.
    public var value: Double
    /// Its standard error.
    public var uncertainty: Double
}

/// How one quantized checkpoint's next-token distributions compare with the original's.
public struct ComparisonResult: Sendable, Codable {
    /// The checkpoint path as given.
    public var path: String
    /// Perplexity of the quantized model.
    public var perplexity: Estimate
    /// ln(PPL(Q)/PPL(base)) with its uncertainty (covariance included).
    public var logPerplexityRatio: Estimate
    /// KL divergence statistics (nats per token).
    public var kld: Distribution
    /// Change in the probability of the correct token (quantized − original).
    public var deltaP: DeltaP
    /// Fraction (0–1) of positions where both models rank the same token first.
    public var sameTopToken: Double
    /// The standard error of ``sameTopToken``.
    public var sameTopTokenUncertainty: Double
    /// The activation quantization that was applied, as a phrase; nil when inputs stayed FP32.
    public var activationQuantization: String?
    /// Whether K and V were rounded to FP8 as the config declares.
    public var fp8KeyValueCache: Bool
    /// Set when this checkpoint's own tokenizer would tokenize the text differently from the original's.
    public var tokenizationNote: String? = nil

    /// KL divergence mean, its uncertainty and percentiles.
    public struct Distribution: Sendable, Codable {
        /// Mean KL divergence (nats per position).
        public var mean: Double
        /// Standard error of the mean.
        public var uncertainty: Double
        /// Largest value.
        public var max: Double
        /// 99.9th percentile.
        public var p999: Double
        /// 99th percentile.
        public var p99: Double
        /// 95th percentile.
        public var p95: Double
        /// 90th percentile.
        public var p90: Double
        /// Median.
        public var median: Double
        /// 10th percentile.
        public var p10: Double
        /// Smallest value.
        public var min: Double
    }

    /// Δp statistics.
    public struct DeltaP: Sendable, Codable {
        /// Mean Δp (a fraction, not %).
        public var mean: Double
        /// Standard error of the mean.
        public var uncertainty: Double
        /// Root mean square of Δp.
        public var rms: Double
        /// Standard error of the RMS.
        public var rmsUncertainty: Double
        /// Largest Δp.
        public var max: Double
        /// Smallest (most negative) Δp.
        public var min: Double
    }
}

/// The whole evaluation: the original's perplexity and one ``ComparisonResult`` per quantized checkpoint.
public struct EvaluationReport: Sendable, Codable {
    /// Context length (tokens per chunk).
    public var context: Int
    /// Chunks evaluated.
    public var chunks: Int
    /// Positions scored (per model).
    public var scoredTokens: Int
    /// Tokens of the input.
    public var inputTokens: Int
    /// The BOS id that replaced each chunk's first token, nil when none did.
    public var bosTokenID: Int32?
    /// The original's path (or the logits file it was read from) and perplexity.
    public var original: Original
    /// Per quantized checkpoint, in the order given.
    public var results: [ComparisonResult]
    /// Seconds spent, and scored tokens per second of every model together.
    public var seconds: Double
    /// Evaluated tokens (all positions of every chunk, every model) per second.
    public var tokensPerSecond: Double

    /// The original side.
    public struct Original: Sendable, Codable {
        /// The original checkpoint's path, or the logits file's.
        public var path: String
        /// Its perplexity.
        public var perplexity: Estimate
        /// Whether the base log-probabilities came from a `_logits_` file (16-bit codes) instead of a forward pass.
        public var fromLogitsFile: Bool
    }
}

/// llama-perplexity's protocol (reference/calibration.md §1): the tokens are cut into chunks of
/// `context`; each chunk's first token becomes BOS; the logits of positions context/2 … context−2
/// score the next token. The original and every quantized model run in lockstep over batches of
/// chunks, so memory holds one layer of one model plus one batch of activations and log-probabilities.
public final class PerplexityEvaluation {
    /// Tokens per chunk.
    public let context: Int
    /// Chunks to evaluate.
    public let chunks: Int
    /// The tokens (only the first `chunks · context` are used).
    public let tokens: [Int32]
    /// The BOS id replacing each chunk's first token (nil: no replacement).
    public let bosTokenID: Int32?
    /// Chunks run through each model at once.
    public var chunksPerBatch: Int

    /// Prepares an evaluation.
    /// - Throws: ``ModelError/invalidInput(reason:)`` when there are fewer than 2 · context tokens
    ///   (llama-perplexity's minimum) or the context is below 8.
    public init(tokens: [Int32], context: Int, chunks requested: Int? = nil, bosTokenID: Int32?, chunksPerBatch: Int = 4) throws {
        guard context >= 8 else { throw ModelError.invalidInput(reason: "--context \(context) is too small; use 8 or more (llama-perplexity's default is 512)") }
        guard tokens.count >= 2 * context else {
            throw ModelError.invalidInput(reason: "the text has \(tokens.count) tokens; a context of \(context) needs at least \(2 * context) (use a longer text or a smaller --context)")
        }
        self.context = context
        let available = tokens.count / context
        chunks = min(available, max(1, requested ?? available))
        self.tokens = tokens
        self.bosTokenID = bosTokenID
        self.chunksPerBatch = max(1, chunksPerBatch)
    }

    /// The first scored position of a chunk.
    public var firstScored: Int { context / 2 }
    /// Positions scored per chunk.
    public var scoredPerChunk: Int { context - 1 - context / 2 }

    /// Chunk `index` as the model sees it (first token replaced by BOS).
    public func chunk(_ index: Int) -> [Int32] {
        var c = Array(tokens[(index * context)..<((index + 1) * context)])
        if let bosTokenID { c[0] = bosTokenID }
        return c
    }

    /// Log-softmax of `rows` rows of `vocabulary` logits, in place (max-subtracted, Double sum).
    static func logSoftmax(_ logits: inout [Float], rows: Int, vocabulary: Int) {
        logits.withUnsafeMutableBufferPointer { b in
            Kernels.parallelRows(rows, threads: ProcessInfo.processInfo.activeProcessorCount) { range in
                for r in range {
                    let row = b.baseAddress! + r * vocabulary
                    var maximum = -Float.infinity
                    for i in 0..<vocabulary { maximum = max(maximum, row[i]) }
                    var sum: Double = 0
                    for i in 0..<vocabulary { sum += Double(exp(row[i] - maximum)) }
                    let shift = maximum + Float(log(sum))
                    for i in 0..<vocabulary { row[i] -= shift }
                }
            }
        }
    }

    /// Runs the evaluation.
    /// - Parameters:
    ///   - original: the original model, or nil when `base` supplies its log-probabilities.
    ///   - base: a logits file of the original (its tokens and context must be this evaluation's).
    ///   - quantized: the models to compare, with their paths.
    ///   - saveLogits: writes the original's log-probabilities to this file as it goes.
    ///   - progress: called after each batch with (chunks done, chunks in all, seconds so far).
    public func run(original: (path: String, model: Transformer)?, base: (path: String, reader: LogitsFile.Reader)? = nil,
                    quantized: [(path: String, model: Transformer)], saveLogits: String? = nil,
                    progress: ((Int, Int, Double) -> Void)? = nil) throws -> EvaluationReport {
        guard original != nil || base != nil else { throw ModelError.invalidInput(reason: "the evaluation needs the original model or its logits file") }
        let vocabulary = original?.model.weights.configuration.vocabularySize ?? base!.reader.vocabulary
        for q in quantized where q.model.weights.configuration.vocabularySize != vocabulary {
            throw ModelError.invalidInput(reason: "\(q.path) has a vocabulary of \(q.model.weights.configuration.vocabularySize) tokens but the original has \(vocabulary); they are not the same model")
        }
        let start = Date()
        let writer = try saveLogits.map { try LogitsFile.Writer(path: $0, context: context, vocabulary: vocabulary, tokens: tokens, chunks: chunks) }
        var baseStats = Accumulator()
        var stats = [Accumulator](repeating: Accumulator(), count: quantized.count)
        let positions = firstScored..<(context - 1)
        var done = 0
        while done < chunks {
            let count = min(chunksPerBatch, chunks - done)
            let batch = (done..<(done + count)).map { chunk($0) }
            var baseLogProbs: [Float]
            if let original {
                baseLogProbs = try original.model.logits(sequences: batch, positions: positions)
                PerplexityEvaluation.logSoftmax(&baseLogProbs, rows: count * positions.count, vocabulary: vocabulary)
                try writer?.append(logProbabilities: baseLogProbs, positions: count * positions.count)
            } else {
                baseLogProbs = []
                baseLogProbs.reserveCapacity(count * positions.count * vocabulary)
                for c in done..<(done + count) { baseLogProbs += base!.reader.logProbabilities(chunk: c) }
            }
            let targets = (0..<count).flatMap { c in positions.map { tokens[(done + c) * context + $0 + 1] } }
            for (i, t) in targets.enumerated() { baseStats.addBase(-Double(baseLogProbs[i * vocabulary + Int(t)])) }
            for (m, q) in quantized.enumerated() {
                var logProbs = try q.model.logits(sequences: batch, positions: positions)
                PerplexityEvaluation.logSoftmax(&logProbs, rows: count * positions.count, vocabulary: vocabulary)
                stats[m].compare(logProbs, base: baseLogProbs, targets: targets, vocabulary: vocabulary, truncated: original == nil)
            }
            done += count
            progress?(done, chunks, Date().timeIntervalSince(start))
        }
        try writer?.close()
        let seconds = Date().timeIntervalSince(start)
        let models = (original == nil ? 0 : 1) + quantized.count
        let originalPerplexity = baseStats.perplexity(base: true)
        var results: [ComparisonResult] = []
        for (m, q) in quantized.enumerated() {
            results.append(stats[m].result(path: q.path, activation: q.model.weights.activationQuantization?.summary,
                                           fp8KeyValueCache: q.model.weights.fp8KeyValueCache))
        }
        return EvaluationReport(context: context, chunks: chunks, scoredTokens: chunks * scoredPerChunk, inputTokens: tokens.count,
                                bosTokenID: bosTokenID,
                                original: .init(path: original?.path ?? base!.path, perplexity: originalPerplexity, fromLogitsFile: original == nil),
                                results: results, seconds: seconds,
                                tokensPerSecond: seconds > 0 ? Double(chunks * context * models) / seconds : 0)
    }
}

/// Running sums of llama-perplexity's KL-divergence mode (`kl_divergence_result`), plus the
/// per-position values its percentiles need.
struct Accumulator {
    var sumNLL = 0.0, sumNLL2 = 0.0, sumBase = 0.0, sumBase2 = 0.0, sumCross = 0.0
    var sumKLD = 0.0, sumKLD2 = 0.0, sumDP = 0.0, sumDP2 = 0.0, sumDP4 = 0.0
    var sameTop = 0, count = 0
    var klds: [Float] = []
    var deltas: [Float] = []

    mutating func addBase(_ nll: Double) {
        sumBase += nll; sumBase2 += nll * nll; count += 1
    }

    /// Compares `rows` positions. `truncated`: base log-probs from a 16-bit file, where terms with
    /// log p ≤ −16 are left out as llama-perplexity leaves them out.
    mutating func compare(_ q: [Float], base: [Float], targets: [Int32], vocabulary: Int, truncated: Bool) {
        q.withUnsafeBufferPointer { qb in
            base.withUnsafeBufferPointer { bb in
                for (r, target) in targets.enumerated() {
                    let qr = qb.baseAddress! + r * vocabulary, br = bb.baseAddress! + r * vocabulary
                    var kld = 0.0
                    var qTop = 0, bTop = 0
                    for i in 0..<vocabulary {
                        if qr[i] > qr[qTop] { qTop = i }
                        if br[i] > br[bTop] { bTop = i }
                        let lb = br[i]
                        if truncated && lb <= -16 { continue }
                        kld += Double(exp(lb)) * Double(lb - qr[i])
                    }
                    let nll = -Double(qr[Int(target)]), nllBase = -Double(br[Int(target)])
                    sumNLL += nll; sumNLL2 += nll * nll
                    sumCross += nll * nllBase
                    sumKLD += kld; sumKLD2 += kld * kld
                    let dp = exp(-nll) - exp(-nllBase)
                    sumDP += dp; sumDP2 += dp * dp; sumDP4 += dp * dp * dp * dp
                    if qTop == bTop { sameTop += 1 }
                    klds.append(Float(kld)); deltas.append(Float(dp))
                    sumBaseForCompare += nllBase; sumBase2ForCompare += nllBase * nllBase
                    compared += 1
                }
            }
        }
    }
    var sumBaseForCompare = 0.0, sumBase2ForCompare = 0.0, compared = 0

    static func meanAndUncertainty(_ sum: Double, _ sum2: Double, _ count: Int) -> Estimate {
        guard count >= 1 else { return Estimate(value: 0, uncertainty: 0) }
        let f = sum / Double(count)
        let v = sum2 / Double(count) - f * f
        return Estimate(value: f, uncertainty: v > 0 && count > 10 ? (v / Double(count - 1)).squareRoot() : 0)
    }

    func perplexity(base: Bool) -> Estimate {
        let lp = base ? Accumulator.meanAndUncertainty(sumBase, sumBase2, count) : Accumulator.meanAndUncertainty(sumNLL, sumNLL2, compared)
        let p = exp(lp.value)
        return Estimate(value: p, uncertainty: p * lp.uncertainty)
    }

    static func percentile(_ sorted: [Float], _ fraction: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        if fraction <= 0 { return Double(sorted[0]) }
        if fraction >= 1 { return Double(sorted[sorted.count - 1]) }
        let p = fraction * Double(sorted.count - 1)
        let i = Int(p), f = p - Double(i)
        return (1 - f) * Double(sorted[i]) + f * Double(sorted[min(i + 1, sorted.count - 1)])
    }

    static func median(_ sorted: [Float]) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let n = sorted.count
        return n % 2 == 0 ? 0.5 * (Double(sorted[n / 2]) + Double(sorted[n / 2 - 1])) : Double(sorted[n / 2])
    }

    func result(path: String, activation: String?, fp8KeyValueCache: Bool) -> ComparisonResult {
        let n = compared
        let logPPL = Accumulator.meanAndUncertainty(sumNLL, sumNLL2, n)
        let logBase = Accumulator.meanAndUncertainty(sumBaseForCompare, sumBase2ForCompare, n)
        let covariance = n < 10 ? 0 : (sumCross / Double(n) - (sumNLL / Double(n)) * (sumBaseForCompare / Double(n))) / Double(n - 1)
        let ratioUncertainty = max(0, logPPL.uncertainty * logPPL.uncertainty + logBase.uncertainty * logBase.uncertainty - 2 * covariance).squareRoot()
        let kld = Accumulator.meanAndUncertainty(sumKLD, sumKLD2, n)
        let sortedKLD = klds.sorted(), sortedDP = deltas.sorted()
        let dp = Accumulator.meanAndUncertainty(sumDP, sumDP2, n)
        let mse = Accumulator.meanAndUncertainty(sumDP2, sumDP4, n)
        let rms = mse.value.squareRoot()
        let top = n > 0 ? Double(sameTop) / Double(n) : 0
        return ComparisonResult(
            path: path, perplexity: Estimate(value: exp(logPPL.value), uncertainty: exp(logPPL.value) * logPPL.uncertainty),
            logPerplexityRatio: Estimate(value: logPPL.value - logBase.value, uncertainty: ratioUncertainty),
            kld: .init(mean: kld.value, uncertainty: kld.uncertainty, max: Double(sortedKLD.last ?? 0),
                       p999: Accumulator.percentile(sortedKLD, 0.999), p99: Accumulator.percentile(sortedKLD, 0.99),
                       p95: Accumulator.percentile(sortedKLD, 0.95), p90: Accumulator.percentile(sortedKLD, 0.90),
                       median: Accumulator.median(sortedKLD), p10: Accumulator.percentile(sortedKLD, 0.10), min: Double(sortedKLD.first ?? 0)),
            deltaP: .init(mean: dp.value, uncertainty: dp.uncertainty, rms: rms, rmsUncertainty: rms > 0 ? 0.5 / rms * mse.uncertainty : 0,
                          max: Double(sortedDP.last ?? 0), min: Double(sortedDP.first ?? 0)),
            sameTopToken: top, sameTopTokenUncertainty: n > 1 ? (top * (1 - top) / Double(n - 1)).squareRoot() : 0,
            activationQuantization: activation, fp8KeyValueCache: fp8KeyValueCache)
    }
}
