import Foundation

/// One measured row of Resources/validation.json (formats/fit-validation.md): a published or
/// locally measured run and the `quantize fit` metric it is compared with.
public struct ValidationRow: Sendable, Hashable {
    /// Row id (the row number of shared/reference/fit.md §C, a letter for each value of a row, H… for runs measured here).
    public var id: String
    /// Preset name.
    public var model: String
    /// Weight variant.
    public var variant: String
    /// Device selection `name:count`.
    public var gpu: String
    /// Engine name.
    public var engine: String
    /// Which output is compared: `throughput`, `decodePerUser`, `stepSeconds`, `decodeTotal`, `ttft`,
    /// `prefillTokensPerSecond`, `e2e`, `e2eTokensPerSecond` or `offloadStream`.
    public var metric: String
    /// The measured value.
    public var measured: Double
    /// Prompt tokens.
    public var inputTokens: Int
    /// Generated tokens.
    public var outputTokens: Int
    /// Concurrent sequences (nil: `max`).
    public var concurrency: Int?
    /// KV element type name.
    public var kvDtype: String
    /// Offload mode (`none` unless the row measures offloading).
    public var offload: String
    /// Where the number was published.
    public var source: String
}

/// The prediction of one row with the parameters it was made with.
public struct ValidationPrediction: Codable, Sendable {
    /// Creates a prediction record.
    public init(id: String, engine: String, source: String, metric: String, measured: Double, predicted: Double?, error: Double?, trainingRows: Int) {
        self.id = id; self.engine = engine; self.source = source; self.metric = metric
        self.measured = measured; self.predicted = predicted; self.error = error; self.trainingRows = trainingRows
    }
    /// Row id.
    public var id: String
    /// Engine.
    public var engine: String
    /// Source of the row.
    public var source: String
    /// Metric compared.
    public var metric: String
    /// Measured value.
    public var measured: Double
    /// Predicted value (nil: the plan gave no such figure).
    public var predicted: Double?
    /// predicted ÷ measured − 1.
    public var error: Double?
    /// Rows the engine's parameters were fitted on for this prediction.
    public var trainingRows: Int
}

/// Error summary of a group of predictions (median |error|, worst ratio; the definitions).
public struct ValidationSummary: Codable, Sendable {
    /// Group name (engine, source, or `all`).
    public var group: String
    /// Rows in the group.
    public var rows: Int
    /// Median of |predicted − measured| ÷ measured.
    public var medianError: Double
    /// Largest max(predicted/measured, measured/predicted); infinity when a row has no prediction.
    public var worstRatio: Double
    /// The row with the worst ratio.
    public var worstRow: String
}

/// Cross-validation of the engine parameters against the measured rows.
///
/// Each engine's fitted parameters (``ValidationSet/fittedParameters``) are refitted on the training
/// rows only, starting from the published rules of thumb of shared/reference/fit.md §D/§E (decode
/// bandwidth efficiency 0.65, GEMM efficiency 0.5, prefill efficiency 0.6, 1 ms per step, nothing per
/// sequence), and the held-out rows are predicted with the refitted profile. The engine's other
/// parameters (KV-read, weight-only-kernel and offload efficiencies, per-layer and per-device costs)
/// stay as shipped; they were set by hand with every row in view, so the held-out error is a lower
/// bound on what a truly unseen row would see.
public struct ValidationSet: Sendable {
    /// The rows.
    public var rows: [ValidationRow]

    /// A set of `rows`.
    public init(rows: [ValidationRow]) { self.rows = rows }

    /// The parameters cross-validation refits for each engine, with their neutral starting value.
    public static let fittedParameters: [(name: String, start: Double, range: ClosedRange<Double>)] = [
        ("bandwidthEfficiency", 0.65, 0.2...0.95),
        ("computeEfficiency", 0.5, 0.1...0.9),
        ("prefillComputeEfficiency", 0.6, 0.1...0.9),
        ("stepOverheadSeconds", 0.001, 0...0.02),
        ("stepOverheadSecondsPerSequence", 0, 0...0.0005),
    ]

    /// The rows shipped in Resources/validation.json.
    public static func builtIn() throws -> ValidationSet {
        guard let url = Bundle.module.url(forResource: "validation", withExtension: "json", subdirectory: "Resources") else {
            throw FitError(.unreadable, path: "Resources/validation.json", message: "the validation rows are missing from the bundle", remedy: "rebuild the package")
        }
        return try load(url.path)
    }

    /// Reads a validation file in the schema of formats/fit-validation.md.
    public static func load(_ path: String) throws -> ValidationSet {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)),
              let document = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let rows = document["rows"] as? [[String: Any]] else {
            throw FitError(.unreadable, path: path, message: "not a validation file with a 'rows' array", remedy: "follow formats/fit-validation.md")
        }
        return ValidationSet(rows: try rows.enumerated().map { index, row in
            func text(_ key: String) throws -> String {
                if let value = row[key] as? String { return value }
                throw FitError(.invalidRequest, path: path, entry: "rows[\(index)]", message: "'\(key)' is missing or not a string", remedy: "fix the row")
            }
            func integer(_ key: String) throws -> Int {
                if let value = row[key] as? NSNumber { return value.intValue }
                throw FitError(.invalidRequest, path: path, entry: "rows[\(index)]", message: "'\(key)' is missing or not a number", remedy: "fix the row")
            }
            guard let measured = (row["measured"] as? NSNumber)?.doubleValue, measured > 0 else {
                throw FitError(.invalidRequest, path: path, entry: "rows[\(index)]", message: "'measured' must be a positive number", remedy: "fix the row")
            }
            let concurrency: Int?
            if let number = row["concurrency"] as? NSNumber { concurrency = number.intValue } else if row["concurrency"] as? String == "max" { concurrency = nil } else {
                throw FitError(.invalidRequest, path: path, entry: "rows[\(index)]", message: "'concurrency' must be a number or \"max\"", remedy: "fix the row")
            }
            return ValidationRow(id: try text("id"), model: try text("model"), variant: try text("variant"), gpu: try text("gpu"),
                                 engine: try text("engine"), metric: try text("metric"), measured: measured,
                                 inputTokens: try integer("inputTokens"), outputTokens: try integer("outputTokens"), concurrency: concurrency,
                                 kvDtype: try text("kvDtype"), offload: row["offload"] as? String ?? "none", source: try text("source"))
        })
    }

    /// Predicts `row` with `engine` as `quantize fit` does (offload plans use the xeon-8480 host).
    public static func predict(_ row: ValidationRow, engine: EngineProfile, catalog: HardwareCatalog) throws -> Double? {
        var prepared = try request(row, engine: engine, catalog: catalog)
        prepared.engine = engine
        return try predict(row, request: prepared)
    }

    /// The request `quantize fit` builds for `row`.
    static func request(_ row: ValidationRow, engine: EngineProfile, catalog: HardwareCatalog) throws -> FitRequest {
        guard let shape = try ModelShape.preset(named: row.model) else {
            throw FitError(.unknownModel, path: row.model, message: "validation row \(row.id) names an unknown preset", remedy: "fix validation.json")
        }
        guard let kv = KVCacheType(name: row.kvDtype), let offload = OffloadMode(rawValue: row.offload) else {
            throw FitError(.invalidRequest, path: row.id, message: "row \(row.id) has an unknown kvDtype or offload", remedy: "fix validation.json")
        }
        let request = FitRequest(model: shape, variant: try Variant.parse(row.variant), devices: try DeviceSelection.parse(row.gpu, catalog: catalog),
                                 engine: engine, catalog: catalog, inputTokens: row.inputTokens, outputTokens: row.outputTokens,
                                 concurrency: row.concurrency.map { .count($0) } ?? .max, kvBytesPerElement: kv.bytesPerElement,
                                 offload: offload, host: try? catalog.device(named: "xeon-8480"))
        return request
    }

    /// The row's metric from planning `request`.
    static func predict(_ row: ValidationRow, request: FitRequest) throws -> Double? {
        let result = try FitPlanner.plan(request)
        let output = Double(row.outputTokens)
        switch row.metric {
        case "throughput": return result.throughput?.outputTokensPerSecond
        case "decodePerUser": return result.decode?.tokensPerSecondPerUser
        case "stepSeconds": return result.decode?.stepSeconds
        case "decodeTotal": return result.decode?.tokensPerSecondTotal
        case "ttft": return result.prefill?.ttftSeconds
        case "prefillTokensPerSecond": return result.prefill?.tokensPerSecond
        case "e2e", "e2eTokensPerSecond":
            guard let ttft = result.prefill?.ttftSeconds, let step = result.decode?.stepSeconds else { return nil }
            let e2e = ttft + output * step
            return row.metric == "e2e" ? e2e : Double(row.concurrency ?? 1) * output / e2e
        case "offloadStream": return result.offload?.first { $0.mode == "stream" }?.tokensPerSecond
        default:
            throw FitError(.invalidRequest, path: row.id, message: "row \(row.id) has the unknown metric '\(row.metric)'", remedy: "fix validation.json")
        }
    }

    /// |log(predicted / measured)| of each row; a missing prediction counts as a large error.
    static func logErrors(_ prepared: [(row: ValidationRow, request: FitRequest)], engine: EngineProfile) -> [Double] {
        prepared.map { item in
            var request = item.request
            request.engine = engine
            guard let value = (try? predict(item.row, request: request)) ?? nil, value > 0, value.isFinite else { return 5 }
            return abs(log(value / item.row.measured))
        }
    }

    /// `engine` with ``fittedParameters`` refitted on `rows` from their neutral start: coordinate
    /// search on a geometric grid minimising the mean squared log error (three sweeps).
    public static func refit(_ engine: EngineProfile, on rows: [ValidationRow], catalog: HardwareCatalog) -> EngineProfile {
        var profile = engine
        for parameter in fittedParameters { set(&profile, parameter.name, parameter.start) }
        let prepared = rows.compactMap { row in (try? request(row, engine: engine, catalog: catalog)).map { (row: row, request: $0) } }
        guard !prepared.isEmpty else { return profile }
        func loss(_ candidate: EngineProfile) -> Double {
            let errors = logErrors(prepared, engine: candidate)
            return errors.reduce(0) { $0 + $1 * $1 } / Double(errors.count)
        }
        var best = loss(profile)
        let factors = [0.5, 0.7, 0.85, 0.93, 1.07, 1.18, 1.4, 2.0]
        for _ in 0..<3 {
            for parameter in fittedParameters {
                let current = get(profile, parameter.name)
                // A parameter that starts at zero is searched on an absolute grid over its range.
                let candidates = current > 0 ? factors.map { current * $0 }
                    : [0.1, 0.25, 0.5, 1].map { parameter.range.upperBound * $0 }
                for value in candidates where parameter.range.contains(value) {
                    var trial = profile
                    set(&trial, parameter.name, value)
                    let trialLoss = loss(trial)
                    if trialLoss < best - 1e-12 { best = trialLoss; profile = trial }
                }
            }
        }
        return profile
    }

    static func get(_ engine: EngineProfile, _ name: String) -> Double {
        switch name {
        case "bandwidthEfficiency": return engine.bandwidthEfficiency
        case "computeEfficiency": return engine.computeEfficiency
        case "prefillComputeEfficiency": return engine.prefillComputeEfficiency
        case "stepOverheadSeconds": return engine.stepOverheadSeconds
        default: return engine.stepOverheadSecondsPerSequence
        }
    }

    static func set(_ engine: inout EngineProfile, _ name: String, _ value: Double) {
        switch name {
        case "bandwidthEfficiency": engine.bandwidthEfficiency = value
        case "computeEfficiency": engine.computeEfficiency = value
        case "prefillComputeEfficiency": engine.prefillComputeEfficiency = value
        case "stepOverheadSeconds": engine.stepOverheadSeconds = value
        default: engine.stepOverheadSecondsPerSequence = value
        }
    }

    /// How rows are held out.
    public enum Holdout: String, Sendable, CaseIterable {
        /// Shipped parameters, every row in view (in-sample).
        case none
        /// Every row of one source held out at a time (k-fold by source).
        case source
        /// One row held out at a time (leave-one-out).
        case row
    }

    /// Predictions of every row with its engine's parameters fitted without the rows of its fold.
    /// - Parameter holdout: `.none` predicts with the shipped parameters; `.source` and `.row` refit.
    public func crossValidate(_ holdout: Holdout, engines: [EngineProfile], catalog: HardwareCatalog) throws -> [ValidationPrediction] {
        var profiles: [String: EngineProfile] = [:]
        for engine in engines { profiles[engine.name] = engine }
        var cache: [String: EngineProfile] = [:]
        return try rows.map { row in
            guard let shipped = profiles[row.engine] else {
                throw FitError(.invalidRequest, path: row.id, message: "row \(row.id) names the unknown engine '\(row.engine)'", remedy: "fix validation.json")
            }
            let training: [ValidationRow]
            let key: String
            switch holdout {
            case .none: training = []; key = ""
            case .source: training = rows.filter { $0.engine == row.engine && $0.source != row.source }; key = row.engine + "|" + row.source
            case .row: training = rows.filter { $0.engine == row.engine && $0.id != row.id }; key = row.engine + "|" + row.id
            }
            let profile: EngineProfile
            if holdout == .none { profile = shipped } else if let cached = cache[key] { profile = cached } else {
                profile = Self.refit(shipped, on: training, catalog: catalog)
                cache[key] = profile
            }
            let value = try Self.predict(row, engine: profile, catalog: catalog)
            return ValidationPrediction(id: row.id, engine: row.engine, source: row.source, metric: row.metric, measured: row.measured,
                                        predicted: value, error: value.map { $0 / row.measured - 1 },
                                        trainingRows: holdout == .none ? rows.filter { $0.engine == row.engine }.count : training.count)
        }
    }

    /// Summaries of `predictions` for all rows, per engine and per source.
    public static func summarize(_ predictions: [ValidationPrediction]) -> [ValidationSummary] {
        func summary(_ group: String, _ items: [ValidationPrediction]) -> ValidationSummary {
            let errors = items.map { $0.error.map(abs) ?? .infinity }.sorted()
            let median = errors.isEmpty ? 0 : (errors.count % 2 == 1 ? errors[errors.count / 2] : (errors[errors.count / 2 - 1] + errors[errors.count / 2]) / 2)
            var worst = (1.0, "")
            for item in items {
                let ratio = item.predicted.map { max($0 / item.measured, item.measured / $0) } ?? .infinity
                if ratio > worst.0 || worst.1.isEmpty { worst = (ratio, item.id) }
            }
            return ValidationSummary(group: group, rows: items.count, medianError: median, worstRatio: worst.0, worstRow: worst.1)
        }
        var result = [summary("all", predictions)]
        for engine in Array(Set(predictions.map(\.engine))).sorted() { result.append(summary("engine " + engine, predictions.filter { $0.engine == engine })) }
        for source in Array(Set(predictions.map(\.source))).sorted() { result.append(summary("source " + source, predictions.filter { $0.source == source })) }
        return result
    }
}
