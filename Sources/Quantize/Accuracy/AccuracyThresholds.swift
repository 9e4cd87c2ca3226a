/// The largest relative output error ‖Ŷ − Y‖/‖Y‖ a scheme may show before the check fails, with
/// the measurements it was derived from.
///
/// How the numbers were measured: formats/accuracy-report.md ("Thresholds") and
/// tools/measure_accuracy_thresholds.py.
public struct AccuracyThreshold: Sendable, Hashable {
    /// The scheme.
    public var scheme: SchemeName
    /// The limit on the relative output error.
    public var maxRelativeError: Double
    /// Measured relative output error: Gaussian weights, Gaussian probe.
    public var measuredGaussian: Double
    /// Measured relative output error: heavy-tailed weights (Student-t, 5 degrees of freedom),
    /// probe with outlier channels — the worst of the measured cases.
    public var measuredHeavyTailed: Double

    /// Creates a line of the table.
    public init(_ scheme: SchemeName, limit: Double, gaussian: Double, heavyTailed: Double) {
        self.scheme = scheme
        self.maxRelativeError = limit
        self.measuredGaussian = gaussian
        self.measuredHeavyTailed = heavyTailed
    }
}

/// The default thresholds, one line per scheme (data, not code).
public enum AccuracyThresholds {
    /// Each scheme's limit: the worst measured case (heavy-tailed weights, probes with outlier
    /// channels) times 1.5, rounded up to two significant digits. Measured with reference
    /// quantizers (gguf-py, ml_dtypes, numpy formulas) on 512 × 4096 weights and 64 probe rows;
    /// re-measure with this tool's own kernels through `quantize` once they exist.
    public static let table: [AccuracyThreshold] = [
        AccuracyThreshold(.fp8, limit: 0.041, gaussian: 0.02632, heavyTailed: 0.02712),
        AccuracyThreshold(.fp8E5M2, limit: 0.080, gaussian: 0.05206, heavyTailed: 0.05306),
        AccuracyThreshold(.int8, limit: 0.031, gaussian: 0.00858, heavyTailed: 0.02051),
        AccuracyThreshold(.int4, limit: 0.27, gaussian: 0.11685, heavyTailed: 0.17732),
        AccuracyThreshold(.q8_0, limit: 0.011, gaussian: 0.00534, heavyTailed: 0.00693),
        AccuracyThreshold(.q4_0, limit: 0.17, gaussian: 0.08518, heavyTailed: 0.11151),
        AccuracyThreshold(.q4_1, limit: 0.14, gaussian: 0.07764, heavyTailed: 0.09196),
        AccuracyThreshold(.q5_0, limit: 0.083, gaussian: 0.04236, heavyTailed: 0.05474),
        AccuracyThreshold(.q5_1, limit: 0.068, gaussian: 0.03730, heavyTailed: 0.04509),
        AccuracyThreshold(.q4_K, limit: 0.14, gaussian: 0.07827, heavyTailed: 0.09286),
        AccuracyThreshold(.q6_K, limit: 0.035, gaussian: 0.01866, heavyTailed: 0.02299),
        AccuracyThreshold(.f16, limit: 0.00032, gaussian: 0.00021, heavyTailed: 0.00021),
        AccuracyThreshold(.bf16, limit: 0.0026, gaussian: 0.00165, heavyTailed: 0.00168),
    ]

    /// The limit for `scheme` (every ``SchemeName`` has one; the tests check it).
    public static func maxRelativeError(for scheme: SchemeName) -> Double? {
        table.first { $0.scheme == scheme }?.maxRelativeError
    }

    /// The limit for a scheme written as text (`q4_k`, `Q4_K`, `fp8-e5m2`): `override` when given
    /// (`--max-error`), else the table's value, else nil for a scheme the table does not know.
    public static func maxRelativeError(forSchemeNamed name: String, override: Double? = nil) -> Double? {
        if let override { return override }
        guard let scheme = SchemeName(rawValue: name.lowercased()) else { return nil }
        return maxRelativeError(for: scheme)
    }
}
