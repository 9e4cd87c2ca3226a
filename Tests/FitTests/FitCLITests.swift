import Foundation
import Testing
import TestSupport

extension CLI {
    /// Runs `quantize fit arguments…` through the shared runner.
    static func fit(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> Result {
        try run(["fit"] + arguments, sourceLocation: sourceLocation)
    }
}

@Suite("quantize fit command line", .serialized)
struct FitCLITests {
    @Test("--json on an NVL pair prints one document with the documented keys and exits 0")
    func jsonKeys() throws {
        let run = try CLI.fit(["llama-3.1-70b", "--gpu", "h100-nvl", "--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(object["fits"] as? Bool == true)
        let memory = try #require(object["memory"] as? [String: Any])
        for key in ["weights", "kvCache", "overhead", "total", "available"] { #expect(memory[key] is Double || memory[key] is Int, "memory.\(key)") }
        let decode = try #require(object["decode"] as? [String: Any])
        #expect(decode["tokensPerSecondPerUser"] != nil)
        #expect(decode["tokensPerSecondTotal"] != nil)
        let prefill = try #require(object["prefill"] as? [String: Any])
        #expect(prefill["ttftSeconds"] != nil)
        #expect(object["maxConcurrency"] is Int)
        #expect(object["costPerMillionTokens"] is Double)
    }

    @Test("a configuration that does not fit exits 1 and still prints its JSON; with offload plans it exits 0")
    func doesNotFitExitsOne() throws {
        let run = try CLI.fit(["llama-3.1-70b", "--gpu", "h100-sxm-80gb", "--json", "--offload", "none"])
        #expect(run.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(object["fits"] as? Bool == false)
        #expect(object["weightsFit"] as? Bool == false)
        let offload = try CLI.fit(["llama-3.1-70b", "--gpu", "h100-sxm-80gb", "--json"])
        #expect(offload.status == 0, "an offload plan exists: exit 0")
        let plans = try #require(try JSONSerialization.jsonObject(with: Data(offload.stdout.utf8)) as? [String: Any])
        #expect(plans["offload"] is [Any], "offload plans are listed when the weights do not fit")
        #expect((plans["verdict"] as? String)?.hasPrefix("fits with offload") == true)
    }

    @Test("unknown hardware exits 2 with the known names on stderr and nothing on stdout")
    func unknownHardwareExitsTwo() throws {
        let run = try CLI.fit(["llama-3.1-70b", "--gpu", "h1000", "--json"])
        #expect(run.status == 2)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("h100-sxm-80gb"))
    }

    @Test("a config.json-only directory is planned without weights")
    func configDirectory() throws {
        let run = try CLI.fit([Fixtures.path("fit/llama-3.1-8b"), "--gpu", "l4", "--variant", "int4", "--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout.contains("\"parameterCount\": 8030261248"))
    }

    /// The measured rows of Sources/Fit/Resources/validation.json (shared/reference/fit.md §C),
    /// each predicted through the command line exactly as tools/fit_validate.py does.
    @Test("the 81 measured rows are predicted within the README's bounds: median error ≤ 15 %, no row off by more than 2×")
    func validationRows() throws {
        let path = Fixtures.repositoryRoot.appendingPathComponent("Sources/Fit/Resources/validation.json").path
        let document = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let rows = try #require(document["rows"] as? [[String: Any]], "validation.json has no rows")
        #expect(rows.count == 81)
        var errors: [Double] = []
        var worst = (ratio: 1.0, id: "")
        for row in rows {
            let id = row["id"] as? String ?? "?"
            func text(_ key: String) -> String { row[key].map { "\($0)" } ?? "" }
            let arguments = [text("model"), "--gpu", text("gpu"), "--variant", text("variant"), "--engine", text("engine"),
                             "--input-tokens", text("inputTokens"), "--output-tokens", text("outputTokens"),
                             "--concurrency", text("concurrency"), "--kv-dtype", text("kvDtype"), "--json",
                             "--offload", row["offload"] as? String ?? "none"]
            let run = try CLI.fit(arguments)
            guard run.status == 0 || run.status == 1,
                  let out = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] else {
                Issue.record("row \(id): quantize fit \(arguments.joined(separator: " ")) exited \(run.status): \(run.stderr)")
                continue
            }
            let measured = try #require((row["measured"] as? NSNumber)?.doubleValue, "row \(id) has no measured value")
            let predicted = try #require(Self.metric(text("metric"), of: out, row: row), "row \(id): no \(text("metric")) in the output")
            errors.append(abs(predicted / measured - 1))
            let ratio = max(predicted / measured, measured / predicted)
            if ratio > worst.ratio { worst = (ratio, id) }
        }
        let sorted = errors.sorted()
        let median = sorted.isEmpty ? .infinity
            : (sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2)
        #expect(errors.count == rows.count, "every row gives a prediction")
        #expect(median <= 0.15, "median |error| \(median)")
        #expect(worst.ratio <= 2, "row \(worst.id) is off by \(worst.ratio)×")
    }

    /// The predicted value of a validation metric in a `fit --json` document (tools/fit_validate.py's table).
    static func metric(_ name: String, of out: [String: Any], row: [String: Any]) -> Double? {
        func number(_ object: String, _ key: String) -> Double? { ((out[object] as? [String: Any])?[key] as? NSNumber)?.doubleValue }
        let outputTokens = (row["outputTokens"] as? NSNumber)?.doubleValue ?? 0
        switch name {
        case "throughput": return number("throughput", "outputTokensPerSecond")
        case "decodePerUser": return number("decode", "tokensPerSecondPerUser")
        case "stepSeconds": return number("decode", "stepSeconds")
        case "decodeTotal": return number("decode", "tokensPerSecondTotal")
        case "ttft": return number("prefill", "ttftSeconds")
        case "prefillTokensPerSecond": return number("prefill", "tokensPerSecond")
        case "e2e", "e2eTokensPerSecond":
            guard let ttft = number("prefill", "ttftSeconds"), let step = number("decode", "stepSeconds") else { return nil }
            let e2e = ttft + outputTokens * step
            guard name == "e2eTokensPerSecond" else { return e2e }
            return ((row["concurrency"] as? NSNumber)?.doubleValue ?? 1) * outputTokens / e2e
        case "offloadStream":
            let plans = out["offload"] as? [[String: Any]] ?? []
            return (plans.first { $0["mode"] as? String == "stream" }?["tokensPerSecond"] as? NSNumber)?.doubleValue
        default: return nil
        }
    }
}
