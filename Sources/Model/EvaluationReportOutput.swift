import Foundation
import Formats

extension EvaluationReport {
    /// The JSON document of formats/eval.md (keys in a fixed order).
    public var jsonValue: JSONValue {
        func number(_ v: Double) -> JSONValue { v.isFinite ? .number(JSONNumber(v)) : .null }
        func estimate(_ e: Estimate) -> JSONValue { .object([JSONMember("value", number(e.value)), JSONMember("uncertainty", number(e.uncertainty))]) }
        let results: [JSONValue] = results.map { r in
            .object([
                JSONMember("path", .string(r.path)),
                JSONMember("perplexity", number(r.perplexity.value)),
                JSONMember("perplexityUncertainty", number(r.perplexity.uncertainty)),
                JSONMember("perplexityRatio", number(exp(r.logPerplexityRatio.value))),
                JSONMember("logPerplexityRatio", estimate(r.logPerplexityRatio)),
                JSONMember("kld", .object([
                    JSONMember("mean", number(r.kld.mean)), JSONMember("uncertainty", number(r.kld.uncertainty)),
                    JSONMember("max", number(r.kld.max)), JSONMember("p999", number(r.kld.p999)), JSONMember("p99", number(r.kld.p99)),
                    JSONMember("p95", number(r.kld.p95)), JSONMember("p90", number(r.kld.p90)), JSONMember("median", number(r.kld.median)),
                    JSONMember("p10", number(r.kld.p10)), JSONMember("min", number(r.kld.min)),
                ])),
                JSONMember("deltaP", .object([
                    JSONMember("mean", number(r.deltaP.mean)), JSONMember("uncertainty", number(r.deltaP.uncertainty)),
                    JSONMember("rms", number(r.deltaP.rms)), JSONMember("rmsUncertainty", number(r.deltaP.rmsUncertainty)),
                    JSONMember("max", number(r.deltaP.max)), JSONMember("min", number(r.deltaP.min)),
                ])),
                JSONMember("sameTopToken", number(r.sameTopToken)),
                JSONMember("sameTopTokenUncertainty", number(r.sameTopTokenUncertainty)),
                JSONMember("activationQuantization", r.activationQuantization.map { .string($0) } ?? .null),
                JSONMember("fp8KVCache", .bool(r.fp8KeyValueCache)),
                JSONMember("tokenizationNote", r.tokenizationNote.map { .string($0) } ?? .null),
            ])
        }
        return .object([
            JSONMember("context", .number(JSONNumber(context))),
            JSONMember("chunks", .number(JSONNumber(chunks))),
            JSONMember("scoredTokens", .number(JSONNumber(scoredTokens))),
            JSONMember("inputTokens", .number(JSONNumber(inputTokens))),
            JSONMember("bosTokenID", bosTokenID.map { .number(JSONNumber(Int($0))) } ?? .null),
            JSONMember("original", .object([
                JSONMember("path", .string(original.path)),
                JSONMember("perplexity", number(original.perplexity.value)),
                JSONMember("perplexityUncertainty", number(original.perplexity.uncertainty)),
                JSONMember("fromLogitsFile", .bool(original.fromLogitsFile)),
            ])),
            JSONMember("results", .array(results)),
            JSONMember("seconds", number(seconds)),
            JSONMember("tokensPerSecond", number(tokensPerSecond)),
        ])
    }

    /// The rows of the human table: checkpoint, PPL ±, ln ratio, mean KLD ±, KLD p99 / max, RMS Δp, same top.
    public var tableRows: [[String]] {
        var rows: [[String]] = [["checkpoint", "PPL", "±", "PPL ratio", "mean KLD", "±", "KLD p99", "KLD max", "mean Δp", "RMS Δp", "same top"]]
        rows.append([original.path + " (original)", String(format: "%.4f", original.perplexity.value),
                     String(format: "%.4f", original.perplexity.uncertainty), "", "", "", "", "", "", "", ""])
        for r in results {
            rows.append([r.path, String(format: "%.4f", r.perplexity.value), String(format: "%.4f", r.perplexity.uncertainty),
                         String(format: "%.4f", exp(r.logPerplexityRatio.value)),
                         String(format: "%.6f", r.kld.mean), String(format: "%.6f", r.kld.uncertainty),
                         String(format: "%.5f", r.kld.p99), String(format: "%.5f", r.kld.max),
                         String(format: "%+.3f%%", 100 * r.deltaP.mean), String(format: "%.3f%%", 100 * r.deltaP.rms),
                         String(format: "%.2f%%", 100 * r.sameTopToken)])
        }
        return rows
    }

    /// A self-contained HTML page with the summary table and the KLD percentiles of every checkpoint.
    public func html(title: String) -> String {
        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var page = """
        <!doctype html><html><head><meta charset="utf-8"><title>\(escape(title))</title>
        <style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{text-align:left}</style>
        </head><body><h1>\(escape(title))</h1>
        <p>llama-perplexity protocol: \(chunks) chunks of \(context) tokens, \(scoredTokens) scored positions per model; \
        \(String(format: "%.1f", seconds)) s, \(String(format: "%.0f", tokensPerSecond)) tokens/s.</p><table>
        """
        for (i, row) in tableRows.enumerated() {
            let cell = i == 0 ? "th" : "td"
            page += "<tr>" + row.map { "<\(cell)>\(escape($0))</\(cell)>" }.joined() + "</tr>\n"
        }
        page += "</table><h2>KL divergence percentiles</h2><table><tr><th>checkpoint</th><th>median</th><th>90%</th><th>95%</th><th>99%</th><th>99.9%</th><th>max</th><th>activations</th></tr>\n"
        for r in results {
            let cells = [r.kld.median, r.kld.p90, r.kld.p95, r.kld.p99, r.kld.p999, r.kld.max].map { String(format: "%.6f", $0) }
            page += "<tr><td>\(escape(r.path))</td>" + cells.map { "<td>\($0)</td>" }.joined() + "<td>\(escape(r.activationQuantization ?? "FP32"))</td></tr>\n"
        }
        return page + "</table></body></html>\n"
    }
}

extension PerplexityEvaluation {
    /// Chunks per batch so that one batch's activations and log-probabilities stay near `budgetBytes`.
    public static func chunksPerBatch(configuration c: TransformerConfiguration, context: Int, budgetBytes: Int = 512 << 20) -> Int {
        let inner = max(c.intermediateSize, (c.mixtureOfExperts?.expertIntermediateSize ?? 0))
        let perToken = 4 * (3 * c.hiddenSize + 3 * c.headCount * c.headDimension + 2 * c.keyValueHeadCount * c.headDimension + 2 * inner)
        let perChunk = context * perToken + 4 * context * context * 2 + 8 * (context / 2) * c.vocabularySize
        return max(1, budgetBytes / max(1, perChunk))
    }
}
