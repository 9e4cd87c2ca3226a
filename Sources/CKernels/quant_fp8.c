// FP8 (E4M3FN, E5M2) encode/decode and the FP8 tile encoder of the Quantize module.
//
// Encoding is exact round-to-nearest-even on the bit pattern (formats.md §3.2), saturating at the
// largest finite value (inputs are clamped before the cast, so a cast never yields NaN); NaN
// inputs keep their sign and become the format's NaN (0x7F / 0x7E), as ml_dtypes does. Shared
// helpers (scans, scale rounding, the CPU check) come from kernel_shared.h/.c.
#include "kernel_shared.h"

static inline uint8_t qk_e4m3_from_f32(float f) {
    uint32_t u = qk_bits(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return sign | 0x7F;            // NaN
    if (a >= 0x43E00000u) return sign | 0x7E;           // |x| >= 448: saturate
    if (a >= 0x3C800000u) {                             // normal: |x| >= 2^-6
        uint32_t r = (a + 0x7FFFFu + ((a >> 20) & 1u)) >> 20;
        return sign | (uint8_t)(r - (120u << 3));
    }
    // subnormal: units of 2^-9, RNE through the 2^23 magic number (exact: scaling by 512 is exact)
    float y = qk_float(a) * 512.0f + 8388608.0f;
    return sign | (uint8_t)(qk_bits(y) - 0x4B000000u);
}

static inline uint8_t qk_e5m2_from_f32(float f) {
    uint32_t u = qk_bits(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return sign | 0x7E;            // NaN
    if (a >= 0x47600000u) return sign | 0x7B;           // |x| >= 57344: saturate
    if (a >= 0x38800000u) {                             // normal: |x| >= 2^-14
        uint32_t r = (a + 0xFFFFFu + ((a >> 21) & 1u)) >> 21;
        return sign | (uint8_t)(r - (112u << 2));
    }
    float y = qk_float(a) * 65536.0f + 8388608.0f;      // units of 2^-16
    return sign | (uint8_t)(qk_bits(y) - 0x4B000000u);
}

uint8_t qk_quant_f32_to_e4m3(float value) { return qk_e4m3_from_f32(value); }
uint8_t qk_quant_f32_to_e5m2(float value) { return qk_e5m2_from_f32(value); }

float qk_quant_e4m3_to_f32(uint8_t v) {
    uint32_t sign = (uint32_t)(v & 0x80) << 24;
    uint32_t e = (v >> 3) & 0xF, m = v & 7;
    if (e == 0xF && m == 7) return qk_float(sign | 0x7FC00000u);
    if (e == 0) {
        float f = (float)m * 0.001953125f;              // m * 2^-9, exact
        return qk_float(qk_bits(f) | sign);
    }
    return qk_float(sign | ((e + 120u) << 23) | (m << 20));
}

float qk_quant_e5m2_to_f32(uint8_t v) {
    uint32_t sign = (uint32_t)(v & 0x80) << 24;
    uint32_t e = (v >> 2) & 0x1F, m = v & 3;
    if (e == 0x1F) return qk_float(sign | (m ? 0x7FC00000u : 0x7F800000u));
    if (e == 0) {
        float f = (float)m * 0.0000152587890625f;       // m * 2^-16, exact
        return qk_float(qk_bits(f) | sign);
    }
    return qk_float(sign | ((e + 112u) << 23) | (m << 21));
}

void qk_quant_fp8_encode_scaled_portable(const float *x, uint8_t *out, size_t n, float scale, float limit, int e5m2) {
    // q = cast(clamp(x / scale, -limit, limit)); the division (not a reciprocal) matches numpy/torch.
    if (e5m2) {
        for (size_t i = 0; i < n; i++) {
            float v = x[i] / scale;
            v = v > limit ? limit : (v < -limit ? -limit : v);
            out[i] = qk_e5m2_from_f32(v);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float v = x[i] / scale;
            v = v > limit ? limit : (v < -limit ? -limit : v);
            out[i] = qk_e4m3_from_f32(v);
        }
    }
}

#if defined(__x86_64__)

// Eight lanes of the bit-exact cast above: the same integer rounding for normals, the same
// 2^23 magic-number RNE for subnormals, the same saturation and NaN codes.
__attribute__((target("avx2")))
static inline __m256i fp8_lanes(__m256 v, int e5m2) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));
    const __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF));
    const int shift = e5m2 ? 21 : 20;
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(a, shift), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(_mm256_add_epi32(a, _mm256_set1_epi32((1 << shift) / 2 - 1)), lsb);
    r = _mm256_sub_epi32(_mm256_srli_epi32(r, shift), _mm256_set1_epi32(e5m2 ? (112 << 2) : (120 << 3)));
    const __m256 y = _mm256_add_ps(_mm256_mul_ps(_mm256_castsi256_ps(a), _mm256_set1_ps(e5m2 ? 65536.0f : 512.0f)),
                                   _mm256_set1_ps(8388608.0f));
    const __m256i sub = _mm256_sub_epi32(_mm256_castps_si256(y), _mm256_set1_epi32(0x4B000000));
    const __m256i isNormal = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(e5m2 ? 0x387FFFFF : 0x3C7FFFFF));
    const __m256i isSat = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(e5m2 ? 0x475FFFFF : 0x43DFFFFF));
    const __m256i isNaN = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7F800000));
    __m256i res = _mm256_blendv_epi8(sub, r, isNormal);
    res = _mm256_blendv_epi8(res, _mm256_set1_epi32(e5m2 ? 0x7B : 0x7E), isSat);
    res = _mm256_blendv_epi8(res, _mm256_set1_epi32(e5m2 ? 0x7E : 0x7F), isNaN);
    return _mm256_or_si256(res, sign);
}

__attribute__((target("avx2")))
static void fp8_encode_scaled_avx2(const float *x, uint8_t *out, size_t n, float scale, float limit, int e5m2) {
    const __m256 s = _mm256_set1_ps(scale), hi = _mm256_set1_ps(limit), lo = _mm256_set1_ps(-limit);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i r[4];
        for (int k = 0; k < 4; k++) {
            __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i + 8 * k), s);
            v = _mm256_max_ps(lo, _mm256_min_ps(hi, v));   // NaN (second operand) passes through
            r[k] = fp8_lanes(v, e5m2);
        }
        __m256i p = _mm256_packus_epi16(_mm256_packus_epi32(r[0], r[1]), _mm256_packus_epi32(r[2], r[3]));
        _mm256_storeu_si256((__m256i *)(out + i), _mm256_permutevar8x32_epi32(p, order));
    }
    qk_quant_fp8_encode_scaled_portable(x + i, out + i, n - i, scale, limit, e5m2);
}
#endif

void qk_quant_fp8_encode_scaled(const float *x, uint8_t *out, size_t n, float scale, float limit, int e5m2) {
#if defined(__x86_64__)
    if (n >= 32 && qk_isa_avx2()) { fp8_encode_scaled_avx2(x, out, n, scale, limit, e5m2); return; }
#endif
    qk_quant_fp8_encode_scaled_portable(x, out, n, scale, limit, e5m2);
}

void qk_quant_fp8_encode(const float *x, uint8_t *out, size_t n, int e5m2) {
    // Division by 1 is exact and the clamp is the saturation, so this is the plain cast.
    qk_quant_fp8_encode_scaled(x, out, n, 1.0f, e5m2 ? 57344.0f : 448.0f, e5m2);
}

void qk_quant_fp8_decode(const uint8_t *q, float *out, size_t n, float scale, int e5m2) {
    if (n < 512) {   // short runs (one group): convert directly instead of building the table
        for (size_t i = 0; i < n; i++) out[i] = (e5m2 ? qk_quant_e5m2_to_f32(q[i]) : qk_quant_e4m3_to_f32(q[i])) * scale;
        return;
    }
    float table[256];
    for (int i = 0; i < 256; i++) table[i] = e5m2 ? qk_quant_e5m2_to_f32((uint8_t)i) : qk_quant_e4m3_to_f32((uint8_t)i);
    for (size_t i = 0; i < n; i++) out[i] = table[q[i]] * scale;
}

#if defined(__x86_64__)
// The AVX2 amax (kernel_shared.c) that also sets *bad when a value is NaN or infinite (the amax is then meaningless).
__attribute__((target("avx2")))
static float amax_checked_avx2(const float *x, size_t n, int *bad) {
    const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256i finiteMax = _mm256_set1_epi32(0x7F7FFFFF);
    __m256 m[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    __m256i flags = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) {
            const __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + i + 8 * k), absMask);
            flags = _mm256_or_si256(flags, _mm256_cmpgt_epi32(_mm256_castps_si256(a), finiteMax));
            m[k] = _mm256_max_ps(m[k], a);
        }
    if (!_mm256_testz_si256(flags, flags) || qk_first_nonfinite_scalar(x + i, n - i) >= 0) *bad = 1;
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3])));
    float r = qk_amax_scalar(x + i, n - i);
    for (int k = 0; k < 8; k++) r = lanes[k] > r ? lanes[k] : r;
    return r;
}
#endif

int qk_quant_fp8_encode_tiles(const float *x, size_t rows, size_t cols, size_t tileRows, size_t tileCols,
                              float limit, int e5m2, uint8_t *out, uint8_t *scaleOut) {
    int bad = 0;
#if defined(__x86_64__)
    const int vector = qk_isa_avx2();
    if (!vector && qk_first_nonfinite_scalar(x, rows * cols) >= 0) return 1;
#else
    if (qk_first_nonfinite_scalar(x, rows * cols) >= 0) return 1;
#endif
    // The loops of TensorQuantizer's FP8 channel/group/block encoding, without a call per row
    // segment from Swift. A band of tileRows rows (up to 64 tiles wide) is read row by row twice
    // (amax of every tile, then the codes), which the hardware prefetchers follow far better than
    // a tile at a time.
    enum { TILES = 64 };
    const size_t colTiles = (cols + tileCols - 1) / tileCols;
    float scale[TILES];
    for (size_t r0 = 0, tr = 0; r0 < rows; r0 += tileRows, tr++) {
        const size_t h = rows - r0 < tileRows ? rows - r0 : tileRows;
        for (size_t ct0 = 0; ct0 < colTiles; ct0 += TILES) {
            const size_t ct1 = colTiles - ct0 < TILES ? colTiles : ct0 + TILES;
            for (size_t ct = ct0; ct < ct1; ct++) scale[ct - ct0] = 0;
            for (size_t r = r0; r < r0 + h; r++)
                for (size_t ct = ct0; ct < ct1; ct++) {
                    const size_t c0 = ct * tileCols, w = cols - c0 < tileCols ? cols - c0 : tileCols;
#if defined(__x86_64__)
                    const float a = vector ? amax_checked_avx2(x + r * cols + c0, w, &bad) : qk_amax_scalar(x + r * cols + c0, w);
#else
                    const float a = qk_amax_scalar(x + r * cols + c0, w);
#endif
                    scale[ct - ct0] = a > scale[ct - ct0] ? a : scale[ct - ct0];
                }
            for (size_t ct = ct0; ct < ct1; ct++) {
                scale[ct - ct0] = qk_round_scale(scale[ct - ct0] / limit, 0);
                memcpy(scaleOut + 4 * (tr * colTiles + ct), &scale[ct - ct0], 4);   // little-endian hosts (x86-64, arm64)
            }
            for (size_t r = r0; r < r0 + h; r++)
                for (size_t ct = ct0; ct < ct1; ct++) {
                    const size_t c0 = ct * tileCols, w = cols - c0 < tileCols ? cols - c0 : tileCols;
                    qk_quant_fp8_encode_scaled(x + r * cols + c0, out + r * cols + c0, w, scale[ct - ct0], limit, e5m2);
                }
        }
    }
    return bad;
}
