import Formats
import Foundation

/// The accuracy report of one run: every checked tensor with its metrics, threshold and verdict,
/// a summary per layer type, and the worst tensor. Its JSON form is specified in
/// formats/accuracy-report.md (`schema` = `quantize.accuracy-report`, version 1).
///
/// Non-finite numbers are written as JSON `null` (JSON has no infinity): a null `sqnr_db` means
/// infinite (the decoded output is exact when `relative_error` is 0, or hopeless when it is null);
/// a null error means infinite error (non-finite values, or an all-zero reference).
public struct AccuracyReport: Sendable, Hashable, Codable {
    /// The schema name written into every report.
    public static let schema = "quantize.accuracy-report"
    /// The schema version this code writes and reads.
    public static let schemaVersion = 1

    /// One checked tensor.
    public struct Entry: Sendable, Hashable, Codable {
        /// The tensor name as stored in the original checkpoint.
        public var name: String
        /// The scheme it was quantized with (`q4_k`, `int4`, …).
        public var scheme: String
        /// The layer type read from the name.
        public var layerType: LayerType
        /// The block index read from the name, nil outside blocks.
        public var layerIndex: Int?
        /// The expert index read from the name, nil for dense weights.
        public var expertIndex: Int?
        /// The metrics.
        public var accuracy: TensorAccuracy
        /// The limit on `accuracy.relativeError`; nil when none is known (an unknown scheme
        /// without `--max-error`).
        public var threshold: Double?

        /// Whether the tensor passes: its relative error is finite and at most the threshold
        /// (finite is enough when there is no threshold).
        public var passed: Bool {
            let error = accuracy.relativeError
            guard error.isFinite else { return false }
            return threshold.map { error <= $0 } ?? true
        }

        /// Creates an entry, reading the layer type and indices from `name`; the threshold
        /// defaults to ``AccuracyThresholds``' value for `scheme`.
        public init(name: String, scheme: String, accuracy: TensorAccuracy, threshold: Double? = nil) {
            let layer = LayerName(tensorName: name)
            self.name = name
            self.scheme = scheme
            self.layerType = layer.type
            self.layerIndex = layer.index
            self.expertIndex = layer.expert
            self.accuracy = accuracy
            self.threshold = threshold ?? AccuracyThresholds.maxRelativeError(forSchemeNamed: scheme)
        }

        /// Writes the flat JSON object of formats/accuracy-report.md (non-finite numbers as null).
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: TensorKey.self)
            try c.encode(name, forKey: .name)
            try c.encode(scheme, forKey: .scheme)
            try c.encode(layerType, forKey: .layerType)
            try c.encode(layerIndex, forKey: .layerIndex)
            try c.encode(expertIndex, forKey: .expertIndex)
            try accuracy.encodeFields(into: &c)
            try c.encode(threshold, forKey: .threshold)
            try c.encode(passed, forKey: .passed)
        }

        /// Reads the JSON object back; nulls become the infinities they stand for.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: TensorKey.self)
            name = try c.decode(String.self, forKey: .name)
            scheme = try c.decode(String.self, forKey: .scheme)
            layerType = try c.decode(LayerType.self, forKey: .layerType)
            layerIndex = try c.decodeIfPresent(Int.self, forKey: .layerIndex)
            expertIndex = try c.decodeIfPresent(Int.self, forKey: .expertIndex)
            threshold = try c.decodeIfPresent(Double.self, forKey: .threshold)
            accuracy = try TensorAccuracy(fields: c)
        }
    }

    /// Aggregates over the tensors of one layer type (and one scheme).
    public struct LayerSummary: Sendable, Hashable, Codable {
        /// The layer type.
        public var layerType: LayerType
        /// The scheme.
        public var scheme: String
        /// How many tensors.
        public var count: Int
        /// How many of them failed.
        public var failedCount: Int
        /// The mean of their relative output errors (nil if any is infinite).
        public var meanRelativeError: Double?
        /// The largest relative output error (nil if infinite).
        public var maxRelativeError: Double?
        /// The tensor with the largest relative output error.
        public var worstTensor: String
        /// Bits per weight stored over all of them (total stored bits / total weights), when known.
        public var bitsPerWeight: Double?

        enum CodingKeys: String, CodingKey {
            case layerType = "layer_type", scheme, count, failedCount = "failed_count"
            case meanRelativeError = "mean_relative_error", maxRelativeError = "max_relative_error"
            case worstTensor = "worst_tensor", bitsPerWeight = "bits_per_weight"
        }

        /// Writes every key, nil as null.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(layerType, forKey: .layerType)
            try c.encode(scheme, forKey: .scheme)
            try c.encode(count, forKey: .count)
            try c.encode(failedCount, forKey: .failedCount)
            try c.encode(meanRelativeError, forKey: .meanRelativeError)
            try c.encode(maxRelativeError, forKey: .maxRelativeError)
            try c.encode(worstTensor, forKey: .worstTensor)
            try c.encode(bitsPerWeight, forKey: .bitsPerWeight)
        }
    }

    /// How the probe activations were made.
    public struct Probe: Sendable, Hashable, Codable {
        /// Probe rows of generated probes.
        public var rows: Int
        /// Seed of generated probes.
        public var seed: UInt64
        /// Outlier channels of generated probes, nil for plain Gaussian.
        public var outliers: OutlierChannels?
        /// The `--activations` file, when one was given.
        public var file: String?

        /// Creates a probe description.
        public init(
            rows: Int = ProbeActivations.defaultRows, seed: UInt64 = ProbeActivations.defaultSeed,
            outliers: OutlierChannels? = nil, file: String? = nil
        ) {
            self.rows = rows
            self.seed = seed
            self.outliers = outliers
            self.file = file
        }

        /// Describes the probes a ``ProbeActivationSource`` makes.
        public init(source: ProbeActivationSource, file: String? = nil) {
            self.init(rows: source.rows, seed: source.seed, outliers: source.outliers, file: file)
        }

        enum CodingKeys: String, CodingKey { case rows, seed, outliers = "outlier_channels", file }

        /// Writes every key, nil as null.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(rows, forKey: .rows)
            try c.encode(seed, forKey: .seed)
            try c.encode(outliers, forKey: .outliers)
            try c.encode(file, forKey: .file)
        }
    }

    /// The schema name (``schema``).
    public var schema: String
    /// The schema version (``schemaVersion``).
    public var schemaVersion: Int
    /// The checked tensors, in the order they were checked.
    public var tensors: [Entry]
    /// The probes used.
    public var probe: Probe
    /// Per layer type and scheme, in block order.
    public var summary: [LayerSummary]
    /// The name of the tensor with the largest relative output error, nil for an empty report.
    public var worstTensor: String?
    /// Whether every tensor passed.
    public var passed: Bool
    /// How many tensors failed.
    public var failedCount: Int
    /// Whether any tensor was checked on a sample of its rows.
    public var sampled: Bool

    enum CodingKeys: String, CodingKey {
        case schema, schemaVersion = "schema_version", tensors, probe, summary, worstTensor = "worst_tensor"
        case passed, failedCount = "failed_count", sampled
    }

    /// Builds a report from checked tensors, computing the summary, worst tensor and verdict.
    public init(tensors: [Entry], probe: Probe = Probe()) {
        self.schema = AccuracyReport.schema
        self.schemaVersion = AccuracyReport.schemaVersion
        self.tensors = tensors
        self.probe = probe
        self.failedCount = tensors.count { !$0.passed }
        self.passed = failedCount == 0
        self.sampled = tensors.contains { $0.accuracy.isSampled }
        self.worstTensor = AccuracyReport.worstFirst(tensors).first?.name
        var groups: [String: [Entry]] = [:]
        for entry in tensors { groups[entry.scheme + "\u{0}" + entry.layerType.rawValue, default: []].append(entry) }
        self.summary = groups.values.compactMap { group -> LayerSummary? in
            guard let first = group.first, let worst = AccuracyReport.worstFirst(group).first else { return nil }
            let errors = group.map(\.accuracy.relativeError)
            let allFinite = errors.allSatisfy(\.isFinite)
            var bits: Double? = 0
            var weights = 0.0
            for entry in group {
                let count = Double(entry.accuracy.rows) * Double(entry.accuracy.columns)
                if let b = entry.accuracy.bitsPerWeight, let total = bits { bits = total + b * count } else { bits = nil }
                weights += count
            }
            return LayerSummary(
                layerType: first.layerType, scheme: first.scheme, count: group.count,
                failedCount: group.count { !$0.passed },
                meanRelativeError: allFinite ? errors.reduce(0, +) / Double(errors.count) : nil,
                maxRelativeError: allFinite ? errors.max() : nil, worstTensor: worst.name,
                bitsPerWeight: bits.map { weights > 0 ? $0 / weights : 0 })
        }.sorted { ($0.scheme, $0.layerType) < ($1.scheme, $1.layerType) }
    }

    /// `entries` sorted by relative output error, largest (and non-finite) first; ties by name.
    public static func worstFirst(_ entries: [Entry]) -> [Entry] {
        entries.sorted { a, b in
            let x = a.accuracy.relativeError.isNaN ? .infinity : a.accuracy.relativeError
            let y = b.accuracy.relativeError.isNaN ? .infinity : b.accuracy.relativeError
            return x != y ? x > y : a.name < b.name
        }
    }

    /// The report as a JSON document, keys sorted (deterministic for the same input).
    public func json() throws -> JSONValue { try JSONValueEncoder().encode(self) }

    /// The report as JSON text in ``JSONStyle/document`` (keys sorted; deterministic for the same input).
    public func jsonData() throws -> Data { Data(try json().serialized(.document)) }

    /// Reads a report written by ``jsonData()``.
    public static func decode(from data: Data) throws -> AccuracyReport {
        try JSONValueDecoder().decode(AccuracyReport.self, from: [UInt8](data), path: "accuracy report")
    }

    /// The table for stderr: worst tensor first (at most `limit` rows, then a count of the rest),
    /// the summary by layer type, and the worst tensor with its verdict.
    public func textTable(limit: Int? = 30) -> String {
        var lines: [String] = []
        let header = [
            "tensor", "type", "layer", "scheme", "bits/w", "rel.err", "SQNR dB", "cosine", "max abs", "w.err", "limit",
            "",
        ]
        var rows: [[String]] = []
        let sorted = AccuracyReport.worstFirst(tensors)
        let shown = limit.map { Array(sorted.prefix(max($0, 0))) } ?? sorted
        for entry in shown {
            let a = entry.accuracy
            rows.append([
                entry.name + (a.isSampled ? " *" : ""), entry.layerType.rawValue, entry.layerIndex.map(String.init) ?? "-",
                entry.scheme, a.bitsPerWeight.map { format($0, digits: 2) } ?? "-", scientific(a.relativeError),
                format(a.sqnrDecibels, digits: 1), format(a.cosineSimilarity, digits: 6),
                scientific(a.maxAbsoluteError), scientific(a.relativeWeightError),
                entry.threshold.map(scientific) ?? "-", entry.passed ? "ok" : "FAIL",
            ])
        }
        lines += AccuracyReport.align([header] + rows, rightAligned: Set(4...10))
        if shown.count < sorted.count { lines.append("… \(sorted.count - shown.count) more tensors (see the JSON report)") }
        if sampled { lines.append("* checked on a sample of rows (rows_checked in the JSON report)") }
        lines.append("")
        var summaryRows = [["layer type", "scheme", "tensors", "failed", "mean rel.err", "max rel.err", "bits/w", "worst tensor"]]
        for s in summary {
            summaryRows.append([
                s.layerType.rawValue, s.scheme, String(s.count), String(s.failedCount),
                s.meanRelativeError.map(scientific) ?? "inf", s.maxRelativeError.map(scientific) ?? "inf",
                s.bitsPerWeight.map { format($0, digits: 2) } ?? "-", s.worstTensor,
            ])
        }
        lines += AccuracyReport.align(summaryRows, rightAligned: Set(2...6))
        lines.append("")
        if let worst = sorted.first {
            let limitText = worst.threshold.map { " (limit \(scientific($0)))" } ?? ""
            lines.append(
                "worst tensor: \(worst.name) [\(worst.scheme)] relative error \(scientific(worst.accuracy.relativeError))"
                    + limitText)
        }
        lines.append(
            passed
                ? "accuracy check passed: \(tensors.count) tensors within their limits"
                : "accuracy check FAILED: \(failedCount) of \(tensors.count) tensors over their limits")
        return lines.joined(separator: "\n") + "\n"
    }

    static func align(_ rows: [[String]], rightAligned: Set<Int>) -> [String] {
        // Hostile megabyte tensor names would make the table unreadable: cells are shortened.
        let rows = rows.map { $0.map { DisplayText.shortened($0) } }
        guard let columns = rows.map(\.count).max() else { return [] }
        var widths = [Int](repeating: 0, count: columns)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return rightAligned.contains(i) ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
    }
}

/// The keys of a tensor object in the JSON report (formats/accuracy-report.md §4).
enum TensorKey: String, CodingKey {
    case name, scheme, threshold, passed, shape, sampled, probe
    case layerType = "layer_type", layerIndex = "layer_index", expertIndex = "expert_index"
    case checkedRows = "rows_checked", probeRows = "probe_rows", bitsPerWeight = "bits_per_weight"
    case relativeError = "relative_error", sqnrDecibels = "sqnr_db"
    case cosineSimilarity = "cosine_similarity", maxAbsoluteError = "max_abs_error"
    case relativeWeightError = "relative_weight_error"
}

extension TensorAccuracy: Codable {
    /// Writes the metric keys of a tensor object (formats/accuracy-report.md §4), non-finite
    /// numbers as null.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: TensorKey.self)
        try encodeFields(into: &c)
    }

    /// Reads the metric keys of a tensor object; nulls become the infinities they stand for.
    public init(from decoder: any Decoder) throws {
        try self.init(fields: try decoder.container(keyedBy: TensorKey.self))
    }

    func encodeFields(into c: inout KeyedEncodingContainer<TensorKey>) throws {
        try c.encode([rows, columns], forKey: .shape)
        try c.encode(checkedRows, forKey: .checkedRows)
        try c.encode(isSampled, forKey: .sampled)
        try c.encode(probe, forKey: .probe)
        try c.encode(probeRows, forKey: .probeRows)
        try c.encode(finiteOrNil(bitsPerWeight), forKey: .bitsPerWeight)
        try c.encode(finiteOrNil(relativeError), forKey: .relativeError)
        try c.encode(finiteOrNil(sqnrDecibels), forKey: .sqnrDecibels)
        try c.encode(finiteOrNil(cosineSimilarity), forKey: .cosineSimilarity)
        try c.encode(finiteOrNil(maxAbsoluteError), forKey: .maxAbsoluteError)
        try c.encode(finiteOrNil(relativeWeightError), forKey: .relativeWeightError)
    }

    init(fields c: KeyedDecodingContainer<TensorKey>) throws {
        let shape = try c.decode([Int].self, forKey: .shape)
        guard shape.count == 2 else {
            throw DecodingError.dataCorruptedError(forKey: .shape, in: c, debugDescription: "shape must be [rows, columns]")
        }
        let relative = try c.decodeIfPresent(Double.self, forKey: .relativeError) ?? .infinity
        self.init(
            rows: shape[0], columns: shape[1], checkedRows: try c.decode(Int.self, forKey: .checkedRows),
            probeRows: try c.decode(Int.self, forKey: .probeRows), probe: try c.decode(ProbeKind.self, forKey: .probe),
            relativeError: relative,
            sqnrDecibels: try c.decodeIfPresent(Double.self, forKey: .sqnrDecibels) ?? (relative == 0 ? .infinity : -.infinity),
            cosineSimilarity: try c.decodeIfPresent(Double.self, forKey: .cosineSimilarity) ?? 0,
            maxAbsoluteError: try c.decodeIfPresent(Double.self, forKey: .maxAbsoluteError) ?? .infinity,
            relativeWeightError: try c.decodeIfPresent(Double.self, forKey: .relativeWeightError) ?? .infinity,
            bitsPerWeight: try c.decodeIfPresent(Double.self, forKey: .bitsPerWeight))
    }
}

/// `value` or nil when it is not finite (JSON has no infinity or NaN).
func finiteOrNil(_ value: Double?) -> Double? {
    guard let value, value.isFinite else { return nil }
    return value
}

/// Fixed-point text, "inf"/"-inf"/"nan" for non-finite values.
func format(_ value: Double, digits: Int) -> String {
    guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
    return String(format: "%.\(digits)f", value)
}

/// Three significant digits in scientific notation ("1.23e-02"), "inf"/"nan" for non-finite values.
func scientific(_ value: Double) -> String {
    guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
    return value == 0 ? "0" : String(format: "%.2e", value)
}
