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
//
// Shared helpers (scale rounding, the CPU check) come from kernel_shared.h/.c.
#include "kernel_shared.h"
#include <stdlib.h>

// Round half to even for |v| < 2^22 (the caller's values are bounded by the clamp first).
static inline float rne(float v) {
    float a = fabsf(v);
    if (!(a < 4194304.0f)) return v;
    float r = (a + 12582912.0f) - 12582912.0f;
    return v < 0 ? -r : r;
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

#if defined(__x86_64__)
// AVX2 versions of the min/max scan and of the final code computation of a group. Min and max
// select exactly as the scalar comparisons (vminps/vmaxps return the second operand on ties);
// vroundps rounds half to even like rne() (they differ only for |v| >= 2^22, which the clamp to
// [qmin, qmax] maps to the same code); the division is a true division, as in the scalar code.
// Also sets *bad when a value is NaN or infinite.
__attribute__((target("avx2")))
static void min_max_avx2(const float *x, size_t n, float *loOut, float *hiOut, int *bad) {
    const __m256i absMask = _mm256_set1_epi32(0x7FFFFFFF), finiteMax = _mm256_set1_epi32(0x7F7FFFFF);
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    __m256i flags = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        flags = _mm256_or_si256(flags, _mm256_cmpgt_epi32(_mm256_and_si256(_mm256_castps_si256(v), absMask), finiteMax));
        lo = _mm256_min_ps(v, lo);
        hi = _mm256_max_ps(v, hi);
    }
    if (!_mm256_testz_si256(flags, flags)) *bad = 1;
    for (size_t j = i; j < n; j++) if (!isfinite(x[j])) *bad = 1;
    float l[8], h[8];
    _mm256_storeu_ps(l, lo); _mm256_storeu_ps(h, hi);
    float rl = 0, rh = 0;
    for (int k = 0; k < 8; k++) { rl = l[k] < rl ? l[k] : rl; rh = h[k] > rh ? h[k] : rh; }
    for (; i < n; i++) { rl = x[i] < rl ? x[i] : rl; rh = x[i] > rh ? x[i] : rh; }
    *loOut = rl; *hiOut = rh;
}

__attribute__((target("avx2")))
static size_t codes_avx2(const float *x, size_t n, float scale, float zp, float qmin, float qmax, int8_t *codes) {
    const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zp), lo = _mm256_set1_ps(qmin), hi = _mm256_set1_ps(qmax);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m256 v = _mm256_add_ps(_mm256_div_ps(_mm256_loadu_ps(x + i + 8 * k), s), z);
            v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q[k] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
        }
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(codes + i), _mm256_permutevar8x32_epi32(p, order));
    }
    return i;
}
#endif

static void group_min_max(const float *x, size_t n, float *lo, float *hi, int vector, int *bad) {
#if defined(__x86_64__)
    if (vector) { min_max_avx2(x, n, lo, hi, bad); return; }
#endif
    (void)bad;   // the scalar path scans the rows before encoding (encode_rows)
    float l = 0, h = 0;
    for (size_t i = 0; i < n; i++) { l = x[i] < l ? x[i] : l; h = x[i] > h ? x[i] : h; }
    *lo = l; *hi = h;
}

// The codes of quantize_group.
static void group_codes(const float *x, size_t n, float scale, float zp, float qmin, float qmax, int8_t *codes, int vector) {
    size_t i = 0;
#if defined(__x86_64__)
    if (vector) i = codes_avx2(x, n, scale, zp, qmin, qmax, codes);
#endif
    for (; i < n; i++) codes[i] = (int8_t)clampf(rne(x[i] / scale + zp), qmin, qmax);
}

// Half-quadratic quantization (HQQ, Badri & Shaji 2023; the hqq package's proximal solver,
// `optimize_weights_proximal_v2`): from the min-max (scale, zero point), alternately (1) fix the
// codes q = clamp(round(x/s + z)) and the sparse part of the residual, e = shrink_p(x − (q − z)·s, β),
// the proximal step of the ℓp error (p = 0.7), and (2) fit the parameters to x − e with the codes
// fixed. hqq fits the zero point alone; compressed-tensors stores integer zero points, and rounding
// a fitted zero would undo most of the fit, so here the scale is fitted with it (least squares of
// x − e ≈ s·(q − z); symmetric: s alone). β starts at 10 and grows by κ = 1.01 per step; at most 20
// steps, stopping as soon as the mean |x − (q − z)·s| stops falling and keeping the best step (hqq's
// early stop). Then the zero point is rounded to an integer, the scale refitted for it by least
// squares and rounded to its dtype; the result replaces round-to-nearest's pair only when its mean
// absolute error is lower, so no group gets worse in that measure. `scratch` holds 2·n floats.
static inline float hqq_shrink(float d, float beta, float p) {
    float a = fabsf(d);
    float t = a - (1.0f / beta) * powf(a + 1e-8f, p - 1.0f);
    return t > 0 ? (d < 0 ? -t : t) : 0.0f;
}

static float mean_abs_error(const float *x, size_t n, float scale, float zp, float qmin, float qmax) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += fabsf((clampf(rne(x[i] / scale + zp), qmin, qmax) - zp) * scale - x[i]);
    return (float)(sum / (double)n);
}

static void hqq_refine(const float *x, size_t n, int symmetric, int scaleType, float qmin, float qmax,
                       float *scaleIO, float *zpIO, float *scratch) {
    const float p = 0.7f, kappa = 1.01f;
    float beta = 10.0f;
    float *q = scratch, *y = scratch + n;
    float s = *scaleIO, z = *zpIO;
    float bestS = s, bestZ = z, bestErr = INFINITY, startErr = INFINITY;
    for (int step = 0; step < 20; step++) {
        double err = 0;
        for (size_t i = 0; i < n; i++) {
            q[i] = clampf(rne(x[i] / s + z), qmin, qmax);
            float d = x[i] - (q[i] - z) * s;
            err += fabsf(d);
            y[i] = x[i] - hqq_shrink(d, beta, p);
        }
        float e = (float)(err / (double)n);
        if (step == 0) startErr = e;   // round-to-nearest's mean |error|, the bar the result must pass
        if (e < bestErr) { bestErr = e; bestS = s; bestZ = z; } else break;
        if (symmetric) {
            double syq = 0, sqq = 0;
            for (size_t i = 0; i < n; i++) { syq += (double)y[i] * q[i]; sqq += (double)q[i] * q[i]; }
            if (!(sqq > 0 && syq > 0)) break;
            s = (float)(syq / sqq);
        } else {
            // y ≈ a·q + b by least squares; s = a, z = −b/a.
            double sq = 0, sy = 0, sqq = 0, syq = 0;
            for (size_t i = 0; i < n; i++) { sq += q[i]; sy += y[i]; sqq += (double)q[i] * q[i]; syq += (double)y[i] * q[i]; }
            double det = (double)n * sqq - sq * sq;
            if (!(det > 0)) break;
            double a = ((double)n * syq - sq * sy) / det, b = (sy - a * sq) / (double)n;
            if (!(a > 0)) break;
            s = (float)a; z = (float)(-b / a);
            if (!(z >= qmin - 0.5f && z <= qmax + 0.5f)) break;   // the zero point must stay storable
        }
        beta *= kappa;
    }
    float zp = symmetric ? 0.0f : rne(clampf(bestZ, qmin, qmax));
    float refit = bestS;
    if (!symmetric) {
        double num = 0, den = 0;
        for (size_t i = 0; i < n; i++) {
            float c = clampf(rne(x[i] / bestS + zp), qmin, qmax) - zp;
            num += (double)x[i] * c; den += (double)c * c;
        }
        if (den > 0 && num > 0) refit = (float)(num / den);
    }
    float rounded = qk_round_scale(refit, scaleType);
    if (isinf(rounded)) return;
    if (mean_abs_error(x, n, rounded, zp, qmin, qmax) < startErr) {
        *scaleIO = rounded; *zpIO = zp;
    }
}

// One group: picks (scale, zp) and writes codes. With `search` 1, tries clipping ratios 1.00, 0.98,
// …, 0.50 of the range plus the least-squares rescale of the best candidate, keeping the one with
// the lowest squared error of the decoded group (ratio 1.00 is plain round-to-nearest, so the
// result is never worse than it); with `search` 2, refines round-to-nearest's (scale, zp) by HQQ
// (hqq_refine). Returns 0, or 1 when the scale overflows its dtype.
static int encode_group(const float *x, size_t n, int bits, int symmetric, int scaleType, int search,
                        int8_t *codes, float *scaleOut, int8_t *zpOut, int vector, int *bad, float *scratch) {
    const float qmin = -(float)(1 << (bits - 1)), qmax = (float)((1 << (bits - 1)) - 1);
    float lo, hi;
    group_min_max(x, n, &lo, &hi, vector, bad);
    if (*bad) return 0;
    float bestScale = 0, bestZp = 0, bestErr = INFINITY;
    const int clip = search == 1;
    int steps = clip ? 26 : 1;
    for (int k = 0; k < steps; k++) {
        float r = 1.0f - 0.02f * (float)k;
        float scale, zp = 0;
        if (symmetric) {
            float amax = fmaxf(fabsf(lo), fabsf(hi)) * r;
            scale = qk_round_scale(amax / ((qmax - qmin) / 2.0f), scaleType);
        } else {
            float l = lo * r, h = hi * r;
            scale = qk_round_scale((h - l) / (qmax - qmin), scaleType);
            zp = rne(clampf(qmin - l / scale, qmin, qmax));
        }
        if (isinf(scale)) { if (k == 0) return 1; continue; }
        if (!clip) { bestScale = scale; bestZp = zp; break; }
        float err = group_error(x, n, scale, zp, qmin, qmax);
        if (err < bestErr) { bestErr = err; bestScale = scale; bestZp = zp; }
    }
    if (search == 2 && scratch) hqq_refine(x, n, symmetric, scaleType, qmin, qmax, &bestScale, &bestZp, scratch);
    if (clip && symmetric) {
        // Least-squares scale for the codes the best candidate chose: s = Σ x·q / Σ q².
        float sxq = 0, sqq = 0;
        for (size_t i = 0; i < n; i++) {
            float q = clampf(rne(x[i] / bestScale), qmin, qmax);
            sxq += x[i] * q; sqq += q * q;
        }
        if (sqq > 0 && sxq > 0) {
            float s = qk_round_scale(sxq / sqq, scaleType);
            if (!isinf(s)) {
                float err = group_error(x, n, s, 0, qmin, qmax);
                if (err < bestErr) { bestErr = err; bestScale = s; }
            }
        }
    }
    group_codes(x, n, bestScale, bestZp, qmin, qmax, codes, vector);
    *scaleOut = bestScale;
    if (zpOut) *zpOut = (int8_t)bestZp;
    return 0;
}

static long encode_rows(const float *x, size_t rows, size_t cols, size_t groupSize, int bits,
                        int symmetric, int scaleType, int search,
                        int8_t *codes, float *scales, int8_t *zeros, int vector, int *nonFinite) {
    // The AVX2 min/max scan flags non-finite values as it goes; the scalar path scans first.
    *nonFinite = 0;
    if (!vector) {
        for (size_t i = 0; i < rows * cols; i++) if (!isfinite(x[i])) { *nonFinite = 1; return -1; }
    }
    size_t groups = (cols + groupSize - 1) / groupSize;
    size_t width = groupSize < cols ? groupSize : cols;
    // HQQ's two n-float work arrays: on the stack for groups up to 1024, else on the heap (a
    // failed allocation leaves the groups at round-to-nearest rather than failing the tensor).
    float stack[2048];
    float *scratch = search != 2 ? 0 : width <= 1024 ? stack : malloc(2 * width * sizeof(float));
    long status = -1;
    for (size_t r = 0; r < rows && status < 0 && !*nonFinite; r++) {
        for (size_t g = 0; g < groups; g++) {
            size_t start = g * groupSize, n = cols - start < groupSize ? cols - start : groupSize;
            int8_t *zp = zeros ? zeros + r * groups + g : 0;
            if (encode_group(x + r * cols + start, n, bits, symmetric, scaleType, search,
                             codes + r * cols + start, scales + r * groups + g, zp, vector, nonFinite, scratch)) {
                status = (long)(r * groups + g);
                break;
            }
            if (*nonFinite) break;
        }
    }
    if (scratch && scratch != stack) free(scratch);
    return *nonFinite ? -1 : status;
}

long qk_quant_int_encode_rows(const float *x, size_t rows, size_t cols, size_t groupSize, int bits,
                              int symmetric, int scaleType, int search,
                              int8_t *codes, float *scales, int8_t *zeros) {
    int nonFinite;
    return encode_rows(x, rows, cols, groupSize, bits, symmetric, scaleType, search, codes, scales, zeros, qk_isa_avx2(), &nonFinite);
}

long qk_quant_int_encode_rows_checked(const float *x, size_t rows, size_t cols, size_t groupSize, int bits,
                                      int symmetric, int scaleType, int search,
                                      int8_t *codes, float *scales, int8_t *zeros, int *nonFinite) {
    return encode_rows(x, rows, cols, groupSize, bits, symmetric, scaleType, search, codes, scales, zeros, qk_isa_avx2(), nonFinite);
}

long qk_quant_int_encode_rows_portable(const float *x, size_t rows, size_t cols, size_t groupSize, int bits,
                                       int symmetric, int scaleType, int search,
                                       int8_t *codes, float *scales, int8_t *zeros) {
    int nonFinite;
    return encode_rows(x, rows, cols, groupSize, bits, symmetric, scaleType, search, codes, scales, zeros, 0, &nonFinite);
}

double qk_quant_int_group_error(const float *x, size_t n, float scale, float zp, int bits) {
    const float qmin = -(float)(1 << (bits - 1)), qmax = (float)((1 << (bits - 1)) - 1);
    return (double)group_error(x, n, scale, zp, qmin, qmax);
}

#if defined(__x86_64__)
// Nibble packing of n codes (a multiple of 64) into n / 2 bytes, low nibble first: in 16-bit lanes
// (low byte an even code, high byte the next one) the byte is (lane & 0xF) | (lane >> 4).
__attribute__((target("avx2")))
static void pack4_avx2(const int8_t *c, size_t n, uint8_t *o) {
    const __m256i eight = _mm256_set1_epi8(8), low = _mm256_set1_epi8(0xF), lowWord = _mm256_set1_epi16(0xF);
    for (size_t i = 0; i < n; i += 64) {
        __m256i a = _mm256_and_si256(_mm256_add_epi8(_mm256_loadu_si256((const __m256i *)(c + i)), eight), low);
        __m256i b = _mm256_and_si256(_mm256_add_epi8(_mm256_loadu_si256((const __m256i *)(c + i + 32)), eight), low);
        a = _mm256_or_si256(_mm256_and_si256(a, lowWord), _mm256_srli_epi16(a, 4));
        b = _mm256_or_si256(_mm256_and_si256(b, lowWord), _mm256_srli_epi16(b, 4));
        _mm256_storeu_si256((__m256i *)(o + i / 2), _mm256_permute4x64_epi64(_mm256_packus_epi16(a, b), 0xD8));
    }
}
#endif

void qk_quant_pack_int4_rows(const int8_t *codes, size_t rows, size_t cols, uint8_t *out) {
    // compressed-tensors pack_to_int32 (4 bits): element k of each run of 8 at bits 4k..4k+3 of a
    // little-endian int32, value + 8; missing elements of the last word are 0 bits.
    size_t words = (cols + 7) / 8;
    for (size_t r = 0; r < rows; r++) {
        const int8_t *c = codes + r * cols;
        uint8_t *o = out + r * words * 4;
        size_t w = 0;
#if defined(__x86_64__)
        if (qk_isa_avx2()) { w = cols / 64 * 8; pack4_avx2(c, w * 8, o); }
#endif
        for (; w < cols / 8; w++) {   // whole words: two codes per byte, low nibble first
            const int8_t *p = c + 8 * w;
            for (int k = 0; k < 4; k++) o[4 * w + k] = (uint8_t)(((p[2 * k] + 8) & 0xF) | (((p[2 * k + 1] + 8) & 0xF) << 4));
        }
        for (; w < words; w++) {
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
