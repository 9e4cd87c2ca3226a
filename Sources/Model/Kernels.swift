import CBLAS
import Dispatch
import Foundation
import Formats
import Quantize

/// The FP32 building blocks of the forward pass: every matmul through `cblas_sgemm`, element-wise
/// work split into row blocks across threads.
enum Kernels {
    /// Y[m×n] = X[m×k] · Wᵀ (W is `n × k`, row-major, as checkpoints store linear weights).
    static func matmulTransposed(_ x: UnsafePointer<Float>, rows m: Int, inner k: Int, _ w: UnsafePointer<Float>, outputs n: Int,
                                 into y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        guard m > 0, n > 0, k > 0 else { return }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, x, Int32(k), w, Int32(k),
                    accumulate ? 1 : 0, y, Int32(n))
    }

    /// Runs `body(range)` over `count` items split into about `threads` contiguous ranges.
    static func parallelRows(_ count: Int, threads: Int, minimumPerTask: Int = 1, _ body: (Range<Int>) -> Void) {
        let tasks = max(1, min(threads, count / max(1, minimumPerTask)))
        if tasks == 1 { body(0..<count); return }
        let per = (count + tasks - 1) / tasks
        withoutActuallyEscaping(body) { body in
            let shared = SendableBody(body: body)
            DispatchQueue.concurrentPerform(iterations: tasks) { t in
                let start = t * per
                let end = min(count, start + per)
                if start < end { shared.body(start..<end) }
            }
        }
    }

    /// A closure handed to worker threads; callers give each thread disjoint rows.
    private struct SendableBody: @unchecked Sendable {
        let body: (Range<Int>) -> Void
    }

    /// out[r] = x[r] / rms(x[r]) · weight, for `rows` rows of `width` (transformers' LlamaRMSNorm in FP32).
    static func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, width: Int, weight: [Float], epsilon: Float,
                        into out: UnsafeMutablePointer<Float>, threads: Int) {
        weight.withUnsafeBufferPointer { w in
            parallelRows(rows, threads: threads, minimumPerTask: 16) { range in
                for r in range {
                    let row = x + r * width
                    var sum: Float = 0
                    for i in 0..<width { sum += row[i] * row[i] }
                    let inverse = 1 / (sum / Float(width) + epsilon).squareRoot()
                    let o = out + r * width
                    for i in 0..<width { o[i] = w[i] * (row[i] * inverse) }
                }
            }
        }
    }

    /// Rotates `heads` heads of `dimension` in each of `rows` rows of stride `stride` (rotate-half
    /// order, as transformers applies RoPE): pair (i, i + d/2) turns by position · frequency[i].
    static func rope(_ x: UnsafeMutablePointer<Float>, rows: Int, stride: Int, heads: Int, dimension: Int,
                     positions: (Int) -> Int, cosines: [Float], sines: [Float], threads: Int) {
        let half = dimension / 2
        cosines.withUnsafeBufferPointer { cosTable in
            sines.withUnsafeBufferPointer { sinTable in
                parallelRows(rows, threads: threads, minimumPerTask: 16) { range in
                    for r in range {
                        let p = positions(r)
                        let c = cosTable.baseAddress! + p * half, s = sinTable.baseAddress! + p * half
                        for h in 0..<heads {
                            let v = x + r * stride + h * dimension
                            for i in 0..<half {
                                let a = v[i], b = v[i + half]
                                v[i] = a * c[i] - b * s[i]
                                v[i + half] = b * c[i] + a * s[i]
                            }
                        }
                    }
                }
            }
        }
    }

    /// Rounds `count` values to FP8 E4M3 with one scale per row of `width` (or one for all when
    /// `width == count`): x̂ = e4m3(x / s) · s, s = amax/448 floored at 1/(448·512) as vLLM does,
    /// unless `fixedScale` is given. INT8 (`isFloat == false`): vLLM's kernels — codes round(x · 127/amax) half
    /// to even, saturated to [−128, 127], times amax/127 (x / s with a fixed scale s).
    static func fakeQuantize(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, groupSize: Int? = nil,
                             isFloat: Bool = true, fixedScale: Float? = nil, threads: Int) {
        let group = min(groupSize ?? width, width)
        let groupsPerRow = (width + group - 1) / group
        parallelRows(rows * groupsPerRow, threads: threads, minimumPerTask: 8) { range in
            var codes = [UInt8](repeating: 0, count: group)
            for index in range {
                let r = index / groupsPerRow, g = index % groupsPerRow
                let start = x + r * width + g * group
                let n = min(group, width - g * group)
                var amax: Float = 0
                if fixedScale == nil { for i in 0..<n { amax = max(amax, abs(start[i])) } }
                if isFloat {
                    let scale = fixedScale ?? max(amax / 448, 1 / (448 * 512))
                    let inverse = 1 / scale
                    codes.withUnsafeMutableBufferPointer { c in
                        for i in 0..<n { c[i] = FP8Format.e4m3.encode(start[i] * inverse) }
                        for i in 0..<n { start[i] = FP8Format.e4m3.decode(c[i]) * scale }
                    }
                } else if let fixedScale {
                    // vLLM's static_scaled_int8_quant_kernel divides by the scale.
                    for i in 0..<n { start[i] = min(127, max(-128, (start[i] / fixedScale).rounded(.toNearestOrEven))) * fixedScale }
                } else {
                    // vLLM's dynamic_scaled_int8_quant_kernel: codes = cvt.rni.sat(x · (127/amax)) (a
                    // multiply by the inverse, round half to even, saturate; 0 for an all-zero row),
                    // dequantized with the stored scale amax/127.
                    let multiplier: Float = amax == 0 ? 0 : 127 / amax
                    let step = amax / 127
                    for i in 0..<n { start[i] = min(127, max(-128, (start[i] * multiplier).rounded(.toNearestOrEven))) * step }
                }
            }
        }
    }

    /// x ← silu(x) · y, element-wise over `count` values.
    static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int, threads: Int) {
        parallelRows(count, threads: threads, minimumPerTask: 4096) { range in
            for i in range {
                let g = gate[i]
                gate[i] = g / (1 + exp(-g)) * up[i]
            }
        }
    }
}
