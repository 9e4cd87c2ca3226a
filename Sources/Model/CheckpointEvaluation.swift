import Foundation
import Formats

/// One quantized checkpoint evaluated against its original on a text, as `quantize eval` does it:
/// the text tokenized with the original's tokenizer (BOS first where it adds one), llama-perplexity's
/// protocol, both models run in lockstep. `quantize --to … --eval-text` runs it on the staged output
/// before the output is moved into place.
public enum CheckpointEvaluation {
    /// Evaluates `quantizedPath` against `originalPath` on `text`.
    /// - Parameters:
    ///   - reportedPath: the path the report names for the quantized side (the final output path,
    ///     not the staging path the weights are read from).
    ///   - context: tokens per chunk; `chunks` limits how many are evaluated (nil: all).
    ///   - weightsOnly: keep activations and the KV cache in FP32 even where the config declares
    ///     their quantization.
    /// - Throws: ``ModelError`` (unsupported architecture or tokenizer, a text too short for the
    ///   context), ``FormatError`` from the readers.
    public static func run(originalPath: String, quantizedPath: String, reportedPath: String, text: String,
                           context: Int = 512, chunks: Int? = nil, threads: Int? = nil, weightsOnly: Bool = false,
                           progress: ((Int, Int, Double) -> Void)? = nil) throws -> EvaluationReport {
        let original = try Transformer(weights: ModelWeights(path: originalPath, weightsOnly: weightsOnly), threads: threads, maximumPositions: context)
        let quantized = try Transformer(weights: ModelWeights(path: quantizedPath, weightsOnly: weightsOnly), threads: threads, maximumPositions: context)
        let tokenizer = try TokenizerLoader.load(checkpoint: original.weights.checkpoint)
        let evaluation = try PerplexityEvaluation(
            tokens: try tokenizer.evaluationTokens(text), context: context, chunks: chunks, bosTokenID: tokenizer.chunkBOS,
            chunksPerBatch: PerplexityEvaluation.chunksPerBatch(configuration: original.weights.configuration, context: context))
        var report = try evaluation.run(original: (originalPath, original), quantized: [(reportedPath, quantized)], progress: progress)
        if let own = try? TokenizerLoader.load(checkpoint: quantized.weights.checkpoint) {
            report.results[0].tokenizationNote = try TokenizationComparison.evaluationNote(original: tokenizer, twin: own, text: text)
        }
        return report
    }
}
