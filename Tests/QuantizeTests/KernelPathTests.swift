import CKernels
import Formats
import Quantize
import Testing

/// Input patterns that stress the rounding, tie and zero-sign rules of the block encoders.
enum KernelPatterns: String, CaseIterable, Sendable {
    case weights, ties, smallIntegers, signedZeros, tiny, subnormal, overflowingScale, randomBits

    /// `count` finite floats of this pattern from a fixed seed.
    func values(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [Float] {
        var state = seed
        func next() -> UInt64 {  // SplitMix64
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func gaussian() -> Float { Float((0..<3).map { _ in Double(next() >> 11) / Double(1 << 53) }.reduce(0, +) - 1.5) }
        return (0..<count).map { i in
            switch self {
            case .weights: return gaussian() * 0.04
            case .ties: return Float(Int(next() % 33) - 16) * 0.37
            case .smallIntegers: return Float(Int(next() % 5) - 2)
            case .signedZeros:
                switch next() % 4 { case 0: return 0; case 1: return -0.0; default: return gaussian() * 1e-8 }
            case .tiny: return gaussian() * 1e-30
            case .subnormal: return i % 32 == 0 ? Float(bitPattern: 0x000B_E51A) : (next() % 2 == 0 ? 0 : -0.0)
            case .overflowingScale: return gaussian() * 1e20
            case .randomBits:
                let v = Float(bitPattern: UInt32(truncatingIfNeeded: next()))
                return v.isFinite ? v : 1
            }
        }
    }
}

@Suite("AVX2 and portable quantization kernels agree")
struct KernelPathTests {
    /// Every block type a scheme writes (the legacy quants, the k-quants and IQ4_NL/IQ4_XS), from the descriptors.
    static let blockTypes: [GGMLType] = SchemeDescriptor.all.compactMap(\.ggmlType).filter(\.isQuantized)

    /// Runs the dispatched encoder of `type` (the AVX2 path on CPUs that have it) through the kernel table.
    static func encode(_ type: GGMLType, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<UInt8>, _ blocks: Int) -> Int {
        qk_quant_ggml_encode(type.id, x, out, blocks, type.blockSize, nil)
    }

    @Test("every GGUF block encoder gives the portable path's bytes and overflow index on every pattern",
          arguments: blockTypes, KernelPatterns.allCases)
    func blockEncoders(_ type: GGMLType, _ pattern: KernelPatterns) {
        let blocks = type.blockSize == 256 ? 63 : 511  // odd: the Q4_K pairs and a single last block
        let x = pattern.values(blocks * type.blockSize)
        var a = [UInt8](repeating: 0xAA, count: blocks * type.bytesPerBlock), b = [UInt8](repeating: 0x55, count: a.count)
        var ra = 0, rb = 0
        x.withUnsafeBufferPointer { p in
            ra = a.withUnsafeMutableBufferPointer { Self.encode(type, p.baseAddress!, $0.baseAddress!, blocks) }
            rb = b.withUnsafeMutableBufferPointer { qk_quant_ggml_encode_portable(type.id, p.baseAddress!, $0.baseAddress!, blocks) }
        }
        #expect(ra == rb)
        let firstDifference = a.indices.first { a[$0] != b[$0] }
        #expect(firstDifference == nil, "first differing byte \(firstDifference ?? -1) (block \((firstDifference ?? 0) / type.bytesPerBlock))")
    }

    @Test("the checked block encoders flag a NaN or infinity at every position and encode clean input as the portable path",
          arguments: blockTypes)
    func checkedEncoders(_ type: GGMLType) {
        let blocks = 3
        let clean = KernelPatterns.weights.values(blocks * type.blockSize)
        var a = [UInt8](repeating: 0, count: blocks * type.bytesPerBlock), b = a
        var nonFinite: Int32 = 7
        let ra = clean.withUnsafeBufferPointer { p in a.withUnsafeMutableBufferPointer { qk_quant_ggml_encode(type.id, p.baseAddress!, $0.baseAddress!, blocks, type.blockSize, &nonFinite) } }
        let rb = clean.withUnsafeBufferPointer { p in b.withUnsafeMutableBufferPointer { qk_quant_ggml_encode_portable(type.id, p.baseAddress!, $0.baseAddress!, blocks) } }
        #expect(nonFinite == 0 && ra == rb && a == b)
        var missed: [Int] = []
        for position in 0..<clean.count {
            var x = clean
            x[position] = position % 3 == 0 ? .nan : (position % 3 == 1 ? .infinity : -.infinity)
            nonFinite = 0
            _ = x.withUnsafeBufferPointer { p in a.withUnsafeMutableBufferPointer { qk_quant_ggml_encode(type.id, p.baseAddress!, $0.baseAddress!, blocks, type.blockSize, &nonFinite) } }
            if nonFinite != 1 { missed.append(position) }
        }
        #expect(missed.isEmpty, "not flagged at \(missed.prefix(8))")
    }

    @Test("the FP8 tile and INT row encoders flag a NaN or infinity at every position, tails included")
    func checkedTilesAndRows() {
        let rows = 3, cols = 70
        let clean = KernelPatterns.weights.values(rows * cols)
        var codes = [Int8](repeating: 0, count: rows * cols), fp8 = [UInt8](repeating: 0, count: rows * cols)
        var scales = [Float](repeating: 0, count: rows * cols), zeros = [Int8](repeating: 0, count: rows * cols)
        var scaleBytes = [UInt8](repeating: 0, count: 4 * rows * cols)
        func flags(_ x: [Float]) -> (fp8Block: Int32, fp8Group: Int32, int: Int32) {
            let block = qk_quant_fp8_encode_tiles(x, rows, cols, 2, 32, 448, 0, &fp8, &scaleBytes)
            let group = qk_quant_fp8_encode_tiles(x, rows, cols, 1, 16, 448, 0, &fp8, &scaleBytes)
            var nonFinite: Int32 = 7
            _ = qk_quant_int_encode_rows_checked(x, rows, cols, 32, 4, 0, 1, 0, &codes, &scales, &zeros, &nonFinite)
            return (block, group, nonFinite)
        }
        let none = flags(clean)
        #expect(none.fp8Block == 0 && none.fp8Group == 0 && none.int == 0)
        var missed: [Int] = []
        for position in 0..<clean.count {
            var x = clean
            x[position] = position % 2 == 0 ? .nan : -.infinity
            let f = flags(x)
            if f.fp8Block != 1 || f.fp8Group != 1 || f.int != 1 { missed.append(position) }
        }
        #expect(missed.isEmpty, "not flagged at \(missed.prefix(8))")
    }

    @Test("F16 and BF16 encoders agree with the portable path for every length 0…40, NaN and infinity included",
          arguments: [GGMLType.f16, .bf16])
    func halfEncoders(_ type: GGMLType) {
        var x = KernelPatterns.randomBits.values(40)
        for i in stride(from: 0, to: 40, by: 3) { x[i] = Float(bitPattern: x[i].bitPattern | 0x7F80_0000) }  // NaN or ±inf
        x[1] = 65520; x[2] = -65519.996; x[4] = .greatestFiniteMagnitude
        for n in 0...x.count {
            var a = [UInt8](repeating: 0xAA, count: 2 * n + 2), b = [UInt8](repeating: 0xAA, count: 2 * n + 2)
            x.withUnsafeBufferPointer { p in
                _ = a.withUnsafeMutableBufferPointer { Self.encode(type, p.baseAddress!, $0.baseAddress!, n) }
                _ = b.withUnsafeMutableBufferPointer { qk_quant_ggml_encode_portable(type.id, p.baseAddress!, $0.baseAddress!, n) }
            }
            #expect(a == b, "length \(n)")
        }
    }

    @Test("INT8/INT4 row encoding gives the portable path's codes, scales and zero points for group tails 1…70",
          arguments: [(8, true), (4, true), (4, false)])
    func intRows(_ bits: Int, _ symmetric: Bool) {
        let x = KernelPatterns.weights.values(3 * 70) + KernelPatterns.ties.values(3 * 70)
        for cols in 1...70 {
            for groupSize in [cols, 32] { for search: Int32 in [0, 1, 2] {
                let rows = x.count / 70
                let groups = (cols + groupSize - 1) / groupSize
                var ca = [Int8](repeating: 0, count: rows * cols), cb = ca
                var sa = [Float](repeating: 0, count: rows * groups), sb = sa
                var za = [Int8](repeating: 0, count: rows * groups), zb = za
                let input = Array(x.prefix(rows * cols))
                func run(_ codes: inout [Int8], _ scales: inout [Float], _ zeros: inout [Int8], portable: Bool) -> Int {
                    input.withUnsafeBufferPointer { p in
                        codes.withUnsafeMutableBufferPointer { c in
                            scales.withUnsafeMutableBufferPointer { s in
                                zeros.withUnsafeMutableBufferPointer { z in
                                    let encode = portable ? qk_quant_int_encode_rows_portable : qk_quant_int_encode_rows
                                    return encode(p.baseAddress!, rows, cols, groupSize, Int32(bits), symmetric ? 1 : 0, 1, search,
                                                  c.baseAddress!, s.baseAddress!, symmetric ? nil : z.baseAddress!)
                                }
                            }
                        }
                    }
                }
                let ra = run(&ca, &sa, &za, portable: false), rb = run(&cb, &sb, &zb, portable: true)
                #expect(ra == rb && ca == cb && sa.map(\.bitPattern) == sb.map(\.bitPattern) && za == zb, "\(cols) columns, groups of \(groupSize), search \(search)")
            } }
        }
    }

    @Test("INT4 row packing round-trips every code for widths 1…200 and leaves the padding nibbles zero")
    func int4Packing() {
        for cols in 1...200 {
            let rows = 3, words = (cols + 7) / 8
            let codes = (0..<(rows * cols)).map { Int8(($0 * 7 + cols) % 16 - 8) }
            var packed = [UInt8](repeating: 0xFF, count: rows * words * 4)
            var back = [Int8](repeating: 0, count: rows * cols)
            qk_quant_pack_int4_rows(codes, rows, cols, &packed)
            qk_quant_unpack_int4_rows(packed, rows, cols, &back)
            #expect(back == codes, "\(cols) columns")
            var paddingClear = true
            for r in 0..<rows {
                for c in cols..<(words * 8) {
                    let byte = packed[r * words * 4 + c / 2]
                    if (c % 2 == 0 ? byte & 0xF : byte >> 4) != 0 { paddingClear = false }
                }
            }
            #expect(paddingClear, "\(cols) columns")
        }
    }

    @Test("a whole tensor of many row blocks and parallel chunks gives the portable encoder's bytes",
          arguments: [(GGMLType.q8_0, 3001, 64), (.q4_0, 1999, 96), (.q4_K, 301, 512), (.q6_K, 97, 768)])
    func wholeTensor(_ type: GGMLType, _ rows: Int, _ columns: Int) throws {
        let x = KernelPatterns.weights.values(rows * columns)
        guard let name = SchemeName.allCases.first(where: { $0.ggmlType == type }) else { Issue.record("no scheme for \(type.name)"); return }
        let q = try quantizeMatrix(x, rows: rows, columns: columns, scheme: Scheme(name: name))
        let blocks = rows * columns / type.blockSize
        var expected = [UInt8](repeating: 0, count: blocks * type.bytesPerBlock)
        _ = x.withUnsafeBufferPointer { p in expected.withUnsafeMutableBufferPointer { qk_quant_ggml_encode_portable(type.id, p.baseAddress!, $0.baseAddress!, blocks) } }
        let data = try #require(q.parts.first?.data)
        let firstDifference = data.indices.first { data[$0] != expected[$0] }
        #expect(data.count == expected.count && firstDifference == nil, "first differing byte \(firstDifference ?? -1)")
    }

    @Test("encoding a range reports a NaN in a later row block before an earlier block's scale overflow")
    func nonFiniteBeforeOverflow() throws {
        let rows = 2048, columns = 32
        var x = KernelPatterns.weights.values(rows * columns)
        x[5] = 1e9          // Q8_0 scale 1e9 / 127 overflows F16 in row 0
        x[1500 * columns + 7] = .nan
        let quantizer = try TensorQuantizer(scheme: Scheme(name: .q8_0), rows: rows, columns: columns, tensorName: "w")
        let output = quantizer.layouts.map { UnsafeMutableRawBufferPointer.allocate(byteCount: $0.byteCount, alignment: 16) }
        defer { output.forEach { $0.deallocate() } }
        #expect {
            try x.withUnsafeBufferPointer { p throws(QuantizeError) in try quantizer.encode(rows: 0..<rows, input: p, into: output) }
        } throws: { error in
            guard case let QuantizeError.nonFiniteWeight(_, row, column, _) = error else { return false }
            return row == 1500 && column == 7
        }
        x[1500 * columns + 7] = 0
        #expect {
            try x.withUnsafeBufferPointer { p throws(QuantizeError) in try quantizer.encode(rows: 0..<rows, input: p, into: output) }
        } throws: { error in
            guard case let QuantizeError.scaleOutOfRange(_, row, _, _) = error else { return false }
            return row == 0
        }
    }

    @Test("the non-finite and magnitude scans find the first hit at every position of lengths 0…70")
    func scans() {
        let clean = KernelPatterns.weights.values(70)
        for n in 0...70 {
            #expect(qk_quant_first_nonfinite(clean, n) == -1)
            #expect(qk_quant_amax(clean, n) == clean.prefix(n).map { abs($0) }.max() ?? 0)
            for position in 0..<n {
                for bad: Float in [.nan, -.infinity] {
                    var x = clean
                    x[position] = bad
                    if position + 1 < n { x[n - 1] = .infinity }
                    #expect(qk_quant_first_nonfinite(x, n) == position, "length \(n), position \(position)")
                }
                var y = clean
                y[position] = -70000
                #expect(qk_quant_first_abs_at_least(y, n, 0x477F_F000) == position, "length \(n), position \(position)")
            }
        }
    }
}
