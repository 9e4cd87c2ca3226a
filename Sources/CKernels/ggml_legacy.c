// GGUF plain and legacy block encoders of the Quantize module: F16, BF16 and the 32-element blocks
// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (formats.md §2.4–2.6).
//
// They reproduce gguf-py 0.19.0 `gguf.quants.quantize` byte for byte: plain float32 arithmetic in
// the same order, no fused multiply-add (kernel_shared.h switches contraction off), C `roundf` for
// Q8_0, truncation for the others. Every block encoder returns -1, or the index of the first block
// whose FP16 scale overflowed to infinity (the caller reports it). ggml_kernels.c dispatches to
// them from its table; the block sizes the table's callers step by come from GGMLType.all.
#include "ggml_kernels.h"


// C roundf: half away from zero, written so that 0.49999997 stays 0.
// floor(a) + floor(2(a - floor(a))) as gguf-py's np_roundf, with floors of non-negative values done
// by integer truncation (a libm call at baseline x86-64 otherwise); |v| >= 2^31 and NaN pass through.
static inline float round_away(float v) {
    float a = fabsf(v);
    if (!(a < 2147483648.0f)) return v;
    float fl = (float)(int32_t)a;
    float r = fl + (float)(int32_t)(2.0f * (a - fl));
    return v < 0 ? -r : r;
}

// float → int as numpy's astype does on x86 for the values these quantizers meet: truncation, and
// 0 for NaN, ±inf and anything outside the int32 range (written out so vectorised code cannot
// saturate instead).
static inline int trunc_int(float v) {
    return (v > -2147483648.0f && v < 2147483648.0f) ? (int)v : 0;
}

// numpy's min/max reductions return +0.0 when a block's extreme is a zero of either sign and a +0.0
// is present; prefer +0.0 on such ties so the stored FP16 min/scale matches gguf-py.
static inline void block_min_max(const float *xb, int n, float *lo, float *hi) {
    float l = xb[0], h = xb[0];
    for (int j = 1; j < n; j++) {
        if (xb[j] < l || (xb[j] == l && !signbit(xb[j]))) l = xb[j];
        if (xb[j] > h || (xb[j] == h && !signbit(xb[j]))) h = xb[j];
    }
    *lo = l; *hi = h;
}

static void f16_scalar(const float *x, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) qk_wr16(out + 2 * i, qk_f16_from_f32(x[i]));
}
static void bf16_scalar(const float *x, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) qk_wr16(out + 2 * i, qk_bf16_from_f32(x[i]));
}

static long q8_0_scalar(const float *x, uint8_t *out, size_t blocks) {
    long bad = -1;
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 32 * b; uint8_t *y = out + 34 * b;
        float amax = 0;
        for (int j = 0; j < 32; j++) { float a = fabsf(xb[j]); amax = a > amax ? a : amax; }
        float d = amax / 127.0f;
        float id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t dh = qk_f16_from_f32(d);
        if (bad < 0 && qk_is_inf16(dh)) bad = (long)b;
        qk_wr16(y, dh);
        for (int j = 0; j < 32; j++) { float r = round_away(xb[j] * id); y[2 + j] = (uint8_t)(int8_t)(fabsf(r) < 128.0f ? (int)r : 0); }
    }
    return bad;
}

// The signed value of the first element with the largest magnitude (numpy argmax of |x|).
static inline float signed_absmax(const float *xb, int n) {
    float amax = fabsf(xb[0]), v = xb[0];
    for (int j = 1; j < n; j++) { float a = fabsf(xb[j]); if (a > amax) { amax = a; v = xb[j]; } }
    return v;
}

static void pack_q5(const int *q, uint8_t *qh, uint8_t *qs) {
    uint32_t h = 0;
    for (int j = 0; j < 32; j++) h |= (uint32_t)((q[j] >> 4) & 1) << j;
    qh[0] = (uint8_t)h; qh[1] = (uint8_t)(h >> 8); qh[2] = (uint8_t)(h >> 16); qh[3] = (uint8_t)(h >> 24);
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
}

// Element j in the low nibble of byte j, element j + 16 in the high nibble (split halves).
static void pack_q4(const int *q, uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(q[j] | (q[j + 16] << 4));
}

// Q4_0 (levels 8) and Q5_0 (levels 16), formats.md §2.6: d = signed absmax / -levels,
// q = trunc(x·id + levels + 0.5) clamped to [0, 2·levels - 1].
static long qx_0_scalar(const float *x, uint8_t *out, size_t blocks, int levels, size_t blockBytes) {
    long bad = -1;
    const int qmax = 2 * levels - 1;
    const float bias = (float)levels + 0.5f;
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 32 * b; uint8_t *y = out + blockBytes * b;
        float max = signed_absmax(xb, 32);
        float d = max / -(float)levels;
        float id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t dh = qk_f16_from_f32(d);
        if (bad < 0 && qk_is_inf16(dh)) bad = (long)b;
        qk_wr16(y, dh);
        int q[32];
        for (int j = 0; j < 32; j++) {
            int t = trunc_int(xb[j] * id + bias);
            q[j] = t < 0 ? 0 : (t > qmax ? qmax : t);
        }
        if (levels == 16) pack_q5(q, y + 2, y + 6); else pack_q4(q, y + 2);
    }
    return bad;
}

// Q4_1 (levels 8) and Q5_1 (levels 16): d = (max - min) / (2·levels - 1), m = min,
// q = trunc((x - min)·id + 0.5) clamped.
static long qx_1_scalar(const float *x, uint8_t *out, size_t blocks, int levels, size_t blockBytes) {
    long bad = -1;
    const int qmax = 2 * levels - 1;
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 32 * b; uint8_t *y = out + blockBytes * b;
        float lo, hi;
        block_min_max(xb, 32, &lo, &hi);
        float d = (hi - lo) / (float)qmax;
        float id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t dh = qk_f16_from_f32(d), mh = qk_f16_from_f32(lo);
        if (bad < 0 && (qk_is_inf16(dh) || qk_is_inf16(mh))) bad = (long)b;
        qk_wr16(y, dh); qk_wr16(y + 2, mh);
        int q[32];
        for (int j = 0; j < 32; j++) {
            int t = trunc_int((xb[j] - lo) * id + 0.5f);
            q[j] = t < 0 ? 0 : (t > qmax ? qmax : t);
        }
        if (levels == 16) pack_q5(q, y + 4, y + 8); else pack_q4(q, y + 4);
    }
    return bad;
}

static long q4_0_scalar(const float *x, uint8_t *out, size_t blocks) { return qx_0_scalar(x, out, blocks, 8, 18); }
static long q4_1_scalar(const float *x, uint8_t *out, size_t blocks) { return qx_1_scalar(x, out, blocks, 8, 20); }
static long q5_0_scalar(const float *x, uint8_t *out, size_t blocks) { return qx_0_scalar(x, out, blocks, 16, 22); }
static long q5_1_scalar(const float *x, uint8_t *out, size_t blocks) { return qx_1_scalar(x, out, blocks, 16, 24); }

// MARK: AVX2 encoders
//
// Eight-lane versions of the encoders above. Every lane performs the scalar code's float32
// operations in the same order (a multiply, then a separate add: FMA is not enabled for these
// functions, so nothing can be fused), and the per-block scalars (amax, d, id, the FP16 scale) are
// computed with the very same scalar expressions. The inputs must be finite, as the Quantize module
// guarantees (it refuses or sanitises non-finite weights first); the F16/BF16 encoders accept any
// value, NaN included.

#if defined(__x86_64__)

QK_V static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}
QK_V static inline float hmin8(__m256 v) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

// Loads a 32-float block; returns max |x| (exact: finite values, the order of max is irrelevant).
// Sets the lanes of *bad where a magnitude is NaN or infinite.
QK_V static inline void flag_nonfinite(__m256 magnitude, __m256i *bad) {
    *bad = _mm256_or_si256(*bad, _mm256_cmpgt_epi32(_mm256_castps_si256(magnitude), _mm256_set1_epi32(0x7F7FFFFF)));
}

QK_V static inline float load_block_amax(const float *xb, __m256 v[4], __m256 a[4], __m256i *bad) {
    const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    for (int k = 0; k < 4; k++) { v[k] = _mm256_loadu_ps(xb + 8 * k); a[k] = _mm256_and_ps(v[k], absMask); flag_nonfinite(a[k], bad); }
    return hmax8(_mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3])));
}

// The signed value of the first element whose |x| equals the block's amax (= signed_absmax).
QK_V static inline float block_signed_absmax(const float *xb, __m256 v[4], __m256i *bad) {
    __m256 a[4];
    const __m256 m = _mm256_set1_ps(load_block_amax(xb, v, a, bad));
    uint32_t mask = 0;
    for (int k = 0; k < 4; k++) mask |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a[k], m, _CMP_EQ_OQ)) << (8 * k);
    return xb[mask ? __builtin_ctz(mask) : 0];   // no match only for non-finite input (flagged)
}

// Min and max of a block with block_min_max's zero rule: a zero extreme is +0.0 when any element
// is +0.0, else -0.0.
QK_V static inline void block_min_max_v(const __m256 v[4], float *lo, float *hi) {
    float l = hmin8(_mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3])));
    float h = hmax8(_mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3])));
    if (l == 0 || h == 0) {
        int anyPositiveZero = 0;
        for (int k = 0; k < 4; k++)
            anyPositiveZero |= _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_castps_si256(v[k]), _mm256_setzero_si256())));
        if (l == 0) l = anyPositiveZero ? 0.0f : -0.0f;
        if (h == 0) h = anyPositiveZero ? 0.0f : -0.0f;
    }
    *lo = l; *hi = h;
}

// trunc_int then clamp to [0, qmax]: vcvttps2dq gives INT_MIN where trunc_int gives 0, and both
// clamp to 0.
QK_V static inline __m256i trunc_clamp(__m256 s, int qmax) {
    __m256i q = _mm256_cvttps_epi32(s);
    return _mm256_min_epi32(_mm256_max_epi32(q, _mm256_setzero_si256()), _mm256_set1_epi32(qmax));
}

// Nibble packing of 32 codes: byte j = q[j] | q[j + 16] << 4.
QK_V static inline void store_nibbles(const __m256i q[4], uint8_t *dst) {
    const __m256i low = _mm256_set1_epi32(0xF);
    __m256i c0 = _mm256_or_si256(_mm256_and_si256(q[0], low), _mm256_slli_epi32(_mm256_and_si256(q[2], low), 4));
    __m256i c1 = _mm256_or_si256(_mm256_and_si256(q[1], low), _mm256_slli_epi32(_mm256_and_si256(q[3], low), 4));
    __m128i s0 = _mm_packs_epi32(_mm256_castsi256_si128(c0), _mm256_extracti128_si256(c0, 1));
    __m128i s1 = _mm_packs_epi32(_mm256_castsi256_si128(c1), _mm256_extracti128_si256(c1, 1));
    _mm_storeu_si128((__m128i *)dst, _mm_packus_epi16(s0, s1));
}

// Bit 4 of each of 32 codes as a little-endian 32-bit mask.
QK_V static inline void store_high_bits(const __m256i q[4], uint8_t *dst) {
    uint32_t h = 0;
    for (int k = 0; k < 4; k++) h |= (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(q[k], 27))) << (8 * k);
    dst[0] = (uint8_t)h; dst[1] = (uint8_t)(h >> 8); dst[2] = (uint8_t)(h >> 16); dst[3] = (uint8_t)(h >> 24);
}

QK_V static long q8_0_avx2(const float *x, uint8_t *out, size_t blocks, int *nonFinite) {
    const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 signMask = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), limit = _mm256_set1_ps(128.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    long bad = -1;
    __m256i badLanes = _mm256_setzero_si256();
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 32 * b; uint8_t *y = out + 34 * b;
        __m256 v[4], a[4];
        float amax = load_block_amax(xb, v, a, &badLanes);
        float d = amax / 127.0f;
        float id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t dh = qk_f16_from_f32(d);
        if (bad < 0 && qk_is_inf16(dh)) bad = (long)b;
        qk_wr16(y, dh);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            // round_away: trunc(|p|) + (frac >= 0.5), with the sign of p; |r| >= 128, inf, NaN -> 0.
            __m256 p = _mm256_mul_ps(v[k], vid);
            __m256 ap = _mm256_and_ps(p, absMask);
            __m256 t = _mm256_round_ps(ap, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(_mm256_sub_ps(ap, t), half, _CMP_GE_OQ), one));
            t = _mm256_and_ps(t, _mm256_cmp_ps(t, limit, _CMP_LT_OQ));
            q[k] = _mm256_cvttps_epi32(_mm256_or_ps(t, _mm256_and_ps(p, signMask)));
        }
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(y + 2), _mm256_permutevar8x32_epi32(p, order));
    }
    *nonFinite = !_mm256_testz_si256(badLanes, badLanes);
    return bad;
}

// Q4_0 and Q5_0 (formats.md §2.6): d = signed absmax / -levels, q = trunc(x·id + levels + 0.5)
// clamped to 2·levels - 1; Q5_0 stores the fifth bits before the nibbles. `levels` is 8 or 16 and
// the call sites pass constants, so each is compiled into its own straight-line loop.
QK_V static inline __attribute__((always_inline)) long qx_0_avx2(const float *x, uint8_t *out, size_t blocks, int *nonFinite,
                                  int levels, size_t blockBytes) {
    long bad = -1;
    __m256i badLanes = _mm256_setzero_si256();
    const int fiveBit = levels == 16;
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 32 * b; uint8_t *y = out + blockBytes * b;
        __m256 v[4];
        float max = block_signed_absmax(xb, v, &badLanes);
        float d = max / -(float)levels;
        float id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t dh = qk_f16_from_f32(d);
        if (bad < 0 && qk_is_inf16(dh)) bad = (long)b;
        qk_wr16(y, dh);
        const __m256 vid = _mm256_set1_ps(id), bias = _mm256_set1_ps((float)levels + 0.5f);
        __m256i q[4];
        for (int k = 0; k < 4; k++) q[k] = trunc_clamp(_mm256_add_ps(_mm256_mul_ps(v[k], vid), bias), 2 * levels - 1);
        if (fiveBit) store_high_bits(q, y + 2);
        store_nibbles(q, y + (fiveBit ? 6 : 2));
    }
    *nonFinite = !_mm256_testz_si256(badLanes, badLanes);
    return bad;
}

QK_V static long q4_0_avx2(const float *x, uint8_t *out, size_t blocks, int *nonFinite) {
    return qx_0_avx2(x, out, blocks, nonFinite, 8, 18);
}

QK_V static long q5_0_avx2(const float *x, uint8_t *out, size_t blocks, int *nonFinite) {
    return qx_0_avx2(x, out, blocks, nonFinite, 16, 22);
}

// Q4_1 and Q5_1: d = (max - min) / (2·levels - 1), m = min, q = trunc((x - min)·id + 0.5) clamped;
// Q5_1 stores the fifth bits before the nibbles.
QK_V static inline __attribute__((always_inline)) long qx_1_avx2(const float *x, uint8_t *out, size_t blocks, int *nonFinite,
                                  int levels, size_t blockBytes) {
    long bad = -1;
    __m256i badLanes = _mm256_setzero_si256();
    const int fiveBit = levels == 16;
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 32 * b; uint8_t *y = out + blockBytes * b;
        __m256 v[4];
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            flag_nonfinite(_mm256_and_ps(v[k], _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF))), &badLanes);
        }
        float lo, hi;
        block_min_max_v(v, &lo, &hi);
        float d = (hi - lo) / (float)(2 * levels - 1);
        float id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t dh = qk_f16_from_f32(d), mh = qk_f16_from_f32(lo);
        if (bad < 0 && (qk_is_inf16(dh) || qk_is_inf16(mh))) bad = (long)b;
        qk_wr16(y, dh); qk_wr16(y + 2, mh);
        const __m256 vid = _mm256_set1_ps(id), vlo = _mm256_set1_ps(lo), bias = _mm256_set1_ps(0.5f);
        __m256i q[4];
        for (int k = 0; k < 4; k++) q[k] = trunc_clamp(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v[k], vlo), vid), bias), 2 * levels - 1);
        if (fiveBit) store_high_bits(q, y + 4);
        store_nibbles(q, y + (fiveBit ? 8 : 4));
    }
    *nonFinite = !_mm256_testz_si256(badLanes, badLanes);
    return bad;
}

QK_V static long q4_1_avx2(const float *x, uint8_t *out, size_t blocks, int *nonFinite) {
    return qx_1_avx2(x, out, blocks, nonFinite, 8, 20);
}

QK_V static long q5_1_avx2(const float *x, uint8_t *out, size_t blocks, int *nonFinite) {
    return qx_1_avx2(x, out, blocks, nonFinite, 16, 24);
}

// F16 with the ggml rule: the hardware conversion (round to nearest even, overflow to infinity,
// exact subnormals) for every value but NaN, which becomes sign | 0x7E00.
QK_V static void f16_avx2(const float *x, uint8_t *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 isNaN = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
        if (!_mm256_testz_ps(isNaN, isNaN)) {
            __m256i nanBits = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(v), 16), _mm256_set1_epi32(0x8000)),
                                              _mm256_set1_epi32(0x7E00));
            __m128i nan16 = _mm_packus_epi32(_mm256_castsi256_si128(nanBits), _mm256_extracti128_si256(nanBits, 1));
            __m256i m = _mm256_castps_si256(isNaN);
            __m128i m16 = _mm_packs_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
            h = _mm_blendv_epi8(h, nan16, m16);
        }
        _mm_storeu_si128((__m128i *)(out + 2 * i), h);
    }
    f16_scalar(x + i, out + 2 * i, n - i);
}

// BF16 with the ggml rule, in 32-bit integer lanes (no sum can wrap: see qk_quant_f32_to_bf16).
QK_V static inline __m256i bf16_lanes(__m256 v) {
    __m256i n = _mm256_castps_si256(v);
    __m256i isNaN = _mm256_cmpgt_epi32(_mm256_and_si256(n, _mm256_set1_epi32(0x7FFFFFFF)), _mm256_set1_epi32(0x7F800000));
    __m256i quiet = _mm256_or_si256(_mm256_and_si256(n, _mm256_set1_epi32((int)0xFFFF0000u)), _mm256_set1_epi32(64 << 16));
    n = _mm256_blendv_epi8(n, quiet, isNaN);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(n, 16), _mm256_set1_epi32(1));
    return _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(0x7FFF)), lsb), 16);
}

QK_V static void bf16_avx2(const float *x, uint8_t *out, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i a = bf16_lanes(_mm256_loadu_ps(x + i)), b = bf16_lanes(_mm256_loadu_ps(x + i + 8));
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
        _mm256_storeu_si256((__m256i *)(out + 2 * i), p);
    }
    bf16_scalar(x + i, out + 2 * i, n - i);
}
#endif

// MARK: Importance-weighted Q4_0, Q4_1, Q5_0, Q5_1 (ggml_quantize_chunk with an imatrix)
//
// Ports of quantize_row_q4_0_impl … quantize_row_q5_1_impl with quant_weights (ggml
// src/ggml-quants.c): per row σ² = Σx²/columns, per block of 32 the weights
// qw · sqrt(σ² + x²), then make_qx_quants (Q4_0: 8 levels, Q5_0: 16) or make_qkx3_quants
// (Q4_1: 15, Q5_1: 31; rmin -0.9, rdelta 0.05, 36 steps) from ggml_kernels.h. Q8_0 has none:
// ggml's quantize_q8_0 ignores the importance.

// Q4_0 (levels 8, 18-byte blocks) and Q5_0 (levels 16, 22-byte blocks); with `vector` (AVX2) the
// fits of 16 (or 8) blocks run at once, one block per lane (the same floats).
static long qx_0_weighted(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance, int levels, int vector) {
    long bad = -1;
    const size_t nb = columns / 32, bytes = levels == 16 ? 22 : 18;
    int8_t L[16 * 32];
    float d[16], weight[32];
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * columns;
        const float sigma2 = qk_row_sigma2(xr, columns);
        size_t ib = 0;
        while (ib < nb) {
            size_t count = 1;
#if defined(__x86_64__)
            if (vector && nb - ib >= 8) {
                count = nb - ib >= 16 ? 16 : 8;
                qk_ggml_qx_fit32_weighted_avx2(xr + 32 * ib, importance + 32 * ib, sigma2, (int)count, levels, L, d);
            } else
#endif
            {
                const float *xb = xr + 32 * ib, *qw = importance + 32 * ib;
                for (int j = 0; j < 32; j++) weight[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
                d[0] = qk_make_qx_quants_weighted(32, levels, xb, L, weight);
            }
            for (size_t c = 0; c < count; c++) {
                uint8_t *y = out + bytes * (r * nb + ib + c);
                const uint16_t dh = qk_f16_from_f32(d[c]);
                if (bad < 0 && qk_is_inf16(dh)) bad = (long)(r * nb + ib + c);
                qk_wr16(y, dh);
                int q[32];
                for (int j = 0; j < 32; j++) q[j] = L[32 * c + j];
                if (levels == 16) pack_q5(q, y + 2, y + 6); else pack_q4(q, y + 2);
            }
            ib += count;
        }
    }
    return bad;
}

// Q4_1 (nmax 15, 20-byte blocks) and Q5_1 (nmax 31, 24-byte blocks); with `vector` (AVX2) the
// fits of 16 (or 8) blocks run at once, one block per lane (the same floats).
static long qx_1_weighted(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance, int nmax, int vector) {
    long bad = -1;
    const size_t nb = columns / 32, bytes = nmax == 31 ? 24 : 20;
    uint8_t L[16 * 32];
    float d[16], mins[16], weight[32];
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * columns;
        const float sigma2 = qk_row_sigma2(xr, columns);
        size_t ib = 0;
        while (ib < nb) {
            size_t count = 1;
#if defined(__x86_64__)
            if (vector && nb - ib >= 8) {
                count = nb - ib >= 16 ? 16 : 8;
                qk_ggml_qkx_fit32_weighted_avx2(xr + 32 * ib, importance + 32 * ib, sigma2, (int)count, nmax, L, d, mins);
            } else
#endif
            {
                const float *xb = xr + 32 * ib, *qw = importance + 32 * ib;
                for (int j = 0; j < 32; j++) weight[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
                d[0] = qk_make_qkx2_quants(32, nmax, xb, weight, L, &mins[0], -0.9f, 0.05f, 36, 0);
            }
            for (size_t c = 0; c < count; c++) {
                uint8_t *y = out + bytes * (r * nb + ib + c);
                const uint16_t dh = qk_f16_from_f32(d[c]), mh = qk_f16_from_f32(-mins[c]);
                if (bad < 0 && (qk_is_inf16(dh) || qk_is_inf16(mh))) bad = (long)(r * nb + ib + c);
                qk_wr16(y, dh); qk_wr16(y + 2, mh);
                int q[32];
                for (int j = 0; j < 32; j++) q[j] = L[32 * c + j];
                if (nmax == 31) pack_q5(q, y + 4, y + 8); else pack_q4(q, y + 4);
            }
            ib += count;
        }
    }
    return bad;
}

// They take the AVX2 fits when the CPU has them; the _portable names are the table's
// reference entries.
#define QK_LEGACY_WEIGHTED(name, fn, arg, vector) \
    long qk_ggml_##name##_weighted(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) { \
        return fn(x, out, rows, columns, importance, arg, vector); \
    } \
    long qk_ggml_##name##_weighted_portable(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) { \
        return fn(x, out, rows, columns, importance, arg, 0); \
    }
#if defined(__x86_64__)
#define QK_LEGACY_VECTOR qk_isa_avx2()
#else
#define QK_LEGACY_VECTOR 0
#endif
QK_LEGACY_WEIGHTED(q4_0, qx_0_weighted, 8, QK_LEGACY_VECTOR)
QK_LEGACY_WEIGHTED(q5_0, qx_0_weighted, 16, QK_LEGACY_VECTOR)
QK_LEGACY_WEIGHTED(q4_1, qx_1_weighted, 15, QK_LEGACY_VECTOR)
QK_LEGACY_WEIGHTED(q5_1, qx_1_weighted, 31, QK_LEGACY_VECTOR)

// MARK: Entry points (ggml_kernels.c's table)

void qk_quant_f16_encode(const float *x, uint8_t *out, size_t n) {
#if defined(__x86_64__)
    if (qk_isa_avx2()) { f16_avx2(x, out, n); return; }
#endif
    f16_scalar(x, out, n);
}
void qk_quant_bf16_encode(const float *x, uint8_t *out, size_t n) {
#if defined(__x86_64__)
    if (qk_isa_avx2()) { bf16_avx2(x, out, n); return; }
#endif
    bf16_scalar(x, out, n);
}
long qk_ggml_f16_encode(const float *x, uint8_t *out, size_t n) { qk_quant_f16_encode(x, out, n); return -1; }
long qk_ggml_bf16_encode(const float *x, uint8_t *out, size_t n) { qk_quant_bf16_encode(x, out, n); return -1; }
long qk_ggml_f16_portable(const float *x, uint8_t *out, size_t n) { f16_scalar(x, out, n); return -1; }
// F32 is stored as it is (little-endian IEEE binary32, as the float array already is on the hosts we build for).
long qk_ggml_f32_encode(const float *x, uint8_t *out, size_t n) { memcpy(out, x, n * sizeof(float)); return -1; }
long qk_ggml_f32_portable(const float *x, uint8_t *out, size_t n) { memcpy(out, x, n * sizeof(float)); return -1; }
long qk_ggml_bf16_portable(const float *x, uint8_t *out, size_t n) { bf16_scalar(x, out, n); return -1; }

// The dispatched encoder (AVX2 when the CPU has it: the same bytes for finite input), the one-pass
// checked AVX2 encoder (x86-64 only) and the portable encoder of each block type.
#if defined(__x86_64__)
#define QK_LEGACY_ENTRIES(name) \
    long qk_ggml_##name##_encode(const float *x, uint8_t *out, size_t blocks) { \
        int nonFinite; \
        return qk_isa_avx2() ? name##_avx2(x, out, blocks, &nonFinite) : name##_scalar(x, out, blocks); \
    } \
    long qk_ggml_##name##_checked(const float *x, uint8_t *out, size_t blocks, int *nonFinite) { \
        return name##_avx2(x, out, blocks, nonFinite); \
    } \
    long qk_ggml_##name##_portable(const float *x, uint8_t *out, size_t blocks) { return name##_scalar(x, out, blocks); }
#else
#define QK_LEGACY_ENTRIES(name) \
    long qk_ggml_##name##_encode(const float *x, uint8_t *out, size_t blocks) { return name##_scalar(x, out, blocks); } \
    long qk_ggml_##name##_portable(const float *x, uint8_t *out, size_t blocks) { return name##_scalar(x, out, blocks); }
#endif

QK_LEGACY_ENTRIES(q8_0)
QK_LEGACY_ENTRIES(q4_0)
QK_LEGACY_ENTRIES(q4_1)
QK_LEGACY_ENTRIES(q5_0)
QK_LEGACY_ENTRIES(q5_1)
