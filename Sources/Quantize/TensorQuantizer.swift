import CKernels
import Dispatch
import Formats
import Foundation

/// Quantizes one weight matrix, a range of rows at a time, into the layout of its scheme.
///
/// Made once per tensor; ``encode(rows:input:tensorAmax:into:)`` fills the slice of the
/// output buffers that belongs to the given rows, so row blocks can run on all cores and a caller
/// streaming a checkpoint can hand rows over as it reads them. ``quantized(_:rows:columns:scheme:tensorName:options:importance:rowsPerExpert:)``
/// is the whole-tensor convenience that does exactly that in parallel.
public struct TensorQuantizer: Sendable {
    /// The shape and storage of one output tensor, before it is filled.
    public struct PartLayout: Sendable, Equatable {
        /// The part's suffix (see ``QuantizedTensor/Part/suffix``).
        public var suffix: String
        /// The stored type.
        public var type: TensorType
        /// The stored shape.
        public var shape: [Int]
        /// Bytes the part occupies.
        public var byteCount: Int
    }

    /// The scheme being produced.
    public let scheme: Scheme
    /// Rows (output features).
    public let rows: Int
    /// Columns (input features).
    public let columns: Int
    /// The tensor's name, used in errors.
    public let tensorName: String
    /// The options in force.
    public let options: QuantizeOptions
    /// The output tensors, in the order ``encode(rows:input:tensorAmax:into:)`` expects buffers.
    public let layouts: [PartLayout]
    /// Row ranges given to ``encode(rows:input:tensorAmax:into:)`` must start at a multiple of
    /// this (128 for 128×128 FP8 blocks, 8 for asymmetric INT4 zero points packed along the rows,
    /// else 1) and end at such a multiple or at ``rows``.
    public let rowAlignment: Int
    /// Whether the scale depends on the whole tensor (FP8 per-tensor): the caller passes the
    /// tensor's largest finite magnitude as `tensorAmax` (see ``amax(_:allowNonFinite:)``).
    public var needsTensorAmax: Bool { if case .tensor = granularity, case .fp8 = kind { return true } else { return false } }
    /// The per-column importance the GGUF encoder weights its fit with (llama.cpp's imatrix values,
    /// Σx²/N of each input column), `columns` values per expert, expert `e`'s at
    /// `e * columns ..< (e + 1) * columns`; nil for the plain quantizer. Kept as given even where
    /// ``usesImportance`` is false.
    public let importance: [Float]?
    /// Rows that share one importance slice: row `r` uses expert `r / rowsPerExpert`'s values
    /// (``rows`` for a 2-D tensor; the rows of one expert of a 3-D expert tensor flattened to
    /// `experts * rowsPerExpert` rows).
    public let rowsPerExpert: Int
    /// Whether ``importance`` changes the bytes: ggml has an importance-weighted quantizer for the
    /// type (every k-quant, IQ4_NL, IQ4_XS, Q4_0, Q4_1, Q5_0, Q5_1). False without importance and
    /// for Q8_0, F16 and BF16, whose ggml quantizers ignore it (llama-quantize writes the same bytes
    /// with and without `--imatrix`).
    public var usesImportance: Bool { importance != nil && weighted }

    /// The kernels, from the scheme's descriptor.
    let kind: SchemeDescriptor.Kernel
    /// The scheme's descriptor.
    let descriptor: SchemeDescriptor
    let granularity: Granularity
    /// Elements sharing one scale along a row (columns for per-channel and per-tensor).
    let groupSize: Int
    /// Rows of an FP8 block (1 otherwise).
    let blockRows: Int
    let scaleTypeCode: Int32
    let scaleBytes: Int
    /// Whether the kernel table has ggml's importance-weighted path for the type.
    let weighted: Bool

    /// Checks that the scheme can store a `rows` × `columns` matrix and works out the layout.
    ///
    /// - Parameters:
    ///   - importance: llama.cpp imatrix values for this tensor (see ``importance``): `columns`
    ///     finite values per expert, `columns * rows / rowsPerExpert` in all; nil (the default) for
    ///     the plain quantizer. With it, every GGUF type with an importance-weighted quantizer gives
    ///     the bytes of `llama-quantize --imatrix` (ggml_quantize_chunk with that imatrix); Q8_0,
    ///     F16 and BF16 ignore it, as ggml does; the safetensors schemes refuse it.
    ///   - rowsPerExpert: rows per importance slice (see ``rowsPerExpert``); nil means `rows`. It
    ///     must divide `rows`.
    /// - Throws: ``QuantizeError`` for a shape the layout cannot hold; with importance also
    ///   ``QuantizeError/importanceSizeMismatch(tensor:expected:found:)``,
    ///   ``QuantizeError/nonFiniteImportance(tensor:expert:column:value:)`` and
    ///   ``QuantizeError/importanceNotApplicable(tensor:scheme:)``.
    public init(scheme: Scheme, rows: Int, columns: Int, tensorName: String, options: QuantizeOptions = QuantizeOptions(),
                importance: [Float]? = nil, rowsPerExpert: Int? = nil) throws(QuantizeError) {
        guard rows > 0, columns > 0, rows.multipliedReportingOverflow(by: columns).overflow == false else {
            throw .invalidShape(tensor: tensorName, shape: [rows, columns], expected: "a non-empty matrix")
        }
        let perExpert = rowsPerExpert ?? rows
        guard perExpert > 0, rows % perExpert == 0 else {
            throw .invalidShape(tensor: tensorName, shape: [rows, columns],
                                expected: "rows per expert (\(perExpert)) that divide the \(rows) rows")
        }
        self.importance = importance
        self.rowsPerExpert = perExpert
        self.scheme = scheme
        self.rows = rows
        self.columns = columns
        self.tensorName = tensorName
        self.options = options
        self.granularity = scheme.granularity
        self.descriptor = scheme.descriptor
        func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
        let badGranularity = QuantizeError.unsupportedGranularity(tensor: tensorName, scheme: scheme.name, granularity: scheme.granularity)
        kind = descriptor.kernel
        switch descriptor.kernel {
        case .fp8(let format):
            scaleTypeCode = 0
            scaleBytes = 4
            let weight = PartLayout(suffix: "weight", type: .dtype(format == .e5m2 ? .f8E5M2 : .f8E4M3), shape: [rows, columns], byteCount: rows * columns)
            switch scheme.granularity {
            case .tensor:
                groupSize = columns; blockRows = 1; rowAlignment = 1
                layouts = [weight, PartLayout(suffix: "weight_scale", type: .dtype(.f32), shape: [1], byteCount: 4)]
            case .channel:
                groupSize = columns; blockRows = 1; rowAlignment = 1
                layouts = [weight, PartLayout(suffix: "weight_scale", type: .dtype(.f32), shape: [rows, 1], byteCount: rows * 4)]
            case .group(let size):
                guard size > 0 else { throw badGranularity }
                groupSize = size; blockRows = 1; rowAlignment = 1
                let g = ceilDiv(columns, size)
                layouts = [weight, PartLayout(suffix: "weight_scale", type: .dtype(.f32), shape: [rows, g], byteCount: rows * g * 4)]
            case .block(let r, let c):
                guard r > 0, c > 0 else { throw badGranularity }
                groupSize = c; blockRows = r; rowAlignment = r
                let shape = [ceilDiv(rows, r), ceilDiv(columns, c)]
                layouts = [weight, PartLayout(suffix: "weight_scale_inv", type: .dtype(.f32), shape: shape, byteCount: shape[0] * shape[1] * 4)]
            }
        case .integer(let bits):
            // The layouts below pack 8-bit and 4-bit codes (quant_int.c); another width needs its packing first.
            guard bits == 8 || bits == 4 else { throw badGranularity }
            switch options.scaleType {
            case .f32: scaleTypeCode = 0; scaleBytes = 4
            case .bf16: scaleTypeCode = 1; scaleBytes = 2
            case .f16: scaleTypeCode = 2; scaleBytes = 2
            default:
                throw .invalidShape(tensor: tensorName, shape: [rows, columns], expected: "int scales stored as F32, BF16 or F16, not \(options.scaleType.rawValue)")
            }
            switch scheme.granularity {
            case .channel: groupSize = columns
            case .group(let size) where size > 0: groupSize = size
            default: throw badGranularity
            }
            if bits == 8 && !scheme.symmetric { throw badGranularity }
            blockRows = 1
            let groups = ceilDiv(columns, groupSize)
            let scale = PartLayout(suffix: "weight_scale", type: .dtype(options.scaleType), shape: [rows, groups], byteCount: rows * groups * scaleBytes)
            if bits == 8 && options.packInt8 {
                rowAlignment = 1
                let words = ceilDiv(columns, 4)
                layouts = [PartLayout(suffix: "weight_packed", type: .dtype(.i32), shape: [rows, words], byteCount: rows * words * 4), scale,
                           PartLayout(suffix: "weight_shape", type: .dtype(.i64), shape: [2], byteCount: 16)]
            } else if bits == 8 {
                rowAlignment = 1
                layouts = [PartLayout(suffix: "weight", type: .dtype(.i8), shape: [rows, columns], byteCount: rows * columns), scale]
            } else {
                let words = ceilDiv(columns, 8)
                var parts = [PartLayout(suffix: "weight_packed", type: .dtype(.i32), shape: [rows, words], byteCount: rows * words * 4), scale]
                if !scheme.symmetric {
                    let zr = ceilDiv(rows, 8)
                    parts.append(PartLayout(suffix: "weight_zero_point", type: .dtype(.i32), shape: [zr, groups], byteCount: zr * groups * 4))
                }
                parts.append(PartLayout(suffix: "weight_shape", type: .dtype(.i64), shape: [2], byteCount: 16))
                layouts = parts
                rowAlignment = scheme.symmetric ? 1 : 8
            }
        case .ggml(let type):
            scaleTypeCode = 0; scaleBytes = 0; blockRows = 1; rowAlignment = 1
            groupSize = type.blockSize
            guard qk_quant_ggml_kernels(type.id) & QK_GGML_ENCODES != 0 else { throw badGranularity }
            guard columns % type.blockSize == 0 else {
                throw .shapeNotDivisible(tensor: tensorName, shape: [rows, columns], blockSize: type.blockSize)
            }
            let bytes = rows * (columns / type.blockSize) * type.bytesPerBlock
            layouts = [PartLayout(suffix: "", type: .ggml(type), shape: [rows, columns], byteCount: bytes)]
        }
        if case .ggml(let type) = kind { weighted = qk_quant_ggml_kernels(type.id) & QK_GGML_WEIGHTS != 0 } else { weighted = false }
        if let importance {
            guard case .ggml = kind else { throw .importanceNotApplicable(tensor: tensorName, scheme: scheme.name) }
            let expected = columns * (rows / perExpert)
            guard importance.count == expected else {
                throw .importanceSizeMismatch(tensor: tensorName, expected: expected, found: importance.count)
            }
            // llama-quantize refuses an imatrix with a non-finite value; so do we, naming it.
            if let i = importance.firstIndex(where: { !$0.isFinite }) {
                throw .nonFiniteImportance(tensor: tensorName, expert: i / columns, column: i % columns, value: importance[i])
            }
        }
    }

    /// A zero-filled output with every part allocated (and `weight_shape` already written).
    public func makeOutput() -> QuantizedTensor {
        var parts = layouts.map { QuantizedTensor.Part(suffix: $0.suffix, type: $0.type, shape: $0.shape, data: [UInt8](repeating: 0, count: $0.byteCount)) }
        if let i = parts.firstIndex(where: { $0.suffix == "weight_shape" }) { parts[i].data = shapeBytes }
        return QuantizedTensor(rows: rows, columns: columns, parts: parts)
    }

    /// The largest finite magnitude of `values` (NaN and ±inf are skipped when `allowNonFinite`;
    /// otherwise the input must be finite).
    public static func amax(_ values: UnsafeBufferPointer<Float>, allowNonFinite: Bool) -> Float {
        guard let base = values.baseAddress, !values.isEmpty else { return 0 }
        if !allowNonFinite || qk_quant_first_nonfinite(base, values.count) < 0 { return qk_quant_amax(base, values.count) }
        var m: Float = 0
        for v in values where v.isFinite { m = max(m, abs(v)) }
        return m
    }

    /// Encodes rows `range` into `output`, whose buffers follow ``layouts`` and span the whole tensor.
    ///
    /// - Parameters:
    ///   - range: the rows to encode; see ``rowAlignment``.
    ///   - input: exactly those rows, `range.count * columns` floats, row-major.
    ///   - tensorAmax: for ``needsTensorAmax`` schemes, the tensor's largest finite magnitude.
    ///   - output: one buffer per layout part, each at least its ``PartLayout/byteCount`` bytes;
    ///     only the bytes belonging to `range` are written.
    public func encode(rows range: Range<Int>, input: UnsafeBufferPointer<Float>, tensorAmax: Float? = nil,
                       into output: [UnsafeMutableRawBufferPointer]) throws(QuantizeError) {
        guard range.lowerBound >= 0, range.upperBound <= rows, !range.isEmpty,
              range.lowerBound % rowAlignment == 0, range.upperBound % rowAlignment == 0 || range.upperBound == rows,
              input.count == range.count * columns, output.count == layouts.count,
              zip(output, layouts).allSatisfy({ $0.count >= $1.byteCount && ($1.byteCount == 0 || $0.baseAddress != nil) }),
              let base = input.baseAddress
        else {
            throw .invalidShape(tensor: tensorName, shape: [rows, columns],
                                expected: "rows \(range) aligned to \(rowAlignment) with \(range.count * columns) input floats and \(layouts.count) output buffers")
        }
        if case .fp8 = kind, case .tensor = granularity, !(tensorAmax.map { $0.isFinite && $0 >= 0 } ?? false) {
            throw .invalidShape(tensor: tensorName, shape: [rows, columns],
                                expected: "the tensor's largest finite magnitude (a finite amax >= 0) for a per-tensor FP8 scale")
        }
        // Row blocks of about 128 KiB: the non-finite scan brings a block into cache and the encoder
        // reads it from there (one pass over memory instead of two). The legacy GGUF block encoders,
        // the FP8 encoders with per-row/group/block scales and the INT encoders detect non-finite
        // values themselves, so a clean block is read only once; a block they flag takes the
        // scanning path below.
        let plainFloat: Bool = { if case .ggml(let t) = kind, t.blockSize == 1 { return true } else { return false } }()
        // The importance-weighted kernels expect finite input: those rows take the scanning path.
        let selfChecking: Bool = usesImportance ? false : {
            switch kind {
            case .ggml(let t): return t.blockSize > 1  // the kernel table scans or detects while encoding
            case .fp8: if case .tensor = granularity { return false } else { return true }
            case .integer: return true
            }
        }()
        let blockRows = max(rowAlignment, 32_768 / columns / rowAlignment * rowAlignment)
        var done = 0
        // Rethrows `error` of the rows before `end`, unless a later row holds a non-finite weight:
        // that is reported first, as a scan of the whole range before encoding would.
        func preferLaterNonFinite(_ error: QuantizeError, after end: Int) throws(QuantizeError) -> Never {
            if !options.allowNonFinite {
                let rest = base + end * columns
                let later = qk_quant_first_nonfinite(rest, (range.count - end) * columns)
                if later >= 0 {
                    throw .nonFiniteWeight(tensor: tensorName, row: range.lowerBound + end + later / columns, column: later % columns, value: rest[later])
                }
            }
            throw error
        }
        while done < range.count {
            let count = min(blockRows, range.count - done)
            let rows = (range.lowerBound + done)..<(range.lowerBound + done + count)
            let x = base + done * columns
            if case .ggml(let type) = kind, plainFloat, let limit = descriptor.overflowMagnitudeBits {
                // F16/BF16: one scan for values that are non-finite or round to infinity finds every
                // error case (a NaN or infinity passes through when allowed); a clean block is encoded
                // right away, a block with a hit takes the path below, which names the error.
                if options.allowNonFinite || qk_quant_first_abs_at_least(x, count * columns, limit) < 0 {
                    let dst = output[0].baseAddress!.assumingMemoryBound(to: UInt8.self) + rows.lowerBound * columns * type.bytesPerBlock
                    _ = qk_quant_ggml_encode(type.id, x, dst, count * columns, type.blockSize, nil)
                    done += count
                    continue
                }
            }
            if selfChecking {
                let sawNonFinite: Bool
                do { sawNonFinite = try encodeSanitized(rows, x, tensorAmax, output, checked: true) } catch {
                    try preferLaterNonFinite(error, after: done + count)
                }
                if !sawNonFinite { done += count; continue }
            }
            let bad = qk_quant_first_nonfinite(x, count * columns)
            if bad >= 0 && !options.allowNonFinite {
                throw .nonFiniteWeight(tensor: tensorName, row: rows.lowerBound + bad / columns, column: bad % columns, value: x[bad])
            }
            do {
                if bad >= 0 && !plainFloat {
                    let sanitized = Self.sanitized(UnsafeBufferPointer(start: x, count: count * columns), columns: columns)
                    let result: Result<Bool, QuantizeError> = sanitized.withUnsafeBufferPointer { p in
                        Result { () throws(QuantizeError) in try encodeSanitized(rows, p.baseAddress!, tensorAmax, output) }
                    }
                    _ = try result.get()
                } else {
                    try encodeSanitized(rows, x, tensorAmax, output)
                }
            } catch {
                try preferLaterNonFinite(error, after: done + count)
            }
            done += count
        }
    }

    /// A copy of whole rows with NaN replaced by 0 and ±inf by ± the row's largest finite magnitude.
    private static func sanitized(_ input: UnsafeBufferPointer<Float>, columns: Int) -> [Float] {
        var sanitized = Array(input)
        for r in 0..<(input.count / columns) {
            var m: Float = 0
            for c in 0..<columns where sanitized[r * columns + c].isFinite { m = max(m, abs(sanitized[r * columns + c])) }
            for c in 0..<columns {
                let v = sanitized[r * columns + c]
                if v.isNaN { sanitized[r * columns + c] = 0 } else if v.isInfinite { sanitized[r * columns + c] = v > 0 ? m : -m }
            }
        }
        return sanitized
    }

    private func writeScale(_ value: Float, to p: UnsafeMutableRawPointer, index: Int) {
        switch scaleBytes {
        case 4: p.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: index * 4, as: UInt32.self)
        default:
            let bits = scaleTypeCode == 1 ? qk_quant_f32_to_bf16(value) : qk_quant_f32_to_f16(value)
            p.storeBytes(of: bits.littleEndian, toByteOffset: index * 2, as: UInt16.self)
        }
    }

    /// Encodes finite rows, and returns false. With `checked` (the self-checking kinds of
    /// ``encode(rows:input:tensorAmax:into:)`` only) the rows may hold non-finite values: the result
    /// says whether they did (the output is then to be redone).
    @discardableResult
    private func encodeSanitized(_ range: Range<Int>, _ x: UnsafePointer<Float>, _ tensorAmax: Float?,
                                 _ output: [UnsafeMutableRawBufferPointer], checked: Bool = false) throws(QuantizeError) -> Bool {
        let r0 = range.lowerBound, n = range.count
        switch kind {
        case .fp8(let format):
            let limit = format.largestFinite
            let weight = output[0].baseAddress!.assumingMemoryBound(to: UInt8.self) + r0 * columns
            let scales = output[1].baseAddress!
            let isE5M2: Int32 = format == .e5m2 ? 1 : 0
            switch granularity {
            case .tensor:
                let s = qk_quant_round_scale((tensorAmax ?? 0) / limit, 0)
                if r0 == 0 { writeScale(s, to: scales, index: 0) }
                qk_quant_fp8_encode_scaled(x, weight, n * columns, s, limit, isE5M2)
            case .block(let br, let bc):
                let colBlocks = (columns + bc - 1) / bc
                let nonFinite = qk_quant_fp8_encode_tiles(x, n, columns, br, bc, limit, isE5M2, weight,
                                                          scales.assumingMemoryBound(to: UInt8.self) + (r0 / br) * colBlocks * 4)
                if nonFinite != 0 { return true }
            default:
                let groups = (columns + groupSize - 1) / groupSize
                let nonFinite = qk_quant_fp8_encode_tiles(x, n, columns, 1, groupSize, limit, isE5M2, weight,
                                                          scales.assumingMemoryBound(to: UInt8.self) + r0 * groups * 4)
                if nonFinite != 0 { return true }
            }
        case .integer(let bits):
            let groups = (columns + groupSize - 1) / groupSize
            var scales = [Float](repeating: 0, count: n * groups)
            var zeros = [Int8](repeating: 0, count: scheme.symmetric ? 0 : n * groups)
            // INT8 codes go straight to the output; INT4 codes are staged, then packed.
            let staging: UnsafeMutablePointer<Int8>? = bits == 8 && !options.packInt8 ? nil : .allocate(capacity: n * columns)
            defer { staging?.deallocate() }
            let codesOut = staging ?? output[0].baseAddress!.assumingMemoryBound(to: Int8.self) + r0 * columns
            var nonFinite: Int32 = 0
            let status = scales.withUnsafeMutableBufferPointer { s in
                zeros.withUnsafeMutableBufferPointer { z in
                    qk_quant_int_encode_rows_checked(x, n, columns, groupSize, Int32(bits), scheme.symmetric ? 1 : 0,
                                                     scaleTypeCode, options.halfQuadratic ? 2 : options.search ? 1 : 0, codesOut, s.baseAddress!,
                                                     scheme.symmetric ? nil : z.baseAddress, &nonFinite)
                }
            }
            if nonFinite != 0 { return true }
            if status >= 0 {
                throw .scaleOutOfRange(tensor: tensorName, row: r0 + status / groups, column: (status % groups) * groupSize,
                                       scaleType: options.scaleType.rawValue)
            }
            let scaleBase = output[1].baseAddress!
            for i in 0..<(n * groups) { writeScale(scales[i], to: scaleBase, index: r0 * groups + i) }
            if bits == 8, options.packInt8, let staging {
                let words = (columns + 3) / 4
                qk_quant_pack_int8_rows(staging, n, columns, output[0].baseAddress!.assumingMemoryBound(to: UInt8.self) + r0 * words * 4)
            }
            if bits == 4 {
                let words = (columns + 7) / 8
                qk_quant_pack_int4_rows(codesOut, n, columns, output[0].baseAddress!.assumingMemoryBound(to: UInt8.self) + r0 * words * 4)
                if !scheme.symmetric {
                    zeros.withUnsafeBufferPointer { z in
                        qk_quant_pack_int4_columns(z.baseAddress!, n, groups, output[2].baseAddress!.assumingMemoryBound(to: UInt8.self) + (r0 / 8) * groups * 4)
                    }
                }
            }
        case .ggml(let type):
            let out = output[0].baseAddress!.assumingMemoryBound(to: UInt8.self)
            let blocksPerRow = columns / type.blockSize
            let dst = out + r0 * blocksPerRow * type.bytesPerBlock
            let count = n * columns
            if type.blockSize == 1 {
                if !options.allowNonFinite, let limit = descriptor.overflowMagnitudeBits {
                    // Finite values from which F16 (65520) or BF16 rounds to infinity.
                    let i = qk_quant_first_abs_at_least(x, count, limit)
                    if i >= 0 {
                        throw .valueOutOfRange(tensor: tensorName, row: r0 + i / columns, column: i % columns, value: x[i], type: type.name)
                    }
                }
                _ = qk_quant_ggml_encode(type.id, x, dst, count, type.blockSize, nil)
                return false
            }
            if usesImportance, let importance {
                // One kernel call per run of rows that share an expert's importance slice.
                var r = r0
                while r < r0 + n {
                    let expert = r / rowsPerExpert, end = min(r0 + n, (expert + 1) * rowsPerExpert)
                    let status = importance.withUnsafeBufferPointer { w in
                        qk_quant_ggml_encode_weighted(type.id, x + (r - r0) * columns, dst + (r - r0) * blocksPerRow * type.bytesPerBlock,
                                                      end - r, columns, type.blockSize, w.baseAddress! + expert * columns)
                    }
                    if status == -2 {
                        throw .unsupportedGranularity(tensor: tensorName, scheme: scheme.name, granularity: granularity)
                    }
                    if status >= 0 {
                        throw .scaleOutOfRange(tensor: tensorName, row: r + status / blocksPerRow,
                                               column: (status % blocksPerRow) * type.blockSize, scaleType: "F16")
                    }
                    r = end
                }
                return false
            }
            let blocks = n * blocksPerRow
            let status: Int
            if checked {
                var nonFinite: Int32 = 0
                status = qk_quant_ggml_encode(type.id, x, dst, blocks, type.blockSize, &nonFinite)
                if nonFinite != 0 { return true }
            } else {
                status = qk_quant_ggml_encode(type.id, x, dst, blocks, type.blockSize, nil)
            }
            if status == -2 {
                throw .unsupportedGranularity(tensor: tensorName, scheme: scheme.name, granularity: granularity)
            }
            if status >= 0 {
                throw .scaleOutOfRange(tensor: tensorName, row: r0 + status / blocksPerRow,
                                       column: (status % blocksPerRow) * type.blockSize, scaleType: "F16")
            }
        }
        return false
    }
}

/// A pointer wrapper that may cross into `concurrentPerform` (each task touches disjoint bytes).
struct UncheckedSendable<T>: @unchecked Sendable { var value: T }

/// Quantizes a whole `rows` × `columns` FP32 matrix (row-major) with `scheme`, in parallel over
/// row blocks on all cores.
///
/// The result holds every stored tensor of the layout (formats/quantize-*.md). `importance` and
/// `rowsPerExpert` are ``TensorQuantizer/init(scheme:rows:columns:tensorName:options:importance:rowsPerExpert:)``'s
/// (llama.cpp imatrix values; nil for the plain quantizer). Throws ``QuantizeError`` for
/// non-finite weights (unless allowed), shapes the layout cannot hold, scales that overflow their
/// stored type, and importance values that do not fit the tensor.
public func quantized(_ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, scheme: Scheme,
                      tensorName: String, options: QuantizeOptions = QuantizeOptions(),
                      importance: [Float]? = nil, rowsPerExpert: Int? = nil) throws(QuantizeError) -> QuantizedTensor {
    let quantizer = try TensorQuantizer(scheme: scheme, rows: rows, columns: columns, tensorName: tensorName, options: options,
                                        importance: importance, rowsPerExpert: rowsPerExpert)
    // Every output byte is written by the kernels (padding bits included), so the arrays start
    // uninitialised (their pages are first touched by the encoding threads) and are filled in place.
    var datas = quantizer.layouts.map { layout in
        [UInt8](unsafeUninitializedCapacity: layout.byteCount) { _, count in count = layout.byteCount }
    }
    var failure: QuantizeError?
    withMutableBytes(of: &datas) { buffers in
        do throws(QuantizeError) { try quantizer.encodeAll(weights, into: buffers) } catch { failure = error }
    }
    if let failure { throw failure }
    let parts = zip(quantizer.layouts, datas).map { layout, data in
        QuantizedTensor.Part(suffix: layout.suffix, type: layout.type, shape: layout.shape, data: data)
    }
    return QuantizedTensor(rows: rows, columns: columns, parts: parts)
}

extension TensorQuantizer {
    /// Writes the constant `weight_shape` part ([rows, columns] as I64), when the layout has one;
    /// ``encode(rows:input:tensorAmax:into:)`` leaves it to the caller.
    public func writeShape(into output: [UnsafeMutableRawBufferPointer]) {
        for (i, layout) in layouts.enumerated() where layout.suffix == "weight_shape" {
            shapeBytes.withUnsafeBytes { output[i].copyMemory(from: $0) }
        }
    }

    /// The `weight_shape` part's bytes: [rows, columns] as little-endian I64.
    var shapeBytes: [UInt8] {
        var bytes: [UInt8] = []
        for v in [Int64(rows), Int64(columns)] { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        return bytes
    }

    /// Encodes the whole `rows` × `columns` matrix into `output` (one buffer per ``layouts`` part,
    /// each at least its byte count), in parallel over row blocks on all cores; also writes the
    /// constant `weight_shape` part. For callers that reuse their output buffers from tensor to
    /// tensor (the streaming job); ``quantized(_:rows:columns:scheme:tensorName:options:importance:rowsPerExpert:)`` wraps it.
    /// - Throws: ``QuantizeError`` as ``encode(rows:input:tensorAmax:into:)``, for the first failing row.
    public func encodeAll(_ weights: UnsafeBufferPointer<Float>, into output: [UnsafeMutableRawBufferPointer]) throws(QuantizeError) {
        guard weights.count == rows * columns, let base = weights.baseAddress, output.count == layouts.count else {
            throw .invalidShape(tensor: tensorName, shape: [rows, columns],
                                expected: "\(rows * columns) floats, got \(weights.count), and \(layouts.count) output buffers")
        }
        let align = rowAlignment
        let units = (rows + align - 1) / align
        let cores = ProcessInfo.processInfo.activeProcessorCount
        // Enough chunks to balance, each at least ~64k elements so the dispatch cost stays negligible.
        let byWork = max(1, rows * columns / 65_536)
        let chunks = max(1, min(units, cores * 4, byWork))
        let unitsPerChunk = (units + chunks - 1) / chunks
        let rows = self.rows, columns = self.columns

        var tensorAmax: Float? = nil
        if needsTensorAmax {
            let partial = UncheckedSendable(value: UnsafeMutableBufferPointer<Float>.allocate(capacity: chunks))
            defer { partial.value.deallocate() }
            let input = UncheckedSendable(value: base)
            DispatchQueue.concurrentPerform(iterations: chunks) { i in
                let r0 = min(rows, i * unitsPerChunk * align), r1 = min(rows, (i + 1) * unitsPerChunk * align)
                partial.value[i] = TensorQuantizer.amax(UnsafeBufferPointer(start: input.value + r0 * columns, count: (r1 - r0) * columns),
                                                        allowNonFinite: true)
            }
            tensorAmax = partial.value.max() ?? 0
        }
        writeShape(into: output)
        let firstError = UncheckedSendable(value: ErrorBox())
        let amax = tensorAmax
        let shared = UncheckedSendable(value: (base, output, self))
        DispatchQueue.concurrentPerform(iterations: chunks) { i in
            let r0 = min(rows, i * unitsPerChunk * align), r1 = min(rows, (i + 1) * unitsPerChunk * align)
            guard r0 < r1 else { return }
            do throws(QuantizeError) {
                try shared.value.2.encode(rows: r0..<r1, input: UnsafeBufferPointer(start: shared.value.0 + r0 * columns, count: (r1 - r0) * columns),
                                          tensorAmax: amax, into: shared.value.1)
            } catch {
                firstError.value.record(error, chunk: i)
            }
        }
        if let error = firstError.value.first { throw error }
    }
}

/// Calls `body` with the bytes of every array of `arrays` at once (each taken out of `arrays` while
/// in use, so that each is uniquely referenced and mutated in place).
private func withMutableBytes(of arrays: inout [[UInt8]], from i: Int = 0, _ pointers: [UnsafeMutableRawBufferPointer] = [],
                              _ body: ([UnsafeMutableRawBufferPointer]) -> Void) {
    guard i < arrays.count else { body(pointers); return }
    var mine = arrays[i]
    arrays[i] = []
    mine.withUnsafeMutableBytes { p in withMutableBytes(of: &arrays, from: i + 1, pointers + [p], body) }
    arrays[i] = mine
}

/// Keeps the error of the lowest-numbered failing chunk, so the report names the first bad row.
final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var chunk = Int.max
    private(set) var first: QuantizeError?
    func record(_ error: QuantizeError, chunk: Int) {
        lock.lock(); defer { lock.unlock() }
        if chunk < self.chunk { self.chunk = chunk; first = error }
    }
}
