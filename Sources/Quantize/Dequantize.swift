import CKernels
import Formats

/// Decodes `elementCount` elements of ggml type `type` from `bytes` into `output`.
///
/// Supports F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
/// IQ4_NL, IQ4_XS, TQ1_0, TQ2_0 and MXFP4; the floats equal gguf-py's `gguf.quants.dequantize`.
/// `elementCount` must be a whole number of blocks and `bytes` exactly their size.
public func dequantizeGGML(_ type: GGMLType, bytes: UnsafeRawBufferPointer, elementCount: Int,
                           into output: UnsafeMutableBufferPointer<Float>, tensorName: String) throws(QuantizeError) {
    guard let expected = type.byteCount(elementCount: elementCount), bytes.count == expected, output.count >= elementCount else {
        throw .invalidShape(tensor: tensorName, shape: [elementCount],
                            expected: "a whole number of \(type.name) blocks of \(type.blockSize) elements in exactly \(type.byteCount(elementCount: elementCount).map(String.init) ?? "?") bytes (got \(bytes.count) bytes)")
    }
    guard elementCount > 0 else { return }
    let status = qk_quant_ggml_decode(type.id, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), output.baseAddress!,
                                      elementCount / type.blockSize, type.blockSize, type.bytesPerBlock)
    if status != 0 { throw .unsupportedLayout(tensor: tensorName, found: "ggml type \(type.name)") }
}

/// Decodes a quantized matrix back to FP32, row-major `rows × columns`.
///
/// The layout is recognised from the part suffixes and types, so tensors written by other tools
/// decode too: a GGUF tensor (any type ``dequantizeGGML(_:bytes:elementCount:into:tensorName:)``
/// reads); compressed-tensors `float-quantized` / vLLM `fp8` (`weight` F8_E4M3 or F8_E5M2 with
/// `weight_scale` per tensor, channel or group, or DeepSeek `weight_scale_inv` blocks);
/// `int-quantized` (`weight` I8, `weight_scale`, optional `weight_zero_point`); `pack-quantized`
/// 4-bit or 8-bit (`weight_packed` I32, `weight_scale`, optional packed 4-bit `weight_zero_point`). Scales may be
/// F32, BF16 or F16. `groupSize` and `blockSize` resolve layouts whose last group or block is
/// partial (defaults: groups of ceil(columns / scale columns), 128 × 128 blocks when consistent).
public func dequantized(_ tensor: QuantizedTensor, tensorName: String, groupSize: Int? = nil,
                        blockSize: (rows: Int, columns: Int)? = nil) throws(QuantizeError) -> [Float] {
    let rows = tensor.rows, columns = tensor.columns
    let count = rows * columns
    var out = [Float](repeating: 0, count: count)
    func layoutError(_ what: String) -> QuantizeError { .unsupportedLayout(tensor: tensorName, found: what) }
    func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }

    if let part = tensor.parts.first(where: { if case .ggml = $0.type { return true } else { return false } }),
       case .ggml(let type) = part.type {
        let result: Result<Void, QuantizeError> = part.data.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { o in
                Result { () throws(QuantizeError) in try dequantizeGGML(type, bytes: raw, elementCount: count, into: o, tensorName: tensorName) }
            }
        }
        try result.get()
        return out
    }

    let description = tensor.parts.map { "\($0.suffix) \($0.type) \($0.shape)" }.joined(separator: ", ")
    if let weight = tensor.part("weight"), case .dtype(let dtype) = weight.type, dtype == .f8E4M3 || dtype == .f8E5M2 {
        guard weight.data.count == count else { throw layoutError("an FP8 weight of \(weight.data.count) bytes for \(rows)×\(columns)") }
        let isBlock = tensor.part("weight_scale_inv") != nil
        guard let scalePart = tensor.part("weight_scale_inv") ?? tensor.part("weight_scale") else { throw layoutError(description) }
        let scales = try scaleValues(scalePart, tensorName: tensorName)
        let (rowsPerScale, columnsPerScale, scaleColumns) = try scaleGrid(scales.count, shape: scalePart.shape, rows: rows, columns: columns,
                                                                         block: isBlock, groupSize: groupSize, blockSize: blockSize,
                                                                         tensorName: tensorName)
        let e5m2: Int32 = dtype == .f8E5M2 ? 1 : 0
        weight.data.withUnsafeBufferPointer { q in
            out.withUnsafeMutableBufferPointer { o in
                for r in 0..<rows {
                    var c = 0
                    while c < columns {
                        let n = min(columnsPerScale - c % columnsPerScale, columns - c)
                        let s = scales[(r / rowsPerScale) * scaleColumns + c / columnsPerScale]
                        qk_quant_fp8_decode(q.baseAddress! + r * columns + c, o.baseAddress! + r * columns + c, n, s, e5m2)
                        c += n
                    }
                }
            }
        }
        return out
    }

    if let weight = tensor.part("weight"), weight.type == .dtype(.i8), let scalePart = tensor.part("weight_scale") {
        guard weight.data.count == count else { throw layoutError("an I8 weight of \(weight.data.count) bytes for \(rows)×\(columns)") }
        let scales = try scaleValues(scalePart, tensorName: tensorName)
        let (rps, cps, sc) = try scaleGrid(scales.count, shape: scalePart.shape, rows: rows, columns: columns, block: false,
                                           groupSize: groupSize, blockSize: nil, tensorName: tensorName)
        let zeros = try tensor.part("weight_zero_point").map { (z) throws(QuantizeError) -> [Float] in
            let v = try integerValues(z, tensorName: tensorName)
            guard v.count == scales.count else { throw layoutError("weight_zero_point of \(v.count) values for \(scales.count) scales") }
            return v
        }
        try decodeIntegerCodes(weight.data.withUnsafeBytes { Array($0.bindMemory(to: Int8.self)) }, rows: rows, columns: columns,
                               rowsPerScale: rps, columnsPerScale: cps, scaleColumns: sc, scales: scales, zeros: zeros, into: &out,
                               tensorName: tensorName)
        return out
    }

    if let packed = tensor.part("weight_packed"), packed.type == .dtype(.i32), let scalePart = tensor.part("weight_scale") {
        let words4 = ceilDiv(columns, 8), words8 = ceilDiv(columns, 4)
        let bits = packed.data.count == rows * words4 * 4 ? 4 : packed.data.count == rows * words8 * 4 ? 8 : 0
        guard bits != 0 else {
            throw layoutError("weight_packed of \(packed.data.count) bytes; 4-bit (\(rows * words4 * 4) bytes) or 8-bit (\(rows * words8 * 4) bytes) packing of \(rows)×\(columns) is read")
        }
        let scales = try scaleValues(scalePart, tensorName: tensorName)
        let (rps, cps, sc) = try scaleGrid(scales.count, shape: scalePart.shape, rows: rows, columns: columns, block: false,
                                           groupSize: groupSize, blockSize: nil, tensorName: tensorName)
        var codes = [Int8](repeating: 0, count: count)
        packed.data.withUnsafeBufferPointer { p in
            codes.withUnsafeMutableBufferPointer {
                if bits == 4 { qk_quant_unpack_int4_rows(p.baseAddress!, rows, columns, $0.baseAddress!) }
                else { qk_quant_unpack_int8_rows(p.baseAddress!, rows, columns, $0.baseAddress!) }
            }
        }
        var zeros: [Float]? = nil
        if let z = tensor.part("weight_zero_point") {
            let groups = scales.count / rows
            guard z.data.count == ceilDiv(rows, 8) * groups * 4 else {
                throw layoutError("weight_zero_point of \(z.data.count) bytes; expected [\(ceilDiv(rows, 8)), \(groups)] int32")
            }
            var zs = [Int8](repeating: 0, count: rows * groups)
            z.data.withUnsafeBufferPointer { p in
                zs.withUnsafeMutableBufferPointer { qk_quant_unpack_int4_columns(p.baseAddress!, rows, groups, $0.baseAddress!) }
            }
            zeros = zs.map(Float.init)
        }
        try decodeIntegerCodes(codes, rows: rows, columns: columns, rowsPerScale: rps, columnsPerScale: cps, scaleColumns: sc,
                               scales: scales, zeros: zeros, into: &out, tensorName: tensorName)
        return out
    }
    throw layoutError(description)
}

/// (q - zp) · scale for per-row scale grids (channel or groups).
func decodeIntegerCodes(_ codes: [Int8], rows: Int, columns: Int, rowsPerScale: Int, columnsPerScale: Int, scaleColumns: Int,
                        scales: [Float], zeros: [Float]?, into out: inout [Float], tensorName: String) throws(QuantizeError) {
    guard rowsPerScale == 1 || scales.count == 1 else {
        throw .unsupportedLayout(tensor: tensorName, found: "integer codes with block scales")
    }
    // A single scale for the whole tensor is a grid of one group per row repeated.
    let expandedScales = scales.count == 1 ? [Float](repeating: scales[0], count: rows) : scales
    let expandedZeros = zeros.map { $0.count == 1 ? [Float](repeating: $0[0], count: rows) : $0 }
    let groupSize = scales.count == 1 ? columns : columnsPerScale
    codes.withUnsafeBufferPointer { q in
        expandedScales.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                if let expandedZeros {
                    expandedZeros.withUnsafeBufferPointer { z in
                        qk_quant_int_decode_rows(q.baseAddress!, rows, columns, groupSize, s.baseAddress!, z.baseAddress!, o.baseAddress!)
                    }
                } else {
                    qk_quant_int_decode_rows(q.baseAddress!, rows, columns, groupSize, s.baseAddress!, nil, o.baseAddress!)
                }
            }
        }
    }
}

/// Scale values as floats from an F32, BF16 or F16 part.
func scaleValues(_ part: QuantizedTensor.Part, tensorName: String) throws(QuantizeError) -> [Float] {
    guard case .dtype(let dtype) = part.type else { throw .unsupportedLayout(tensor: tensorName, found: "scale of type \(part.type)") }
    let d = part.data
    switch dtype {
    case .f32:
        return stride(from: 0, to: d.count - 3, by: 4).map {
            Float(bitPattern: UInt32(d[$0]) | UInt32(d[$0 + 1]) << 8 | UInt32(d[$0 + 2]) << 16 | UInt32(d[$0 + 3]) << 24)
        }
    case .bf16:
        return stride(from: 0, to: d.count - 1, by: 2).map { Float(bitPattern: (UInt32(d[$0]) | UInt32(d[$0 + 1]) << 8) << 16) }
    case .f16:
        return stride(from: 0, to: d.count - 1, by: 2).map { qk_quant_f16_to_f32(UInt16(d[$0]) | UInt16(d[$0 + 1]) << 8) }
    default:
        throw .unsupportedLayout(tensor: tensorName, found: "\(part.suffix) stored as \(dtype.rawValue) (expected F32, BF16 or F16)")
    }
}

/// Integer zero points as floats from an I8/I32/I64 part.
func integerValues(_ part: QuantizedTensor.Part, tensorName: String) throws(QuantizeError) -> [Float] {
    let d = part.data
    switch part.type {
    case .dtype(.i8): return d.map { Float(Int8(bitPattern: $0)) }
    case .dtype(.i32):
        return stride(from: 0, to: d.count - 3, by: 4).map {
            Float(Int32(bitPattern: UInt32(d[$0]) | UInt32(d[$0 + 1]) << 8 | UInt32(d[$0 + 2]) << 16 | UInt32(d[$0 + 3]) << 24))
        }
    default: throw .unsupportedLayout(tensor: tensorName, found: "zero points stored as \(part.type)")
    }
}

/// How scales map onto the matrix: (rows per scale, columns per scale, scale columns).
func scaleGrid(_ scaleCount: Int, shape: [Int], rows: Int, columns: Int, block: Bool, groupSize: Int?,
               blockSize: (rows: Int, columns: Int)?, tensorName: String) throws(QuantizeError) -> (Int, Int, Int) {
    func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
    let bad = QuantizeError.unsupportedLayout(tensor: tensorName, found: "\(scaleCount) scales of shape \(shape) for a \(rows)×\(columns) weight")
    // An empty scale part or an empty weight has no grid (and would divide by zero below).
    guard scaleCount > 0, rows > 0, columns > 0 else { throw bad }
    if scaleCount == 1 && !block { return (rows, columns, 1) }
    if block || (shape.count == 2 && shape[0] != rows) {
        guard shape.count == 2, shape[0] * shape[1] == scaleCount, shape[0] > 0, shape[1] > 0 else { throw bad }
        var b = blockSize ?? (128, 128)
        if ceilDiv(rows, b.rows) != shape[0] || ceilDiv(columns, b.columns) != shape[1] {
            guard blockSize == nil else { throw bad }
            b = (ceilDiv(rows, shape[0]), ceilDiv(columns, shape[1]))
            guard ceilDiv(rows, b.rows) == shape[0], ceilDiv(columns, b.columns) == shape[1] else { throw bad }
        }
        return (b.rows, b.columns, shape[1])
    }
    guard scaleCount % rows == 0 else { throw bad }
    let groups = scaleCount / rows
    let size = groupSize ?? ceilDiv(columns, groups)
    guard size > 0, ceilDiv(columns, size) == groups else { throw bad }
    return (1, size, groups)
}
