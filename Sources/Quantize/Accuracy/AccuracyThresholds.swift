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
}

/// The default thresholds, one line per scheme (data, not code).
public enum AccuracyThresholds {
    /// Each scheme's limit: the worst measured case (heavy-tailed weights, probes with outlier
    /// channels) times 1.5, rounded up to two significant digits. Measured with reference
    /// quantizers (gguf-py, ml_dtypes, numpy formulas) on 512 × 4096 weights and 64 probe rows;
    /// re-measure with this tool's own kernels through `quantize` once they exist.
    public static let table: [AccuracyThreshold] = [
        AccuracyThreshold(scheme: .fp8, maxRelativeError: 0.041, measuredGaussian: 0.02632, measuredHeavyTailed: 0.02712),
        AccuracyThreshold(scheme: .fp8E5M2, maxRelativeError: 0.080, measuredGaussian: 0.05206, measuredHeavyTailed: 0.05306),
        AccuracyThreshold(scheme: .int8, maxRelativeError: 0.031, measuredGaussian: 0.00858, measuredHeavyTailed: 0.02051),
        AccuracyThreshold(scheme: .int4, maxRelativeError: 0.27, measuredGaussian: 0.11685, measuredHeavyTailed: 0.17732),
        AccuracyThreshold(scheme: .q8_0, maxRelativeError: 0.011, measuredGaussian: 0.00534, measuredHeavyTailed: 0.00693),
        AccuracyThreshold(scheme: .q4_0, maxRelativeError: 0.17, measuredGaussian: 0.08518, measuredHeavyTailed: 0.11151),
        AccuracyThreshold(scheme: .q4_1, maxRelativeError: 0.14, measuredGaussian: 0.07764, measuredHeavyTailed: 0.09196),
        AccuracyThreshold(scheme: .q5_0, maxRelativeError: 0.083, measuredGaussian: 0.04236, measuredHeavyTailed: 0.05474),
        AccuracyThreshold(scheme: .q5_1, maxRelativeError: 0.068, measuredGaussian: 0.03730, measuredHeavyTailed: 0.04509),
        AccuracyThreshold(scheme: .q4_K, maxRelativeError: 0.14, measuredGaussian: 0.07827, measuredHeavyTailed: 0.09286),
        AccuracyThreshold(scheme: .q6_K, maxRelativeError: 0.035, measuredGaussian: 0.01866, measuredHeavyTailed: 0.02299),
        AccuracyThreshold(scheme: .f16, maxRelativeError: 0.00032, measuredGaussian: 0.00021, measuredHeavyTailed: 0.00021),
        AccuracyThreshold(scheme: .bf16, maxRelativeError: 0.0026, measuredGaussian: 0.00165, measuredHeavyTailed: 0.00168),
    ]

    /// The limit for `scheme`.
    public static func maxRelativeError(for scheme: SchemeName) -> Double {
        // Every SchemeName has a line; the fallback only guards a case added without one.
        table.first { $0.scheme == scheme }?.maxRelativeError ?? 0.05
    }

    /// The limit for a scheme written as text (`q4_k`, `Q4_K`, `fp8-e5m2`): `override` when given
    /// (`--max-error`), else the table's value, else nil for a scheme the table does not know.
    public static func maxRelativeError(forSchemeNamed name: String, override: Double? = nil) -> Double? {
        if let override { return override }
        guard let scheme = SchemeName(rawValue: name.lowercased()) else { return nil }
        return maxRelativeError(for: scheme)
    }
}
