// GGUF block quantizers and dequantizers of the Quantize module (formats.md §2.4–2.7).
//
// Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/BF16/F16 encoders reproduce gguf-py 0.19.0 `gguf.quants.quantize`
// byte for byte: plain float32 arithmetic in the same order, no fused multiply-add (contraction is
// switched off below), C `roundf` for Q8_0, truncation for the others. Q4_K and Q6_K follow ggml's
// reference quantizers without an importance matrix (`quantize_row_q4_K_ref` with
// `make_qkx2_quants`, `quantize_row_q6_K_ref` with `make_qx_quants`, ggml src/ggml-quants.c),
// re-implemented here step by step. Dequantizers follow gguf-py's operation order so that the
// floats are identical to `gguf.quants.dequantize`.
//
// Every encoder returns -1, or the index of the first block whose FP16 scale overflowed to
// infinity (the caller reports it).
#include "CKernels.h"
#include <string.h>
#include <math.h>

#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)

static inline uint32_t gb(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float gf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t qk_quant_f32_to_f16(float f) {
    uint32_t u = gb(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return sign | 0x7E00;                  // NaN
    if (a >= 0x477FF000u) return sign | 0x7C00;                 // >= 65520 rounds to infinity
    if (a >= 0x38800000u) {                                     // normal (>= 2^-14)
        uint32_t r = (a + 0xFFFu + ((a >> 13) & 1u)) >> 13;
        return sign | (uint16_t)(r - (112u << 10));
    }
    float y = gf(a) * 16777216.0f + 8388608.0f;                 // units of 2^-24, RNE
    return sign | (uint16_t)(gb(y) - 0x4B000000u);
}

float qk_quant_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1F, m = h & 0x3FF;
    if (e == 0x1F) return gf(sign | 0x7F800000u | (m << 13));
    if (e == 0) {
        float f = (float)m * 5.9604644775390625e-08f;          // m * 2^-24, exact
        return gf(gb(f) | sign);
    }
    return gf(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t qk_quant_f32_to_bf16(float f) {
    uint32_t n = gb(f);
    if ((n & 0x7FFFFFFFu) > 0x7F800000u) n = (n & 0xFFFF0000u) | (64u << 16);
    return (uint16_t)(((uint64_t)n + (0x7FFFu + ((n >> 16) & 1u))) >> 16);
}

static inline float bf16_to_f32(uint16_t h) { return gf((uint32_t)h << 16); }
static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline float h2f(const uint8_t *p) { return qk_quant_f16_to_f32(rd16(p)); }
static inline int is_inf16(uint16_t h) { return (h & 0x7FFF) == 0x7C00; }

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
    for (size_t i = 0; i < n; i++) wr16(out + 2 * i, qk_quant_f32_to_f16(x[i]));
}
static void bf16_scalar(const float *x, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) wr16(out + 2 * i, qk_quant_f32_to_bf16(x[i]));
}

static long q8_0_scalar(const float *x, uint8_t *out, size_t blocks) {
    long bad = -1;
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 32 * b; uint8_t *y = out + 34 * b;
        float amax = 0;
        for (int j = 0; j < 32; j++) { float a = fabsf(xb[j]); amax = a > amax ? a : amax; }
        float d = amax / 127.0f;
        float id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t dh = qk_quant_f32_to_f16(d);
        if (bad < 0 && is_inf16(dh)) bad = (long)b;
        wr16(y, dh);
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
        uint16_t dh = qk_quant_f32_to_f16(d);
        if (bad < 0 && is_inf16(dh)) bad = (long)b;
        wr16(y, dh);
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
        uint16_t dh = qk_quant_f32_to_f16(d), mh = qk_quant_f32_to_f16(lo);
        if (bad < 0 && (is_inf16(dh) || is_inf16(mh))) bad = (long)b;
        wr16(y, dh); wr16(y + 2, mh);
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

// MARK: K-quants (ggml reference, no importance matrix)

// ggml's nearest_int: round half to even through the 1.5·2^23 magic number (|f| <= 4194303).
static inline int nearest_int(float f) {
    float v = f + 12582912.0f;
    int32_t i; memcpy(&i, &v, 4);
    return (i & 0x007FFFFF) - 0x00400000;
}

// ggml's make_qkx2_quants(32, 15, x, weights, L, &min, Laux, -1, 0.1, 20, false) — an asymmetric
// 16-level fit that tries 21 inverse scales around 15/(max - min) and keeps the weighted
// least-squares (scale, min) with the lowest weighted squared error — for the eight sub-blocks of
// a Q4_K block at once. Each sub-block's sums are accumulated element by element in the reference
// order, so every float is identical to ggml's; interleaving the eight independent chains only
// hides the latency of the sequential float additions.
static void qkx2_fit8(const float *x, const float *w, uint8_t *L, float *scales, float *mins) {
    enum { N = 32, NMAX = 15, NSTEP = 20 };
    const float rmin = -1.f, rdelta = 0.1f;
    float mn[8], mx[8], sumW[8], sumX[8], scale[8], best[8];
    int live[8];
    uint8_t Laux[8][N];
    for (int j = 0; j < 8; j++) {
        mn[j] = x[32 * j]; mx[j] = x[32 * j];
        sumW[j] = w[32 * j];
        sumX[j] = sumW[j] * x[32 * j];
    }
    for (int i = 1; i < N; i++)
        for (int j = 0; j < 8; j++) {
            const float xi = x[32 * j + i], wi = w[32 * j + i];
            if (xi < mn[j]) mn[j] = xi;
            if (xi > mx[j]) mx[j] = xi;
            sumW[j] += wi;
            sumX[j] += wi * xi;
        }
    float iscale[8];
    for (int j = 0; j < 8; j++) {
        if (mn[j] > 0) mn[j] = 0;
        live[j] = mx[j] != mn[j];
        if (!live[j]) {
            for (int i = 0; i < N; i++) L[32 * j + i] = 0;
            mins[j] = -mn[j];
            scales[j] = 0.f;
            continue;
        }
        iscale[j] = NMAX / (mx[j] - mn[j]);
        scale[j] = 1 / iscale[j];
        best[j] = 0;
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 8; j++) {
            if (!live[j]) continue;
            const float xi = x[32 * j + i];
            int l = nearest_int(iscale[j] * (xi - mn[j]));
            uint8_t q = (uint8_t)(l < 0 ? 0 : (l > NMAX ? NMAX : l));
            L[32 * j + i] = q;
            float diff = scale[j] * q + mn[j] - xi;
            diff = diff * diff;
            best[j] += w[32 * j + i] * diff;
        }
    for (int is = 0; is <= NSTEP; is++) {
        float sumL[8], sumL2[8], sumXL[8], cur[8], thisScale[8], thisMin[8];
        int ok[8];
        for (int j = 0; j < 8; j++) { iscale[j] = live[j] ? (rmin + rdelta * is + NMAX) / (mx[j] - mn[j]) : 0; sumL[j] = sumL2[j] = sumXL[j] = 0; }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < 8; j++) {
                const float xi = x[32 * j + i], wi = w[32 * j + i];
                int l = nearest_int(iscale[j] * (xi - mn[j]));
                l = l < 0 ? 0 : (l > NMAX ? NMAX : l);
                Laux[j][i] = (uint8_t)l;
                sumL[j] += wi * l;
                sumL2[j] += wi * l * l;
                sumXL[j] += wi * l * xi;
            }
        for (int j = 0; j < 8; j++) {
            float D = sumW[j] * sumL2[j] - sumL[j] * sumL[j];
            ok[j] = live[j] && D > 0;
            thisScale[j] = 0; thisMin[j] = 0; cur[j] = 0;
            if (ok[j]) {
                thisScale[j] = (sumW[j] * sumXL[j] - sumX[j] * sumL[j]) / D;
                thisMin[j] = (sumL2[j] * sumX[j] - sumL[j] * sumXL[j]) / D;
                if (thisMin[j] > 0) {
                    thisMin[j] = 0;
                    thisScale[j] = sumXL[j] / sumL2[j];
                }
            }
        }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < 8; j++) {
                float diff = thisScale[j] * Laux[j][i] + thisMin[j] - x[32 * j + i];
                diff = diff * diff;
                cur[j] += w[32 * j + i] * diff;
            }
        for (int j = 0; j < 8; j++) {
            if (ok[j] && cur[j] < best[j]) {
                memcpy(L + 32 * j, Laux[j], N);
                best[j] = cur[j];
                scale[j] = thisScale[j];
                mn[j] = thisMin[j];
            }
        }
    }
    for (int j = 0; j < 8; j++) if (live[j]) { mins[j] = -mn[j]; scales[j] = scale[j]; }
}

static inline void k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) { *d = q[j] & 63; *m = q[j + 4] & 63; }
    else { *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
}

// The weights avX + |x| of each sub-block (avX = sqrt(mean x²)), then qkx2_fit8.
static void q4_k_fit1_scalar(const float *xb, uint8_t *L, float *scales, float *mins) {
    float w256[256];
    for (int j = 0; j < 8; j++) {
        float sumX2 = 0;
        for (int l = 0; l < 32; l++) sumX2 += xb[32 * j + l] * xb[32 * j + l];
        float avX = sqrtf(sumX2 / 32);
        for (int l = 0; l < 32; l++) w256[32 * j + l] = avX + fabsf(xb[32 * j + l]);
    }
    qkx2_fit8(xb, w256, L, scales, mins);
}

// The final codes of one Q4_K sub-block of 32 from its stored scale d (non-zero) and min dm.
static void q4_k_codes_scalar(const float *x, float d, float dm, uint8_t *L) {
    for (int ii = 0; ii < 32; ii++) {
        int l = nearest_int((x[ii] + dm) / d);
        L[ii] = (uint8_t)(l < 0 ? 0 : (l > 15 ? 15 : l));
    }
}

// The fits of `count` consecutive blocks (L, scales and mins of block k at 256 k, 8 k, 8 k).
static void q4_k_fit_scalar(const float *x, int count, uint8_t *L, float *scales, float *mins) {
    for (int k = 0; k < count; k++) q4_k_fit1_scalar(x + 256 * k, L + 256 * k, scales + 8 * k, mins + 8 * k);
}

typedef void (*qk_fit8_fn)(const float *, int, uint8_t *, float *, float *);
typedef void (*qk_codes4_fn)(const float *, float, float, uint8_t *);

static inline long q4_k_body(const float *x, uint8_t *out, size_t blocks, qk_fit8_fn fit, qk_codes4_fn codes) {
    long bad = -1;
    uint8_t pairL[512];
    float pairMins[16], pairScales[16];
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b; uint8_t *y = out + 144 * b;
        uint8_t *sc = y + 4, *qs = y + 16;
        float maxScale = 0, maxMin = 0;
        // The fits of two blocks at a time (they are independent of each other).
        if (b % 2 == 0) fit(xb, blocks - b >= 2 ? 2 : 1, pairL, pairScales, pairMins);
        uint8_t *L = pairL + 256 * (b % 2);
        const float *scales = pairScales + 8 * (b % 2), *mins = pairMins + 8 * (b % 2);
        for (int j = 0; j < 8; j++) {
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        float invScale = maxScale > 0 ? 63.f / maxScale : 0.f;
        float invMin = maxMin > 0 ? 63.f / maxMin : 0.f;
        memset(sc, 0, 12);
        for (int j = 0; j < 8; j++) {
            uint8_t ls = (uint8_t)nearest_int(invScale * scales[j]);
            uint8_t lm = (uint8_t)nearest_int(invMin * mins[j]);
            ls = ls > 63 ? 63 : ls;
            lm = lm > 63 ? 63 : lm;
            if (j < 4) { sc[j] = ls; sc[j + 4] = lm; }
            else {
                sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
                sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
                sc[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        uint16_t dh = qk_quant_f32_to_f16(maxScale / 63.f), mh = qk_quant_f32_to_f16(maxMin / 63.f);
        if (bad < 0 && (is_inf16(dh) || is_inf16(mh))) bad = (long)b;
        wr16(y, dh); wr16(y + 2, mh);
        float dAll = qk_quant_f16_to_f32(dh), mAll = qk_quant_f16_to_f32(mh);
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            k4_scale_min(j, sc, &s, &m);
            const float d = dAll * s;
            if (!d) continue;
            codes(xb + 32 * j, d, mAll * m, L + 32 * j);
        }
        for (int j = 0; j < 256; j += 64) {
            for (int l = 0; l < 32; l++) qs[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            qs += 32;
        }
    }
    return bad;
}

// ggml's make_qx_quants(16, 32, x, L, 1, NULL) — a symmetric fit with weights x² that tries 18
// inverse scales around -32/max — for the sixteen sub-blocks of a Q6_K block at once, with each
// sub-block's sums in the reference order (identical floats) and the sixteen chains interleaved.
static void qx_fit16(const float *x, int8_t *L, float *scales) {
    enum { N = 16, NMAX = 32, B = 16 };
    float max[B], iscale[B], sumLX[B], sumL2[B], scale[B], best[B];
    int live[B];
    for (int j = 0; j < B; j++) {
        float amax = 0; max[j] = 0;
        for (int i = 0; i < N; i++) { float ax = fabsf(x[16 * j + i]); if (ax > amax) { amax = ax; max[j] = x[16 * j + i]; } }
        live[j] = !(amax < 1e-15f);
        if (!live[j]) { for (int i = 0; i < N; i++) L[16 * j + i] = 0; scales[j] = 0.f; }
        iscale[j] = live[j] ? -NMAX / max[j] : 0;
        sumLX[j] = sumL2[j] = 0;
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < B; j++) {
            if (!live[j]) continue;
            const float xi = x[16 * j + i];
            int l = nearest_int(iscale[j] * xi);
            l = l < -NMAX ? -NMAX : (l > NMAX - 1 ? NMAX - 1 : l);
            L[16 * j + i] = (int8_t)(l + NMAX);
            float w = xi * xi;
            sumLX[j] += w * xi * l;
            sumL2[j] += w * l * l;
        }
    for (int j = 0; j < B; j++) {
        scale[j] = sumL2[j] ? sumLX[j] / sumL2[j] : 0.0f;
        best[j] = scale[j] * sumLX[j];
    }
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        for (int j = 0; j < B; j++) { iscale[j] = live[j] ? -(NMAX + 0.1f * is) / max[j] : 0; sumLX[j] = sumL2[j] = 0; }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < B; j++) {
                const float xi = x[16 * j + i];
                int l = nearest_int(iscale[j] * xi);
                l = l < -NMAX ? -NMAX : (l > NMAX - 1 ? NMAX - 1 : l);
                float w = xi * xi;
                sumLX[j] += w * xi * l;
                sumL2[j] += w * l * l;
            }
        for (int j = 0; j < B; j++) {
            if (live[j] && sumL2[j] > 0 && sumLX[j] * sumLX[j] > best[j] * sumL2[j]) {
                for (int i = 0; i < N; i++) {
                    int l = nearest_int(iscale[j] * x[16 * j + i]);
                    L[16 * j + i] = (int8_t)(NMAX + (l < -NMAX ? -NMAX : (l > NMAX - 1 ? NMAX - 1 : l)));
                }
                scale[j] = sumLX[j] / sumL2[j];
                best[j] = scale[j] * sumLX[j];
            }
        }
    }
    for (int j = 0; j < B; j++) if (live[j]) scales[j] = scale[j];
}

// The final codes of one Q6_K sub-block of 16 from its stored scale d (non-zero).
static void q6_k_codes_scalar(const float *x, float d, int8_t *L) {
    for (int ii = 0; ii < 16; ii++) {
        int l = nearest_int(x[ii] / d);
        l = l < -32 ? -32 : (l > 31 ? 31 : l);
        L[ii] = (int8_t)(l + 32);
    }
}

typedef void (*qk_fit16_fn)(const float *, int8_t *, float *);
typedef void (*qk_codes6_fn)(const float *, float, int8_t *);

static inline long q6_k_body(const float *x, uint8_t *out, size_t blocks, qk_fit16_fn fit, qk_codes6_fn codes) {
    long bad = -1;
    int8_t L[256];
    float scales[16];
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b; uint8_t *y = out + 210 * b;
        uint8_t *ql = y, *qh = y + 128; int8_t *sc = (int8_t *)(y + 192);
        float maxScale = 0, maxAbsScale = 0;
        fit(xb, L, scales);
        for (int ib = 0; ib < 16; ib++) {
            float as = fabsf(scales[ib]);
            if (as > maxAbsScale) { maxAbsScale = as; maxScale = scales[ib]; }
        }
        if (maxAbsScale < 1e-15f) {
            memset(y, 0, 210);
            continue;
        }
        float iscale = -128.f / maxScale;
        uint16_t dh = qk_quant_f32_to_f16(1 / iscale);
        if (bad < 0 && is_inf16(dh)) bad = (long)b;
        wr16(y + 208, dh);
        for (int ib = 0; ib < 16; ib++) {
            int v = nearest_int(iscale * scales[ib]);
            sc[ib] = (int8_t)(v > 127 ? 127 : v);
        }
        float dAll = qk_quant_f16_to_f32(dh);
        for (int j = 0; j < 16; j++) {
            float d = dAll * sc[j];
            if (!d) continue;
            codes(xb + 16 * j, d, L + 16 * j);
        }
        for (int j = 0; j < 256; j += 128) {
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
    }
    return bad;
}

static long q4_k_scalar(const float *x, uint8_t *out, size_t blocks) { return q4_k_body(x, out, blocks, q4_k_fit_scalar, q4_k_codes_scalar); }
static long q6_k_scalar(const float *x, uint8_t *out, size_t blocks) { return q6_k_body(x, out, blocks, qx_fit16, q6_k_codes_scalar); }

// MARK: AVX2 encoders
//
// Eight-lane versions of the encoders above. Every lane performs the scalar code's float32
// operations in the same order (a multiply, then a separate add: FMA is not enabled for these
// functions, so nothing can be fused), and the per-block scalars (amax, d, id, the FP16 scale) are
// computed with the very same scalar expressions. The inputs must be finite, as the Quantize module
// guarantees (it refuses or sanitises non-finite weights first); the F16/BF16 encoders accept any
// value, NaN included.

#if defined(__x86_64__)
#include <immintrin.h>
#define QK_V __attribute__((target("avx2,f16c")))

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
        uint16_t dh = qk_quant_f32_to_f16(d);
        if (bad < 0 && is_inf16(dh)) bad = (long)b;
        wr16(y, dh);
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
        uint16_t dh = qk_quant_f32_to_f16(d);
        if (bad < 0 && is_inf16(dh)) bad = (long)b;
        wr16(y, dh);
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
        uint16_t dh = qk_quant_f32_to_f16(d), mh = qk_quant_f32_to_f16(lo);
        if (bad < 0 && (is_inf16(dh) || is_inf16(mh))) bad = (long)b;
        wr16(y, dh); wr16(y + 2, mh);
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


// MARK: AVX2 K-quant fits
//
// qkx2_fit8 and qx_fit16 with one sub-block per lane: each lane performs exactly the scalar
// chain of its sub-block (the same float32 operations in the same order, no FMA), so the scales,
// mins and codes are bit-identical; lanes of sub-blocks the scalar code skips are computed too and
// masked out at the end.
#if defined(__x86_64__)
QK_V static inline __m256i nearest_int_v(__m256 f) {
    __m256i i = _mm256_castps_si256(_mm256_add_ps(f, _mm256_set1_ps(12582912.0f)));
    return _mm256_sub_epi32(_mm256_and_si256(i, _mm256_set1_epi32(0x007FFFFF)), _mm256_set1_epi32(0x00400000));
}

// G blocks (block g at x + 256 g) of q4_k_fit1_scalar with one sub-block per lane, the blocks'
// independent accumulation chains interleaved in every loop (they are latency-bound alone).
QK_V static inline __attribute__((always_inline)) void qkx2_lanes(const float *x, uint8_t *L, float *scales, float *mins, const int G) {
    enum { N = 32, NMAX = 15, NSTEP = 20 };
    const float rmin = -1.f, rdelta = 0.1f;
    __m256 xt[2][N], wt[2][N], Laux[2][N];
    __m256i Lt[2][N];
    __m256 mn[2], mx[2], sumW[2], sumX[2], live[2], iscale[2], scale[2], best[2];
    const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    for (int g = 0; g < G; g++) {
        float tx[N][8];
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < N; i++) tx[i][j] = x[256 * g + 32 * j + i];
        for (int i = 0; i < N; i++) xt[g][i] = _mm256_loadu_ps(tx[i]);
        // q4_k_fit1_scalar's weights: avX = sqrt((Σ x²) / 32), w = avX + |x|
        __m256 sumX2 = _mm256_setzero_ps();
        for (int i = 0; i < N; i++) sumX2 = _mm256_add_ps(sumX2, _mm256_mul_ps(xt[g][i], xt[g][i]));
        const __m256 avX = _mm256_sqrt_ps(_mm256_div_ps(sumX2, _mm256_set1_ps(32.0f)));
        for (int i = 0; i < N; i++) wt[g][i] = _mm256_add_ps(avX, _mm256_and_ps(xt[g][i], absMask));
    }
    const __m256i zero = _mm256_setzero_si256(), qmax = _mm256_set1_epi32(NMAX);
    for (int g = 0; g < G; g++) {
        mn[g] = xt[g][0]; mx[g] = xt[g][0]; sumW[g] = wt[g][0]; sumX[g] = _mm256_mul_ps(wt[g][0], xt[g][0]);
    }
    for (int i = 1; i < N; i++)
        for (int g = 0; g < G; g++) {
            mn[g] = _mm256_min_ps(xt[g][i], mn[g]);
            mx[g] = _mm256_max_ps(xt[g][i], mx[g]);
            sumW[g] = _mm256_add_ps(sumW[g], wt[g][i]);
            sumX[g] = _mm256_add_ps(sumX[g], _mm256_mul_ps(wt[g][i], xt[g][i]));
        }
    for (int g = 0; g < G; g++) {
        mn[g] = _mm256_blendv_ps(mn[g], _mm256_setzero_ps(), _mm256_cmp_ps(mn[g], _mm256_setzero_ps(), _CMP_GT_OQ));
        live[g] = _mm256_cmp_ps(mx[g], mn[g], _CMP_NEQ_UQ);
        iscale[g] = _mm256_div_ps(_mm256_set1_ps((float)NMAX), _mm256_sub_ps(mx[g], mn[g]));
        scale[g] = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale[g]);
        best[g] = _mm256_setzero_ps();
    }
    for (int i = 0; i < N; i++)
        for (int g = 0; g < G; g++) {
            __m256i l = nearest_int_v(_mm256_mul_ps(iscale[g], _mm256_sub_ps(xt[g][i], mn[g])));
            l = _mm256_min_epi32(_mm256_max_epi32(l, zero), qmax);
            Lt[g][i] = l;
            __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale[g], _mm256_cvtepi32_ps(l)), mn[g]), xt[g][i]);
            diff = _mm256_mul_ps(diff, diff);
            best[g] = _mm256_add_ps(best[g], _mm256_mul_ps(wt[g][i], diff));
        }
    for (int is = 0; is <= NSTEP; is++) {
        __m256 sumL[2], sumL2[2], sumXL[2], thisScale[2], thisMin[2], cur[2], ok[2];
        for (int g = 0; g < G; g++) {
            iscale[g] = _mm256_div_ps(_mm256_set1_ps(rmin + rdelta * is + NMAX), _mm256_sub_ps(mx[g], mn[g]));
            sumL[g] = _mm256_setzero_ps(); sumL2[g] = _mm256_setzero_ps(); sumXL[g] = _mm256_setzero_ps();
        }
        for (int i = 0; i < N; i++)
            for (int g = 0; g < G; g++) {
                __m256i l = nearest_int_v(_mm256_mul_ps(iscale[g], _mm256_sub_ps(xt[g][i], mn[g])));
                l = _mm256_min_epi32(_mm256_max_epi32(l, zero), qmax);
                const __m256 lf = _mm256_cvtepi32_ps(l), wl = _mm256_mul_ps(wt[g][i], lf);
                Laux[g][i] = lf;
                sumL[g] = _mm256_add_ps(sumL[g], wl);
                sumL2[g] = _mm256_add_ps(sumL2[g], _mm256_mul_ps(wl, lf));
                sumXL[g] = _mm256_add_ps(sumXL[g], _mm256_mul_ps(wl, xt[g][i]));
            }
        for (int g = 0; g < G; g++) {
            const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sumW[g], sumL2[g]), _mm256_mul_ps(sumL[g], sumL[g]));
            ok[g] = _mm256_and_ps(live[g], _mm256_cmp_ps(D, _mm256_setzero_ps(), _CMP_GT_OQ));
            thisScale[g] = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sumW[g], sumXL[g]), _mm256_mul_ps(sumX[g], sumL[g])), D);
            thisMin[g] = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sumL2[g], sumX[g]), _mm256_mul_ps(sumL[g], sumXL[g])), D);
            const __m256 positive = _mm256_cmp_ps(thisMin[g], _mm256_setzero_ps(), _CMP_GT_OQ);
            thisMin[g] = _mm256_blendv_ps(thisMin[g], _mm256_setzero_ps(), positive);
            thisScale[g] = _mm256_blendv_ps(thisScale[g], _mm256_div_ps(sumXL[g], sumL2[g]), positive);
            cur[g] = _mm256_setzero_ps();
        }
        for (int i = 0; i < N; i++)
            for (int g = 0; g < G; g++) {
                __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(thisScale[g], Laux[g][i]), thisMin[g]), xt[g][i]);
                diff = _mm256_mul_ps(diff, diff);
                cur[g] = _mm256_add_ps(cur[g], _mm256_mul_ps(wt[g][i], diff));
            }
        for (int g = 0; g < G; g++) {
            const __m256 take = _mm256_and_ps(ok[g], _mm256_cmp_ps(cur[g], best[g], _CMP_LT_OQ));
            if (_mm256_testz_ps(take, take)) continue;
            const __m256i takeI = _mm256_castps_si256(take);
            for (int i = 0; i < N; i++) Lt[g][i] = _mm256_blendv_epi8(Lt[g][i], _mm256_cvtps_epi32(Laux[g][i]), takeI);
            best[g] = _mm256_blendv_ps(best[g], cur[g], take);
            scale[g] = _mm256_blendv_ps(scale[g], thisScale[g], take);
            mn[g] = _mm256_blendv_ps(mn[g], thisMin[g], take);
        }
    }
    for (int g = 0; g < G; g++) {
        const __m256i liveI = _mm256_castps_si256(live[g]);
        int32_t lt[N][8];
        for (int i = 0; i < N; i++) _mm256_storeu_si256((__m256i *)lt[i], _mm256_and_si256(Lt[g][i], liveI));
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < N; i++) L[256 * g + 32 * j + i] = (uint8_t)lt[i][j];
        // -mn as the scalar code's unary minus: flip the sign bit (0 - mn would turn -0 into +0).
        _mm256_storeu_ps(mins + 8 * g, _mm256_xor_ps(mn[g], _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u))));
        _mm256_storeu_ps(scales + 8 * g, _mm256_and_ps(scale[g], live[g]));
    }
}

QK_V static void qkx2_fit_avx2(const float *x, int count, uint8_t *L, float *scales, float *mins) {
    if (count == 2) qkx2_lanes(x, L, scales, mins, 2); else qkx2_lanes(x, L, scales, mins, 1);
}

QK_V static void q4_k_codes_avx2(const float *x, float d, float dm, uint8_t *L) {
    const __m256 vd = _mm256_set1_ps(d), vdm = _mm256_set1_ps(dm);
    int32_t l[32];
    for (int k = 0; k < 4; k++) {
        __m256i q = nearest_int_v(_mm256_div_ps(_mm256_add_ps(_mm256_loadu_ps(x + 8 * k), vdm), vd));
        q = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_setzero_si256()), _mm256_set1_epi32(15));
        _mm256_storeu_si256((__m256i *)(l + 8 * k), q);
    }
    for (int i = 0; i < 32; i++) L[i] = (uint8_t)l[i];
}

QK_V static void q6_k_codes_avx2(const float *x, float d, int8_t *L) {
    const __m256 vd = _mm256_set1_ps(d);
    int32_t l[16];
    for (int k = 0; k < 2; k++) {
        __m256i q = nearest_int_v(_mm256_div_ps(_mm256_loadu_ps(x + 8 * k), vd));
        q = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_set1_epi32(-32)), _mm256_set1_epi32(31));
        _mm256_storeu_si256((__m256i *)(l + 8 * k), _mm256_add_epi32(q, _mm256_set1_epi32(32)));
    }
    for (int i = 0; i < 16; i++) L[i] = (int8_t)l[i];
}

// G groups of eight sub-blocks of 16 (sub-block jj of group g at x + 128 g + 16 jj) of qx_fit16,
// the groups' independent chains interleaved in every loop. Here |iscale · x| <= 32.9 (|x| <= |max|),
// so nearest_int followed by the clamp equals rounding with the same magic number in float and
// clamping in float, which leaves the codes as floats for the sums; w = x² and w·x are the
// scalar code's products, computed once.
QK_V static inline __attribute__((always_inline)) void qx_fit_lanes(const float *x, int8_t *L, float *scales, const int G) {
    enum { N = 16, NMAX = 32 };
    __m256 xt[2][N], wt[2][N], wxt[2][N], Lt[2][N], Laux[2][N];
    __m256 amax[2], max[2], live[2], iscale[2], sumLX[2], sumL2[2], scale[2], best[2];
    for (int g = 0; g < G; g++) {
        float tx[N][8];
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < N; i++) tx[i][j] = x[128 * g + 16 * j + i];
        for (int i = 0; i < N; i++) {
            xt[g][i] = _mm256_loadu_ps(tx[i]);
            wt[g][i] = _mm256_mul_ps(xt[g][i], xt[g][i]);
            wxt[g][i] = _mm256_mul_ps(wt[g][i], xt[g][i]);
        }
    }
    const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 magic = _mm256_set1_ps(12582912.0f), lo = _mm256_set1_ps(-NMAX), hi = _mm256_set1_ps(NMAX - 1);
    for (int g = 0; g < G; g++) { amax[g] = _mm256_setzero_ps(); max[g] = _mm256_setzero_ps(); }
    for (int i = 0; i < N; i++)
        for (int g = 0; g < G; g++) {
            const __m256 ax = _mm256_and_ps(xt[g][i], absMask);
            const __m256 gt = _mm256_cmp_ps(ax, amax[g], _CMP_GT_OQ);
            amax[g] = _mm256_blendv_ps(amax[g], ax, gt);
            max[g] = _mm256_blendv_ps(max[g], xt[g][i], gt);
        }
    for (int g = 0; g < G; g++) {
        live[g] = _mm256_cmp_ps(amax[g], _mm256_set1_ps(1e-15f), _CMP_NLT_UQ);
        iscale[g] = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps((float)-NMAX), max[g]), live[g]);
        sumLX[g] = _mm256_setzero_ps(); sumL2[g] = _mm256_setzero_ps();
    }
    for (int i = 0; i < N; i++)
        for (int g = 0; g < G; g++) {
            const __m256 r = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(iscale[g], xt[g][i]), magic), magic);
            const __m256 lf = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
            Lt[g][i] = lf;
            sumLX[g] = _mm256_add_ps(sumLX[g], _mm256_mul_ps(wxt[g][i], lf));
            sumL2[g] = _mm256_add_ps(sumL2[g], _mm256_mul_ps(_mm256_mul_ps(wt[g][i], lf), lf));
        }
    for (int g = 0; g < G; g++) {
        scale[g] = _mm256_and_ps(_mm256_div_ps(sumLX[g], sumL2[g]), _mm256_cmp_ps(sumL2[g], _mm256_setzero_ps(), _CMP_NEQ_UQ));
        best[g] = _mm256_mul_ps(scale[g], sumLX[g]);
    }
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        for (int g = 0; g < G; g++) {
            iscale[g] = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(-(NMAX + 0.1f * is)), max[g]), live[g]);
            sumLX[g] = _mm256_setzero_ps(); sumL2[g] = _mm256_setzero_ps();
        }
        for (int i = 0; i < N; i++)
            for (int g = 0; g < G; g++) {
                const __m256 r = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(iscale[g], xt[g][i]), magic), magic);
                const __m256 lf = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
                Laux[g][i] = lf;
                sumLX[g] = _mm256_add_ps(sumLX[g], _mm256_mul_ps(wxt[g][i], lf));
                sumL2[g] = _mm256_add_ps(sumL2[g], _mm256_mul_ps(_mm256_mul_ps(wt[g][i], lf), lf));
            }
        for (int g = 0; g < G; g++) {
            const __m256 take = _mm256_and_ps(_mm256_and_ps(live[g], _mm256_cmp_ps(sumL2[g], _mm256_setzero_ps(), _CMP_GT_OQ)),
                                              _mm256_cmp_ps(_mm256_mul_ps(sumLX[g], sumLX[g]), _mm256_mul_ps(best[g], sumL2[g]), _CMP_GT_OQ));
            if (_mm256_testz_ps(take, take)) continue;
            for (int i = 0; i < N; i++) Lt[g][i] = _mm256_blendv_ps(Lt[g][i], Laux[g][i], take);
            const __m256 sc = _mm256_div_ps(sumLX[g], sumL2[g]);
            scale[g] = _mm256_blendv_ps(scale[g], sc, take);
            best[g] = _mm256_blendv_ps(best[g], _mm256_mul_ps(sc, sumLX[g]), take);
        }
    }
    const __m256i bias = _mm256_set1_epi32(NMAX);
    for (int g = 0; g < G; g++) {
        const __m256i liveI = _mm256_castps_si256(live[g]);
        int32_t lt[N][8];
        for (int i = 0; i < N; i++)
            _mm256_storeu_si256((__m256i *)lt[i], _mm256_and_si256(_mm256_add_epi32(_mm256_cvtps_epi32(Lt[g][i]), bias), liveI));
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < N; i++) L[128 * g + 16 * j + i] = (int8_t)lt[i][j];
        _mm256_storeu_ps(scales + 8 * g, _mm256_and_ps(scale[g], live[g]));
    }
}

QK_V static void qx_fit16_avx2(const float *x, int8_t *L, float *scales) { qx_fit_lanes(x, L, scales, 2); }

static long q4_k_avx2(const float *x, uint8_t *out, size_t blocks) { return q4_k_body(x, out, blocks, qkx2_fit_avx2, q4_k_codes_avx2); }
static long q6_k_avx2(const float *x, uint8_t *out, size_t blocks) { return q6_k_body(x, out, blocks, qx_fit16_avx2, q6_k_codes_avx2); }
#endif

#if defined(__x86_64__)
static int ggml_isa(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) { v = qk_cpu_has_f16c_avx2(); __atomic_store_n(&cached, v, __ATOMIC_RELAXED); }
    return v;
}

#define QK_DISPATCH(vec, scalar) return ggml_isa() ? vec : scalar
#else
#define QK_DISPATCH(vec, scalar) return scalar
#endif

long qk_quant_q8_0_encode(const float *x, uint8_t *out, size_t blocks) { int nf; (void)nf; QK_DISPATCH(q8_0_avx2(x, out, blocks, &nf), q8_0_scalar(x, out, blocks)); }
long qk_quant_q4_0_encode(const float *x, uint8_t *out, size_t blocks) { int nf; (void)nf; QK_DISPATCH(q4_0_avx2(x, out, blocks, &nf), q4_0_scalar(x, out, blocks)); }
long qk_quant_q4_1_encode(const float *x, uint8_t *out, size_t blocks) { int nf; (void)nf; QK_DISPATCH(q4_1_avx2(x, out, blocks, &nf), q4_1_scalar(x, out, blocks)); }
long qk_quant_q5_0_encode(const float *x, uint8_t *out, size_t blocks) { int nf; (void)nf; QK_DISPATCH(q5_0_avx2(x, out, blocks, &nf), q5_0_scalar(x, out, blocks)); }
long qk_quant_q5_1_encode(const float *x, uint8_t *out, size_t blocks) { int nf; (void)nf; QK_DISPATCH(q5_1_avx2(x, out, blocks, &nf), q5_1_scalar(x, out, blocks)); }
long qk_quant_q4_k_encode(const float *x, uint8_t *out, size_t blocks) { QK_DISPATCH(q4_k_avx2(x, out, blocks), q4_k_scalar(x, out, blocks)); }
long qk_quant_q6_k_encode(const float *x, uint8_t *out, size_t blocks) { QK_DISPATCH(q6_k_avx2(x, out, blocks), q6_k_scalar(x, out, blocks)); }
void qk_quant_f16_encode(const float *x, uint8_t *out, size_t n) {
#if defined(__x86_64__)
    if (ggml_isa()) { f16_avx2(x, out, n); return; }
#endif
    f16_scalar(x, out, n);
}
void qk_quant_bf16_encode(const float *x, uint8_t *out, size_t n) {
#if defined(__x86_64__)
    if (ggml_isa()) { bf16_avx2(x, out, n); return; }
#endif
    bf16_scalar(x, out, n);
}

long qk_quant_ggml_encode_checked(uint32_t type, const float *x, uint8_t *out, size_t blocks, int *nonFinite) {
#if defined(__x86_64__)
    if (ggml_isa()) {
        switch (type) {
        case 2: return q4_0_avx2(x, out, blocks, nonFinite);
        case 3: return q4_1_avx2(x, out, blocks, nonFinite);
        case 6: return q5_0_avx2(x, out, blocks, nonFinite);
        case 7: return q5_1_avx2(x, out, blocks, nonFinite);
        case 8: return q8_0_avx2(x, out, blocks, nonFinite);
        default: break;
        }
    }
#endif
    size_t perBlock;
    switch (type) {
    case 2: case 3: case 6: case 7: case 8: perBlock = 32; break;
    case 12: case 14: perBlock = 256; break;
    default: *nonFinite = 0; return -2;
    }
    *nonFinite = qk_quant_first_nonfinite(x, blocks * perBlock) >= 0;
    if (*nonFinite) return -1;
    switch (type) {
    case 2: return qk_quant_q4_0_encode(x, out, blocks);
    case 3: return qk_quant_q4_1_encode(x, out, blocks);
    case 6: return qk_quant_q5_0_encode(x, out, blocks);
    case 7: return qk_quant_q5_1_encode(x, out, blocks);
    case 8: return qk_quant_q8_0_encode(x, out, blocks);
    case 12: return qk_quant_q4_k_encode(x, out, blocks);
    default: return qk_quant_q6_k_encode(x, out, blocks);
    }
}

long qk_quant_ggml_encode_portable(uint32_t type, const float *x, uint8_t *out, size_t blocks) {
    switch (type) {
    case 1: f16_scalar(x, out, blocks); return -1;
    case 30: bf16_scalar(x, out, blocks); return -1;
    case 2: return q4_0_scalar(x, out, blocks);
    case 3: return q4_1_scalar(x, out, blocks);
    case 6: return q5_0_scalar(x, out, blocks);
    case 7: return q5_1_scalar(x, out, blocks);
    case 8: return q8_0_scalar(x, out, blocks);
    case 12: return q4_k_scalar(x, out, blocks);
    case 14: return q6_k_scalar(x, out, blocks);
    default: return -2;
    }
}

// MARK: Decoders (gguf-py operation order)

static const int8_t kIQ4NL[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
static const int8_t kMXFP4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

static inline float e8m0_half(uint8_t e) {
    return gf(e < 2 ? (0x00200000u << e) : ((uint32_t)(e - 1) << 23));
}

static void dec_q4_0(const uint8_t *p, float *y) {
    float d = h2f(p);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((int)(p[2 + j] & 0xF) - 8);
        y[j + 16] = d * (float)((int)(p[2 + j] >> 4) - 8);
    }
}
static void dec_q4_1(const uint8_t *p, float *y) {
    float d = h2f(p), m = h2f(p + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(p[4 + j] & 0xF) + m;
        y[j + 16] = d * (float)(p[4 + j] >> 4) + m;
    }
}
static void dec_q5_0(const uint8_t *p, float *y) {
    float d = h2f(p);
    uint32_t qh = (uint32_t)p[2] | ((uint32_t)p[3] << 8) | ((uint32_t)p[4] << 16) | ((uint32_t)p[5] << 24);
    for (int j = 0; j < 32; j++) {
        int lo = j < 16 ? (p[6 + j] & 0xF) : (p[6 + j - 16] >> 4);
        int q = lo | (int)(((qh >> j) & 1) << 4);
        y[j] = d * (float)(q - 16);
    }
}
static void dec_q5_1(const uint8_t *p, float *y) {
    float d = h2f(p), m = h2f(p + 2);
    uint32_t qh = (uint32_t)p[4] | ((uint32_t)p[5] << 8) | ((uint32_t)p[6] << 16) | ((uint32_t)p[7] << 24);
    for (int j = 0; j < 32; j++) {
        int lo = j < 16 ? (p[8 + j] & 0xF) : (p[8 + j - 16] >> 4);
        int q = lo | (int)(((qh >> j) & 1) << 4);
        y[j] = d * (float)q + m;
    }
}
static void dec_q8_0(const uint8_t *p, float *y) {
    float d = h2f(p);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)p[2 + j] * d;
}
static void dec_q8_1(const uint8_t *p, float *y) {
    float d = h2f(p);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)p[4 + j] * d;
}
static void dec_q2_k(const uint8_t *p, float *y) {
    const uint8_t *scales = p, *qs = p + 16;
    float d = h2f(p + 80), dmin = h2f(p + 82);
    for (int e = 0; e < 256; e++) {
        int half = e / 128, s = (e % 128) / 32, l = e % 32;
        int q = (qs[half * 32 + l] >> (2 * s)) & 3;
        uint8_t sc = scales[e / 16];
        float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
        y[e] = dl * (float)q - ml;
    }
}
static void dec_q3_k(const uint8_t *p, float *y) {
    const uint8_t *hmask = p, *qs = p + 32, *scales = p + 96;
    float d = h2f(p + 108);
    for (int e = 0; e < 256; e++) {
        int j = e / 16;
        int lsc = j < 8 ? (scales[j] & 0xF) : (scales[j - 8] >> 4);
        int hsc = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        float dl = d * (float)((lsc | (hsc << 4)) - 32);
        int half = e / 128, s = (e % 128) / 32, l = e % 32;
        int ql = (qs[half * 32 + l] >> (2 * s)) & 3;
        int hb = (hmask[e % 32] >> (e / 32)) & 1;
        y[e] = dl * (float)(ql - ((hb ^ 1) << 2));
    }
}
static void dec_q4_k(const uint8_t *p, float *y) {
    float d = h2f(p), dmin = h2f(p + 2);
    const uint8_t *sc = p + 4, *qs = p + 16;
    for (int e = 0; e < 256; e++) {
        uint8_t s, m;
        k4_scale_min(e / 32, sc, &s, &m);
        int chunk = e / 64, nib = (e % 64) / 32, l = e % 32;
        int q = (qs[chunk * 32 + l] >> (4 * nib)) & 0xF;
        y[e] = (d * (float)s) * (float)q - dmin * (float)m;
    }
}
static void dec_q5_k(const uint8_t *p, float *y) {
    float d = h2f(p), dmin = h2f(p + 2);
    const uint8_t *sc = p + 4, *qh = p + 16, *qs = p + 48;
    for (int e = 0; e < 256; e++) {
        uint8_t s, m;
        k4_scale_min(e / 32, sc, &s, &m);
        int chunk = e / 64, nib = (e % 64) / 32, l = e % 32;
        int q = ((qs[chunk * 32 + l] >> (4 * nib)) & 0xF) | (((qh[l] >> (e / 32)) & 1) << 4);
        y[e] = (d * (float)s) * (float)q - dmin * (float)m;
    }
}
static void dec_q6_k(const uint8_t *p, float *y) {
    const uint8_t *ql = p, *qh = p + 128; const int8_t *sc = (const int8_t *)(p + 192);
    float d = h2f(p + 208);
    for (int e = 0; e < 256; e++) {
        int half = e / 128, r = e % 128;
        int lo = (ql[half * 64 + (r % 64)] >> (4 * (r / 64))) & 0xF;
        int hi = (qh[half * 32 + (r % 32)] >> (2 * (r / 32))) & 3;
        y[e] = (d * (float)sc[e / 16]) * (float)((lo | (hi << 4)) - 32);
    }
}
static void dec_iq4_nl(const uint8_t *p, float *y) {
    float d = h2f(p);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)kIQ4NL[p[2 + j] & 0xF];
        y[j + 16] = d * (float)kIQ4NL[p[2 + j] >> 4];
    }
}
static void dec_iq4_xs(const uint8_t *p, float *y) {
    float d = h2f(p);
    uint16_t sh = rd16(p + 2);
    const uint8_t *sl = p + 4, *qs = p + 8;
    for (int ib = 0; ib < 8; ib++) {
        int ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((sh >> (2 * ib)) & 3) << 4);
        float dl = d * (float)(ls - 32);
        for (int j = 0; j < 16; j++) {
            y[32 * ib + j] = dl * (float)kIQ4NL[qs[16 * ib + j] & 0xF];
            y[32 * ib + j + 16] = dl * (float)kIQ4NL[qs[16 * ib + j] >> 4];
        }
    }
}
static void dec_mxfp4(const uint8_t *p, float *y) {
    float d = e8m0_half(p[0]);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)kMXFP4[p[1 + j] & 0xF];
        y[j + 16] = d * (float)kMXFP4[p[1 + j] >> 4];
    }
}
static inline float trit(uint8_t q, uint8_t pow3) {
    uint8_t v = (uint8_t)(q * pow3);
    return (float)((int)(((uint16_t)v * 3) >> 8) - 1);
}
static void dec_tq1_0(const uint8_t *p, float *y) {
    static const uint8_t pw[5] = {1, 3, 9, 27, 81};
    const uint8_t *qs = p, *qh = p + 48;
    float d = h2f(p + 52);
    for (int n = 0; n < 5; n++) for (int l = 0; l < 32; l++) y[n * 32 + l] = d * trit(qs[l], pw[n]);
    for (int n = 0; n < 5; n++) for (int l = 0; l < 16; l++) y[160 + n * 16 + l] = d * trit(qs[32 + l], pw[n]);
    for (int n = 0; n < 4; n++) for (int l = 0; l < 4; l++) y[240 + n * 4 + l] = d * trit(qh[l], pw[n]);
}
static void dec_tq2_0(const uint8_t *p, float *y) {
    float d = h2f(p + 64);
    for (int e = 0; e < 256; e++) {
        int half = e / 128, s = (e % 128) / 32, l = e % 32;
        y[e] = d * (float)((int)((p[half * 32 + l] >> (2 * s)) & 3) - 1);
    }
}

int qk_quant_ggml_decode(uint32_t type, const uint8_t *in, float *out, size_t blocks) {
    void (*f)(const uint8_t *, float *) = 0;
    size_t bytes = 0, n = 0;
    switch (type) {
    case 0: for (size_t i = 0; i < blocks; i++) memcpy(out + i, in + 4 * i, 4); return 0;
    case 1: for (size_t i = 0; i < blocks; i++) out[i] = h2f(in + 2 * i); return 0;
    case 30: for (size_t i = 0; i < blocks; i++) out[i] = bf16_to_f32(rd16(in + 2 * i)); return 0;
    case 2: f = dec_q4_0; bytes = 18; n = 32; break;
    case 3: f = dec_q4_1; bytes = 20; n = 32; break;
    case 6: f = dec_q5_0; bytes = 22; n = 32; break;
    case 7: f = dec_q5_1; bytes = 24; n = 32; break;
    case 8: f = dec_q8_0; bytes = 34; n = 32; break;
    case 9: f = dec_q8_1; bytes = 36; n = 32; break;
    case 10: f = dec_q2_k; bytes = 84; n = 256; break;
    case 11: f = dec_q3_k; bytes = 110; n = 256; break;
    case 12: f = dec_q4_k; bytes = 144; n = 256; break;
    case 13: f = dec_q5_k; bytes = 176; n = 256; break;
    case 14: f = dec_q6_k; bytes = 210; n = 256; break;
    case 20: f = dec_iq4_nl; bytes = 18; n = 32; break;
    case 23: f = dec_iq4_xs; bytes = 136; n = 256; break;
    case 34: f = dec_tq1_0; bytes = 54; n = 256; break;
    case 35: f = dec_tq2_0; bytes = 66; n = 256; break;
    case 39: f = dec_mxfp4; bytes = 17; n = 32; break;
    default: return -1;
    }
    for (size_t b = 0; b < blocks; b++) f(in + bytes * b, out + n * b);
    return 0;
}
