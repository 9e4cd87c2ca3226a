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

/// The default thresholds, one line per scheme, read from ``SchemeDescriptor/accuracy``.
public enum AccuracyThresholds {
    /// Each scheme's limit: the worst measured case (heavy-tailed weights, probes with outlier
    /// channels) times 1.5, rounded up to two significant digits. Measured with reference
    /// quantizers (gguf-py, ml_dtypes, numpy formulas) on 512 × 4096 weights and 64 probe rows;
    /// the numbers are in ``SchemeDescriptor/all``.
    public static let table: [AccuracyThreshold] = SchemeDescriptor.all.map(\.accuracy)

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
