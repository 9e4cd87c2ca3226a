import Foundation
import Quantize
import TestSupport

/// Reference quantizers written out plainly for the accuracy tests (the real kernels live elsewhere
/// and are tested on their own); each returns the decoded weights.
enum ReferenceQuantizer {
    /// Symmetric per-output-channel INT8: scale = absmax/127, round half to even; `scaleFactor`
    /// multiplies the scales at decode time (2 simulates a broken decoder).
    static func int8(_ w: [Float], rows: Int, columns: Int, scaleFactor: Float = 1) -> [Float] {
        var out = w
        for r in 0..<rows {
            let row = w[(r * columns)..<((r + 1) * columns)]
            let absmax = row.map(abs).max() ?? 0
            let scale = absmax > 0 ? absmax / 127 : 1
            for c in 0..<columns {
                let q = min(max((w[r * columns + c] / scale).rounded(.toNearestOrEven), -128), 127)
                out[r * columns + c] = q * scale * scaleFactor
            }
        }
        return out
    }

    /// Symmetric INT4 in groups along the input: scale = absmax/7, values −8…7.
    static func int4(_ w: [Float], rows: Int, columns: Int, group: Int = 128) -> [Float] {
        var out = w
        for r in 0..<rows {
            for g in stride(from: 0, to: columns, by: group) {
                let range = (r * columns + g)..<(r * columns + min(g + group, columns))
                let absmax = w[range].map(abs).max() ?? 0
                let scale = absmax > 0 ? absmax / 7 : 1
                for i in range { out[i] = min(max((w[i] / scale).rounded(.toNearestOrEven), -8), 7) * scale }
            }
        }
        return out
    }

    /// BF16 with round to nearest even.
    static func bf16(_ w: [Float]) -> [Float] {
        w.map { value in
            let bits = value.bitPattern
            let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
            return Float(bitPattern: rounded & 0xFFFF_0000)
        }
    }
}

/// Gaussian weights N(0, 0.02²) from the probe generator (a different seed per tensor).
func gaussianWeights(rows: Int, columns: Int, seed: UInt64) -> [Float] {
    ProbeActivations.gaussian(rows: rows, columns: columns, seed: seed).values.map { $0 * 0.02 }
}

/// The oracle file written by tools/make_accuracy_fixtures.py.
struct AccuracyOracle: Decodable {
    struct Generator: Decodable {
        let seed: UInt64
        let outputs: [String]
    }
    struct Probe: Decodable {
        let rows: Int
        let columns: Int
        let seed: UInt64
        let outlier_count: Int
        let outlier_magnitude: Float
        let channels: [Int]
        let values: [Float]
    }
    struct Case: Decodable {
        let name: String
        let rows: Int
        let columns: Int
        let probe_rows: Int
        let w: [Float]
        let w_decoded: [Float]
        let x: [Float]
        let max_checked_weights: Int?
        let checked_rows: [Int]?
        let relative_error: Double
        let sqnr_db: Double
        let cosine_similarity: Double
        let max_abs_error: Double
        let relative_weight_error: Double
    }
    let splitmix64: [Generator]
    let probe: [Probe]
    let cases: [Case]

    static func load() throws -> AccuracyOracle {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("accuracy/oracle.json")))
        return try JSONDecoder().decode(AccuracyOracle.self, from: data)
    }
}

/// `|a − b| <= tolerance · max(|b|, floor)`.
func isClose(_ a: Double, _ b: Double, relative tolerance: Double, floor: Double = 1e-30) -> Bool {
    abs(a - b) <= tolerance * max(abs(b), floor)
}
