import ArgumentParser
import Foundation
import Formats
import Model
import Quantize

extension QuantizeCommand {
    /// `quantize imatrix MODEL --text FILE -o OUT`: a llama.cpp-compatible importance matrix.
    struct ImatrixCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "imatrix",
            abstract: "Collect an importance matrix (Σx² per input column of every matrix multiply) that llama-quantize --imatrix reads.",
            discussion: """
            Runs the forward pass (FP32, OpenBLAS) over the text with llama-imatrix's protocol: the text tokenized with \
            the model's tokenizer (BOS first), chunks of --ctx tokens whose first token becomes BOS, every token of every \
            chunk counted, the blk.* matrix multiplies collected (output.weight with --process-output), one row of sums \
            and one token count per expert for MoE expert tensors. Writes llama.cpp's GGUF imatrix (default) or the \
            legacy .dat layout (--format dat, or an output ending in .dat); layouts in formats/imatrix.md. MODEL is a \
            GGUF file or a Hugging Face directory (tensor names are written with llama.cpp's GGUF names either way).
            """)

        @Argument(help: "The model: a .gguf file or a Hugging Face model directory.")
        var model: String

        @Option(help: ArgumentHelp("The calibration text (UTF-8), tokenized with the model's tokenizer.", valueName: "file"))
        var text: String?

        @Option(help: ArgumentHelp("The tokens as a JSON array of ids (BOS first where the model adds one); bypasses tokenization.", valueName: "file.json"))
        var tokens: String?

        @Option(name: [.customShort("o"), .customLong("output")], help: ArgumentHelp("The importance matrix to write.", valueName: "file"))
        var output: String

        @Option(name: [.customLong("ctx"), .customLong("ctx-size"), .customShort("c")], help: "Tokens per chunk (llama-imatrix's --ctx-size).")
        var ctx: Int = 512

        @Option(help: "Evaluate at most N chunks (default: all the text holds).")
        var chunks: Int?

        @Option(help: "gguf (llama.cpp's current format) or dat (legacy); default: dat for an output ending in .dat, else gguf.")
        var format: ImportanceMatrix.FileFormat?

        @Option(help: "Threads (default: all cores).")
        var threads: Int?

        @Flag(help: "Also collect output.weight (llama-imatrix's --process-output; a tied embedding is never collected).")
        var processOutput = false

        @Flag(help: "Replace an existing output.")
        var force = false

        @Flag(help: "Print the JSON document on stdout.")
        var json = false

        @Flag(help: "No progress or summary on stderr.")
        var quiet = false

        func validate() throws {
            if (text == nil) == (tokens == nil) { throw ValidationError("give the calibration input with exactly one of --text FILE or --tokens FILE.json") }
            if ctx < 8 { throw ValidationError("--ctx must be 8 or more (llama-imatrix's default is 512)") }
            if let chunks, chunks < 1 { throw ValidationError("--chunks must be positive") }
            if let threads, threads < 1 { throw ValidationError("--threads must be positive") }
        }

        var resolvedFormat: ImportanceMatrix.FileFormat { format ?? (output.lowercased().hasSuffix(".dat") ? .dat : .gguf) }

        func run() throws {
            EvalCommand.restartWithFasterBLASIfNeeded()
            let fm = FileManager.default
            let outputURL = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath()
            let input = text ?? tokens!
            for (what, path) in [("model", model), ("text", input)] where URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath() == outputURL {
                throw ValidationError("-o \(output) is the \(what) itself; name another output")
            }
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: output, isDirectory: &isDirectory), isDirectory.boolValue {
                throw ValidationError("-o \(output) is a directory; name the importance matrix file to write")
            }
            if fm.fileExists(atPath: output) && !force {
                throw QuantizeJobError(.outputExists, "\(output) exists; pass --force to replace it, or name another output with -o")
            }
            let weights = try ModelWeights(path: model, weightsOnly: true)
            // The inputs' checksums for the manifest, checked against their sidecars or manifests
            // before any work: one sequential pass over each file, before the forward pass loads
            // the weights (which then finds the pages cached; formats/integrity.md).
            var inputs = try weights.checkpoint.files.map { try InputDigest.checkedEntry(ofFileAt: $0) }
            inputs.append(try InputDigest.checkedEntry(ofFileAt: text ?? tokens!))
            let transformer = try Transformer(weights: weights, threads: threads, maximumPositions: ctx)
            let talk = !quiet && !json
            let ids: [Int32]
            let bos: Int32?
            if let text {
                let textContent = try EvalCommand.readText(text)
                let tokenizer = try TokenizerLoader.load(checkpoint: weights.checkpoint)
                ids = try ImportanceCollection.tokens(of: textContent, tokenizer: tokenizer)
                bos = tokenizer.chunkBOS
                if talk { Format.note("tokenized \(text) with \(tokenizer.summary): \(ids.count) tokens") }
            } else {
                ids = try EvalCommand.readTokens(tokens!)
                // BOS replaces each chunk's first token where the runtime adds one; without a
                // readable tokenizer, the config's bos_token_id.
                bos = (try? TokenizerLoader.load(checkpoint: weights.checkpoint))?.chunkBOS ?? weights.configuration.bosTokenID
            }
            var collection = try ImportanceCollection(tokens: ids, context: ctx, chunks: chunks, bosTokenID: bos, processOutput: processOutput)
            collection.chunksPerBatch = PerplexityEvaluation.chunksPerBatch(configuration: weights.configuration, context: ctx)
            if talk { Format.note("\(collection.chunks) chunks × \(ctx) tokens") }
            // The output is staged beside the target and moved into place only when complete.
            let transaction = try OutputTransaction(target: output)
            transaction.replacesExisting = force
            if talk { for note in transaction.notes { Format.note(note) } }
            let showProgress = talk && isatty(STDERR_FILENO) == 1
            let result = try collection.run(model: transformer, dataset: input) { done, total, seconds in
                guard showProgress else { return }
                let eta = seconds / Double(done) * Double(total - done)
                FileHandle.standardError.write(Data(String(format: "\r[chunk %d/%d] %3.0f%%  %.0f tokens/s  ETA %@   ", done, total,
                                                           100 * Double(done) / Double(total), Double(done * ctx) / max(seconds, 1e-3), Format.duration(eta)).utf8))
            }
            if showProgress { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            let name = URL(fileURLWithPath: output).lastPathComponent
            do {
                try result.matrix.write(to: transaction.path(name), format: resolvedFormat)
            } catch let error as FormatError {
                throw transaction.publicError(error)
            }
            var options = ["context": "\(ctx)", "format": resolvedFormat.rawValue, "process_output": "\(processOutput)"]
            if let chunks { options["chunks"] = "\(chunks)" }
            transaction.manifest = IntegrityManifest(scheme: nil, options: options, files: [], inputs: inputs)
            do throws(FormatError) {
                try transaction.commit(.file(named: name))
            } catch {
                throw transaction.publicError(error)
            }

            let notes = result.sparseExpertNotes
            if json {
                let sparse: [JSONValue] = result.sparseExperts.map {
                    .object([JSONMember("tensor", .string($0.tensor)), JSONMember("expert", .number(JSONNumber($0.expert))),
                             JSONMember("tokens", .number(JSONNumber(Int($0.tokens)))), JSONMember("threshold", .number(JSONNumber(Int($0.threshold))))])
                }
                let document: JSONValue = .object([
                    JSONMember("output", .string(output)),
                    JSONMember("format", .string(resolvedFormat.rawValue)),
                    JSONMember("entries", .number(JSONNumber(result.matrix.entryCount))),
                    JSONMember("chunks", .number(JSONNumber(result.chunks))),
                    JSONMember("context", .number(JSONNumber(ctx))),
                    JSONMember("tokens", .number(JSONNumber(result.tokens))),
                    JSONMember("inputTokens", .number(JSONNumber(result.inputTokens))),
                    JSONMember("chunkCount", .number(JSONNumber(result.matrix.chunkCount))),
                    JSONMember("datasets", .array(result.matrix.datasets.map { .string($0) })),
                    JSONMember("seconds", .number(JSONNumber(result.seconds))),
                    JSONMember("tokensPerSecond", .number(JSONNumber(result.tokensPerSecond))),
                    JSONMember("sparseExperts", .array(sparse)),
                    JSONMember("notes", .array(notes.map { .string($0) })),
                ])
                print(document.serializedString(.document))
            } else if !quiet {
                for note in notes { Format.note("warning: \(note)") }
                Format.note(String(format: "collected %d entries over %d chunks × %d tokens (%d tokens) in %.1f s, %.0f tokens/s",
                                   result.matrix.entryCount, result.chunks, ctx, result.tokens, result.seconds, result.tokensPerSecond))
                Format.note("wrote \(output) (\(resolvedFormat == .gguf ? "GGUF imatrix" : "legacy .dat")); use it with llama-quantize --imatrix \(output)")
            }
        }
    }
}

extension ImportanceMatrix.FileFormat: ExpressibleByArgument {}
