import CKernels
import Formats
import Foundation
import Quantize
import Testing

@Suite("FP8, F16 and BF16 element casts")
struct CastTests {
    /// The chunk of fixture input patterns: upper halves `chunk*4096 ..< (chunk+1)*4096`, each with the 16 fixed lower halves.
    static func patterns(chunk: Int) throws -> [Float] {
        let casts = try OracleFixtures.shared.casts
        let his = casts.chunk / casts.lows.count
        var out: [Float] = []
        out.reserveCapacity(casts.chunk)
        for hi in (chunk * his)..<((chunk + 1) * his) {
            for lo in casts.lows { out.append(Float(bitPattern: UInt32(hi) << 16 | lo)) }
        }
        return out
    }

    @Test("FP8 encoding equals ml_dtypes on 1,048,576 float32 patterns", arguments: FP8Format.allCases)
    func fp8MatchesMLDtypes(_ format: FP8Format) throws {
        let hashes = try format == .e4m3 ? OracleFixtures.shared.casts.e4m3 : OracleFixtures.shared.casts.e5m2
        for (chunk, hash) in hashes.enumerated() {
            let x = try Self.patterns(chunk: chunk)
            var out = [UInt8](repeating: 0, count: x.count)
            x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { format.encode(xp, into: $0) } }
            #expect(fnv1a64(out) == hash, "chunk \(chunk) (upper halves from \(String(chunk * 4096, radix: 16)))")
        }
    }

    @Test("F16 and BF16 GGUF encoding equal numpy and gguf-py on 1,048,576 patterns", arguments: [SchemeName.f16, .bf16])
    func halfMatchesOracle(_ name: SchemeName) throws {
        let hashes = try name == .f16 ? OracleFixtures.shared.casts.f16 : OracleFixtures.shared.casts.bf16
        for (chunk, hash) in hashes.enumerated() {
            let x = try Self.patterns(chunk: chunk)
            let q = try quantizeMatrix(x, rows: 1, columns: x.count, scheme: Scheme(name: name), options: QuantizeOptions(allowNonFinite: true))
            #expect(fnv1a64(q.parts[0].data) == hash, "chunk \(chunk)")
        }
    }

    @Test("FP8 decoding equals ml_dtypes for all 256 codes", arguments: FP8Format.allCases)
    func fp8DecodeTable(_ format: FP8Format) throws {
        let table = try format == .e4m3 ? OracleFixtures.shared.casts.e4m3_decode : OracleFixtures.shared.casts.e5m2_decode
        for code in 0..<256 {
            let got = format.decode(UInt8(code)), want = Float(bitPattern: table[code])
            #expect(got.bitPattern == want.bitPattern || (got.isNaN && want.isNaN), "code \(code): \(got) vs \(want)")
        }
    }

    @Test("FP8 encoding reproduces the ml_dtypes test vectors of formats.md §3.6")
    func specVectors() {
        let e4: [(Float, UInt8)] = [(0, 0x00), (-0.0, 0x80), (1, 0x38), (-1, 0xB8), (0.5, 0x30), (448, 0x7E), (449, 0x7E),
                                    (464, 0x7E), (0x1p-6, 0x08), (0x1p-9, 0x01), (0x1p-10, 0x00), (1.5 * 0x1p-10, 0x01),
                                    (0.1, 0x1D), (3.14159, 0x45), (.infinity, 0x7E), (-.infinity, 0xFE), (.nan, 0x7F)]
        for (x, want) in e4 { #expect(FP8Format.e4m3.encode(x) == want, "e4m3(\(x))") }
        let e5: [(Float, UInt8)] = [(1, 0x3C), (57344, 0x7B), (61439, 0x7B), (0x1p-14, 0x04), (0x1p-16, 0x01), (0x1p-17, 0x00),
                                    (0.1, 0x2E), (.infinity, 0x7B), (.nan, 0x7E)]
        for (x, want) in e5 { #expect(FP8Format.e5m2.encode(x) == want, "e5m2(\(x))") }
    }
}


@Suite("Vector and portable kernels agree")
struct DispatchTests {
    @Test("the AVX2 FP8 encoder and the portable one give identical bytes on every fixture pattern and scale",
          arguments: FP8Format.allCases)
    func avx2MatchesPortable(_ format: FP8Format) throws {
        let e5m2: Int32 = format == .e5m2 ? 1 : 0
        for chunk in 0..<16 {
            let x = try CastTests.patterns(chunk: chunk)
            for scale: Float in [1, 0.0123, 3.5e-3, 7.25] {
                var a = [UInt8](repeating: 0, count: x.count), b = a
                x.withUnsafeBufferPointer { p in
                    a.withUnsafeMutableBufferPointer { qk_quant_fp8_encode_scaled(p.baseAddress!, $0.baseAddress!, x.count, scale, format.largestFinite, e5m2) }
                    b.withUnsafeMutableBufferPointer { qk_quant_fp8_encode_scaled_portable(p.baseAddress!, $0.baseAddress!, x.count, scale, format.largestFinite, e5m2) }
                }
                #expect(a == b, "chunk \(chunk), scale \(scale)")
            }
        }
    }
}
