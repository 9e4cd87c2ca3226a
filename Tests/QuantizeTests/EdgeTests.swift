import Formats
import Foundation
import Quantize
import Testing

/// Every scheme with its default granularity, plus the other FP8 and INT4 variants.
let allSchemes: [Scheme] = SchemeName.allCases.map { Scheme(name: $0) } + [
    Scheme(name: .fp8, granularity: .tensor), Scheme(name: .fp8, granularity: .block(rows: 128, columns: 128)),
    Scheme(name: .fp8E5M2, granularity: .block(rows: 128, columns: 128)), Scheme(name: .int4, granularity: .group(size: 32), symmetric: false),
]

/// A seeded Gaussian-ish matrix (sum of uniforms), deterministic across runs.
func gaussianMatrix(rows: Int, columns: Int, seed: UInt64 = 42, scale: Float = 1) -> [Float] {
    var state = seed
    func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 24)
    }
    return (0..<(rows * columns)).map { _ in (next() + next() + next() + next() - 2) * 1.7 * scale }
}

func decode(_ q: QuantizedTensor, _ scheme: Scheme) throws -> [Float] {
    var groupSize: Int? = nil
    if case .group(let g) = scheme.granularity, scheme.name.ggmlType == nil { groupSize = g }
    return try dequantized(q, tensorName: "t", groupSize: groupSize)
}

@Suite("Edge values, errors and layout rules")
struct EdgeTests {
    @Test("a NaN or infinite weight is refused with its tensor and position", arguments: allSchemes)
    func refusesNonFinite(_ scheme: Scheme) {
        for bad: Float in [.nan, .infinity, -.infinity] {
            var x = gaussianMatrix(rows: 4, columns: 256)
            x[2 * 256 + 17] = bad
            #expect {
                _ = try quantizeMatrix(x, rows: 4, columns: 256, scheme: scheme, name: "layers.0.w")
            } throws: { error in
                guard case let QuantizeError.nonFiniteWeight(tensor, row, column, _) = error else { return false }
                return tensor == "layers.0.w" && row == 2 && column == 17
            }
        }
    }

    @Test("with allowNonFinite a quantized scheme writes only finite values", arguments: allSchemes.filter { $0.name != .f16 && $0.name != .bf16 && $0.name != .f32 })
    func allowNonFiniteStaysFinite(_ scheme: Scheme) throws {
        var x = gaussianMatrix(rows: 4, columns: 256)
        x[5] = .nan; x[300] = .infinity; x[700] = -.infinity
        let q = try quantizeMatrix(x, rows: 4, columns: 256, scheme: scheme, options: QuantizeOptions(allowNonFinite: true))
        let y = try decode(q, scheme)
        #expect(y.allSatisfy { $0.isFinite })
        #expect(abs(y[5]) <= 0.5, "NaN becomes about 0, got \(y[5])")
        let rowMax = x[256..<512].filter(\.isFinite).map(abs).max()!
        #expect(abs(y[300] - rowMax) <= rowMax * 0.2, "+inf becomes about the row's largest magnitude")
    }

    @Test("an all-zero row stores a positive scale and decodes to exact zeros", arguments: allSchemes)
    func zeroRows(_ scheme: Scheme) throws {
        var x = gaussianMatrix(rows: 3, columns: 256)
        for c in 0..<256 { x[256 + c] = 0 }
        let q = try quantizeMatrix(x, rows: 3, columns: 256, scheme: scheme)
        let y = try decode(q, scheme)
        #expect(y[256..<512].allSatisfy { $0 == 0 }, "zero row decodes to zeros")
        #expect(y.allSatisfy { $0.isFinite })
        if let scale = q.part("weight_scale"), scheme.granularity == .channel, case .dtype(let t) = scale.type {
            let width = t == .f32 ? 4 : 2
            let bytes = scale.data[(1 * width)..<(2 * width)]
            #expect(bytes.contains { $0 != 0 }, "the zero row's scale is not 0 (it is the dtype's smallest normal)")
        }
    }

    @Test("denormal, constant, huge-outlier and ±max rows decode without NaN and near the input",
          arguments: allSchemes.filter { $0.name.ggmlType == nil })
    func extremeRows(_ scheme: Scheme) throws {
        let columns = 256
        var x = [Float](repeating: 0, count: 5 * columns)
        for c in 0..<columns {
            x[c] = Float(c % 7 - 3) * 0x1p-136                     // denormals
            x[columns + c] = 0.37                                // constant
            x[2 * columns + c] = Float(c % 5) * 0.01             // small values ...
            x[3 * columns + c] = c % 2 == 0 ? 1e30 : -1e30       // near the top of the range
            x[4 * columns + c] = -Float(c) / 256
        }
        x[2 * columns + 9] = 3e5                                 // ... with one huge outlier
        let q = try quantizeMatrix(x, rows: 5, columns: columns, scheme: scheme)
        let y = try decode(q, scheme)
        #expect(y.allSatisfy { $0.isFinite })
        for c in 0..<columns {
            #expect(abs(y[c]) <= 0x1p-132, "denormal row stays tiny")
        }
        let rowMax = (scheme.name == .int4) ? Float(0.2) : 0.07
        // Per-tensor and block scales are set by the ±1e30 row, which flushes the small rows to 0.
        if case .tensor = scheme.granularity {} else if case .block = scheme.granularity {} else {
            #expect(abs(y[2 * columns + 9] - 3e5) <= 3e5 * 0.13, "the outlier survives: \(y[2 * columns + 9])")
            #expect(abs(y[columns + 3] - 0.37) <= 0.37 * rowMax, "constant row: \(y[columns + 3])")
            #expect(abs(y[3 * columns] - 1e30) <= 1e30 * rowMax)
        }
    }

    @Test("±Float.greatestFiniteMagnitude encodes to ±max FP8 with a finite scale", arguments: FP8Format.allCases)
    func fp8MaxFinite(_ format: FP8Format) throws {
        let x: [Float] = [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, 1, 0]
        let scheme = Scheme(name: format == .e4m3 ? .fp8 : .fp8E5M2)
        let q = try quantizeMatrix(x, rows: 1, columns: 4, scheme: scheme)
        #expect(q.parts[0].data[0] == format.encode(format.largestFinite))
        #expect(q.parts[0].data[1] == format.encode(-format.largestFinite))
        let y = try decode(q, scheme)
        #expect(y[0] == .greatestFiniteMagnitude || abs(y[0] / .greatestFiniteMagnitude - 1) < 1e-6)
    }

    @Test("GGUF types refuse rows that are not a whole number of blocks",
          arguments: SchemeDescriptor.all.filter { $0.ggmlType?.isQuantized == true }.map(\.name))
    func ggufShape(_ name: SchemeName) {
        let columns = name.ggmlType!.blockSize == 256 ? 288 : 48
        #expect(throws: QuantizeError.shapeNotDivisible(tensor: "w", shape: [2, columns], blockSize: name.ggmlType!.blockSize)) {
            _ = try TensorQuantizer(scheme: Scheme(name: name), rows: 2, columns: columns, tensorName: "w")
        }
    }

    @Test("a GGUF FP16 scale that overflows is an error naming the block")
    func ggufScaleOverflow() {
        var x = gaussianMatrix(rows: 2, columns: 64)
        x[64 + 40] = 1e10
        #expect(throws: QuantizeError.scaleOutOfRange(tensor: "test.weight", row: 1, column: 32, scaleType: "F16")) {
            _ = try quantizeMatrix(x, rows: 2, columns: 64, scheme: Scheme(name: .q8_0))
        }
    }

    @Test("F16 refuses finite weights beyond 65504 unless non-finite output is allowed")
    func f16Overflow() throws {
        let x: [Float] = [1, 70000, 3, 4]
        #expect(throws: QuantizeError.valueOutOfRange(tensor: "test.weight", row: 0, column: 1, value: 70000, type: "F16")) {
            _ = try quantizeMatrix(x, rows: 1, columns: 4, scheme: Scheme(name: .f16))
        }
        let q = try quantizeMatrix(x, rows: 1, columns: 4, scheme: Scheme(name: .f16), options: QuantizeOptions(allowNonFinite: true))
        #expect(q.parts[0].data[2...3] == [0x00, 0x7C], "stored as +inf like gguf-py")
    }

    @Test("INT scales that overflow their stored type are errors")
    func intScaleOverflow() {
        let big: [Float] = [.greatestFiniteMagnitude, -.greatestFiniteMagnitude] + [Float](repeating: 1, count: 30)
        #expect(throws: QuantizeError.scaleOutOfRange(tensor: "test.weight", row: 0, column: 0, scaleType: "F32")) {
            _ = try quantizeMatrix(big, rows: 1, columns: 32, scheme: Scheme(name: .int4, granularity: .group(size: 32), symmetric: false),
                                   options: QuantizeOptions(scaleType: .f32))
        }
        let x: [Float] = [1e7] + [Float](repeating: 1, count: 31)
        #expect(throws: QuantizeError.scaleOutOfRange(tensor: "test.weight", row: 0, column: 0, scaleType: "F16")) {
            _ = try quantizeMatrix(x, rows: 1, columns: 32, scheme: Scheme(name: .int8), options: QuantizeOptions(scaleType: .f16))
        }
    }

    @Test("granularities a layout cannot store are refused")
    func badGranularity() {
        #expect(throws: QuantizeError.unsupportedGranularity(tensor: "w", scheme: .int8, granularity: .tensor)) {
            _ = try TensorQuantizer(scheme: Scheme(name: .int8, granularity: .tensor), rows: 2, columns: 8, tensorName: "w")
        }
        #expect(throws: QuantizeError.unsupportedGranularity(tensor: "w", scheme: .int8, granularity: .channel)) {
            _ = try TensorQuantizer(scheme: Scheme(name: .int8, symmetric: false), rows: 2, columns: 8, tensorName: "w")
        }
    }

    @Test("storedByteCount equals the bytes of every stored part", arguments: allSchemes)
    func storedBytesMatchLayout(_ scheme: Scheme) throws {
        let q = try TensorQuantizer(scheme: scheme, rows: 256, columns: 512, tensorName: "w")
        let total = q.layouts.reduce(0) { $0 + $1.byteCount }
        #expect(scheme.storedByteCount(rows: 256, columns: 512, scaleBytes: 2) == total)
    }
}

@Suite("Row ranges, K-quants and the INT4 search")
struct KernelPropertyTests {
    @Test("encoding aligned row ranges separately gives the same bytes as the whole tensor", arguments: allSchemes)
    func rowRangesMatchWhole(_ scheme: Scheme) throws {
        let rows = 300, columns = 256
        let x = gaussianMatrix(rows: rows, columns: columns, seed: 9)
        let whole = try quantizeMatrix(x, rows: rows, columns: columns, scheme: scheme)
        let quantizer = try TensorQuantizer(scheme: scheme, rows: rows, columns: columns, tensorName: "w")
        let buffers = quantizer.layouts.map { UnsafeMutableRawBufferPointer.allocate(byteCount: max($0.byteCount, 1), alignment: 16) }
        defer { buffers.forEach { $0.deallocate() } }
        let empty = quantizer.makeOutput()
        for (b, p) in zip(buffers, empty.parts) { b.initializeMemory(as: UInt8.self, repeating: 0); p.data.withUnsafeBytes { b.copyMemory(from: $0) } }
        let amax = x.withUnsafeBufferPointer { TensorQuantizer.amax($0, allowNonFinite: false) }
        let step = quantizer.rowAlignment * max(1, 24 / quantizer.rowAlignment)
        var r = 0
        while r < rows {
            let end = min(rows, r + step)
            try x.withUnsafeBufferPointer { p in
                try quantizer.encode(rows: r..<end, input: UnsafeBufferPointer(rebasing: p[(r * columns)..<(end * columns)]),
                                     tensorAmax: amax, into: buffers)
            }
            r = end
        }
        for (i, part) in whole.parts.enumerated() {
            #expect(Array(buffers[i][0..<part.data.count]) == part.data, "part \(part.suffix)")
        }
        if quantizer.rowAlignment > 1 {
            #expect(throws: QuantizeError.self) {
                try x.withUnsafeBufferPointer { p in
                    try quantizer.encode(rows: 1..<2, input: UnsafeBufferPointer(rebasing: p[columns..<(2 * columns)]), tensorAmax: amax, into: buffers)
                }
            }
        }
    }

    @Test("Q4_K and Q6_K round-trip within ggml's error and beat Q4_0 and Q8_0's neighbours", arguments: [SchemeName.q4_K, .q6_K])
    func kQuantError(_ name: SchemeName) throws {
        let rows = 16, columns = 1024
        var x = gaussianMatrix(rows: rows, columns: columns, seed: 5, scale: 0.02)
        for c in 0..<columns { x[c] = 0 }                 // an all-zero row
        for c in 0..<columns { x[columns + c] = 0.37 }    // a constant row
        let q = try quantizeMatrix(x, rows: rows, columns: columns, scheme: Scheme(name: name))
        let y = try decode(q, Scheme(name: name))
        #expect(y[0..<columns].allSatisfy { $0 == 0 })
        #expect(y[columns..<(2 * columns)].allSatisfy { abs($0 - 0.37) <= 0.37 * (name == .q4_K ? 0.05 : 0.01) })
        func relativeRMSE(_ a: [Float], _ b: [Float]) -> Double {
            var e = 0.0, s = 0.0
            for i in (2 * columns)..<a.count { e += Double((a[i] - b[i]) * (a[i] - b[i])); s += Double(b[i] * b[i]) }
            return (e / s).squareRoot()
        }
        let err = relativeRMSE(y, x)
        // Reference figures for Gaussian weights: Q4_K ≈ 0.09–0.10, Q6_K ≈ 0.02 relative RMSE.
        #expect(err < (name == .q4_K ? 0.11 : 0.025), "relative RMSE \(err)")
        let other: SchemeName = name == .q4_K ? .q4_0 : .q5_0
        let yo = try decode(try quantizeMatrix(x, rows: rows, columns: columns, scheme: Scheme(name: other)), Scheme(name: other))
        #expect(err < relativeRMSE(yo, x), "\(name) beats \(other)")
    }

    @Test("the INT4 clipping search is never worse than round-to-nearest on any group and better on average",
          arguments: [true, false])
    func searchBeatsRTN(_ symmetric: Bool) throws {
        let rows = 32, columns = 512, group = 64
        var x = gaussianMatrix(rows: rows, columns: columns, seed: 77)
        for i in stride(from: 11, to: x.count, by: 97) { x[i] *= 6 }   // heavy tails make clipping pay
        let scheme = Scheme(name: .int4, granularity: .group(size: group), symmetric: symmetric)
        let plain = try decode(try quantizeMatrix(x, rows: rows, columns: columns, scheme: scheme), scheme)
        let searched = try decode(try quantizeMatrix(x, rows: rows, columns: columns, scheme: scheme, options: QuantizeOptions(search: true)), scheme)
        var totalPlain = 0.0, totalSearched = 0.0
        for g in 0..<(rows * columns / group) {
            var ep = 0.0, es = 0.0
            for i in (g * group)..<((g + 1) * group) {
                ep += Double((plain[i] - x[i]) * (plain[i] - x[i]))
                es += Double((searched[i] - x[i]) * (searched[i] - x[i]))
            }
            #expect(es <= ep * (1 + 1e-6), "group \(g): searched \(es) vs plain \(ep)")
            totalPlain += ep; totalSearched += es
        }
        #expect(totalSearched < totalPlain * 0.95, "search lowers the total squared error: \(totalSearched) vs \(totalPlain)")
    }
}

@Suite("config.json quantization_config")
struct QuantizationConfigTests {
    func parse(_ scheme: Scheme, _ options: QuantizeOptions = QuantizeOptions()) throws -> [String: Any] {
        let text = try #require(scheme.quantizationConfigJSON(ignore: ["lm_head"], options: options))
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func weights(_ config: [String: Any]) throws -> [String: Any] {
        let groups = try #require(config["config_groups"] as? [String: Any])
        let group = try #require(groups["group_0"] as? [String: Any])
        return try #require(group["weights"] as? [String: Any])
    }

    @Test("per-channel FP8 is compressed-tensors float-quantized with dynamic per-token activations")
    func fp8Channel() throws {
        let c = try parse(Scheme(name: .fp8))
        #expect(c["quant_method"] as? String == "compressed-tensors")
        #expect(c["format"] as? String == "float-quantized")
        #expect(c["ignore"] as? [String] == ["lm_head"])
        let w = try weights(c)
        #expect(w["strategy"] as? String == "channel" && w["type"] as? String == "float" && w["num_bits"] as? Int == 8)
    }

    @Test("block FP8 is vLLM's fp8 method with weight_block_size")
    func fp8Block() throws {
        let c = try parse(Scheme(name: .fp8, granularity: .block(rows: 128, columns: 128)))
        #expect(c["quant_method"] as? String == "fp8")
        #expect(c["weight_block_size"] as? [Int] == [128, 128])
        #expect(c["activation_scheme"] as? String == "dynamic")
    }

    @Test("INT4 is pack-quantized with its group size and symmetry; packed INT8 too")
    func int4() throws {
        let c = try parse(Scheme(name: .int4, granularity: .group(size: 64), symmetric: false))
        #expect(c["format"] as? String == "pack-quantized")
        let w = try weights(c)
        #expect(w["group_size"] as? Int == 64 && w["symmetric"] as? Bool == false && w["strategy"] as? String == "group")
        #expect(try parse(Scheme(name: .int8))["format"] as? String == "int-quantized")
        #expect(try parse(Scheme(name: .int8), QuantizeOptions(packInt8: true))["format"] as? String == "pack-quantized")
        #expect(Scheme(name: .q4_K).quantizationConfigJSON(ignore: []) == nil)
    }
}
