// GGUF k-quant encoders of the Quantize module: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (formats.md §2.7),
// and the non-linear IQ4_NL and IQ4_XS.
//
// They follow ggml's reference quantizers without an importance matrix (`quantize_row_q4_K_ref`
// with `make_qkx2_quants`, `quantize_row_q6_K_ref` with `make_qx_quants`, ggml
// src/ggml-quants.c), and with one (`quantize_row_q4_K_impl` … with quant_weights, the path of
// llama-quantize --imatrix), re-implemented step by step, with AVX2 versions of the fits (Q4_K,
// Q5_K, Q6_K, and the weighted Q3_K) and AVX-512 versions (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; Q4_K,
// Q5_K, Q6_K weighted) that compute the very same floats, one sub-block per lane, chosen at run
// time (qk_isa_avx512, qk_isa_avx2; the scalar code is the portable path). Every encoder returns -1,
// or the index of the first block whose FP16 scale overflowed to infinity. ggml_kernels.c
// dispatches to them from its table.
#include "ggml_kernels.h"


// MARK: K-quants (ggml reference, no importance matrix)


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
            int l = qk_nearest_int(iscale[j] * (xi - mn[j]));
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
                int l = qk_nearest_int(iscale[j] * (xi - mn[j]));
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
        int l = qk_nearest_int((x[ii] + dm) / d);
        L[ii] = (uint8_t)(l < 0 ? 0 : (l > 15 ? 15 : l));
    }
}

// The fits of `count` consecutive blocks (L, scales and mins of block k at 256 k, 8 k, 8 k).
static void q4_k_fit_scalar(const float *x, int count, uint8_t *L, float *scales, float *mins) {
    for (int k = 0; k < count; k++) q4_k_fit1_scalar(x + 256 * k, L + 256 * k, scales + 8 * k, mins + 8 * k);
}

/* The 12 bytes of 6-bit sub-block scales and mins that Q4_K and Q5_K share (ggml's
 * quantize_row_q4_K_ref / q5_K_ref): each quantized against the largest, low 4 bits packed with
 * the high 2 bits of the last four in the top bits of the first eight. */
static void pack_scales_mins_k4(uint8_t *sc, const float *scales, const float *mins, float maxScale, float maxMin) {
    float invScale = maxScale > 0 ? 63.f / maxScale : 0.f;
    float invMin = maxMin > 0 ? 63.f / maxMin : 0.f;
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)qk_nearest_int(invScale * scales[j]);
        uint8_t lm = (uint8_t)qk_nearest_int(invMin * mins[j]);
        ls = ls > 63 ? 63 : ls;
        lm = lm > 63 ? 63 : lm;
        if (j < 4) { sc[j] = ls; sc[j + 4] = lm; }
        else {
            sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
}


typedef void (*qk_fit8_fn)(const float *, int, uint8_t *, float *, float *);
typedef void (*qk_codes4_fn)(const float *, float, float, uint8_t *);

// The end of a Q4_K block once its FP16 d/dmin (y, y + 2) and 6-bit scales and mins (y + 4) are
// stored: the codes requantized with the stored scales (sub-blocks whose scale is 0 keep the
// fit's codes in L), packed two to a byte.
static inline void q4_k_finish(const float *xb, uint8_t *y, uint8_t *L, qk_codes4_fn codes) {
    const uint8_t *sc = y + 4;
    uint8_t *qs = y + 16;
    const float dAll = qk_h2f(y), mAll = qk_h2f(y + 2);
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        qk_k4_scale_min(j, sc, &s, &m);
        const float d = dAll * s;
        if (!d) continue;
        codes(xb + 32 * j, d, mAll * m, L + 32 * j);
    }
    for (int j = 0; j < 256; j += 64) {
        for (int l = 0; l < 32; l++) qs[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        qs += 32;
    }
}

static inline long q4_k_body(const float *x, uint8_t *out, size_t blocks, qk_fit8_fn fit, qk_codes4_fn codes) {
    long bad = -1;
    uint8_t pairL[512];
    float pairMins[16], pairScales[16];
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b; uint8_t *y = out + 144 * b;
        uint8_t *sc = y + 4;
        float maxScale = 0, maxMin = 0;
        // The fits of two blocks at a time (they are independent of each other).
        if (b % 2 == 0) fit(xb, blocks - b >= 2 ? 2 : 1, pairL, pairScales, pairMins);
        uint8_t *L = pairL + 256 * (b % 2);
        const float *scales = pairScales + 8 * (b % 2), *mins = pairMins + 8 * (b % 2);
        for (int j = 0; j < 8; j++) {
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        pack_scales_mins_k4(sc, scales, mins, maxScale, maxMin);
        uint16_t dh = qk_f16_from_f32(maxScale / 63.f), mh = qk_f16_from_f32(maxMin / 63.f);
        if (bad < 0 && (qk_is_inf16(dh) || qk_is_inf16(mh))) bad = (long)b;
        qk_wr16(y, dh); qk_wr16(y + 2, mh);
        q4_k_finish(xb, y, L, codes);
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
            int l = qk_nearest_int(iscale[j] * xi);
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
                int l = qk_nearest_int(iscale[j] * xi);
                l = l < -NMAX ? -NMAX : (l > NMAX - 1 ? NMAX - 1 : l);
                float w = xi * xi;
                sumLX[j] += w * xi * l;
                sumL2[j] += w * l * l;
            }
        for (int j = 0; j < B; j++) {
            if (live[j] && sumL2[j] > 0 && sumLX[j] * sumLX[j] > best[j] * sumL2[j]) {
                for (int i = 0; i < N; i++) {
                    int l = qk_nearest_int(iscale[j] * x[16 * j + i]);
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
        int l = qk_nearest_int(x[ii] / d);
        l = l < -32 ? -32 : (l > 31 ? 31 : l);
        L[ii] = (int8_t)(l + 32);
    }
}

typedef void (*qk_fit16_fn)(const float *, int8_t *, float *);
typedef void (*qk_codes6_fn)(const float *, float, int8_t *);

// The rest of a Q6_K block from the sixteen fitted sub-block scales and codes L: the 8-bit scales
// against the largest, the FP16 d (a block of zeros when every scale is below GROUP_MAX_EPS), the
// codes requantized with the stored scales (sub-blocks whose scale is 0 keep the fit's codes),
// packed. Returns 1 when the FP16 d overflowed.
static inline int q6_k_finish(const float *xb, uint8_t *y, int8_t *L, const float *scales, qk_codes6_fn codes) {
    uint8_t *ql = y, *qh = y + 128; int8_t *sc = (int8_t *)(y + 192);
    float maxScale = 0, maxAbsScale = 0;
    for (int ib = 0; ib < 16; ib++) {
        float as = fabsf(scales[ib]);
        if (as > maxAbsScale) { maxAbsScale = as; maxScale = scales[ib]; }
    }
    if (maxAbsScale < 1e-15f) {
        memset(y, 0, 210);
        return 0;
    }
    float iscale = -128.f / maxScale;
    uint16_t dh = qk_f16_from_f32(1 / iscale);
    qk_wr16(y + 208, dh);
    for (int ib = 0; ib < 16; ib++) {
        int v = qk_nearest_int(iscale * scales[ib]);
        sc[ib] = (int8_t)(v > 127 ? 127 : v);
    }
    float dAll = qk_f32_from_f16(dh);
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
    return qk_is_inf16(dh);
}

static inline long q6_k_body(const float *x, uint8_t *out, size_t blocks, qk_fit16_fn fit, qk_codes6_fn codes) {
    long bad = -1;
    int8_t L[256];
    float scales[16];
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b; uint8_t *y = out + 210 * b;
        fit(xb, L, scales);
        if (q6_k_finish(xb, y, L, scales, codes) && bad < 0) bad = (long)b;
    }
    return bad;
}

static long q4_k_scalar(const float *x, uint8_t *out, size_t blocks) { return q4_k_body(x, out, blocks, q4_k_fit_scalar, q4_k_codes_scalar); }
static long q6_k_scalar(const float *x, uint8_t *out, size_t blocks) { return q6_k_body(x, out, blocks, qx_fit16, q6_k_codes_scalar); }



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

// G blocks (block g at x + 256 g) of make_qkx2_quants(32, nmax, …, rmin, rdelta, nstep, false)
// with one sub-block per lane, the blocks' independent accumulation chains interleaved in every
// loop (they are latency-bound alone). The weights are q4_k_fit1_scalar's avX + |x| when qw is
// NULL, else the importance-weighted impls' qw · sqrt(σ² + x²) with block g's importance at
// qw + 256 g and its σ² in sigma2[g]; sumW (8 G floats, may be NULL) receives each sub-block's Σw.
// With constant arguments the compiler specialises each call site.
QK_V static inline __attribute__((always_inline)) void qkx_lanes(const float *x, const float *qw, const float *sigma2, uint8_t *L,
                                                                  float *scales, float *mins, float *sumWOut, const int G,
                                                                  const int nmax, const float rmin, const float rdelta, const int nstep) {
    enum { N = 32 };
    __m256 xt[2][N], wt[2][N], Laux[2][N];
    __m256 mn[2], mx[2], sumW[2], sumX[2], live[2], iscale[2], scale[2], best[2];
    const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    for (int g = 0; g < G; g++) {
        float tx[N][8];
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < N; i++) tx[i][j] = x[256 * g + 32 * j + i];
        for (int i = 0; i < N; i++) xt[g][i] = _mm256_loadu_ps(tx[i]);
        if (qw) {
            // w = qw · sqrt(σ² + x²) (sqrtps rounds correctly, as sqrtf)
            float tw[N][8];
            for (int j = 0; j < 8; j++)
                for (int i = 0; i < N; i++) tw[i][j] = qw[256 * g + 32 * j + i];
            const __m256 s2 = _mm256_set1_ps(sigma2[g]);
            for (int i = 0; i < N; i++)
                wt[g][i] = _mm256_mul_ps(_mm256_loadu_ps(tw[i]), _mm256_sqrt_ps(_mm256_add_ps(s2, _mm256_mul_ps(xt[g][i], xt[g][i]))));
        } else {
            // q4_k_fit1_scalar's weights: avX = sqrt((Σ x²) / 32), w = avX + |x|
            __m256 sumX2 = _mm256_setzero_ps();
            for (int i = 0; i < N; i++) sumX2 = _mm256_add_ps(sumX2, _mm256_mul_ps(xt[g][i], xt[g][i]));
            const __m256 avX = _mm256_sqrt_ps(_mm256_div_ps(sumX2, _mm256_set1_ps(32.0f)));
            for (int i = 0; i < N; i++) wt[g][i] = _mm256_add_ps(avX, _mm256_and_ps(xt[g][i], absMask));
        }
    }
    const __m256i zero = _mm256_setzero_si256(), qmax = _mm256_set1_epi32(nmax);
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
        iscale[g] = _mm256_div_ps(_mm256_set1_ps((float)nmax), _mm256_sub_ps(mx[g], mn[g]));
        // The impls' Σw starts from 0 (0 + w₀, which turns a -0 into +0); this chain starts from w₀.
        if (sumWOut) _mm256_storeu_ps(sumWOut + 8 * g, _mm256_add_ps(sumW[g], _mm256_setzero_ps()));
        scale[g] = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale[g]);
        best[g] = _mm256_setzero_ps();
    }
    // ggml keeps the codes of the best pass; they are those of its inverse scale and min, so each
    // lane keeps those two, and the codes are computed once at the end.
    __m256 codeIscale[2], codeMn[2], xmin[2];
    for (int g = 0; g < G; g++) {
        codeIscale[g] = iscale[g]; codeMn[g] = mn[g];
        xmin[g] = xt[g][0];
        for (int i = 1; i < N; i++) xmin[g] = _mm256_min_ps(xt[g][i], xmin[g]);
    }
    for (int i = 0; i < N; i++)
        for (int g = 0; g < G; g++) {
            __m256i l = nearest_int_v(_mm256_mul_ps(iscale[g], _mm256_sub_ps(xt[g][i], mn[g])));
            l = _mm256_min_epi32(_mm256_max_epi32(l, zero), qmax);
            __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale[g], _mm256_cvtepi32_ps(l)), mn[g]), xt[g][i]);
            diff = _mm256_mul_ps(diff, diff);
            best[g] = _mm256_add_ps(best[g], _mm256_mul_ps(wt[g][i], diff));
        }
    const __m256 magic = _mm256_set1_ps(12582912.0f), fmax = _mm256_set1_ps((float)nmax);
    for (int is = 0; is <= nstep; is++) {
        __m256 sumL[2], sumL2[2], sumXL[2], thisScale[2], thisMin[2], cur[2], ok[2];
        int small = 1;
        for (int g = 0; g < G; g++) {
            iscale[g] = _mm256_div_ps(_mm256_set1_ps(rmin + rdelta * is + nmax), _mm256_sub_ps(mx[g], mn[g]));
            sumL[g] = _mm256_setzero_ps(); sumL2[g] = _mm256_setzero_ps(); sumXL[g] = _mm256_setzero_ps();
            // |iscale (x - mn)| <= |iscale| max(|mx - mn|, |min x - mn|) (1 + 3 ulp): below 2^21 in every
            // live lane, nearest_int equals rounding with the magic number in float (|f| < 2^22).
            const __m256 span = _mm256_max_ps(_mm256_and_ps(_mm256_sub_ps(mx[g], mn[g]), absMask),
                                              _mm256_and_ps(_mm256_sub_ps(xmin[g], mn[g]), absMask));
            const __m256 bound = _mm256_mul_ps(_mm256_and_ps(iscale[g], absMask), span);
            const __m256 bad = _mm256_andnot_ps(_mm256_cmp_ps(bound, _mm256_set1_ps(2097152.0f), _CMP_LT_OQ), live[g]);
            small &= _mm256_testz_ps(bad, bad);
        }
        if (small)
            for (int i = 0; i < N; i++)
                for (int g = 0; g < G; g++) {
                    __m256 lf = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(iscale[g], _mm256_sub_ps(xt[g][i], mn[g])), magic), magic);
                    lf = _mm256_min_ps(_mm256_max_ps(lf, _mm256_setzero_ps()), fmax);
                    const __m256 wl = _mm256_mul_ps(wt[g][i], lf);
                    Laux[g][i] = lf;
                    sumL[g] = _mm256_add_ps(sumL[g], wl);
                    sumL2[g] = _mm256_add_ps(sumL2[g], _mm256_mul_ps(wl, lf));
                    sumXL[g] = _mm256_add_ps(sumXL[g], _mm256_mul_ps(wl, xt[g][i]));
                }
        else
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
            codeIscale[g] = _mm256_blendv_ps(codeIscale[g], iscale[g], take);
            codeMn[g] = _mm256_blendv_ps(codeMn[g], mn[g], take);
            best[g] = _mm256_blendv_ps(best[g], cur[g], take);
            scale[g] = _mm256_blendv_ps(scale[g], thisScale[g], take);
            mn[g] = _mm256_blendv_ps(mn[g], thisMin[g], take);
        }
    }
    for (int g = 0; g < G; g++) {
        const __m256i liveI = _mm256_castps_si256(live[g]);
        int32_t lt[N][8];
        for (int i = 0; i < N; i++) {
            __m256i l = nearest_int_v(_mm256_mul_ps(codeIscale[g], _mm256_sub_ps(xt[g][i], codeMn[g])));
            l = _mm256_min_epi32(_mm256_max_epi32(l, zero), qmax);
            _mm256_storeu_si256((__m256i *)lt[i], _mm256_and_si256(l, liveI));
        }
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < N; i++) L[256 * g + 32 * j + i] = (uint8_t)lt[i][j];
        // -mn as the scalar code's unary minus: flip the sign bit (0 - mn would turn -0 into +0).
        _mm256_storeu_ps(mins + 8 * g, _mm256_xor_ps(mn[g], _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u))));
        _mm256_storeu_ps(scales + 8 * g, _mm256_and_ps(scale[g], live[g]));
    }
}

QK_V static void qkx2_fit_avx2(const float *x, int count, uint8_t *L, float *scales, float *mins) {
    if (count == 2) qkx_lanes(x, 0, 0, L, scales, mins, 0, 2, 15, -1.f, 0.1f, 20);
    else qkx_lanes(x, 0, 0, L, scales, mins, 0, 1, 15, -1.f, 0.1f, 20);
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

// G groups of eight sub-blocks of N (16 or 32; sub-block jj of group g at x + 8 N g + N jj) of
// make_qx_quants(N, NMAX, x, L, 1, weights): qx_fit16 (qw NULL: weights x²), or with importance
// (weights qw + 8 N g + N jj, times sqrt(σ² + x²) when sigma2 is given, σ² of group g in
// sigma2[g]: the weighted Q3_K, Q4_0, Q5_0; the importance itself otherwise: Q6_K). The groups'
// independent chains are interleaved in every loop. Here |iscale · x| <= NMAX + 0.9 (|x| <= |max|),
// so nearest_int followed by the clamp equals rounding with the same magic number in float and
// clamping in float, which leaves the codes as floats for the sums; w and w·x are the scalar
// code's products, computed once. sumWOut (8 G floats, may be NULL) receives each sub-block's Σw
// accumulated from 0, as the impls' sw.
QK_V static inline __attribute__((always_inline)) void qx_fit_lanes(const float *x, const float *qw, const float *sigma2, int8_t *L,
                                                                     float *scales, float *sumWOut, const int G, const int N, const int NMAX) {
    __m256 xt[2][32], wt[2][32], wxt[2][32], Lt[2][32];
    __m256 amax[2], max[2], live[2], iscale[2], sumLX[2], sumL2[2], scale[2], best[2];
    for (int g = 0; g < G; g++) {
        float tx[32][8];
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < N; i++) tx[i][j] = x[8 * N * g + N * j + i];
        float tw[32][8];
        if (qw)
            for (int j = 0; j < 8; j++)
                for (int i = 0; i < N; i++) tw[i][j] = qw[8 * N * g + N * j + i];
        __m256 sumW = _mm256_setzero_ps();
        for (int i = 0; i < N; i++) {
            xt[g][i] = _mm256_loadu_ps(tx[i]);
            if (!qw) wt[g][i] = _mm256_mul_ps(xt[g][i], xt[g][i]);
            else if (sigma2)
                wt[g][i] = _mm256_mul_ps(_mm256_loadu_ps(tw[i]),
                                         _mm256_sqrt_ps(_mm256_add_ps(_mm256_set1_ps(sigma2[g]), _mm256_mul_ps(xt[g][i], xt[g][i]))));
            else wt[g][i] = _mm256_loadu_ps(tw[i]);
            wxt[g][i] = _mm256_mul_ps(wt[g][i], xt[g][i]);
            sumW = _mm256_add_ps(sumW, wt[g][i]);
        }
        if (sumWOut) _mm256_storeu_ps(sumWOut + 8 * g, sumW);
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
    // The codes of the kept scale are those of its inverse scale (ggml recomputes them so when it
    // takes a scale): each lane keeps the inverse scale and the codes are computed once at the end.
    // The passes run in pairs, and a clamp that cannot bind is skipped (see qx16_pass512: with |x|
    // <= |max| the clamp at -NMAX binds only for is >= 5, the one at NMAX - 1 only for is >= -5).
    __m256 bestIscale[2];
#define QX_PASS2(LOWER, UPPER)                                                                                         \
    for (int i = 0; i < N; i++)                                                                                        \
        for (int g = 0; g < G; g++) {                                                                                  \
            __m256 la = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(iscale[g], xt[g][i]), magic), magic);                \
            __m256 lb = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(iscaleB[g], xt[g][i]), magic), magic);               \
            if (LOWER) { la = _mm256_max_ps(la, lo); lb = _mm256_max_ps(lb, lo); }                                     \
            if (UPPER) { la = _mm256_min_ps(la, hi); lb = _mm256_min_ps(lb, hi); }                                     \
            sumLX[g] = _mm256_add_ps(sumLX[g], _mm256_mul_ps(wxt[g][i], la));                                          \
            sumL2[g] = _mm256_add_ps(sumL2[g], _mm256_mul_ps(_mm256_mul_ps(wt[g][i], la), la));                        \
            sumLXB[g] = _mm256_add_ps(sumLXB[g], _mm256_mul_ps(wxt[g][i], lb));                                        \
            sumL2B[g] = _mm256_add_ps(sumL2B[g], _mm256_mul_ps(_mm256_mul_ps(wt[g][i], lb), lb));                      \
        }
    for (int i = 0; i < N; i++)
        for (int g = 0; g < G; g++) {
            const __m256 r = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(iscale[g], xt[g][i]), magic), magic);
            const __m256 lf = _mm256_min_ps(r, hi);
            sumLX[g] = _mm256_add_ps(sumLX[g], _mm256_mul_ps(wxt[g][i], lf));
            sumL2[g] = _mm256_add_ps(sumL2[g], _mm256_mul_ps(_mm256_mul_ps(wt[g][i], lf), lf));
        }
    for (int g = 0; g < G; g++) {
        bestIscale[g] = iscale[g];
        scale[g] = _mm256_and_ps(_mm256_div_ps(sumLX[g], sumL2[g]), _mm256_cmp_ps(sumL2[g], _mm256_setzero_ps(), _CMP_NEQ_UQ));
        best[g] = _mm256_mul_ps(scale[g], sumLX[g]);
    }
    static const int pairs[9][2] = {{-9, -8}, {-7, -6}, {-5, -4}, {-3, -2}, {-1, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}};
    for (int p = 0; p < 9; p++) {
        __m256 iscaleB[2], sumLXB[2], sumL2B[2];
        const int isA = pairs[p][0], isB = pairs[p][1];
        for (int g = 0; g < G; g++) {
            iscale[g] = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(-(NMAX + 0.1f * isA)), max[g]), live[g]);
            iscaleB[g] = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(-(NMAX + 0.1f * isB)), max[g]), live[g]);
            sumLX[g] = _mm256_setzero_ps(); sumL2[g] = _mm256_setzero_ps();
            sumLXB[g] = _mm256_setzero_ps(); sumL2B[g] = _mm256_setzero_ps();
        }
        if (isB >= 5) { QX_PASS2(1, 1) }
        else if (isB >= -5) { QX_PASS2(0, 1) }
        else { QX_PASS2(0, 0) }
        for (int k = 0; k < 2; k++)
            for (int g = 0; g < G; g++) {
                const __m256 lx = k ? sumLXB[g] : sumLX[g], l2 = k ? sumL2B[g] : sumL2[g], isc = k ? iscaleB[g] : iscale[g];
                const __m256 take = _mm256_and_ps(_mm256_and_ps(live[g], _mm256_cmp_ps(l2, _mm256_setzero_ps(), _CMP_GT_OQ)),
                                                  _mm256_cmp_ps(_mm256_mul_ps(lx, lx), _mm256_mul_ps(best[g], l2), _CMP_GT_OQ));
                const __m256 sc = _mm256_div_ps(lx, l2);
                bestIscale[g] = _mm256_blendv_ps(bestIscale[g], isc, take);
                scale[g] = _mm256_blendv_ps(scale[g], sc, take);
                best[g] = _mm256_blendv_ps(best[g], _mm256_mul_ps(sc, lx), take);
            }
    }
#undef QX_PASS2
    for (int i = 0; i < N; i++)
        for (int g = 0; g < G; g++) {
            const __m256 r = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(bestIscale[g], xt[g][i]), magic), magic);
            Lt[g][i] = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
        }
    const __m256i bias = _mm256_set1_epi32(NMAX);
    for (int g = 0; g < G; g++) {
        const __m256i liveI = _mm256_castps_si256(live[g]);
        int32_t lt[32][8];
        for (int i = 0; i < N; i++)
            _mm256_storeu_si256((__m256i *)lt[i], _mm256_and_si256(_mm256_add_epi32(_mm256_cvtps_epi32(Lt[g][i]), bias), liveI));
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < N; i++) L[8 * N * g + N * j + i] = (int8_t)lt[i][j];
        _mm256_storeu_ps(scales + 8 * g, _mm256_and_ps(scale[g], live[g]));
    }
}

QK_V static void qx_fit16_avx2(const float *x, int8_t *L, float *scales) { qx_fit_lanes(x, 0, 0, L, scales, 0, 2, 16, 32); }

static long q4_k_avx2(const float *x, uint8_t *out, size_t blocks) { return q4_k_body(x, out, blocks, qkx2_fit_avx2, q4_k_codes_avx2); }
static long q6_k_avx2(const float *x, uint8_t *out, size_t blocks) { return q6_k_body(x, out, blocks, qx_fit16_avx2, q6_k_codes_avx2); }
#endif

// MARK: Q2_K, Q3_K, Q5_K (ggml reference, no importance matrix)
//
// Straight ports of `quantize_row_q2_K_ref`, `quantize_row_q3_K_ref` and `quantize_row_q5_K_ref`
// — what ggml_quantize_chunk runs for these types when there is no importance matrix — with the
// same float operations in the same order, so the bytes are ggml's (tools/ggml_oracle.py checks).

// The end of a Q2_K block once its scales (y[0..15]) and FP16 d/dmin (y + 80, y + 82) are stored:
// the codes requantized with the stored scales (sub-blocks whose scale is 0 keep the fit's codes
// in L), packed four to a byte.
static void q2_k_finish(const float *xb, uint8_t *y, uint8_t *L) {
    const uint8_t *sc = y;
    uint8_t *qs = y + 16;
    const float dAll = qk_h2f(y + 80), mAll = qk_h2f(y + 82);
    for (int j = 0; j < 16; j++) {
        const float d = dAll * (sc[j] & 0xF);
        if (!d) continue;
        const float dm = mAll * (sc[j] >> 4);
        for (int ii = 0; ii < 16; ii++) {
            int l = qk_nearest_int((xb[16 * j + ii] + dm) / d);
            L[16 * j + ii] = (uint8_t)(l < 0 ? 0 : (l > 3 ? 3 : l));
        }
    }
    for (int j = 0; j < 256; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

static long q2_k_scalar(const float *x, uint8_t *out, size_t blocks) {
    long bad = -1;
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b; uint8_t *y = out + 84 * b;
        uint8_t *sc = y;
        uint8_t L[256];
        float w[16], mins[16], scales[16], maxScale = 0, maxMin = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(xb[16 * j + l]);
            scales[j] = qk_make_qkx2_quants(16, 3, xb + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, 1);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        uint16_t dh = 0, mh = 0;
        if (maxScale > 0) {
            float iscale = 15.f / maxScale;
            for (int j = 0; j < 16; j++) sc[j] = (uint8_t)qk_nearest_int(iscale * scales[j]);
            dh = qk_f16_from_f32(maxScale / 15.f);
        } else {
            memset(sc, 0, 16);
        }
        if (maxMin > 0) {
            float iscale = 15.f / maxMin;
            for (int j = 0; j < 16; j++) sc[j] |= (uint8_t)(qk_nearest_int(iscale * mins[j]) << 4);
            mh = qk_f16_from_f32(maxMin / 15.f);
        }
        if (bad < 0 && (qk_is_inf16(dh) || qk_is_inf16(mh))) bad = (long)b;
        qk_wr16(y + 80, dh); qk_wr16(y + 82, mh);
        q2_k_finish(xb, y, L);
    }
    return bad;
}

// ggml's make_q3_quants(16, 4, x, L, true): a symmetric fit with weights x², then up to five
// passes that move single codes while that raises (Σwxl)²/Σwl²; codes stored + 4.
static float q3_fit(const float *x, int8_t *L) {
    enum { N = 16, NMAX = 4 };
    float max = 0, amax = 0;
    for (int i = 0; i < N; i++) { float ax = fabsf(x[i]); if (ax > amax) { amax = ax; max = x[i]; } }
    if (amax < 1e-15f) { for (int i = 0; i < N; i++) L[i] = 0; return 0.f; }
    float iscale = -NMAX / max, sumLX = 0, sumL2 = 0;
    for (int i = 0; i < N; i++) {
        int l = qk_nearest_int(iscale * x[i]);
        l = l < -NMAX ? -NMAX : (l > NMAX - 1 ? NMAX - 1 : l);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumLX += w * x[i] * l;
        sumL2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < N; i++) {
            float w = x[i] * x[i];
            float slx = sumLX - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = sumL2 - w * L[i] * L[i];
                int nl = qk_nearest_int(x[i] * sl2 / slx);
                nl = nl < -NMAX ? -NMAX : (nl > NMAX - 1 ? NMAX - 1 : nl);
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (sl2 > 0 && slx * slx * sumL2 > sumLX * sumLX * sl2) {
                        L[i] = (int8_t)nl; sumLX = slx; sumL2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < N; i++) L[i] += NMAX;
    return sumL2 > 0.0f ? sumLX / sumL2 : 0.0f;
}

// The end of a Q3_K block once its 6-bit scales (y + 96) and FP16 d (y + 108) are stored: the
// codes requantized with the stored scales (sub-blocks whose scale is 0 keep the fit's codes in
// L, stored + 4), the high bits into hmask, the low two bits packed four to a byte.
static void q3_k_finish(const float *xb, uint8_t *y, int8_t *L) {
    uint8_t *hmask = y, *qs = y + 32;
    const uint8_t *sc = y + 96;
    const float dAll = qk_h2f(y + 108);
    for (int j = 0; j < 16; j++) {
        int8_t s = (int8_t)(j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4);
        s = (int8_t)((s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
        float d = dAll * s;
        if (!d) continue;
        for (int ii = 0; ii < 16; ii++) {
            int l = qk_nearest_int(xb[16 * j + ii] / d);
            l = l < -4 ? -4 : (l > 3 ? 3 : l);
            L[16 * j + ii] = (int8_t)(l + 4);
        }
    }
    memset(hmask, 0, 32);
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < 256; j++) {
        if (L[j] > 3) { hmask[m] |= hm; L[j] -= 4; }
        if (++m == 32) { m = 0; hm <<= 1; }
    }
    for (int j = 0; j < 256; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

static long q3_k_scalar(const float *x, uint8_t *out, size_t blocks) {
    long bad = -1;
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b; uint8_t *y = out + 110 * b;
        uint8_t *sc = y + 96;
        int8_t L[256];
        float scales[16], maxScale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = q3_fit(xb + 16 * j, L + 16 * j);
            float s = fabsf(scales[j]);
            if (s > amax) { amax = s; maxScale = scales[j]; }
        }
        memset(sc, 0, 12);
        uint16_t dh = 0;
        if (maxScale) {
            float iscale = -32.f / maxScale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)qk_nearest_int(iscale * scales[j]);
                l = (int8_t)((l < -32 ? -32 : (l > 31 ? 31 : l)) + 32);
                if (j < 8) sc[j] = (uint8_t)(l & 0xF);
                else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l >>= 4;
                sc[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            dh = qk_f16_from_f32(1 / iscale);
        }
        if (bad < 0 && qk_is_inf16(dh)) bad = (long)b;
        qk_wr16(y + 108, dh);
        q3_k_finish(xb, y, L);
    }
    return bad;
}

// The end of a Q5_K block once its FP16 d/dmin (y, y + 2) and 6-bit scales and mins (y + 4) are
// stored: the codes requantized with the stored scales (sub-blocks whose scale is 0 keep the
// fit's codes in L), the fifth bits into qh, the low four bits packed two to a byte.
static void q5_k_finish(const float *xb, uint8_t *y, uint8_t *L) {
    const uint8_t *sc = y + 4;
    uint8_t *qh = y + 16, *q = y + 48;
    const float dAll = qk_h2f(y), mAll = qk_h2f(y + 2);
    for (int j = 0; j < 8; j++) {
        uint8_t s, mm;
        qk_k4_scale_min(j, sc, &s, &mm);
        const float d = dAll * s;
        if (!d) continue;
        const float dm = mAll * mm;
        for (int ii = 0; ii < 32; ii++) {
            int l = qk_nearest_int((xb[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)(l < 0 ? 0 : (l > 31 ? 31 : l));
        }
    }
    memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < 256; n += 64) {
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
            if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
            q[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 <<= 2; m2 <<= 2;
        q += 32;
    }
}

// quantize_row_q5_K_ref's fits of `count` (1 or 2) consecutive blocks: per sub-block the weights
// avX + |x| (avX = sqrt(mean x²)), make_qkx2_quants(32, 31, …, -0.5, 0.1, 15, false); L, scales
// and mins of block k at 256 k, 8 k, 8 k (the same layout as the Q4_K fits).
static void q5_k_fit_scalar(const float *x, int count, uint8_t *L, float *scales, float *mins) {
    float w[32];
    for (int k = 0; k < count; k++)
        for (int j = 0; j < 8; j++) {
            const float *xb = x + 256 * k + 32 * j;
            float sumX2 = 0;
            for (int l = 0; l < 32; l++) sumX2 += xb[l] * xb[l];
            float avX = sqrtf(sumX2 / 32);
            for (int l = 0; l < 32; l++) w[l] = avX + fabsf(xb[l]);
            scales[8 * k + j] = qk_make_qkx2_quants(32, 31, xb, w, L + 256 * k + 32 * j, &mins[8 * k + j], -0.5f, 0.1f, 15, 0);
        }
}

static inline long q5_k_body(const float *x, uint8_t *out, size_t blocks, qk_fit8_fn fit) {
    long bad = -1;
    uint8_t pairL[512];
    float pairMins[16], pairScales[16];
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b; uint8_t *y = out + 176 * b;
        if (b % 2 == 0) fit(xb, blocks - b >= 2 ? 2 : 1, pairL, pairScales, pairMins);
        uint8_t *L = pairL + 256 * (b % 2);
        const float *scales = pairScales + 8 * (b % 2), *mins = pairMins + 8 * (b % 2);
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; j++) {
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        pack_scales_mins_k4(y + 4, scales, mins, maxScale, maxMin);
        uint16_t dh = qk_f16_from_f32(maxScale / 63.f), mh = qk_f16_from_f32(maxMin / 63.f);
        if (bad < 0 && (qk_is_inf16(dh) || qk_is_inf16(mh))) bad = (long)b;
        qk_wr16(y, dh); qk_wr16(y + 2, mh);
        q5_k_finish(xb, y, L);
    }
    return bad;
}

static long q5_k_scalar(const float *x, uint8_t *out, size_t blocks) { return q5_k_body(x, out, blocks, q5_k_fit_scalar); }

#if defined(__x86_64__)
QK_V static void q5_k_fit_avx2(const float *x, int count, uint8_t *L, float *scales, float *mins) {
    if (count == 2) qkx_lanes(x, 0, 0, L, scales, mins, 0, 2, 31, -0.5f, 0.1f, 15);
    else qkx_lanes(x, 0, 0, L, scales, mins, 0, 1, 31, -0.5f, 0.1f, 15);
}
static long q5_k_avx2(const float *x, uint8_t *out, size_t blocks) { return q5_k_body(x, out, blocks, q5_k_fit_avx2); }
#endif

// MARK: IQ4_NL, IQ4_XS (ggml quantize_iq4_nl / quantize_iq4_xs, no importance matrix)
//
// ggml's quantize_row_iq4_nl_impl with ntry = 7 and quant_weights NULL (weights x²), which is what
// ggml_quantize_chunk runs for both types; the codes index the non-linear table kIQ4NLValues.

static const int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static inline int iq4_best_index(float x) {
    const int8_t *val = kIQ4NLValues;
    if (x <= val[0]) return 0;
    if (x >= val[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < val[mav]) mu = mav; else ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

// One super-block of `superSize` (32 for IQ4_NL, 256 for IQ4_XS) in sub-blocks of 32: the FP16
// scale bits in *dh, the codes in q4, and for IQ4_XS the 6-bit sub-block scales. The weights are
// x² without importance (qw NULL), else qw · sqrt(σ² + x²) with σ² = 2 Σx² / superSize (ggml's
// quant_weights path; qw holds the super-block's superSize importance values).
static void iq4_impl(int superSize, const float *x, uint16_t *dh, uint8_t *q4, uint16_t *scalesH, uint8_t *scalesL,
                     const float *qw) {
    enum { BS = 32, NTRY = 7 };
    const int8_t *values = kIQ4NLValues;
    uint8_t L[256];
    float scales[8], weight[BS];
    float sigma2 = 0;
    if (qw) {
        for (int j = 0; j < superSize; j++) sigma2 += x[j] * x[j];
        sigma2 *= 2.f / superSize;
    }
    memset(q4, 0, (size_t)superSize / 2);
    *dh = qk_f16_from_f32(0.f);
    float maxScale = 0, amaxScale = 0;
    for (int ib = 0; ib < superSize / BS; ib++) {
        const float *xb = x + ib * BS;
        uint8_t *Lb = L + ib * BS;
        if (qw) for (int j = 0; j < BS; j++) weight[j] = qw[ib * BS + j] * sqrtf(sigma2 + xb[j] * xb[j]);
        else for (int j = 0; j < BS; j++) weight[j] = xb[j] * xb[j];
        float amax = 0, max = 0;
        for (int j = 0; j < BS; j++) { float ax = fabsf(xb[j]); if (ax > amax) { amax = ax; max = xb[j]; } }
        if (amax < 1e-15f) { scales[ib] = 0; continue; }
        float d = -max / values[0], id = 1 / d, sumQX = 0, sumQ2 = 0;
        for (int j = 0; j < BS; j++) {
            int l = iq4_best_index(id * xb[j]);
            Lb[j] = (uint8_t)l;
            float q = values[l], w = weight[j];
            sumQX += w * q * xb[j];
            sumQ2 += w * q * q;
        }
        d = sumQ2 > 0 ? sumQX / sumQ2 : 0.f;
        float best = d * sumQX;
        for (int itry = -NTRY; itry <= NTRY; itry++) {
            id = (itry + values[0]) / max;
            sumQX = sumQ2 = 0;
            for (int j = 0; j < BS; j++) {
                int l = iq4_best_index(id * xb[j]);
                float q = values[l], w = weight[j];
                sumQX += w * q * xb[j];
                sumQ2 += w * q * q;
            }
            if (sumQ2 > 0 && sumQX * sumQX > best * sumQ2) { d = sumQX / sumQ2; best = d * sumQX; }
        }
        scales[ib] = d;
        float absD = fabsf(d);
        if (absD > amaxScale) { amaxScale = absD; maxScale = d; }
    }
    if (superSize / BS > 1) {
        *scalesH = 0;
        float d = -maxScale / 32;
        *dh = qk_f16_from_f32(d);
        float id = d ? 1 / d : 0.f;
        for (int ib = 0; ib < superSize / BS; ib++) {
            int l = qk_nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : (l > 31 ? 31 : l);
            float dl = d * l, idl = dl ? 1 / dl : 0.f;
            for (int j = 0; j < BS; j++) L[ib * BS + j] = (uint8_t)iq4_best_index(idl * x[ib * BS + j]);
            l += 32;
            uint8_t lLow = (uint8_t)(l & 0xF), lHigh = (uint8_t)(l >> 4);
            if (ib % 2 == 0) scalesL[ib / 2] = lLow; else scalesL[ib / 2] |= (uint8_t)(lLow << 4);
            *scalesH |= (uint16_t)(lHigh << 2 * (ib % 8));
        }
    } else {
        *dh = qk_f16_from_f32(scales[0]);
        float id = scales[0] ? 1 / scales[0] : 0;
        for (int j = 0; j < superSize; j++) L[j] = (uint8_t)iq4_best_index(id * x[j]);
    }
    for (int i = 0; i < superSize / 32; i++)
        for (int j = 0; j < 16; j++) q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

// `blocks` consecutive IQ4_NL blocks; with importance, block b uses qw + 32 (b % blocksPerRow).
static long iq4_nl_blocks(const float *x, uint8_t *out, size_t blocks, const float *qw, size_t blocksPerRow) {
    long bad = -1;
    for (size_t b = 0; b < blocks; b++) {
        uint16_t dh, unusedH;
        uint8_t *y = out + 18 * b;
        iq4_impl(32, x + 32 * b, &dh, y + 2, &unusedH, 0, qw ? qw + 32 * (b % blocksPerRow) : 0);
        if (bad < 0 && qk_is_inf16(dh)) bad = (long)b;
        qk_wr16(y, dh);
    }
    return bad;
}

static long iq4_xs_blocks(const float *x, uint8_t *out, size_t blocks, const float *qw, size_t blocksPerRow) {
    long bad = -1;
    for (size_t b = 0; b < blocks; b++) {
        uint16_t dh, sh;
        uint8_t *y = out + 136 * b;
        iq4_impl(256, x + 256 * b, &dh, y + 8, &sh, y + 4, qw ? qw + 256 * (b % blocksPerRow) : 0);
        if (bad < 0 && qk_is_inf16(dh)) bad = (long)b;
        qk_wr16(y, dh); qk_wr16(y + 2, sh);
    }
    return bad;
}

static long iq4_nl_scalar(const float *x, uint8_t *out, size_t blocks) { return iq4_nl_blocks(x, out, blocks, 0, 1); }
static long iq4_xs_scalar(const float *x, uint8_t *out, size_t blocks) { return iq4_xs_blocks(x, out, blocks, 0, 1); }

// MARK: Importance-weighted k-quants and IQ4 (ggml_quantize_chunk with an imatrix)
//
// Ports of what ggml runs when ggml_quantize_chunk gets quant_weights: quantize_row_q2_K_impl,
// quantize_row_q3_K_impl, quantize_row_q4_K_impl, quantize_row_q5_K_impl, quantize_row_q6_K_impl
// (make_qkx3_quants, make_qx_quants and make_qp_quants with the importance) and
// quantize_row_iq4_nl_impl with quant_weights, row by row with the same `columns` importance
// values for every row; the same float operations in the same order, so the bytes are ggml's
// (tools/ggml_oracle.py checks, fixtures/ggml-imatrix/).

// ggml's make_qp_quants: a fit of non-negative values (sub-block scales or mins) to 0..nmax with
// weights qw: the best of 9 inverse scales by weighted squared error, then up to five passes that
// move single codes while that raises (Σwxl)²/Σwl². Codes are stored as bytes (ggml's uint8_t L).
static float make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
    if (max < 1e-15f) { for (int i = 0; i < n; i++) L[i] = 0; return 0.f; }   // GROUP_MAX_EPS
    float iscale = nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)qk_nearest_int(iscale * x[i]);
    float scale = 1 / iscale, bestMSE = 0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * L[i];
        float w = qw[i];
        bestMSE += w * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        float iscaleIs = (0.1f * is + nmax) / max, scaleIs = 1 / iscaleIs, mse = 0;
        for (int i = 0; i < n; i++) {
            int l = qk_nearest_int(iscaleIs * x[i]);
            l = l < nmax ? l : nmax;
            float diff = x[i] - scaleIs * l;
            float w = qw[i];
            mse += w * diff * diff;
        }
        if (mse < bestMSE) { bestMSE = mse; iscale = iscaleIs; }
    }
    float sumLX = 0, sumL2 = 0;
    for (int i = 0; i < n; i++) {
        int l = qk_nearest_int(iscale * x[i]);
        l = l < nmax ? l : nmax;
        L[i] = (uint8_t)l;
        float w = qw[i];
        sumLX += w * x[i] * l;
        sumL2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = qw[i];
            float slx = sumLX - w * x[i] * L[i];
            float sl2 = sumL2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int nl = qk_nearest_int(x[i] * sl2 / slx);
                nl = nl < nmax ? nl : nmax;
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (slx * slx * sumL2 > sumLX * sumLX * sl2) {
                        L[i] = (uint8_t)nl; sumLX = slx; sumL2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return sumL2 > 0.0f ? sumLX / sumL2 : 0.0f;
}

// Σx² of a 256-element super-block, accumulated in order (the σ² of the k-quant impls).
static inline float sum_x2_256(const float *x) {
    float s = 0;
    for (int j = 0; j < 256; j++) s += x[j] * x[j];
    return s;
}

// The 12 bytes of 6-bit scales and mins of quantize_row_q4_K_impl / q5_K_impl from their codes
// (bytes as ggml's, no clamping here: Q5_K clamps to 63 before).
static void pack_ls_lm_k4(uint8_t *sc, const uint8_t *Ls, const uint8_t *Lm) {
    for (int j = 0; j < 8; j++) {
        uint8_t ls = Ls[j], lm = Lm[j];
        if (j < 4) { sc[j] = ls; sc[j + 4] = lm; }
        else {
            sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
}

static long q2_k_weighted(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    long bad = -1;
    const size_t nb = columns / 256;
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < nb; i++) {
            const float *xb = x + r * columns + 256 * i;
            uint8_t *y = out + 84 * (r * nb + i);
            uint8_t L[256], Ls[16], Lm[16];
            float weight[16], sw[16], mins[16], scales[16];
            const float sigma2 = sum_x2_256(xb) / 256;
            for (int j = 0; j < 16; j++) {
                const float *qw = importance + 256 * i + 16 * j;
                for (int l = 0; l < 16; l++) weight[l] = qw[l] * sqrtf(sigma2 + xb[16 * j + l] * xb[16 * j + l]);
                sw[j] = 0;
                for (int l = 0; l < 16; l++) sw[j] += weight[l];
                scales[j] = qk_make_qkx2_quants(16, 3, xb + 16 * j, weight, L + 16 * j, &mins[j], -0.9f, 0.05f, 36, 0);
            }
            const float dm = make_qp_quants(16, 15, scales, Ls, sw);
            const float mm = make_qp_quants(16, 15, mins, Lm, sw);
            const uint16_t dh = qk_f16_from_f32(dm), mh = qk_f16_from_f32(mm);
            if (bad < 0 && (qk_is_inf16(dh) || qk_is_inf16(mh))) bad = (long)(r * nb + i);
            qk_wr16(y + 80, dh); qk_wr16(y + 82, mh);
            for (int j = 0; j < 16; j++) y[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
            q2_k_finish(xb, y, L);
        }
    return bad;
}

// The sixteen sub-block fits of a weighted Q3_K block: weights qw · sqrt(σ² + x²), their sums sw,
// make_qx_quants(16, 4, …) into L (stored + 4) and scales.
typedef void (*qk_wfit3_fn)(const float *x, const float *qw, float sigma2, int8_t *L, float *scales, float *sw);

static void q3_k_wfit_scalar(const float *x, const float *qw, float sigma2, int8_t *L, float *scales, float *sw) {
    float weight[16];
    for (int j = 0; j < 16; j++) {
        const float *xb = x + 16 * j, *w = qw + 16 * j;
        for (int l = 0; l < 16; l++) weight[l] = w[l] * sqrtf(sigma2 + xb[l] * xb[l]);
        float sumW = 0;
        for (int l = 0; l < 16; l++) sumW += weight[l];
        sw[j] = sumW;
        scales[j] = qk_make_qx_quants_weighted(16, 4, xb, L + 16 * j, weight);
    }
}

static inline long q3_k_weighted_body(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance, qk_wfit3_fn fit) {
    long bad = -1;
    const size_t nb = columns / 256;
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < nb; i++) {
            const float *xb = x + r * columns + 256 * i;
            uint8_t *y = out + 110 * (r * nb + i), *sc = y + 96;
            int8_t L[256], Ls[16];
            float sw[16], scales[16];
            fit(xb, importance + 256 * i, 2 * sum_x2_256(xb) / 256, L, scales, sw);
            memset(sc, 0, 12);
            const float dBlock = qk_make_qx_quants_weighted(16, 32, scales, Ls, sw);
            for (int j = 0; j < 16; j++) {
                int l = Ls[j];
                if (j < 8) sc[j] = (uint8_t)(l & 0xF);
                else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l >>= 4;
                sc[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            const uint16_t dh = qk_f16_from_f32(dBlock);
            if (bad < 0 && qk_is_inf16(dh)) bad = (long)(r * nb + i);
            qk_wr16(y + 108, dh);
            q3_k_finish(xb, y, L);
        }
    return bad;
}

static long q3_k_weighted_scalar(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    return q3_k_weighted_body(x, out, rows, columns, importance, q3_k_wfit_scalar);
}

// The sub-block fits of `count` (1 or 2) consecutive blocks of a row for the weighted Q4_K
// (five = 0: nmax 15) and Q5_K (five = 1: nmax 31): weights qw · sqrt(σ² + x²) (block g's
// importance at qw + 256 g, σ² in sigma2[g]), make_qkx3_quants(32, nmax, …, -0.9, 0.05, 36);
// L, scales, mins and the weight sums sw of block g at 256 g, 8 g, 8 g, 8 g.
typedef void (*qk_wfit45_fn)(const float *x, const float *qw, const float *sigma2, int count, int five,
                             uint8_t *L, float *scales, float *mins, float *sw);

static void q45_k_wfit_scalar(const float *x, const float *qw, const float *sigma2, int count, int five,
                              uint8_t *L, float *scales, float *mins, float *sw) {
    float weights[32];
    for (int g = 0; g < count; g++)
        for (int j = 0; j < 8; j++) {
            const float *xb = x + 256 * g + 32 * j, *w = qw + 256 * g + 32 * j;
            for (int l = 0; l < 32; l++) weights[l] = w[l] * sqrtf(sigma2[g] + xb[l] * xb[l]);
            float sumW = 0;
            for (int l = 0; l < 32; l++) sumW += weights[l];
            sw[8 * g + j] = sumW;
            scales[8 * g + j] = qk_make_qkx2_quants(32, five ? 31 : 15, xb, weights, L + 256 * g + 32 * j, &mins[8 * g + j],
                                                    -0.9f, 0.05f, 36, 0);
        }
}

// Q4_K (144-byte blocks) and Q5_K (176-byte blocks): the fits of two blocks of a row at a time,
// then make_qp_quants of the scales and mins, and the stored block.
static inline long q45_k_weighted_body(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance,
                                       int five, qk_wfit45_fn fit, qk_codes4_fn codes) {
    long bad = -1;
    const size_t nb = columns / 256, bytes = five ? 176 : 144;
    uint8_t L[512], Ls[8], Lm[8];
    float sw[16], mins[16], scales[16], sigma2[2];
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < nb; i += 2) {
            const int count = nb - i >= 2 ? 2 : 1;
            const float *x0 = x + r * columns + 256 * i;
            for (int g = 0; g < count; g++) sigma2[g] = 2 * sum_x2_256(x0 + 256 * g) / 256;
            fit(x0, importance + 256 * i, sigma2, count, five, L, scales, mins, sw);
            for (int g = 0; g < count; g++) {
                const float *xb = x0 + 256 * g;
                uint8_t *y = out + bytes * (r * nb + i + (size_t)g);
                const float dBlock = make_qp_quants(8, 63, scales + 8 * g, Ls, sw + 8 * g);
                const float mBlock = make_qp_quants(8, 63, mins + 8 * g, Lm, sw + 8 * g);
                if (five)
                    for (int j = 0; j < 8; j++) { Ls[j] = Ls[j] < 63 ? Ls[j] : 63; Lm[j] = Lm[j] < 63 ? Lm[j] : 63; }
                pack_ls_lm_k4(y + 4, Ls, Lm);
                const uint16_t dh = qk_f16_from_f32(dBlock), mh = qk_f16_from_f32(mBlock);
                if (bad < 0 && (qk_is_inf16(dh) || qk_is_inf16(mh))) bad = (long)(r * nb + i + (size_t)g);
                qk_wr16(y, dh); qk_wr16(y + 2, mh);
                if (five) q5_k_finish(xb, y, L + 256 * g); else q4_k_finish(xb, y, L + 256 * g, codes);
            }
        }
    return bad;
}

static long q4_k_weighted_scalar(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    return q45_k_weighted_body(x, out, rows, columns, importance, 0, q45_k_wfit_scalar, q4_k_codes_scalar);
}
static long q5_k_weighted_scalar(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    return q45_k_weighted_body(x, out, rows, columns, importance, 1, q45_k_wfit_scalar, q4_k_codes_scalar);
}

// quantize_row_q6_K_impl: make_qx_quants with the importance itself as the weights (no σ² term),
// for the sixteen sub-blocks of a block (importance qw).
typedef void (*qk_wfit16_fn)(const float *x, const float *qw, int8_t *L, float *scales);

static void q6_k_wfit_scalar(const float *x, const float *qw, int8_t *L, float *scales) {
    for (int ib = 0; ib < 16; ib++) scales[ib] = qk_make_qx_quants_weighted(16, 32, x + 16 * ib, L + 16 * ib, qw + 16 * ib);
}

static inline long q6_k_weighted_body(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance,
                                      qk_wfit16_fn fit, qk_codes6_fn codes) {
    long bad = -1;
    const size_t nb = columns / 256;
    int8_t L[256];
    float scales[16];
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < nb; i++) {
            const float *xb = x + r * columns + 256 * i;
            fit(xb, importance + 256 * i, L, scales);
            if (q6_k_finish(xb, out + 210 * (r * nb + i), L, scales, codes) && bad < 0) bad = (long)(r * nb + i);
        }
    return bad;
}

static long q6_k_weighted_scalar(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    return q6_k_weighted_body(x, out, rows, columns, importance, q6_k_wfit_scalar, q6_k_codes_scalar);
}

#if defined(__x86_64__)
// The same fits with one sub-block per AVX2 lane (qkx_lanes, qx_fit_lanes: the scalar chains).
QK_V static void q45_k_wfit_avx2(const float *x, const float *qw, const float *sigma2, int count, int five,
                                 uint8_t *L, float *scales, float *mins, float *sw) {
    if (five) {
        if (count == 2) qkx_lanes(x, qw, sigma2, L, scales, mins, sw, 2, 31, -0.9f, 0.05f, 36);
        else qkx_lanes(x, qw, sigma2, L, scales, mins, sw, 1, 31, -0.9f, 0.05f, 36);
    } else {
        if (count == 2) qkx_lanes(x, qw, sigma2, L, scales, mins, sw, 2, 15, -0.9f, 0.05f, 36);
        else qkx_lanes(x, qw, sigma2, L, scales, mins, sw, 1, 15, -0.9f, 0.05f, 36);
    }
}
QK_V static void q3_k_wfit_avx2(const float *x, const float *qw, float sigma2, int8_t *L, float *scales, float *sw) {
    const float s2[2] = {sigma2, sigma2};
    qx_fit_lanes(x, qw, s2, L, scales, sw, 2, 16, 4);
}
static long q3_k_weighted_avx2(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    return q3_k_weighted_body(x, out, rows, columns, importance, q3_k_wfit_avx2);
}

// For the weighted Q4_0 (nmax 8) and Q5_0 (nmax 16) of ggml_legacy.c: make_qx_quants(32, nmax, …)
// of `count` (8 or 16) consecutive blocks of 32 with weights qw · sqrt(σ² + x²), one block per lane.
QK_V void qk_ggml_qx_fit32_weighted_avx2(const float *x, const float *qw, float sigma2, int count, int nmax, int8_t *L, float *scales) {
    const float s2[2] = {sigma2, sigma2};
    if (nmax == 8) {
        if (count == 16) qx_fit_lanes(x, qw, s2, L, scales, 0, 2, 32, 8); else qx_fit_lanes(x, qw, s2, L, scales, 0, 1, 32, 8);
    } else {
        if (count == 16) qx_fit_lanes(x, qw, s2, L, scales, 0, 2, 32, 16); else qx_fit_lanes(x, qw, s2, L, scales, 0, 1, 32, 16);
    }
}

// For the weighted Q4_1 (nmax 15) and Q5_1 (nmax 31) of ggml_legacy.c: make_qkx3_quants(32, nmax,
// …, -0.9, 0.05, 36) of `count` (8 or 16) consecutive blocks of 32 with weights qw · sqrt(σ² + x²),
// one block per lane; codes in L, scales, and -min in mins.
QK_V void qk_ggml_qkx_fit32_weighted_avx2(const float *x, const float *qw, float sigma2, int count, int nmax, uint8_t *L,
                                          float *scales, float *mins) {
    const float s2[2] = {sigma2, sigma2};
    if (nmax == 15) {
        if (count == 16) qkx_lanes(x, qw, s2, L, scales, mins, 0, 2, 15, -0.9f, 0.05f, 36);
        else qkx_lanes(x, qw, s2, L, scales, mins, 0, 1, 15, -0.9f, 0.05f, 36);
    } else {
        if (count == 16) qkx_lanes(x, qw, s2, L, scales, mins, 0, 2, 31, -0.9f, 0.05f, 36);
        else qkx_lanes(x, qw, s2, L, scales, mins, 0, 1, 31, -0.9f, 0.05f, 36);
    }
}

QK_V static void q6_k_wfit_avx2(const float *x, const float *qw, int8_t *L, float *scales) { qx_fit_lanes(x, qw, 0, L, scales, 0, 2, 16, 32); }

static long q4_k_weighted_avx2(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    return q45_k_weighted_body(x, out, rows, columns, importance, 0, q45_k_wfit_avx2, q4_k_codes_avx2);
}
static long q5_k_weighted_avx2(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    return q45_k_weighted_body(x, out, rows, columns, importance, 1, q45_k_wfit_avx2, q4_k_codes_avx2);
}
static long q6_k_weighted_avx2(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    return q6_k_weighted_body(x, out, rows, columns, importance, q6_k_wfit_avx2, q6_k_codes_avx2);
}
#endif

static long iq4_nl_weighted(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    return iq4_nl_blocks(x, out, rows * (columns / 32), importance, columns / 32);
}
static long iq4_xs_weighted(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    return iq4_xs_blocks(x, out, rows * (columns / 256), importance, columns / 256);
}

// MARK: AVX-512 K-quant fits
//
// The Q6_K fits with sixteen sub-blocks per AVX-512 lane set, and the Q4_K / Q5_K fits with two
// blocks' eight sub-blocks each: as the AVX2 fits, every lane performs its sub-block's scalar chain
// (the same float32 operations in the same order, no FMA), so the bytes are ggml's. Chosen at run
// time when the CPU has AVX-512F (qk_isa_avx512); the AVX2 and scalar paths stay for the others.
#if defined(__x86_64__)
#define QK_V512 __attribute__((target("avx512f,avx2,f16c")))

// ggml's nearest_int on sixteen lanes (the same magic-number bits, exact for any input).
QK_V512 static inline __m512i nearest_int_v512(__m512 f) {
    __m512i i = _mm512_castps_si512(_mm512_add_ps(f, _mm512_set1_ps(12582912.0f)));
    return _mm512_sub_epi32(_mm512_and_si512(i, _mm512_set1_epi32(0x007FFFFF)), _mm512_set1_epi32(0x00400000));
}

// Sixteen rows of 16 floats (row j at b + stride j; rows j >= rows read as zeros) transposed:
// c[i] lane j = b[stride j + i], with 64 shuffles (cheaper than sixteen gathers): 32-bit and
// 64-bit interleaves within 128-bit lanes, then two rounds of 128-bit lane shuffles.
QK_V512 static inline void qk512_transpose16s(const float *b, int stride, int rows, __m512 *c) {
    __m512 a[16], t[16];
    for (int k = 0; k < 8; k++) {
        const __m512 r0 = 2 * k < rows ? _mm512_loadu_ps(b + stride * 2 * k) : _mm512_setzero_ps();
        const __m512 r1 = 2 * k + 1 < rows ? _mm512_loadu_ps(b + stride * (2 * k + 1)) : _mm512_setzero_ps();
        a[2 * k] = _mm512_unpacklo_ps(r0, r1);
        a[2 * k + 1] = _mm512_unpackhi_ps(r0, r1);
    }
    for (int q = 0; q < 4; q++) {
        const __m512d a0 = _mm512_castps_pd(a[4 * q]), a1 = _mm512_castps_pd(a[4 * q + 1]);
        const __m512d a2 = _mm512_castps_pd(a[4 * q + 2]), a3 = _mm512_castps_pd(a[4 * q + 3]);
        t[4 * q] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        t[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        t[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        t[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    // t[4 q + e], 128-bit lane L: rows 4q..4q+3 of element 4 L + e.
    for (int e = 0; e < 4; e++) {
        const __m512 d0 = _mm512_shuffle_f32x4(t[e], t[4 + e], 0x44), d1 = _mm512_shuffle_f32x4(t[e], t[4 + e], 0xEE);
        const __m512 d2 = _mm512_shuffle_f32x4(t[8 + e], t[12 + e], 0x44), d3 = _mm512_shuffle_f32x4(t[8 + e], t[12 + e], 0xEE);
        c[e] = _mm512_shuffle_f32x4(d0, d2, 0x88);
        c[4 + e] = _mm512_shuffle_f32x4(d0, d2, 0xDD);
        c[8 + e] = _mm512_shuffle_f32x4(d1, d3, 0x88);
        c[12 + e] = _mm512_shuffle_f32x4(d1, d3, 0xDD);
    }
}

// The sixteen sub-blocks of 16 of a block, transposed (c[i] lane j: b[16 j + i]).
QK_V512 static inline void qk512_transpose16(const float *b, __m512 *c) { qk512_transpose16s(b, 16, 16, c); }

// One pass of make_qx_quants over the G blocks' lanes: the codes l = clamp(nearest_int(iscale x)),
// sumLX += (w x) l and sumL2 += (w l) l in element order. |iscale x| <= c (1 + 3 ulp) with c =
// NMAX + 0.1 is (|x| <= |max|), so rounding with the magic number in float equals nearest_int, the
// clamp at -NMAX can bind only when c >= NMAX + 0.5 (is >= 5) and the one at NMAX - 1 only when
// c >= NMAX - 0.5 (is >= -5): the other clamps are no-ops and are skipped. With Lout the codes
// are stored (as floats), else only the sums are kept.
QK_V512 static inline __attribute__((always_inline)) void qx16_pass512(__m512 (*xt)[16], __m512 (*wt)[16], __m512 (*wxt)[16],
                                                                       const __m512 *iscale, __m512 (*Lout)[16], __m512 *sumLX,
                                                                       __m512 *sumL2, const int G, const int NMAX, const int lower,
                                                                       const int upper) {
    const __m512 magic = _mm512_set1_ps(12582912.0f), lo = _mm512_set1_ps((float)-NMAX), hi = _mm512_set1_ps((float)(NMAX - 1));
    if (sumLX)
        for (int g = 0; g < G; g++) { sumLX[g] = _mm512_setzero_ps(); sumL2[g] = _mm512_setzero_ps(); }
    for (int i = 0; i < 16; i++)
        for (int g = 0; g < G; g++) {
            __m512 lf = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(iscale[g], xt[g][i]), magic), magic);
            if (lower) lf = _mm512_max_ps(lf, lo);
            if (upper) lf = _mm512_min_ps(lf, hi);
            if (Lout) Lout[g][i] = lf;
            if (sumLX) {
                sumLX[g] = _mm512_add_ps(sumLX[g], _mm512_mul_ps(wxt[g][i], lf));
                sumL2[g] = _mm512_add_ps(sumL2[g], _mm512_mul_ps(_mm512_mul_ps(wt[g][i], lf), lf));
            }
        }
}

// Two passes at once (inverse scales iscaleA and iscaleB, sums into A and B): the same floats as
// two qx16_pass512 calls, sharing the loads and interleaving twice as many chains.
QK_V512 static inline __attribute__((always_inline)) void qx16_pass512x2(__m512 (*xt)[16], __m512 (*wt)[16], __m512 (*wxt)[16],
                                                                         const __m512 *iscaleA, const __m512 *iscaleB,
                                                                         __m512 *sumLXA, __m512 *sumL2A, __m512 *sumLXB, __m512 *sumL2B,
                                                                         const int G, const int NMAX, const int lower, const int upper) {
    const __m512 magic = _mm512_set1_ps(12582912.0f), lo = _mm512_set1_ps((float)-NMAX), hi = _mm512_set1_ps((float)(NMAX - 1));
    for (int g = 0; g < G; g++) {
        sumLXA[g] = _mm512_setzero_ps(); sumL2A[g] = _mm512_setzero_ps();
        sumLXB[g] = _mm512_setzero_ps(); sumL2B[g] = _mm512_setzero_ps();
    }
    for (int i = 0; i < 16; i++)
        for (int g = 0; g < G; g++) {
            const __m512 xv = xt[g][i], wv = wt[g][i], wxv = wxt[g][i];
            __m512 la = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(iscaleA[g], xv), magic), magic);
            __m512 lb = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(iscaleB[g], xv), magic), magic);
            if (lower) { la = _mm512_max_ps(la, lo); lb = _mm512_max_ps(lb, lo); }
            if (upper) { la = _mm512_min_ps(la, hi); lb = _mm512_min_ps(lb, hi); }
            sumLXA[g] = _mm512_add_ps(sumLXA[g], _mm512_mul_ps(wxv, la));
            sumL2A[g] = _mm512_add_ps(sumL2A[g], _mm512_mul_ps(_mm512_mul_ps(wv, la), la));
            sumLXB[g] = _mm512_add_ps(sumLXB[g], _mm512_mul_ps(wxv, lb));
            sumL2B[g] = _mm512_add_ps(sumL2B[g], _mm512_mul_ps(_mm512_mul_ps(wv, lb), lb));
        }
}

// make_qx_quants(16, NMAX, x, L, 1, weights) of the sixteen sub-blocks of each of G consecutive
// blocks (block g at x + 256 g): weights x² (qw NULL, quantize_row_q6_K_ref) or the importance
// itself (qw + 256 g, quantize_row_q6_K_impl). Scales and kept inverse scales of block g at
// scales + 16 g and iscales + 16 g, its live sub-blocks (not all below GROUP_MAX_EPS) in liveOut[g].
QK_V512 static inline __attribute__((always_inline)) void qx16_lanes512(const float *x, const float *qw, float *iscales, uint16_t *liveOut,
                                                                        float *scales, const int G, const int NMAX) {
    __m512 xt[2][16], wt[2][16], wxt[2][16];
    __m512 amax[2], max[2], iscale[2], sumLX[2], sumL2[2], scale[2], best[2];
    __mmask16 live[2];
    for (int g = 0; g < G; g++) {
        amax[g] = _mm512_setzero_ps(); max[g] = _mm512_setzero_ps();
        qk512_transpose16(x + 256 * g, xt[g]);
        if (qw) qk512_transpose16(qw + 256 * g, wt[g]);
        for (int i = 0; i < 16; i++) {
            if (!qw) wt[g][i] = _mm512_mul_ps(xt[g][i], xt[g][i]);
            wxt[g][i] = _mm512_mul_ps(wt[g][i], xt[g][i]);
            const __m512 ax = _mm512_abs_ps(xt[g][i]);
            const __mmask16 gt = _mm512_cmp_ps_mask(ax, amax[g], _CMP_GT_OQ);
            amax[g] = _mm512_mask_mov_ps(amax[g], gt, ax);
            max[g] = _mm512_mask_mov_ps(max[g], gt, xt[g][i]);
        }
        live[g] = _mm512_cmp_ps_mask(amax[g], _mm512_set1_ps(1e-15f), _CMP_NLT_UQ);
        iscale[g] = _mm512_maskz_div_ps(live[g], _mm512_set1_ps((float)-NMAX), max[g]);
    }
    // The codes of the kept scale are those of its inverse scale (ggml recomputes them so when it
    // takes a scale), so each lane keeps the inverse scale, and the codes are computed once at the end.
    __m512 bestIscale[2];
    qx16_pass512(xt, wt, wxt, iscale, 0, sumLX, sumL2, G, NMAX, 0, 1);
    for (int g = 0; g < G; g++) {
        bestIscale[g] = iscale[g];
        scale[g] = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(sumL2[g], _mm512_setzero_ps(), _CMP_NEQ_UQ), sumLX[g], sumL2[g]);
        best[g] = _mm512_mul_ps(scale[g], sumLX[g]);
    }
    // The eighteen inverse scales in pairs (-9, -8), …, (-1, 1), …, (8, 9); a pair takes the clamps
    // either member needs (a clamp that cannot bind changes nothing).
    static const int pairs[9][2] = {{-9, -8}, {-7, -6}, {-5, -4}, {-3, -2}, {-1, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}};
    for (int p = 0; p < 9; p++) {
        __m512 iscaleB[2], sumLXB[2], sumL2B[2];
        const int isA = pairs[p][0], isB = pairs[p][1];
        const float cA = -(NMAX + 0.1f * isA), cB = -(NMAX + 0.1f * isB);
        for (int g = 0; g < G; g++) {
            iscale[g] = _mm512_maskz_div_ps(live[g], _mm512_set1_ps(cA), max[g]);
            iscaleB[g] = _mm512_maskz_div_ps(live[g], _mm512_set1_ps(cB), max[g]);
        }
        if (isB >= 5) qx16_pass512x2(xt, wt, wxt, iscale, iscaleB, sumLX, sumL2, sumLXB, sumL2B, G, NMAX, 1, 1);
        else if (isB >= -5) qx16_pass512x2(xt, wt, wxt, iscale, iscaleB, sumLX, sumL2, sumLXB, sumL2B, G, NMAX, 0, 1);
        else qx16_pass512x2(xt, wt, wxt, iscale, iscaleB, sumLX, sumL2, sumLXB, sumL2B, G, NMAX, 0, 0);
        for (int k = 0; k < 2; k++)
            for (int g = 0; g < G; g++) {
                const __m512 lx = k ? sumLXB[g] : sumLX[g], l2 = k ? sumL2B[g] : sumL2[g], isc = k ? iscaleB[g] : iscale[g];
                const __mmask16 take = live[g] & _mm512_cmp_ps_mask(l2, _mm512_setzero_ps(), _CMP_GT_OQ) &
                                       _mm512_cmp_ps_mask(_mm512_mul_ps(lx, lx), _mm512_mul_ps(best[g], l2), _CMP_GT_OQ);
                const __m512 sc = _mm512_div_ps(lx, l2);
                bestIscale[g] = _mm512_mask_mov_ps(bestIscale[g], take, isc);
                scale[g] = _mm512_mask_mov_ps(scale[g], take, sc);
                best[g] = _mm512_mask_mov_ps(best[g], take, _mm512_mul_ps(sc, lx));
            }
    }
    // The codes are needed only for sub-blocks whose stored scale comes out 0 (rare): the finish
    // computes those from the kept inverse scale.
    for (int g = 0; g < G; g++) {
        _mm512_storeu_ps(iscales + 16 * g, bestIscale[g]);
        liveOut[g] = live[g];
        _mm512_storeu_ps(scales + 16 * g, _mm512_maskz_mov_ps(live[g], scale[g]));
    }
}

// qkx_lanes on sixteen lanes: G groups of two consecutive blocks (group g at x + 512 g, lane j its
// sub-block of 32 at x + 512 g + 32 j), lanes whose bit in `valid` is clear read nothing (zeros:
// a block past the end); weights avX + |x| (qw NULL) or qw · sqrt(σ² + x²) with the importance at
// the same offsets from qw and block k's σ² in sigma2[k]. Scales, -mins and (sumWOut) Σw of block
// k at 8 k; codes transposed, element i of lane j of group g at Lt[512 g + 16 i + j].
QK_V512 static inline __attribute__((always_inline)) void qkx_lanes512(const float *x, const float *qw, const float *sigma2, uint8_t *Lt,
                                                                       float *scales, float *mins, float *sumWOut, const int G,
                                                                       const __mmask16 lastValid, const int nmax, const float rmin,
                                                                       const float rdelta, const int nstep) {
    enum { N = 32 };
    __m512 xt[2][N], wt[2][N], Laux[2][N];
    __m512 mn[2], mx[2], sumW[2], sumX[2], iscale[2], scale[2], best[2];
    __mmask16 live[2];
    for (int g = 0; g < G; g++) {
        const __mmask16 valid = g == G - 1 ? lastValid : 0xFFFF;
        const int rows = valid == 0xFFFF ? 16 : 8;
        qk512_transpose16s(x + 512 * g, 32, rows, xt[g]);
        qk512_transpose16s(x + 512 * g + 16, 32, rows, xt[g] + 16);
        if (qw) {
            const __m512 s2 = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(sigma2[2 * g]), _mm512_set1_ps(valid == 0xFFFF ? sigma2[2 * g + 1] : 0.f));
            __m512 qt[N];
            qk512_transpose16s(qw + 512 * g, 32, rows, qt);
            qk512_transpose16s(qw + 512 * g + 16, 32, rows, qt + 16);
            for (int i = 0; i < N; i++)
                wt[g][i] = _mm512_mul_ps(qt[i], _mm512_sqrt_ps(_mm512_add_ps(s2, _mm512_mul_ps(xt[g][i], xt[g][i]))));
        } else {
            __m512 sumX2 = _mm512_setzero_ps();
            for (int i = 0; i < N; i++) sumX2 = _mm512_add_ps(sumX2, _mm512_mul_ps(xt[g][i], xt[g][i]));
            const __m512 avX = _mm512_sqrt_ps(_mm512_div_ps(sumX2, _mm512_set1_ps(32.0f)));
            for (int i = 0; i < N; i++) wt[g][i] = _mm512_add_ps(avX, _mm512_abs_ps(xt[g][i]));
        }
    }
    const __m512i zero = _mm512_setzero_si512(), qmax = _mm512_set1_epi32(nmax);
    for (int g = 0; g < G; g++) {
        mn[g] = xt[g][0]; mx[g] = xt[g][0]; sumW[g] = wt[g][0]; sumX[g] = _mm512_mul_ps(wt[g][0], xt[g][0]);
    }
    for (int i = 1; i < N; i++)
        for (int g = 0; g < G; g++) {
            mn[g] = _mm512_min_ps(xt[g][i], mn[g]);
            mx[g] = _mm512_max_ps(xt[g][i], mx[g]);
            sumW[g] = _mm512_add_ps(sumW[g], wt[g][i]);
            sumX[g] = _mm512_add_ps(sumX[g], _mm512_mul_ps(wt[g][i], xt[g][i]));
        }
    for (int g = 0; g < G; g++) {
        mn[g] = _mm512_mask_mov_ps(mn[g], _mm512_cmp_ps_mask(mn[g], _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_setzero_ps());
        live[g] = _mm512_cmp_ps_mask(mx[g], mn[g], _CMP_NEQ_UQ);
        iscale[g] = _mm512_div_ps(_mm512_set1_ps((float)nmax), _mm512_sub_ps(mx[g], mn[g]));
        // The impls' Σw starts from 0 (0 + w₀, which turns a -0 into +0); this chain starts from w₀.
        if (sumWOut) _mm512_storeu_ps(sumWOut + 16 * g, _mm512_add_ps(sumW[g], _mm512_setzero_ps()));
        scale[g] = _mm512_div_ps(_mm512_set1_ps(1.0f), iscale[g]);
        best[g] = _mm512_setzero_ps();
    }
    // ggml keeps the codes of the best pass; they are those of its inverse scale and min, so each
    // lane keeps those two, and the codes are computed once at the end.
    __m512 codeIscale[2], codeMn[2], xmin[2];
    for (int g = 0; g < G; g++) {
        codeIscale[g] = iscale[g]; codeMn[g] = mn[g];
        xmin[g] = xt[g][0];
        for (int i = 1; i < N; i++) xmin[g] = _mm512_min_ps(xt[g][i], xmin[g]);
    }
    for (int i = 0; i < N; i++)
        for (int g = 0; g < G; g++) {
            __m512i l = nearest_int_v512(_mm512_mul_ps(iscale[g], _mm512_sub_ps(xt[g][i], mn[g])));
            l = _mm512_min_epi32(_mm512_max_epi32(l, zero), qmax);
            __m512 diff = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(scale[g], _mm512_cvtepi32_ps(l)), mn[g]), xt[g][i]);
            diff = _mm512_mul_ps(diff, diff);
            best[g] = _mm512_add_ps(best[g], _mm512_mul_ps(wt[g][i], diff));
        }
    const __m512 magic = _mm512_set1_ps(12582912.0f), fmax = _mm512_set1_ps((float)nmax);
    for (int is = 0; is <= nstep; is++) {
        __m512 sumL[2], sumL2[2], sumXL[2], thisScale[2], thisMin[2], cur[2];
        __mmask16 ok[2];
        int small = 1;
        for (int g = 0; g < G; g++) {
            iscale[g] = _mm512_div_ps(_mm512_set1_ps(rmin + rdelta * is + nmax), _mm512_sub_ps(mx[g], mn[g]));
            sumL[g] = _mm512_setzero_ps(); sumL2[g] = _mm512_setzero_ps(); sumXL[g] = _mm512_setzero_ps();
            // |iscale (x - mn)| <= |iscale| max(|mx - mn|, |min x - mn|) (1 + 3 ulp): below 2^21 in every
            // live lane, nearest_int equals rounding with the magic number in float (|f| < 2^22).
            const __m512 span = _mm512_max_ps(_mm512_abs_ps(_mm512_sub_ps(mx[g], mn[g])), _mm512_abs_ps(_mm512_sub_ps(xmin[g], mn[g])));
            const __m512 bound = _mm512_mul_ps(_mm512_abs_ps(iscale[g]), span);
            small &= (_mm512_cmp_ps_mask(bound, _mm512_set1_ps(2097152.0f), _CMP_LT_OQ) & live[g]) == live[g];
        }
        if (small)
            for (int i = 0; i < N; i++)
                for (int g = 0; g < G; g++) {
                    __m512 lf = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(iscale[g], _mm512_sub_ps(xt[g][i], mn[g])), magic), magic);
                    lf = _mm512_min_ps(_mm512_max_ps(lf, _mm512_setzero_ps()), fmax);
                    const __m512 wl = _mm512_mul_ps(wt[g][i], lf);
                    Laux[g][i] = lf;
                    sumL[g] = _mm512_add_ps(sumL[g], wl);
                    sumL2[g] = _mm512_add_ps(sumL2[g], _mm512_mul_ps(wl, lf));
                    sumXL[g] = _mm512_add_ps(sumXL[g], _mm512_mul_ps(wl, xt[g][i]));
                }
        else
            for (int i = 0; i < N; i++)
                for (int g = 0; g < G; g++) {
                    __m512i l = nearest_int_v512(_mm512_mul_ps(iscale[g], _mm512_sub_ps(xt[g][i], mn[g])));
                    l = _mm512_min_epi32(_mm512_max_epi32(l, zero), qmax);
                    const __m512 lf = _mm512_cvtepi32_ps(l), wl = _mm512_mul_ps(wt[g][i], lf);
                    Laux[g][i] = lf;
                    sumL[g] = _mm512_add_ps(sumL[g], wl);
                    sumL2[g] = _mm512_add_ps(sumL2[g], _mm512_mul_ps(wl, lf));
                    sumXL[g] = _mm512_add_ps(sumXL[g], _mm512_mul_ps(wl, xt[g][i]));
                }
        for (int g = 0; g < G; g++) {
            const __m512 D = _mm512_sub_ps(_mm512_mul_ps(sumW[g], sumL2[g]), _mm512_mul_ps(sumL[g], sumL[g]));
            ok[g] = live[g] & _mm512_cmp_ps_mask(D, _mm512_setzero_ps(), _CMP_GT_OQ);
            thisScale[g] = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sumW[g], sumXL[g]), _mm512_mul_ps(sumX[g], sumL[g])), D);
            thisMin[g] = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sumL2[g], sumX[g]), _mm512_mul_ps(sumL[g], sumXL[g])), D);
            const __mmask16 positive = _mm512_cmp_ps_mask(thisMin[g], _mm512_setzero_ps(), _CMP_GT_OQ);
            thisMin[g] = _mm512_mask_mov_ps(thisMin[g], positive, _mm512_setzero_ps());
            thisScale[g] = _mm512_mask_mov_ps(thisScale[g], positive, _mm512_div_ps(sumXL[g], sumL2[g]));
            cur[g] = _mm512_setzero_ps();
        }
        for (int i = 0; i < N; i++)
            for (int g = 0; g < G; g++) {
                __m512 diff = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(thisScale[g], Laux[g][i]), thisMin[g]), xt[g][i]);
                diff = _mm512_mul_ps(diff, diff);
                cur[g] = _mm512_add_ps(cur[g], _mm512_mul_ps(wt[g][i], diff));
            }
        for (int g = 0; g < G; g++) {
            const __mmask16 take = ok[g] & _mm512_cmp_ps_mask(cur[g], best[g], _CMP_LT_OQ);
            codeIscale[g] = _mm512_mask_mov_ps(codeIscale[g], take, iscale[g]);
            codeMn[g] = _mm512_mask_mov_ps(codeMn[g], take, mn[g]);
            best[g] = _mm512_mask_mov_ps(best[g], take, cur[g]);
            scale[g] = _mm512_mask_mov_ps(scale[g], take, thisScale[g]);
            mn[g] = _mm512_mask_mov_ps(mn[g], take, thisMin[g]);
        }
    }
    for (int g = 0; g < G; g++) {
        const int halves = g == G - 1 && lastValid != 0xFFFF ? 1 : 2;
        for (int i = 0; i < N; i++) {
            __m512i l = nearest_int_v512(_mm512_mul_ps(codeIscale[g], _mm512_sub_ps(xt[g][i], codeMn[g])));
            l = _mm512_min_epi32(_mm512_max_epi32(l, zero), qmax);
            _mm_storeu_si128((__m128i *)(Lt + 512 * g + 16 * i), _mm512_cvtepi32_epi8(_mm512_maskz_mov_epi32(live[g], l)));
        }
        // -mn as the scalar code's unary minus: flip the sign bit (0 - mn would turn -0 into +0).
        const __m512 negMn = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(mn[g]), _mm512_set1_epi32((int)0x80000000u)));
        const __m512 sc = _mm512_maskz_mov_ps(live[g], scale[g]);
        if (halves == 2) {
            _mm512_storeu_ps(mins + 16 * g, negMn);
            _mm512_storeu_ps(scales + 16 * g, sc);
        } else {
            _mm256_storeu_ps(mins + 16 * g, _mm512_castps512_ps256(negMn));
            _mm256_storeu_ps(scales + 16 * g, _mm512_castps512_ps256(sc));
        }
    }
}

// The fits of `count` (1 to 4) consecutive Q4_K (nmax 15) or Q5_K (nmax 31) blocks, plain
// (quantize_row_q4_K_ref / q5_K_ref's make_qkx2_quants arguments) or weighted (qw, sigma2:
// make_qkx3_quants(32, nmax, …, -0.9, 0.05, 36) of the impls).
QK_V512 static void q45_k_fit512(const float *x, const float *qw, const float *sigma2, int count, int five, uint8_t *Lt, float *scales,
                                 float *mins, float *sumW) {
    const __mmask16 last = count % 2 ? 0x00FF : 0xFFFF;
#define QK_FIT512(G, NMAX, RMIN, RDELTA, NSTEP) qkx_lanes512(x, qw, sigma2, Lt, scales, mins, sumW, G, last, NMAX, RMIN, RDELTA, NSTEP)
    if (qw) {
        if (five) { if (count > 2) QK_FIT512(2, 31, -0.9f, 0.05f, 36); else QK_FIT512(1, 31, -0.9f, 0.05f, 36); }
        else { if (count > 2) QK_FIT512(2, 15, -0.9f, 0.05f, 36); else QK_FIT512(1, 15, -0.9f, 0.05f, 36); }
    } else {
        if (five) { if (count > 2) QK_FIT512(2, 31, -0.5f, 0.1f, 15); else QK_FIT512(1, 31, -0.5f, 0.1f, 15); }
        else { if (count > 2) QK_FIT512(2, 15, -1.f, 0.1f, 20); else QK_FIT512(1, 15, -1.f, 0.1f, 20); }
    }
#undef QK_FIT512
}

// q4_k_finish for the codes of a q45_k_fit512 call (block k): sub-blocks with a non-zero stored
// scale requantized ((x + dm) / d, ggml's division) on sixteen lanes, the others keep the fit's
// codes; packed two to a byte.
QK_V512 static void q4_k_finish512(const float *xb, uint8_t *y, const uint8_t *Lt, int k) {
    const uint8_t *sc = y + 4;
    uint8_t *qs = y + 16;
    const float dAll = qk_h2f(y), mAll = qk_h2f(y + 2);
    uint8_t L[256];
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        qk_k4_scale_min(j, sc, &s, &m);
        const float d = dAll * s;
        if (!d) {
            const uint8_t *t = Lt + 512 * (k / 2) + 8 * (k % 2) + j;
            for (int i = 0; i < 32; i++) L[32 * j + i] = t[16 * i];
            continue;
        }
        const __m512 vd = _mm512_set1_ps(d), vdm = _mm512_set1_ps(mAll * m);
        for (int h = 0; h < 2; h++) {
            __m512i q = nearest_int_v512(_mm512_div_ps(_mm512_add_ps(_mm512_loadu_ps(xb + 32 * j + 16 * h), vdm), vd));
            q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(15));
            _mm_storeu_si128((__m128i *)(L + 32 * j + 16 * h), _mm512_cvtepi32_epi8(q));
        }
    }
    // (hi << 4) in 16-bit lanes: codes are <= 15, so nothing crosses into the neighbouring byte.
    for (int p = 0; p < 4; p++) {
        const __m256i lo = _mm256_loadu_si256((const __m256i *)(L + 64 * p)), hi = _mm256_loadu_si256((const __m256i *)(L + 64 * p + 32));
        _mm256_storeu_si256((__m256i *)(qs + 32 * p), _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)));
    }
}

// q5_k_finish for the codes of a q45_k_fit512 call (block k): the requantized codes (x + dm) / d
// on sixteen lanes, the fifth bits into qh, the low four bits packed two to a byte.
QK_V512 static void q5_k_finish512(const float *xb, uint8_t *y, const uint8_t *Lt, int k) {
    const uint8_t *sc = y + 4;
    uint8_t *qh = y + 16, *q = y + 48;
    const float dAll = qk_h2f(y), mAll = qk_h2f(y + 2);
    uint8_t L[256];
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        qk_k4_scale_min(j, sc, &s, &m);
        const float d = dAll * s;
        if (!d) {
            const uint8_t *t = Lt + 512 * (k / 2) + 8 * (k % 2) + j;
            for (int i = 0; i < 32; i++) L[32 * j + i] = t[16 * i];
            continue;
        }
        const __m512 vd = _mm512_set1_ps(d), vdm = _mm512_set1_ps(mAll * m);
        for (int h = 0; h < 2; h++) {
            __m512i v = nearest_int_v512(_mm512_div_ps(_mm512_add_ps(_mm512_loadu_ps(xb + 32 * j + 16 * h), vdm), vd));
            v = _mm512_min_epi32(_mm512_max_epi32(v, _mm512_setzero_si512()), _mm512_set1_epi32(31));
            _mm_storeu_si128((__m128i *)(L + 32 * j + 16 * h), _mm512_cvtepi32_epi8(v));
        }
    }
    memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < 256; n += 64) {
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
            if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
            q[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 <<= 2; m2 <<= 2;
        q += 32;
    }
}

QK_V512 static long q45_k_avx512(const float *x, uint8_t *out, size_t blocks, int five) {
    long bad = -1;
    const size_t bytes = five ? 176 : 144;
    uint8_t Lt[1024];
    float scales[32], mins[32];
    for (size_t b = 0; b < blocks; b += 4) {
        const int count = blocks - b >= 4 ? 4 : (int)(blocks - b);
        q45_k_fit512(x + 256 * b, 0, 0, count, five, Lt, scales, mins, 0);
        for (int k = 0; k < count; k++) {
            const float *xb = x + 256 * (b + k), *sc = scales + 8 * k, *mi = mins + 8 * k;
            uint8_t *y = out + bytes * (b + k);
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 8; j++) {
                if (sc[j] > maxScale) maxScale = sc[j];
                if (mi[j] > maxMin) maxMin = mi[j];
            }
            pack_scales_mins_k4(y + 4, sc, mi, maxScale, maxMin);
            uint16_t dh = qk_f16_from_f32(maxScale / 63.f), mh = qk_f16_from_f32(maxMin / 63.f);
            if (bad < 0 && (qk_is_inf16(dh) || qk_is_inf16(mh))) bad = (long)(b + k);
            qk_wr16(y, dh); qk_wr16(y + 2, mh);
            if (five) q5_k_finish512(xb, y, Lt, k); else q4_k_finish512(xb, y, Lt, k);
        }
    }
    return bad;
}
static long q4_k_avx512(const float *x, uint8_t *out, size_t blocks) { return q45_k_avx512(x, out, blocks, 0); }
static long q5_k_avx512(const float *x, uint8_t *out, size_t blocks) { return q45_k_avx512(x, out, blocks, 1); }

QK_V512 static long q45_k_weighted_avx512(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance, int five) {
    long bad = -1;
    const size_t nb = columns / 256, bytes = five ? 176 : 144;
    uint8_t Lt[1024], Ls[8], Lm[8];
    float sw[32], mins[32], scales[32], sigma2[4];
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < nb; i += 4) {
            const int count = nb - i >= 4 ? 4 : (int)(nb - i);
            const float *x0 = x + r * columns + 256 * i;
            for (int g = 0; g < count; g++) sigma2[g] = 2 * sum_x2_256(x0 + 256 * g) / 256;
            q45_k_fit512(x0, importance + 256 * i, sigma2, count, five, Lt, scales, mins, sw);
            for (int g = 0; g < count; g++) {
                const float *xb = x0 + 256 * g;
                uint8_t *y = out + bytes * (r * nb + i + (size_t)g);
                const float dBlock = make_qp_quants(8, 63, scales + 8 * g, Ls, sw + 8 * g);
                const float mBlock = make_qp_quants(8, 63, mins + 8 * g, Lm, sw + 8 * g);
                if (five)
                    for (int j = 0; j < 8; j++) { Ls[j] = Ls[j] < 63 ? Ls[j] : 63; Lm[j] = Lm[j] < 63 ? Lm[j] : 63; }
                pack_ls_lm_k4(y + 4, Ls, Lm);
                const uint16_t dh = qk_f16_from_f32(dBlock), mh = qk_f16_from_f32(mBlock);
                if (bad < 0 && (qk_is_inf16(dh) || qk_is_inf16(mh))) bad = (long)(r * nb + i + (size_t)g);
                qk_wr16(y, dh); qk_wr16(y + 2, mh);
                if (five) q5_k_finish512(xb, y, Lt, g); else q4_k_finish512(xb, y, Lt, g);
            }
        }
    return bad;
}
static long q4_k_weighted_avx512(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    return q45_k_weighted_avx512(x, out, rows, columns, importance, 0);
}
static long q5_k_weighted_avx512(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    return q45_k_weighted_avx512(x, out, rows, columns, importance, 1);
}

// make_q3_quants(16, 4, x, L, true) of the sixteen sub-blocks of a Q3_K block, one per lane: the
// symmetric fit with weights x², then up to five passes over the elements that move single codes
// while that raises (Σwxl)²/Σwl², each lane's floats those of the scalar chain (a lane whose pass
// changed nothing would change nothing in a further pass, so running it on is exact). Codes + 4 in
// L (0 for an all-zero sub-block), scales in scales.
QK_V512 static void q3_fit512(const float *x, int8_t *L, float *scales) {
    enum { NMAX = 4 };
    __m512 xt[16], wt[16], wxt[16], Lf[16];
    __m512 amax = _mm512_setzero_ps(), max = _mm512_setzero_ps();
    qk512_transpose16(x, xt);
    for (int i = 0; i < 16; i++) {
        wt[i] = _mm512_mul_ps(xt[i], xt[i]);
        wxt[i] = _mm512_mul_ps(wt[i], xt[i]);
        const __m512 ax = _mm512_abs_ps(xt[i]);
        const __mmask16 gt = _mm512_cmp_ps_mask(ax, amax, _CMP_GT_OQ);
        amax = _mm512_mask_mov_ps(amax, gt, ax);
        max = _mm512_mask_mov_ps(max, gt, xt[i]);
    }
    const __mmask16 live = _mm512_cmp_ps_mask(amax, _mm512_set1_ps(1e-15f), _CMP_NLT_UQ);
    const __m512 iscale = _mm512_maskz_div_ps(live, _mm512_set1_ps((float)-NMAX), max);
    const __m512i lo = _mm512_set1_epi32(-NMAX), hi = _mm512_set1_epi32(NMAX - 1);
    __m512 sumLX = _mm512_setzero_ps(), sumL2 = _mm512_setzero_ps();
    for (int i = 0; i < 16; i++) {
        const __m512i l = _mm512_min_epi32(_mm512_max_epi32(nearest_int_v512(_mm512_mul_ps(iscale, xt[i])), lo), hi);
        Lf[i] = _mm512_cvtepi32_ps(l);
        sumLX = _mm512_add_ps(sumLX, _mm512_mul_ps(wxt[i], Lf[i]));
        sumL2 = _mm512_add_ps(sumL2, _mm512_mul_ps(_mm512_mul_ps(wt[i], Lf[i]), Lf[i]));
    }
    for (int itry = 0; itry < 5; itry++) {
        __mmask16 changed = 0;
        for (int i = 0; i < 16; i++) {
            const __m512 slx = _mm512_sub_ps(sumLX, _mm512_mul_ps(wxt[i], Lf[i]));
            const __mmask16 positive = _mm512_cmp_ps_mask(slx, _mm512_setzero_ps(), _CMP_GT_OQ);
            if (!positive) continue;
            const __m512 sl2 = _mm512_sub_ps(sumL2, _mm512_mul_ps(_mm512_mul_ps(wt[i], Lf[i]), Lf[i]));
            const __m512i nl = _mm512_min_epi32(_mm512_max_epi32(nearest_int_v512(_mm512_div_ps(_mm512_mul_ps(xt[i], sl2), slx)), lo), hi);
            const __m512 nlf = _mm512_cvtepi32_ps(nl);
            const __mmask16 moved = positive & _mm512_cmp_ps_mask(nlf, Lf[i], _CMP_NEQ_UQ);
            if (!moved) continue;
            const __m512 slxN = _mm512_add_ps(slx, _mm512_mul_ps(wxt[i], nlf));
            const __m512 sl2N = _mm512_add_ps(sl2, _mm512_mul_ps(_mm512_mul_ps(wt[i], nlf), nlf));
            const __mmask16 better = moved & _mm512_cmp_ps_mask(sl2N, _mm512_setzero_ps(), _CMP_GT_OQ) &
                                     _mm512_cmp_ps_mask(_mm512_mul_ps(_mm512_mul_ps(slxN, slxN), sumL2),
                                                        _mm512_mul_ps(_mm512_mul_ps(sumLX, sumLX), sl2N), _CMP_GT_OQ);
            Lf[i] = _mm512_mask_mov_ps(Lf[i], better, nlf);
            sumLX = _mm512_mask_mov_ps(sumLX, better, slxN);
            sumL2 = _mm512_mask_mov_ps(sumL2, better, sl2N);
            changed |= better;
        }
        if (!changed) break;
    }
    int8_t lt[16][16];
    for (int i = 0; i < 16; i++)
        _mm_storeu_si128((__m128i *)lt[i], _mm512_cvtepi32_epi8(_mm512_maskz_add_epi32(live, _mm512_cvtps_epi32(Lf[i]), _mm512_set1_epi32(NMAX))));
    for (int j = 0; j < 16; j++)
        for (int i = 0; i < 16; i++) L[16 * j + i] = lt[i][j];
    const __mmask16 nonzero = _mm512_cmp_ps_mask(sumL2, _mm512_setzero_ps(), _CMP_GT_OQ);
    _mm512_storeu_ps(scales, _mm512_maskz_mov_ps(live, _mm512_maskz_div_ps(nonzero, sumLX, sumL2)));
}

// q3_k_finish with the codes x / d (ggml's division) on sixteen lanes per sub-block.
QK_V512 static void q3_k_finish512(const float *xb, uint8_t *y, int8_t *L) {
    uint8_t *hmask = y, *qs = y + 32;
    const uint8_t *sc = y + 96;
    const float dAll = qk_h2f(y + 108);
    for (int j = 0; j < 16; j++) {
        int8_t s = (int8_t)(j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4);
        s = (int8_t)((s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
        const float d = dAll * s;
        if (!d) continue;
        __m512i q = nearest_int_v512(_mm512_div_ps(_mm512_loadu_ps(xb + 16 * j), _mm512_set1_ps(d)));
        q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-4)), _mm512_set1_epi32(3)), _mm512_set1_epi32(4));
        _mm_storeu_si128((__m128i *)(L + 16 * j), _mm512_cvtepi32_epi8(q));
    }
    memset(hmask, 0, 32);
    int m = 0;
    uint8_t hm = 1;
    for (int j = 0; j < 256; j++) {
        if (L[j] > 3) { hmask[m] |= hm; L[j] -= 4; }
        if (++m == 32) { m = 0; hm <<= 1; }
    }
    for (int j = 0; j < 256; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

QK_V512 static long q3_k_avx512(const float *x, uint8_t *out, size_t blocks) {
    long bad = -1;
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b; uint8_t *y = out + 110 * b;
        uint8_t *sc = y + 96;
        int8_t L[256];
        float scales[16], maxScale = 0, amax = 0;
        q3_fit512(xb, L, scales);
        for (int j = 0; j < 16; j++) {
            float s = fabsf(scales[j]);
            if (s > amax) { amax = s; maxScale = scales[j]; }
        }
        memset(sc, 0, 12);
        uint16_t dh = 0;
        if (maxScale) {
            float iscale = -32.f / maxScale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)qk_nearest_int(iscale * scales[j]);
                l = (int8_t)((l < -32 ? -32 : (l > 31 ? 31 : l)) + 32);
                if (j < 8) sc[j] = (uint8_t)(l & 0xF);
                else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l >>= 4;
                sc[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            dh = qk_f16_from_f32(1 / iscale);
        }
        if (bad < 0 && qk_is_inf16(dh)) bad = (long)b;
        qk_wr16(y + 108, dh);
        q3_k_finish512(xb, y, L);
    }
    return bad;
}

// quantize_row_q2_K_ref's fits, make_qkx2_quants(16, 3, x, |x|, L, &min, Laux, -0.5, 0.1, 15,
// true) (absolute errors), of the sixteen sub-blocks of each of G consecutive blocks, one sub-block
// per lane, as qkx_lanes512 (codes from the kept inverse scale and min, float rounding when the
// range allows). Codes of block g at L + 256 g, scales and -mins at 16 g.
QK_V512 static inline __attribute__((always_inline)) void q2_k_lanes512(const float *x, uint8_t *L, float *scales, float *mins, const int G) {
    enum { N = 16, NMAX = 3, NSTEP = 15 };
    const float rmin = -0.5f, rdelta = 0.1f;
    __m512 xt[2][N], wt[2][N], Laux[2][N];
    __m512 mn[2], mx[2], sumW[2], sumX[2], iscale[2], scale[2], best[2], codeIscale[2], codeMn[2], xmin[2];
    __mmask16 live[2];
    for (int g = 0; g < G; g++) {
        qk512_transpose16(x + 256 * g, xt[g]);
        for (int i = 0; i < N; i++) wt[g][i] = _mm512_abs_ps(xt[g][i]);
    }
    const __m512i zero = _mm512_setzero_si512(), qmax = _mm512_set1_epi32(NMAX);
    for (int g = 0; g < G; g++) {
        mn[g] = xt[g][0]; mx[g] = xt[g][0]; sumW[g] = wt[g][0]; sumX[g] = _mm512_mul_ps(wt[g][0], xt[g][0]);
        for (int i = 1; i < N; i++) {
            mn[g] = _mm512_min_ps(xt[g][i], mn[g]);
            mx[g] = _mm512_max_ps(xt[g][i], mx[g]);
            sumW[g] = _mm512_add_ps(sumW[g], wt[g][i]);
            sumX[g] = _mm512_add_ps(sumX[g], _mm512_mul_ps(wt[g][i], xt[g][i]));
        }
        xmin[g] = mn[g];
        mn[g] = _mm512_mask_mov_ps(mn[g], _mm512_cmp_ps_mask(mn[g], _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_setzero_ps());
        live[g] = _mm512_cmp_ps_mask(mx[g], mn[g], _CMP_NEQ_UQ);
        iscale[g] = _mm512_div_ps(_mm512_set1_ps((float)NMAX), _mm512_sub_ps(mx[g], mn[g]));
        scale[g] = _mm512_div_ps(_mm512_set1_ps(1.0f), iscale[g]);
        best[g] = _mm512_setzero_ps();
        codeIscale[g] = iscale[g]; codeMn[g] = mn[g];
        for (int i = 0; i < N; i++) {
            __m512i l = nearest_int_v512(_mm512_mul_ps(iscale[g], _mm512_sub_ps(xt[g][i], mn[g])));
            l = _mm512_min_epi32(_mm512_max_epi32(l, zero), qmax);
            const __m512 diff = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(scale[g], _mm512_cvtepi32_ps(l)), mn[g]), xt[g][i]);
            best[g] = _mm512_add_ps(best[g], _mm512_mul_ps(wt[g][i], _mm512_abs_ps(diff)));
        }
    }
    const __m512 magic = _mm512_set1_ps(12582912.0f), fmax = _mm512_set1_ps((float)NMAX);
    for (int is = 0; is <= NSTEP; is++) {
        __m512 sumL[2], sumL2[2], sumXL[2], thisScale[2], thisMin[2], cur[2];
        __mmask16 ok[2];
        int small = 1;
        for (int g = 0; g < G; g++) {
            iscale[g] = _mm512_div_ps(_mm512_set1_ps(rmin + rdelta * is + NMAX), _mm512_sub_ps(mx[g], mn[g]));
            sumL[g] = _mm512_setzero_ps(); sumL2[g] = _mm512_setzero_ps(); sumXL[g] = _mm512_setzero_ps();
            const __m512 span = _mm512_max_ps(_mm512_abs_ps(_mm512_sub_ps(mx[g], mn[g])), _mm512_abs_ps(_mm512_sub_ps(xmin[g], mn[g])));
            const __m512 bound = _mm512_mul_ps(_mm512_abs_ps(iscale[g]), span);
            small &= (_mm512_cmp_ps_mask(bound, _mm512_set1_ps(2097152.0f), _CMP_LT_OQ) & live[g]) == live[g];
        }
        for (int i = 0; i < N; i++)
            for (int g = 0; g < G; g++) {
                __m512 lf;
                if (small) {
                    lf = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(iscale[g], _mm512_sub_ps(xt[g][i], mn[g])), magic), magic);
                    lf = _mm512_min_ps(_mm512_max_ps(lf, _mm512_setzero_ps()), fmax);
                } else {
                    __m512i l = nearest_int_v512(_mm512_mul_ps(iscale[g], _mm512_sub_ps(xt[g][i], mn[g])));
                    lf = _mm512_cvtepi32_ps(_mm512_min_epi32(_mm512_max_epi32(l, zero), qmax));
                }
                const __m512 wl = _mm512_mul_ps(wt[g][i], lf);
                Laux[g][i] = lf;
                sumL[g] = _mm512_add_ps(sumL[g], wl);
                sumL2[g] = _mm512_add_ps(sumL2[g], _mm512_mul_ps(wl, lf));
                sumXL[g] = _mm512_add_ps(sumXL[g], _mm512_mul_ps(wl, xt[g][i]));
            }
        for (int g = 0; g < G; g++) {
            const __m512 D = _mm512_sub_ps(_mm512_mul_ps(sumW[g], sumL2[g]), _mm512_mul_ps(sumL[g], sumL[g]));
            ok[g] = live[g] & _mm512_cmp_ps_mask(D, _mm512_setzero_ps(), _CMP_GT_OQ);
            thisScale[g] = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sumW[g], sumXL[g]), _mm512_mul_ps(sumX[g], sumL[g])), D);
            thisMin[g] = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sumL2[g], sumX[g]), _mm512_mul_ps(sumL[g], sumXL[g])), D);
            const __mmask16 positive = _mm512_cmp_ps_mask(thisMin[g], _mm512_setzero_ps(), _CMP_GT_OQ);
            thisMin[g] = _mm512_mask_mov_ps(thisMin[g], positive, _mm512_setzero_ps());
            thisScale[g] = _mm512_mask_mov_ps(thisScale[g], positive, _mm512_div_ps(sumXL[g], sumL2[g]));
            cur[g] = _mm512_setzero_ps();
        }
        for (int i = 0; i < N; i++)
            for (int g = 0; g < G; g++) {
                const __m512 diff = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(thisScale[g], Laux[g][i]), thisMin[g]), xt[g][i]);
                cur[g] = _mm512_add_ps(cur[g], _mm512_mul_ps(wt[g][i], _mm512_abs_ps(diff)));
            }
        for (int g = 0; g < G; g++) {
            const __mmask16 take = ok[g] & _mm512_cmp_ps_mask(cur[g], best[g], _CMP_LT_OQ);
            codeIscale[g] = _mm512_mask_mov_ps(codeIscale[g], take, iscale[g]);
            codeMn[g] = _mm512_mask_mov_ps(codeMn[g], take, mn[g]);
            best[g] = _mm512_mask_mov_ps(best[g], take, cur[g]);
            scale[g] = _mm512_mask_mov_ps(scale[g], take, thisScale[g]);
            mn[g] = _mm512_mask_mov_ps(mn[g], take, thisMin[g]);
        }
    }
    for (int g = 0; g < G; g++) {
        uint8_t lt[N][16];
        for (int i = 0; i < N; i++) {
            __m512i l = nearest_int_v512(_mm512_mul_ps(codeIscale[g], _mm512_sub_ps(xt[g][i], codeMn[g])));
            l = _mm512_min_epi32(_mm512_max_epi32(l, zero), qmax);
            _mm_storeu_si128((__m128i *)lt[i], _mm512_cvtepi32_epi8(_mm512_maskz_mov_epi32(live[g], l)));
        }
        for (int j = 0; j < 16; j++)
            for (int i = 0; i < N; i++) L[256 * g + 16 * j + i] = lt[i][j];
        _mm512_storeu_ps(mins + 16 * g, _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(mn[g]), _mm512_set1_epi32((int)0x80000000u))));
        _mm512_storeu_ps(scales + 16 * g, _mm512_maskz_mov_ps(live[g], scale[g]));
    }
}

QK_V512 static void q2_k_fit512(const float *x, int count, uint8_t *L, float *scales, float *mins) {
    if (count == 2) q2_k_lanes512(x, L, scales, mins, 2); else q2_k_lanes512(x, L, scales, mins, 1);
}

// q2_k_finish with the codes (x + dm) / d (ggml's division) on sixteen lanes per sub-block.
QK_V512 static void q2_k_finish512(const float *xb, uint8_t *y, uint8_t *L) {
    const uint8_t *sc = y;
    uint8_t *qs = y + 16;
    const float dAll = qk_h2f(y + 80), mAll = qk_h2f(y + 82);
    for (int j = 0; j < 16; j++) {
        const float d = dAll * (sc[j] & 0xF);
        if (!d) continue;
        const float dm = mAll * (sc[j] >> 4);
        __m512i q = nearest_int_v512(_mm512_div_ps(_mm512_add_ps(_mm512_loadu_ps(xb + 16 * j), _mm512_set1_ps(dm)), _mm512_set1_ps(d)));
        q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(3));
        _mm_storeu_si128((__m128i *)(L + 16 * j), _mm512_cvtepi32_epi8(q));
    }
    for (int j = 0; j < 256; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

QK_V512 static long q2_k_avx512(const float *x, uint8_t *out, size_t blocks) {
    long bad = -1;
    uint8_t Lp[512];
    float scp[32], mnp[32];
    for (size_t b = 0; b < blocks; b++) {
        const float *xb = x + 256 * b; uint8_t *y = out + 84 * b;
        uint8_t *sc = y;
        if (b % 2 == 0) q2_k_fit512(xb, blocks - b >= 2 ? 2 : 1, Lp, scp, mnp);
        uint8_t *L = Lp + 256 * (b % 2);
        const float *scales = scp + 16 * (b % 2), *mins = mnp + 16 * (b % 2);
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 16; j++) {
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        uint16_t dh = 0, mh = 0;
        if (maxScale > 0) {
            float iscale = 15.f / maxScale;
            for (int j = 0; j < 16; j++) sc[j] = (uint8_t)qk_nearest_int(iscale * scales[j]);
            dh = qk_f16_from_f32(maxScale / 15.f);
        } else {
            memset(sc, 0, 16);
        }
        if (maxMin > 0) {
            float iscale = 15.f / maxMin;
            for (int j = 0; j < 16; j++) sc[j] |= (uint8_t)(qk_nearest_int(iscale * mins[j]) << 4);
            mh = qk_f16_from_f32(maxMin / 15.f);
        }
        if (bad < 0 && (qk_is_inf16(dh) || qk_is_inf16(mh))) bad = (long)b;
        qk_wr16(y + 80, dh); qk_wr16(y + 82, mh);
        q2_k_finish512(xb, y, L);
    }
    return bad;
}

// ql and qh of a Q6_K block from its 256 codes 0..63 (quantize_row_q6_K_ref's packing).
QK_V static void q6_k_pack_avx2(const uint8_t *L, uint8_t *ql, uint8_t *qh) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    for (int j = 0; j < 256; j += 128) {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(L + j)), b = _mm256_loadu_si256((const __m256i *)(L + j + 32));
        const __m256i c = _mm256_loadu_si256((const __m256i *)(L + j + 64)), e = _mm256_loadu_si256((const __m256i *)(L + j + 96));
        _mm256_storeu_si256((__m256i *)ql, _mm256_or_si256(_mm256_and_si256(a, m4), _mm256_slli_epi16(_mm256_and_si256(c, m4), 4)));
        _mm256_storeu_si256((__m256i *)(ql + 32), _mm256_or_si256(_mm256_and_si256(b, m4), _mm256_slli_epi16(_mm256_and_si256(e, m4), 4)));
        const __m256i ha = _mm256_and_si256(_mm256_srli_epi16(a, 4), m2), hb = _mm256_and_si256(_mm256_srli_epi16(b, 4), m2);
        const __m256i hc = _mm256_and_si256(_mm256_srli_epi16(c, 4), m2), he = _mm256_and_si256(_mm256_srli_epi16(e, 4), m2);
        _mm256_storeu_si256((__m256i *)qh, _mm256_or_si256(_mm256_or_si256(ha, _mm256_slli_epi16(hb, 2)),
                                                          _mm256_or_si256(_mm256_slli_epi16(hc, 4), _mm256_slli_epi16(he, 6))));
        ql += 64;
        qh += 32;
    }
}

// q6_k_finish for the fits of qx16_lanes512 (kept inverse scales, live sub-blocks): the same scales,
// FP16 d and requantized codes (x / d, ggml's division), packed. Returns 1 when d overflowed.
QK_V512 static int q6_k_finish512(const float *xb, uint8_t *y, const float *iscales, uint16_t live, const float *scales) {
    int8_t *sc = (int8_t *)(y + 192);
    float maxScale = 0, maxAbsScale = 0;
    for (int ib = 0; ib < 16; ib++) {
        float as = fabsf(scales[ib]);
        if (as > maxAbsScale) { maxAbsScale = as; maxScale = scales[ib]; }
    }
    if (maxAbsScale < 1e-15f) {
        memset(y, 0, 210);
        return 0;
    }
    float iscale = -128.f / maxScale;
    uint16_t dh = qk_f16_from_f32(1 / iscale);
    qk_wr16(y + 208, dh);
    // sc = MIN(127, nearest_int(iscale · scale)) (in -128..127: |scale| <= |maxScale|), d = dAll · sc.
    const __m512i v = _mm512_min_epi32(nearest_int_v512(_mm512_mul_ps(_mm512_set1_ps(iscale), _mm512_loadu_ps(scales))),
                                       _mm512_set1_epi32(127));
    _mm_storeu_si128((__m128i *)sc, _mm512_cvtepi32_epi8(v));
    float dj[16];
    _mm512_storeu_ps(dj, _mm512_mul_ps(_mm512_set1_ps(qk_f32_from_f16(dh)), _mm512_cvtepi32_ps(v)));
    uint8_t L[256];
    const __m512i lo = _mm512_set1_epi32(-32), hi = _mm512_set1_epi32(31), bias = _mm512_set1_epi32(32);
    for (int j = 0; j < 16; j++) {
        const float d = dj[j];
        if (!d) {
            // make_qx_quants' codes: NMAX + clamp(nearest_int(iscale x)), 0 for an all-zero sub-block
            for (int ii = 0; ii < 16; ii++) {
                const int l = qk_nearest_int(iscales[j] * xb[16 * j + ii]);
                L[16 * j + ii] = (uint8_t)(live >> j & 1 ? 32 + (l < -32 ? -32 : (l > 31 ? 31 : l)) : 0);
            }
            continue;
        }
        __m512i q = nearest_int_v512(_mm512_div_ps(_mm512_loadu_ps(xb + 16 * j), _mm512_set1_ps(d)));
        q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), bias);
        _mm_storeu_si128((__m128i *)(L + 16 * j), _mm512_cvtepi32_epi8(q));
    }
    q6_k_pack_avx2(L, y, y + 128);
    return qk_is_inf16(dh);
}

QK_V512 static void q6_k_fit512(const float *x, const float *qw, int count, float *iscales, uint16_t *live, float *scales) {
    if (count == 2) qx16_lanes512(x, qw, iscales, live, scales, 2, 32);
    else qx16_lanes512(x, qw, iscales, live, scales, 1, 32);
}

QK_V512 static long q6_k_avx512(const float *x, uint8_t *out, size_t blocks) {
    long bad = -1;
    float iscales[32], scales[32];
    uint16_t live[2];
    for (size_t b = 0; b < blocks; b += 2) {
        const int count = blocks - b >= 2 ? 2 : 1;
        q6_k_fit512(x + 256 * b, 0, count, iscales, live, scales);
        for (int g = 0; g < count; g++)
            if (q6_k_finish512(x + 256 * (b + g), out + 210 * (b + g), iscales + 16 * g, live[g], scales + 16 * g) && bad < 0) bad = (long)(b + g);
    }
    return bad;
}

QK_V512 static long q6_k_weighted_avx512(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) {
    long bad = -1;
    const size_t nb = columns / 256;
    float iscales[32], scales[32];
    uint16_t live[2];
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < nb; i += 2) {
            const int count = nb - i >= 2 ? 2 : 1;
            const float *x0 = x + r * columns + 256 * i;
            q6_k_fit512(x0, importance + 256 * i, count, iscales, live, scales);
            for (int g = 0; g < count; g++) {
                const size_t k = r * nb + i + (size_t)g;
                if (q6_k_finish512(x0 + 256 * g, out + 210 * k, iscales + 16 * g, live[g], scales + 16 * g) && bad < 0) bad = (long)k;
            }
        }
    return bad;
}
#endif

// MARK: Entry points (ggml_kernels.c's table)

#if defined(__x86_64__)
// Which encoders have an AVX-512 path (name##_avx512_or_avx2 is it; the others alias AVX2).
#define QK_HAS_AVX512_q4_k 1
#define QK_HAS_AVX512_q5_k 1
#define QK_HAS_AVX512_q6_k 1
#define QK_HAS_AVX512_q3_k_weighted 0
#define QK_HAS_AVX512_q4_k_weighted 1
#define QK_HAS_AVX512_q5_k_weighted 1
#define QK_HAS_AVX512_q6_k_weighted 1
#define q4_k_avx512_or_avx2 q4_k_avx512
#define q5_k_avx512_or_avx2 q5_k_avx512
#define q6_k_avx512_or_avx2 q6_k_avx512
#define q3_k_weighted_avx512_or_avx2 q3_k_weighted_avx2
#define q4_k_weighted_avx512_or_avx2 q4_k_weighted_avx512
#define q5_k_weighted_avx512_or_avx2 q5_k_weighted_avx512
#define q6_k_weighted_avx512_or_avx2 q6_k_weighted_avx512
#endif

#if defined(__x86_64__)
// The widest path the CPU has: AVX-512 where a type has one (QK_HAS_AVX512_name), else AVX2.
#define QK_AVX512_OR_AVX2(name, ...) (QK_HAS_AVX512_##name && qk_isa_avx512() ? name##_avx512_or_avx2(__VA_ARGS__) : name##_avx2(__VA_ARGS__))
#define QK_KQUANT_ENTRIES(name) \
    long qk_ggml_##name##_encode(const float *x, uint8_t *out, size_t blocks) { \
        return qk_isa_avx2() ? QK_AVX512_OR_AVX2(name, x, out, blocks) : name##_scalar(x, out, blocks); \
    } \
    long qk_ggml_##name##_portable(const float *x, uint8_t *out, size_t blocks) { return name##_scalar(x, out, blocks); }
#else
#define QK_KQUANT_ENTRIES(name) \
    long qk_ggml_##name##_encode(const float *x, uint8_t *out, size_t blocks) { return name##_scalar(x, out, blocks); } \
    long qk_ggml_##name##_portable(const float *x, uint8_t *out, size_t blocks) { return name##_scalar(x, out, blocks); }
#endif

QK_KQUANT_ENTRIES(q4_k)
QK_KQUANT_ENTRIES(q5_k)
QK_KQUANT_ENTRIES(q6_k)

// The ported reference types have one (portable) path.
#define QK_PORTABLE_ENTRIES(name) \
    long qk_ggml_##name##_encode(const float *x, uint8_t *out, size_t blocks) { return name##_scalar(x, out, blocks); } \
    long qk_ggml_##name##_portable(const float *x, uint8_t *out, size_t blocks) { return name##_scalar(x, out, blocks); }
#if defined(__x86_64__)
long qk_ggml_q2_k_encode(const float *x, uint8_t *out, size_t blocks) {
    return qk_isa_avx512() ? q2_k_avx512(x, out, blocks) : q2_k_scalar(x, out, blocks);
}
long qk_ggml_q2_k_portable(const float *x, uint8_t *out, size_t blocks) { return q2_k_scalar(x, out, blocks); }
long qk_ggml_q3_k_encode(const float *x, uint8_t *out, size_t blocks) {
    return qk_isa_avx512() ? q3_k_avx512(x, out, blocks) : q3_k_scalar(x, out, blocks);
}
long qk_ggml_q3_k_portable(const float *x, uint8_t *out, size_t blocks) { return q3_k_scalar(x, out, blocks); }
#else
QK_PORTABLE_ENTRIES(q2_k)
QK_PORTABLE_ENTRIES(q3_k)
#endif
QK_PORTABLE_ENTRIES(iq4_nl)
QK_PORTABLE_ENTRIES(iq4_xs)

// The importance-weighted paths: AVX2 fits for Q3_K, Q4_K, Q5_K and Q6_K, one portable path for the others.
#if defined(__x86_64__)
#define QK_WEIGHTED_DISPATCH(name) \
    long qk_ggml_##name##_weighted(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) { \
        return qk_isa_avx2() ? QK_AVX512_OR_AVX2(name##_weighted, x, out, rows, columns, importance) \
                             : name##_weighted_scalar(x, out, rows, columns, importance); \
    } \
    long qk_ggml_##name##_weighted_portable(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) { \
        return name##_weighted_scalar(x, out, rows, columns, importance); \
    }
#else
#define QK_WEIGHTED_DISPATCH(name) \
    long qk_ggml_##name##_weighted(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) { \
        return name##_weighted_scalar(x, out, rows, columns, importance); \
    } \
    long qk_ggml_##name##_weighted_portable(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) { \
        return name##_weighted_scalar(x, out, rows, columns, importance); \
    }
#endif
QK_WEIGHTED_DISPATCH(q3_k)
QK_WEIGHTED_DISPATCH(q4_k)
QK_WEIGHTED_DISPATCH(q5_k)
QK_WEIGHTED_DISPATCH(q6_k)
#define QK_WEIGHTED_ENTRY(name) \
    long qk_ggml_##name##_weighted(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) { \
        return name##_weighted(x, out, rows, columns, importance); \
    } \
    long qk_ggml_##name##_weighted_portable(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance) { \
        return name##_weighted(x, out, rows, columns, importance); \
    }
QK_WEIGHTED_ENTRY(q2_k)
QK_WEIGHTED_ENTRY(iq4_nl)
QK_WEIGHTED_ENTRY(iq4_xs)
