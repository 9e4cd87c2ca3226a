import Foundation
import Testing
import Formats
import Model
import Quantize
import TestSupport

/// Collection against llama-imatrix on the trained fixture (fixtures/imatrix, from
/// tools/imatrix_oracle.py), llama-imatrix's batching rule, and the MoE bookkeeping.
@Suite("importance matrix collection")
struct ImportanceCollectionTests {
    /// Collects the trained fixture's matrix as llama-imatrix -c 128 --chunks 6 did.
    static func collectTrained() throws -> ImportanceCollectionResult {
        let weights = try ModelWeights(path: Fixtures.path("trained-llama"), weightsOnly: true)
        let model = try Transformer(weights: weights, threads: 2, maximumPositions: 128)
        let tokenizer = try TokenizerLoader.load(checkpoint: weights.checkpoint)
        let text = try String(contentsOfFile: Fixtures.path("trained-llama/eval.txt"), encoding: .utf8)
        let collection = try ImportanceCollection(tokens: ImportanceCollection.tokens(of: text, tokenizer: tokenizer), context: 128, chunks: 6,
                                                  bosTokenID: tokenizer.chunkBOS)
        return try collection.run(model: model, dataset: "fixtures/trained-llama/eval.txt")
    }

    /// The largest per-column relative difference of Σx² between `ours` and the llama-imatrix file.
    static func worstDifference(_ ours: ImportanceMatrix, against path: String) throws -> (Double, String) {
        let theirs = try ImportanceMatrix(contentsOf: path)
        #expect(Set(ours.entries.keys) == Set(theirs.entries.keys))
        var worst = (0.0, "")
        for (name, entry) in theirs.entries {
            let mine = try #require(ours.entries[name])
            #expect(mine.counts == entry.counts, "\(name): counts \(mine.counts) vs llama-imatrix's \(entry.counts)")
            #expect(mine.sums.count == entry.sums.count)
            for (a, b) in zip(mine.sums, entry.sums) {
                let r = abs(Double(a) - Double(b)) / Double(b)
                if r > worst.0 { worst = (r, name) }
            }
        }
        return worst
    }

    @Test("equals llama-imatrix per column: within 1e-5 with its F32 KV cache, within 1e-3 with its default F16 cache; same counts and metadata")
    func matchesLlamaImatrix() throws {
        let result = try Self.collectTrained()
        #expect(result.chunks == 6 && result.tokens == 768 && result.inputTokens == 10232)
        #expect(result.matrix.entryCount == 28)
        #expect(result.matrix.chunkCount == 6 && result.matrix.chunkSize == 128)
        #expect(result.sparseExperts.isEmpty)
        // llama-imatrix -fa off -ctk f32 -ctv f32: the same arithmetic up to summation order and
        // matmul blocking (measured worst 2.2e-6, against Float accumulation over 768 tokens).
        let exact = try Self.worstDifference(result.matrix, against: Fixtures.path("imatrix/llama-imatrix-c128-f32kv.gguf"))
        #expect(exact.0 <= 1e-5, "worst \(exact.0) in \(exact.1)")
        // Its defaults round K and V to F16 (flash attention): measured worst 7.6e-4 (blk.0.attn_output).
        let defaults = try Self.worstDifference(result.matrix, against: Fixtures.path("imatrix/llama-imatrix-c128.gguf"))
        #expect(defaults.0 <= 1e-3, "worst \(defaults.0) in \(defaults.1)")
        // Written as GGUF, our file has llama-imatrix's layout: same size, same metadata bytes.
        let dir = try Fixtures.temporaryDirectory("imatrix-collect")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("ours.gguf").path
        try result.matrix.write(to: path, format: .gguf)
        let ours = try Data(contentsOf: URL(fileURLWithPath: path)), theirs = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("imatrix/llama-imatrix-c128.gguf")))
        #expect(ours.count == theirs.count)
        let header = try GGUFFile(path: path).dataStart
        #expect(ours.prefix(header) == theirs.prefix(header), "header and tensor table differ")
    }

    @Test("dense multiplies of micro-batches under 16 tokens are skipped as llama-imatrix skips them")
    func skippedPositionsFollowLlamaBatching() throws {
        let tokens = [Int32](repeating: 5, count: 4096)
        // ctx 128: 16 chunks per 2048-token batch, 32 positions per sequence per micro-batch; none skipped.
        let c128 = try ImportanceCollection(tokens: tokens, context: 128, bosTokenID: 1)
        #expect(!c128.skippedPositions(sequences: 16).contains(true))
        #expect(!c128.skippedPositions(sequences: 1).contains(true))
        // ctx 130, 4 chunks in the last batch: micro-batches of 128 positions × 4 = 512, then 2 × 4 = 8 < 16.
        let c130 = try ImportanceCollection(tokens: tokens, context: 130, bosTokenID: 1)
        #expect(c130.skippedPositions(sequences: 4).indices.filter { c130.skippedPositions(sequences: 4)[$0] } == [128, 129])
        // ctx 1030: one chunk per batch (split_simple), micro-batches 512, 512, 6 → the last 6 skipped.
        let c1030 = try ImportanceCollection(tokens: tokens, context: 1030, bosTokenID: 1)
        #expect(c1030.skippedPositions(sequences: 1).indices.filter { c1030.skippedPositions(sequences: 1)[$0] } == Array(1024..<1030))
    }

    @Test("ctx 130 × 4 chunks: llama-imatrix leaves the 8-token micro-batch out of the dense tensors (512 of 520 tokens, 3 chunks); so do we")
    func skippedMicroBatchMatchesLlamaImatrix() throws {
        let weights = try ModelWeights(path: Fixtures.path("trained-llama"), weightsOnly: true)
        let model = try Transformer(weights: weights, threads: 2, maximumPositions: 130)
        let tokenizer = try TokenizerLoader.load(checkpoint: weights.checkpoint)
        let text = try String(contentsOfFile: Fixtures.path("trained-llama/eval.txt"), encoding: .utf8)
        let collection = try ImportanceCollection(tokens: ImportanceCollection.tokens(of: text, tokenizer: tokenizer), context: 130, chunks: 4,
                                                  bosTokenID: tokenizer.chunkBOS)
        let result = try collection.run(model: model, dataset: "fixtures/trained-llama/eval.txt")
        #expect(result.matrix.entries["blk.0.attn_q.weight"]?.counts == [512])
        #expect(result.matrix.chunkCount == 3)
        let worst = try Self.worstDifference(result.matrix, against: Fixtures.path("imatrix/llama-imatrix-c130x4-f32kv.gguf"))
        #expect(worst.0 <= 1e-5, "worst \(worst.0) in \(worst.1)")
    }

    @Test("MoE models equal llama-imatrix: the same tokens per expert, Σx² per column within 1e-5", arguments: ["mixtral", "qwen2-moe-shared"])
    func mixtureOfExpertsMatchesLlamaImatrix(model name: String) throws {
        // llama.cpp's ids of fixtures/imatrix/moe-text.txt under the character vocabulary
        // tools/imatrix_oracle.py moe gave the models' GGUF twins (BOS first).
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("imatrix/moe-tokens.json")))
        let tokens = try #require(try JSONSerialization.jsonObject(with: data) as? [Int]).map(Int32.init)
        let model = try Transformer(weights: ModelWeights(path: Fixtures.path("reference-models/\(name)")), threads: 2, maximumPositions: 64)
        let result = try ImportanceCollection(tokens: tokens, context: 64, chunks: 8, bosTokenID: 1).run(model: model, dataset: "fixtures/imatrix/moe-text.txt")
        #expect(result.matrix.chunkCount == 8)
        let worst = try Self.worstDifference(result.matrix, against: Fixtures.path("imatrix/llama-imatrix-\(name).gguf"))
        #expect(worst.0 <= 1e-5, "worst \(worst.0) in \(worst.1)")
        #expect(result.matrix.entries["blk.1.ffn_down_exps.weight"]?.experts == 4)
    }

    @Test("refuses a text under 2 × context tokens, as llama-imatrix does")
    func refusesShortText() throws {
        #expect { try ImportanceCollection(tokens: [1, 2, 3], context: 8, bosTokenID: 1) } throws: { error in
            "\(error)".contains("needs at least 16")
        }
    }

    static func expectedTokens(_ model: String) throws -> [Int32] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("reference-models/\(model)/expected-logits.json")))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        if let tokens = object["tokens"] as? [Int] { return tokens.map(Int32.init) }
        return try #require(object["tokens"] as? [[Int]]).flatMap { $0.map(Int32.init) }
    }

    @Test("MoE: one row and one count per expert, counts summing to tokens × top-k, gate and up inputs equal, experts summing to top-k × the router's", arguments: ["mixtral", "qwen2-moe-shared"])
    func expertBookkeeping(model name: String) throws {
        let weights = try ModelWeights(path: Fixtures.path("reference-models/\(name)"))
        let config = weights.configuration
        let moe = try #require(config.mixtureOfExperts)
        let model = try Transformer(weights: weights, threads: 2, maximumPositions: 16)
        let tokens = try Self.expectedTokens(name)
        let result = try ImportanceCollection(tokens: tokens, context: 16, bosTokenID: nil).run(model: model, dataset: "tokens")
        let m = result.matrix
        for layer in 0..<config.layerCount where config.isMixtureOfExpertsLayer(layer) {
            let router = try #require(m.entries["blk.\(layer).ffn_gate_inp.weight"])
            #expect(router.counts == [Int64(result.tokens)])
            let gate = try #require(m.entries["blk.\(layer).ffn_gate_exps.weight"])
            let up = try #require(m.entries["blk.\(layer).ffn_up_exps.weight"])
            let down = try #require(m.entries["blk.\(layer).ffn_down_exps.weight"])
            for e in [gate, up, down] {
                #expect(e.experts == moe.expertCount)
                #expect(e.counts.reduce(0, +) == Int64(result.tokens * moe.expertsPerToken))
            }
            #expect(gate.sums == up.sums && gate.counts == up.counts && down.counts == gate.counts)
            #expect(gate.columns == config.hiddenSize && down.columns == moe.expertIntermediateSize)
            // Each token's normed hidden state goes to the router once and to top-k experts.
            for c in 0..<gate.columns {
                let total = (0..<gate.experts).reduce(0.0) { $0 + Double(gate.sums[$1 * gate.columns + c]) }
                let want = Double(moe.expertsPerToken) * Double(router.sums[c])
                #expect(abs(total - want) <= 1e-5 * want, "layer \(layer) column \(c): \(total) vs \(want)")
            }
            if moe.sharedExpertIntermediateSize != nil {
                #expect(m.entries["blk.\(layer).ffn_gate_shexp.weight"]?.counts == [Int64(result.tokens)])
                #expect(m.entries["blk.\(layer).ffn_gate_inp_shexp.weight"]?.sums == router.sums)
            }
        }
        // Sparse experts: exactly those under a tenth of an even share, named in the notes.
        for (tensorName, entry) in m.entries where entry.experts > 1 {
            let threshold = max(1, entry.counts.reduce(0, +) / Int64(entry.experts) / 10)
            let listed = result.sparseExperts.filter { $0.tensor == tensorName }.map(\.expert)
            #expect(listed == entry.counts.indices.filter { entry.counts[$0] < threshold })
            if !listed.isEmpty { #expect(result.sparseExpertNotes.contains { $0.hasPrefix(tensorName + ":") }) }
        }
    }
}
