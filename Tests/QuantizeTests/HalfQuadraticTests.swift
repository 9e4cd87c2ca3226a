import CKernels
import Testing
@testable import Quantize

/// `QuantizeOptions.halfQuadratic` (`--method hqq`): each group's scale and zero point refined by
/// half-quadratic optimisation (quant_int.c, hqq_refine).
@Suite("HQQ refinement of int4/int8 groups")
struct HalfQuadraticTests {
    /// Mean absolute error of every group of `decoded` against `x`.
    func groupErrors(_ decoded: [Float], _ x: [Float], group: Int) -> [Double] {
        stride(from: 0, to: x.count, by: group).map { start in
            (start..<min(start + group, x.count)).reduce(0.0) { $0 + Double(abs(decoded[$1] - x[$1])) } / Double(min(group, x.count - start))
        }
    }

    @Test("never raises a group's mean absolute error above round-to-nearest's, and lowers the total",
          arguments: [(4, true, 128, 0.99), (4, false, 128, 0.99), (4, true, 32, 0.99), (4, false, 32, 0.99), (8, true, 0, 0.999), (4, false, 0, 0.99)])
    func neverWorseThanRoundToNearest(_ bits: Int, _ symmetric: Bool, _ groupSize: Int, _ bound: Double) throws {
        // groupSize 0: one group per row of 1536 columns, more than the kernel's stack scratch holds.
        // `bound`: the total it must reach (int8 rows have 256 levels: little is left to gain).
        let rows = 24, columns = groupSize == 0 ? 1536 : 512
        var x = gaussianMatrix(rows: rows, columns: columns, seed: 91)
        for i in stride(from: 5, to: x.count, by: 61) { x[i] *= 5 }   // outliers, as trained weights have
        let granularity: Granularity = groupSize == 0 ? .channel : .group(size: groupSize)
        let scheme = Scheme(name: bits == 4 ? .int4 : .int8, granularity: granularity, symmetric: symmetric)
        let plain = try decode(try quantizeMatrix(x, rows: rows, columns: columns, scheme: scheme), scheme)
        let refined = try decode(try quantizeMatrix(x, rows: rows, columns: columns, scheme: scheme,
                                                    options: QuantizeOptions(halfQuadratic: true)), scheme)
        let group = groupSize == 0 ? columns : groupSize
        let before = groupErrors(plain, x, group: group), after = groupErrors(refined, x, group: group)
        for (g, (b, a)) in zip(before, after).enumerated() {
            #expect(a <= b * (1 + 1e-6), "group \(g): \(a) after HQQ vs \(b) round-to-nearest")
        }
        let total = (before.reduce(0, +), after.reduce(0, +))
        #expect(total.1 < total.0 * bound, "HQQ lowers the total mean absolute error: \(total.1) vs \(total.0)")
        #expect(zip(before, after).contains { $1 < $0 * 0.999 }, "at least one group changes")
    }

    @Test("zero points stay integers in the int4 range and scales positive")
    func storableParameters() throws {
        let rows = 16, columns = 256
        var x = gaussianMatrix(rows: rows, columns: columns, seed: 5)
        for i in 0..<columns { x[i] = abs(x[i]) + 0.5 }   // a one-sided row pushes the zero point to its end
        let scheme = Scheme(name: .int4, granularity: .group(size: 64), symmetric: false)
        let q = try quantizeMatrix(x, rows: rows, columns: columns, scheme: scheme, options: QuantizeOptions(halfQuadratic: true))
        let decoded = try decode(q, scheme)
        #expect(decoded.allSatisfy { $0.isFinite })
        let zeroPart = try #require(q.parts.first { $0.suffix == "weight_zero_point" })
        let groups = columns / 64
        var zeros = [Int8](repeating: 0, count: rows * groups)
        zeroPart.data.withUnsafeBytes { raw in
            zeros.withUnsafeMutableBufferPointer { qk_quant_unpack_int4_columns(raw.baseAddress!.assumingMemoryBound(to: UInt8.self), rows, groups, $0.baseAddress!) }
        }
        #expect(zeros.allSatisfy { (-8...7).contains($0) })
        let scalePart = try #require(q.parts.first { $0.suffix == "weight_scale" })
        #expect(scalePart.data.count == rows * groups * 2)
    }
}
