import ArgumentParser
import Foundation
import Formats
import Model

extension QuantizeCommand {
    /// `quantize eval ORIGINAL QUANTIZED…`: whole-model perplexity and KL divergence on a text.
    struct EvalCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "eval",
            abstract: "Measure perplexity and KL divergence of quantized checkpoints against their original on a text.",
            discussion: """
            Runs the forward pass (FP32, OpenBLAS) of the original and of every quantized checkpoint over the same \
            tokens with llama-perplexity's protocol: chunks of --context tokens, the first token of each replaced by \
            BOS, only the second half scored. Prints, per quantized checkpoint, perplexity ±, mean KLD ± with its \
            percentiles, Δp of the correct token and the same-top-token fraction. Where the quantized checkpoint's \
            config declares activation quantization (our fp8 output: dynamic per-token FP8 inputs), the inputs of \
            its quantized linear layers are rounded the same way; --weights-only leaves them in FP32. With --logits \
            FILE, every argument is a quantized checkpoint and the original's log-probabilities come from FILE \
            (written by --save-logits or by llama-perplexity --kl-divergence-base). JSON: formats/eval.md. \
            Exit 1 when a mean KLD exceeds --max-kld.
            """)

        @Argument(help: "The original checkpoint, then one or more quantized checkpoints (all quantized with --logits).")
        var checkpoints: [String]

        @Option(help: ArgumentHelp("The evaluation text (tokenized with the checkpoint's own tokenizer).", valueName: "file"))
        var text: String?

        @Option(help: ArgumentHelp("The tokens as a JSON array of ids (BOS included where the tokenizer adds one); bypasses tokenization.", valueName: "file.json"))
        var tokens: String?

        @Option(help: "Tokens per chunk.")
        var context: Int = 512

        @Option(help: "Evaluate only the first N chunks.")
        var chunks: Int?

        @Option(help: "Threads (default: all cores).")
        var threads: Int?

        @Option(help: ArgumentHelp("Write the original's log-probabilities (llama-perplexity's _logits_ format) to this file.", valueName: "file"))
        var saveLogits: String?

        @Option(help: ArgumentHelp("Read the original's log-probabilities from this file instead of running it.", valueName: "file"))
        var logits: String?

        @Option(help: "Exit 1 when a checkpoint's mean KL divergence is above this.")
        var maxKld: Double?

        @Flag(help: "Keep activations (and the KV cache) in FP32 even where the config declares their quantization.")
        var weightsOnly = false

        @Option(help: ArgumentHelp("Also write the results as a self-contained HTML page.", valueName: "file.html"))
        var report: String?

        @Flag(help: "Print the JSON document on stdout.")
        var json = false

        @Flag(help: "No table or progress on stderr.")
        var quiet = false

        @Option(help: .hidden)
        var dumpLogits: String?

        @Option(help: .hidden)
        var chunksPerBatch: Int?

        func validate() throws {
            if checkpoints.isEmpty { throw ValidationError("name the original checkpoint and at least one quantized checkpoint") }
            if (text == nil) == (tokens == nil) && logits == nil { throw ValidationError("give the evaluation input with exactly one of --text FILE or --tokens FILE.json") }
            if text != nil && tokens != nil { throw ValidationError("--text and --tokens exclude each other") }
            if logits != nil && saveLogits != nil { throw ValidationError("--logits reads the original's log-probabilities; --save-logits writes them: use one") }
            if logits == nil && checkpoints.count < 2 && saveLogits == nil && dumpLogits == nil {
                throw ValidationError("name at least one quantized checkpoint after the original (or --save-logits FILE to only record the original)")
            }
            if context < 8 { throw ValidationError("--context must be 8 or more") }
            if let chunks, chunks < 1 { throw ValidationError("--chunks must be positive") }
            if let threads, threads < 1 { throw ValidationError("--threads must be positive") }
            if let maxKld, !(maxKld >= 0) { throw ValidationError("--max-kld must be a non-negative number") }
        }

        func run() throws {
            EvalCommand.restartWithFasterBLASIfNeeded()
            let base = try logits.map { (path: $0, reader: try LogitsFile.Reader(path: $0)) }
            let originalPath = base == nil ? checkpoints[0] : nil
            let quantizedPaths = base == nil ? Array(checkpoints.dropFirst()) : checkpoints
            let contextLength = base?.reader.context ?? context
            if let base, base.reader.context != context, context != 512 {
                throw ValidationError("\(base.path) was made with a context of \(base.reader.context); drop --context or pass --context \(base.reader.context)")
            }
            func open(_ path: String) throws -> Transformer {
                try Transformer(weights: ModelWeights(path: path, weightsOnly: weightsOnly), threads: threads, maximumPositions: contextLength)
            }
            let original = try originalPath.map { (path: $0, model: try open($0)) }
            let quantized = try quantizedPaths.map { (path: $0, model: try open($0)) }
            let reference = original?.model ?? quantized[0].model

            // Tokens: the logits file's, the JSON list, or the text through the checkpoint's tokenizer.
            var ids: [Int32]
            // BOS replaces each chunk's first token only where the runtime adds one, as
            // llama-perplexity decides (add_bos); without a tokenizer, the config's bos_token_id.
            var bos = reference.weights.configuration.bosTokenID
            if let tokenizer = try? TokenizerLoader.load(checkpoint: reference.weights.checkpoint) {
                bos = tokenizer.chunkBOS
            }
            var tokenNotes = [String?](repeating: nil, count: quantized.count)
            if let base {
                ids = base.reader.tokens
            } else if let tokens {
                ids = try EvalCommand.readTokens(tokens)
            } else {
                // The text through the original's own tokenizer, BOS first where it adds one (as
                // llama-perplexity tokenizes); each quantized twin's tokenizer is checked against it.
                let text = try EvalCommand.readText(self.text!)
                let referenceCheckpoint = original?.model.weights.checkpoint ?? quantized[0].model.weights.checkpoint
                let tokenizer = try TokenizerLoader.load(checkpoint: referenceCheckpoint)
                ids = try tokenizer.evaluationTokens(text)
                bos = tokenizer.chunkBOS
                if !quiet && !json { Format.note("tokenized \(self.text!) with \(tokenizer.summary): \(ids.count) tokens") }
                for (index, q) in quantized.enumerated() where original != nil {
                    do {
                        let own = try TokenizerLoader.load(checkpoint: q.model.weights.checkpoint)
                        tokenNotes[index] = try TokenizationComparison.evaluationNote(original: tokenizer, twin: own, text: text)
                    } catch {
                        tokenNotes[index] = "its tokenizer could not be loaded (\(error)); evaluated on the original's tokens"
                    }
                }
            }
            let evaluation = try PerplexityEvaluation(
                tokens: ids, context: contextLength, chunks: chunks, bosTokenID: bos,
                chunksPerBatch: chunksPerBatch ?? PerplexityEvaluation.chunksPerBatch(configuration: reference.weights.configuration, context: contextLength))
            if let dumpLogits {
                try EvalCommand.dump(reference, evaluation: evaluation, to: dumpLogits)
                return
            }
            let showProgress = !quiet && !json && isatty(STDERR_FILENO) == 1
            if !quiet && !json {
                for q in quantized {
                    if let a = q.model.weights.activationQuantization { Format.note("\(q.path): activations quantized as the config declares (\(a.summary)); --weights-only to keep them FP32") }
                    if q.model.weights.fp8KeyValueCache { Format.note("\(q.path): K and V rounded to FP8 E4M3 as kv_cache_scheme declares") }
                }
            }
            if !quiet && !json {
                for (q, note) in zip(quantized, tokenNotes) { if let note { Format.note("warning: \(q.path): \(note)") } }
            }
            var result = try evaluation.run(original: original, base: base, quantized: quantized, saveLogits: saveLogits) { done, total, seconds in
                guard showProgress else { return }
                let eta = seconds / Double(done) * Double(total - done)
                let rate = Double(done * contextLength * (quantized.count + (original == nil ? 0 : 1))) / max(seconds, 1e-3)
                FileHandle.standardError.write(Data(String(format: "\r[chunk %d/%d] %3.0f%%  %.0f tokens/s  ETA %@   ", done, total,
                                                           100 * Double(done) / Double(total), rate, Format.duration(eta)).utf8))
            }
            for (index, note) in tokenNotes.enumerated() { result.results[index].tokenizationNote = note }
            if showProgress { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            if let page = self.report {
                let file = try OutputFile(path: page, overwrite: true)
                try file.write(Array(result.html(title: "quantize eval \(checkpoints[0])").utf8))
                try file.commit()
            }
            if json {
                print(result.jsonValue.serializedString(JSONStyle(indent: 2, sortKeys: false, escapeNonASCII: false)))
            } else if !quiet {
                Format.note(Format.table(result.tableRows, rightAligned: Set(1..<11)))
                Format.note(String(format: "%d chunks × %d tokens, %d scored per model; %.1f s, %.0f tokens/s", result.chunks, result.context,
                                   result.scoredTokens, result.seconds, result.tokensPerSecond))
                if let saveLogits {
                    Format.note("wrote the original's log-probabilities to \(saveLogits) (\(Format.bytes(LogitsFile.byteCount(context: result.context, vocabulary: reference.weights.configuration.vocabularySize, chunks: result.chunks))))")
                }
            }
            if let maxKld, let worst = result.results.max(by: { $0.kld.mean < $1.kld.mean }), worst.kld.mean > maxKld {
                if !json { Format.note(String(format: "mean KLD %.6f of %@ is above --max-kld %g", worst.kld.mean, worst.path, maxKld)) }
                throw ExitCode(1)
            }
        }

        /// Starts this command again with `OPENBLAS_CORETYPE` set when OpenBLAS picked its generic
        /// kernels on a CPU it did not recognise (``BLASCore``): the forward pass is then ~4× faster.
        /// An explicit `OPENBLAS_CORETYPE` is left alone; if the restart fails, the run goes on as it is.
        static func restartWithFasterBLASIfNeeded() {
            guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, let core = BLASCore.recommendedCoreType else { return }
            setenv("OPENBLAS_CORETYPE", core, 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            unsetenv("OPENBLAS_CORETYPE")
        }

        /// The text of `path` (UTF-8).
        static func readText(_ path: String) throws -> String {
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("\(path): cannot read the text file") }
            guard let text = String(data: data, encoding: .utf8) else { throw ValidationError("\(path): the text is not valid UTF-8") }
            return text
        }

        /// A JSON array of token ids.
        static func readTokens(_ path: String) throws -> [Int32] {
            let document = try JSONValue.parse(contentsOf: path)
            guard let array = document.array else {
                throw ValidationError("\(path): expected a JSON array of token ids, found \(document.kindDescription)")
            }
            var ids: [Int32] = []
            ids.reserveCapacity(array.count)
            for (i, v) in array.enumerated() {
                guard let id = v.int, id >= 0, id <= Int(Int32.max) else {
                    throw ValidationError("\(path): element \(i) is not a non-negative integer token id")
                }
                ids.append(Int32(id))
            }
            return ids
        }

        /// Writes the logits of every position of every chunk (Float32, little-endian, chunk-major) for the proof scripts.
        static func dump(_ model: Transformer, evaluation: PerplexityEvaluation, to path: String) throws {
            guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
                throw ValidationError("cannot create \(path)")
            }
            defer { try? handle.close() }
            for c in 0..<evaluation.chunks {
                let logits = try model.logits(sequences: [evaluation.chunk(c)], positions: 0..<evaluation.context)
                try logits.withUnsafeBytes { try handle.write(contentsOf: Data($0)) }
            }
        }
    }
}
