import Formats
import Foundation

extension FormatError.Code {
    /// Buffers handed to the accuracy check do not match the shape they are said to have.
    public static let accuracyShapeMismatch: Self = "accuracyShapeMismatch"
    /// Probe activations do not fit the weight they should be multiplied with.
    public static let activationShapeMismatch: Self = "activationShapeMismatch"
}

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny 64-bit generator whose output depends only on
/// its seed, so probe activations are bit-identical on every machine and in every release.
///
/// Swift's `SystemRandomNumberGenerator` is not seedable and numpy's generators are not available
/// here; SplitMix64 is the seeding generator Java, xoshiro and numpy's `SeedSequence` papers use.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The current state; advanced by the golden-ratio increment on every draw.
    public private(set) var state: UInt64

    /// Creates a generator that starts from `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in (0, 1]: the top 53 bits, shifted by one step so that 0 never occurs
    /// (Box–Muller takes its logarithm).
    public mutating func nextUnitInterval() -> Double {
        Double((next() >> 11) + 1) * 0x1p-53
    }
}

/// Large "outlier" input channels added to Gaussian probes, imitating real activations.
///
/// LLM.int8() (Dettmers et al. 2022, §4) found that from about 6.7B parameters on, a handful of
/// hidden dimensions (about 6 per model) carry values up to 20× larger than the rest, in almost all
/// layers. The defaults copy that: 6 channels, scaled by 20. The channels are picked by the probe's
/// own generator, so they are the same for a given seed and width.
public struct OutlierChannels: Sendable, Hashable, Codable {
    /// How many input channels are outliers (clamped to the width of the probe).
    public var count: Int
    /// The factor the outlier channels are multiplied by.
    public var magnitude: Float

    /// Creates an outlier description; the defaults follow LLM.int8(): 6 channels ×20.
    public init(count: Int = 6, magnitude: Float = 20) {
        self.count = count
        self.magnitude = magnitude
    }
}

/// Where a tensor's probe activations came from, as written in the report.
public enum ProbeKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// Rows of independent N(0, 1) values from ``SplitMix64`` and Box–Muller.
    case gaussian
    /// Gaussian rows with a few large channels (``OutlierChannels``).
    case gaussianOutliers = "gaussian-outliers"
    /// Rows given by the user (`--activations FILE.safetensors`).
    case file
}

/// The probe input X of the accuracy check: `rows` × `columns` FP32 values, row-major, where
/// `columns` is the input width of the weight it is multiplied with.
public struct ProbeActivations: Sendable, Hashable {
    /// The seed used when none is given (the same for every tensor and every run).
    public static let defaultSeed: UInt64 = 0x00C0_FFEE
    /// The number of probe rows used when none is given.
    public static let defaultRows = 64

    /// The number of probe rows (n).
    public let rows: Int
    /// The input width (must equal the weight's column count).
    public let columns: Int
    /// The values, row-major, `rows * columns` of them.
    public let values: [Float]
    /// How they were made.
    public let kind: ProbeKind

    /// Wraps given activation rows (for example a tensor read from `--activations`).
    ///
    /// - Throws: `FormatError` with code ``FormatError/Code/activationShapeMismatch`` when
    ///   `values.count` is not `rows * columns` or a dimension is not positive.
    public init(values: [Float], rows: Int, columns: Int, kind: ProbeKind = .file) throws {
        guard rows > 0, columns > 0, let count = CheckedSize.multiply(rows, columns), count == values.count
        else {
            throw FormatError(
                .activationShapeMismatch, path: "(activations)",
                message: "\(values.count) activation values cannot form \(rows) × \(columns) rows",
                remedy: "give a 2-D tensor [tokens, input width] with at least one row")
        }
        self.rows = rows
        self.columns = columns
        self.values = values
        self.kind = kind
    }

    /// Generates `rows` × `columns` independent N(0, 1) values from `seed` (SplitMix64 and the
    /// Box–Muller transform, computed in Double and rounded to Float), optionally multiplying a
    /// few channels by a large factor.
    ///
    /// The result depends only on the arguments: the same seed and width give the same bits
    /// everywhere, and every tensor of a given input width sees the same probe.
    public static func gaussian(
        rows: Int = defaultRows, columns: Int, seed: UInt64 = defaultSeed, outliers: OutlierChannels? = nil
    ) -> ProbeActivations {
        let rows = max(rows, 1)
        let columns = max(columns, 1)
        let count = rows * columns
        var generator = SplitMix64(seed: seed)
        var values = [Float](repeating: 0, count: count)
        var index = 0
        while index < count {
            // Box–Muller: two independent normals from two uniforms.
            let radius = (-2 * Foundation.log(generator.nextUnitInterval())).squareRoot()
            let angle = 2 * Double.pi * generator.nextUnitInterval()
            values[index] = Float(radius * Foundation.cos(angle))
            if index + 1 < count { values[index + 1] = Float(radius * Foundation.sin(angle)) }
            index += 2
        }
        var kind = ProbeKind.gaussian
        if let outliers, outliers.count > 0 {
            kind = .gaussianOutliers
            // A separate stream, so that the Gaussian part is the same with or without outliers.
            var picker = SplitMix64(seed: seed ^ 0x6F75_746C_6965_7273)
            var channels = Array(0..<columns)
            let chosen = min(outliers.count, columns)
            for slot in 0..<chosen {  // partial Fisher–Yates shuffle
                let pick = slot + Int(picker.next() % UInt64(columns - slot))
                channels.swapAt(slot, pick)
            }
            for channel in channels[0..<chosen] {
                for row in 0..<rows { values[row * columns + channel] *= outliers.magnitude }
            }
        }
        return ProbeActivations(checkedValues: values, rows: rows, columns: columns, kind: kind)
    }

    init(checkedValues: [Float], rows: Int, columns: Int, kind: ProbeKind) {
        self.values = checkedValues
        self.rows = rows
        self.columns = columns
        self.kind = kind
    }
}

/// Chooses the probe activations for each checked tensor: user-given rows when they fit, else the
/// generated Gaussian probe of the tensor's width (made once per width and reused).
///
/// Safe to share between threads.
public final class ProbeActivationSource: @unchecked Sendable {
    /// Probe rows per generated probe.
    public let rows: Int
    /// Seed of the generated probes.
    public let seed: UInt64
    /// Outlier channels added to generated probes, or nil for plain Gaussian rows.
    public let outliers: OutlierChannels?
    /// User-given activations by name (a tensor name, or a name without its `.weight` suffix).
    public let named: [String: ProbeActivations]
    /// User-given activations for every tensor whose width matches (one tensor in the file).
    public let shared: ProbeActivations?

    private let lock = NSLock()
    private var generated: [Int: ProbeActivations] = [:]

    /// Creates a source. With no `named` or `shared` activations every tensor gets the generated
    /// probe; otherwise user rows are preferred (exact name, then the name without `.weight`,
    /// then `shared`) and a tensor none of them fits falls back to the generated probe, which the
    /// report records per tensor (``ProbeKind``).
    public init(
        rows: Int = ProbeActivations.defaultRows, seed: UInt64 = ProbeActivations.defaultSeed,
        outliers: OutlierChannels? = nil, named: [String: ProbeActivations] = [:], shared: ProbeActivations? = nil
    ) {
        self.rows = max(rows, 1)
        self.seed = seed
        self.outliers = outliers
        self.named = named
        self.shared = shared
    }

    /// The activations for tensor `name` whose input width is `columns`.
    ///
    /// - Throws: `FormatError` with code ``FormatError/Code/activationShapeMismatch`` when
    ///   activations were given under this tensor's own name but have another width (a user
    ///   mistake that must not pass silently).
    public func activations(forTensor name: String, columns: Int) throws -> ProbeActivations {
        let base = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
        if let given = named[name] ?? named[base] {
            guard given.columns == columns else {
                throw FormatError(
                    .activationShapeMismatch, path: "(activations)", tensor: name,
                    message: "activations for this tensor have width \(given.columns), the weight has \(columns) inputs",
                    remedy: "store activations of shape [tokens, \(columns)] under '\(name)'")
            }
            return given
        }
        if let shared, shared.columns == columns { return shared }
        lock.lock()
        defer { lock.unlock() }
        if let cached = generated[columns] { return cached }
        let probe = ProbeActivations.gaussian(rows: rows, columns: columns, seed: seed, outliers: outliers)
        generated[columns] = probe
        return probe
    }
}
