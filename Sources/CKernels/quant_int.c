// INT8 / INT4 quantizers of the Quantize module: compressed-tensors "int-quantized" and
// "pack-quantized" math (formats.md §4b, `calculate_qparams` / `_quantize`), evaluated in float32
// with the scale rounded to its stored dtype first, so that decoding with the stored scale gives
// exactly the values the codes were chosen for.
//
// Scale rules (formats/quantize-int.md): symmetric scale = amax / ((qmax - qmin) / 2) (int8:
// amax/127.5, int4: amax/7.5); asymmetric scale = (max - min) / (qmax - qmin) with min/max widened
// to include 0 and zero point = round(clamp(qmin - min/scale, qmin, qmax)). The scale is rounded to
// the scale dtype (RNE) and raised to that dtype's smallest normal number when smaller (this covers
// all-zero groups: their codes are 0 and decode to 0). Codes: round-half-even(x/scale + zp),
// clamped to [qmin, qmax].
#include "CKernels.h"
#include <string.h>
#include <math.h>

#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)

static inline float ifl(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// Round half to even for |v| < 2^22 (the caller's values are bounded by the clamp first).
static inline float rne(float v) {
    float a = fabsf(v);
    if (!(a < 4194304.0f)) return v;
    float r = (a + 12582912.0f) - 12582912.0f;
    return v < 0 ? -r : r;
}

// Rounds a positive float32 scale to the stored dtype (0 = F32, 1 = BF16, 2 = F16) and applies the
// smallest-normal floor. Returns +inf when the dtype cannot hold it.
float qk_quant_round_scale(float s, int scaleType) {
    float r;
    switch (scaleType) {
    case 1: r = ifl((uint32_t)qk_quant_f32_to_bf16(s) << 16); break;
    case 2: r = qk_quant_f16_to_f32(qk_quant_f32_to_f16(s)); break;
    default: r = s; break;
    }
    float smallest = scaleType == 2 ? 6.103515625e-05f : 1.17549435e-38f;
    if (!(r >= smallest)) r = smallest;   // zero, subnormal (NaN cannot occur: inputs are finite)
    return r;
}

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Quantizes n values with one (scale, zp); returns the squared error of the decoded values.
static float quantize_group(const float *x, size_t n, float scale, float zp, float qmin, float qmax, int8_t *codes) {
    float err = 0;
    for (size_t i = 0; i < n; i++) {
        float q = clampf(rne(x[i] / scale + zp), qmin, qmax);
        if (codes) codes[i] = (int8_t)q;
        float d = (q - zp) * scale - x[i];
        err += d * d;
    }
    return err;
}

static float group_error(const float *x, size_t n, float scale, float zp, float qmin, float qmax) {
    return quantize_group(x, n, scale, zp, qmin, qmax, 0);
}

// One group: picks (scale, zp) and writes codes. With `search`, tries clipping ratios 1.00, 0.98,
// …, 0.50 of the range plus the least-squares rescale of the best candidate, keeping the one with
// the lowest squared error of the decoded group (ratio 1.00 is plain round-to-nearest, so the
// result is never worse than it). Returns 0, or 1 when the scale overflows its dtype.
static int encode_group(const float *x, size_t n, int bits, int symmetric, int scaleType, int search,
                        int8_t *codes, float *scaleOut, int8_t *zpOut) {
    const float qmin = -(float)(1 << (bits - 1)), qmax = (float)((1 << (bits - 1)) - 1);
    float lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) { lo = x[i] < lo ? x[i] : lo; hi = x[i] > hi ? x[i] : hi; }
    float bestScale = 0, bestZp = 0, bestErr = INFINITY;
    int steps = search ? 26 : 1;
    for (int k = 0; k < steps; k++) {
        float r = 1.0f - 0.02f * (float)k;
        float scale, zp = 0;
        if (symmetric) {
            float amax = fmaxf(fabsf(lo), fabsf(hi)) * r;
            scale = qk_quant_round_scale(amax / ((qmax - qmin) / 2.0f), scaleType);
        } else {
            float l = lo * r, h = hi * r;
            scale = qk_quant_round_scale((h - l) / (qmax - qmin), scaleType);
            zp = rne(clampf(qmin - l / scale, qmin, qmax));
        }
        if (isinf(scale)) { if (k == 0) return 1; continue; }
        if (!search) { bestScale = scale; bestZp = zp; break; }
        float err = group_error(x, n, scale, zp, qmin, qmax);
        if (err < bestErr) { bestErr = err; bestScale = scale; bestZp = zp; }
    }
    if (search && symmetric) {
        // Least-squares scale for the codes the best candidate chose: s = Σ x·q / Σ q².
        float sxq = 0, sqq = 0;
        for (size_t i = 0; i < n; i++) {
            float q = clampf(rne(x[i] / bestScale), qmin, qmax);
            sxq += x[i] * q; sqq += q * q;
        }
        if (sqq > 0 && sxq > 0) {
            float s = qk_quant_round_scale(sxq / sqq, scaleType);
            if (!isinf(s)) {
                float err = group_error(x, n, s, 0, qmin, qmax);
                if (err < bestErr) { bestErr = err; bestScale = s; }
            }
        }
    }
    quantize_group(x, n, bestScale, bestZp, qmin, qmax, codes);
    *scaleOut = bestScale;
    if (zpOut) *zpOut = (int8_t)bestZp;
    return 0;
}

long qk_quant_int_encode_rows(const float *x, size_t rows, size_t cols, size_t groupSize, int bits,
                              int symmetric, int scaleType, int search,
                              int8_t *codes, float *scales, int8_t *zeros) {
    size_t groups = (cols + groupSize - 1) / groupSize;
    for (size_t r = 0; r < rows; r++) {
        for (size_t g = 0; g < groups; g++) {
            size_t start = g * groupSize, n = cols - start < groupSize ? cols - start : groupSize;
            int8_t *zp = zeros ? zeros + r * groups + g : 0;
            if (encode_group(x + r * cols + start, n, bits, symmetric, scaleType, search,
                             codes + r * cols + start, scales + r * groups + g, zp))
                return (long)(r * groups + g);
        }
    }
    return -1;
}

double qk_quant_int_group_error(const float *x, size_t n, float scale, float zp, int bits) {
    const float qmin = -(float)(1 << (bits - 1)), qmax = (float)((1 << (bits - 1)) - 1);
    return (double)group_error(x, n, scale, zp, qmin, qmax);
}

void qk_quant_pack_int4_rows(const int8_t *codes, size_t rows, size_t cols, uint8_t *out) {
    // compressed-tensors pack_to_int32 (4 bits): element k of each run of 8 at bits 4k..4k+3 of a
    // little-endian int32, value + 8; missing elements of the last word are 0 bits.
    size_t words = (cols + 7) / 8;
    for (size_t r = 0; r < rows; r++) {
        const int8_t *c = codes + r * cols;
        uint8_t *o = out + r * words * 4;
        for (size_t w = 0; w < words; w++) {
            uint32_t v = 0;
            for (size_t k = 0; k < 8 && w * 8 + k < cols; k++) v |= (uint32_t)((c[w * 8 + k] + 8) & 0xF) << (4 * k);
            o[4 * w] = (uint8_t)v; o[4 * w + 1] = (uint8_t)(v >> 8); o[4 * w + 2] = (uint8_t)(v >> 16); o[4 * w + 3] = (uint8_t)(v >> 24);
        }
    }
}

void qk_quant_unpack_int4_rows(const uint8_t *packed, size_t rows, size_t cols, int8_t *codes) {
    size_t words = (cols + 7) / 8;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            uint8_t byte = packed[r * words * 4 + c / 2];
            codes[r * cols + c] = (int8_t)(((c & 1) ? (byte >> 4) : (byte & 0xF)) - 8);
        }
}

void qk_quant_pack_int4_columns(const int8_t *zeros, size_t rows, size_t groups, uint8_t *out) {
    // Zero points [rows, groups] packed along dim 0: word w of column g holds rows 8w..8w+7.
    size_t words = (rows + 7) / 8;
    for (size_t w = 0; w < words; w++)
        for (size_t g = 0; g < groups; g++) {
            uint32_t v = 0;
            for (size_t k = 0; k < 8 && w * 8 + k < rows; k++) v |= (uint32_t)((zeros[(w * 8 + k) * groups + g] + 8) & 0xF) << (4 * k);
            uint8_t *o = out + (w * groups + g) * 4;
            o[0] = (uint8_t)v; o[1] = (uint8_t)(v >> 8); o[2] = (uint8_t)(v >> 16); o[3] = (uint8_t)(v >> 24);
        }
}

void qk_quant_unpack_int4_columns(const uint8_t *packed, size_t rows, size_t groups, int8_t *zeros) {
    for (size_t r = 0; r < rows; r++)
        for (size_t g = 0; g < groups; g++) {
            const uint8_t *o = packed + ((r / 8) * groups + g) * 4;
            uint32_t v = (uint32_t)o[0] | ((uint32_t)o[1] << 8) | ((uint32_t)o[2] << 16) | ((uint32_t)o[3] << 24);
            zeros[r * groups + g] = (int8_t)(((v >> (4 * (r % 8))) & 0xF) - 8);
        }
}

void qk_quant_pack_int8_rows(const int8_t *codes, size_t rows, size_t cols, uint8_t *out) {
    // compressed-tensors pack_to_int32 (8 bits): value + 128, element k of each run of 4 in byte k
    // of a little-endian int32; missing elements of the last word are 0.
    size_t words = (cols + 3) / 4;
    for (size_t r = 0; r < rows; r++) {
        uint8_t *o = out + r * words * 4;
        for (size_t c = 0; c < words * 4; c++) o[c] = c < cols ? (uint8_t)(codes[r * cols + c] + 128) : 0;
    }
}

void qk_quant_unpack_int8_rows(const uint8_t *packed, size_t rows, size_t cols, int8_t *codes) {
    size_t words = (cols + 3) / 4;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) codes[r * cols + c] = (int8_t)((int)packed[r * words * 4 + c] - 128);
}

void qk_quant_int_decode_rows(const int8_t *codes, size_t rows, size_t cols, size_t groupSize,
                              const float *scales, const float *zeros, float *out) {
    // out = (q - zp) * scale, one (scale, zp) per groupSize consecutive elements of a row.
    size_t groups = (cols + groupSize - 1) / groupSize;
    for (size_t r = 0; r < rows; r++)
        for (size_t g = 0; g < groups; g++) {
            size_t c0 = g * groupSize, n = cols - c0 < groupSize ? cols - c0 : groupSize;
            float s = scales[r * groups + g], z = zeros ? zeros[r * groups + g] : 0.0f;
            const int8_t *q = codes + r * cols + c0;
            float *o = out + r * cols + c0;
            for (size_t i = 0; i < n; i++) o[i] = ((float)q[i] - z) * s;
        }
}
