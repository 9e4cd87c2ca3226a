// The GGUF kernels' internal interface: the function types each family file (ggml_legacy.c,
// ggml_kquants.c, ggml_decode.c) exports to the one dispatch table in ggml_kernels.c. Adding a GGUF
// type is a kernel in its family file and one line of that table's type lists; sizes come from
// GGMLType.all through the callers, never from here.
#ifndef QUANTIZE_GGML_KERNELS_H
#define QUANTIZE_GGML_KERNELS_H
#include "kernel_shared.h"

/// Q4_K's packed 6-bit scale and min of sub-block j (ggml `get_scale_min_k4`), shared by the
/// Q4_K encoder and the Q4_K/Q5_K decoders.
static inline void qk_k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) { *d = q[j] & 63; *m = q[j + 4] & 63; }
    else { *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
}

/// ggml's nearest_int: round half to even through the 1.5·2^23 magic number (|f| <= 4194303).
static inline int qk_nearest_int(float f) {
    float v = f + 12582912.0f;
    int32_t i; memcpy(&i, &v, 4);
    return (i & 0x007FFFFF) - 0x00400000;
}

/// ggml's make_qkx2_quants (and make_qkx3_quants with weights, the same float operations) for one
/// sub-block of n <= 32: the asymmetric fit with weights `w`, nstep + 1 inverse scales from
/// (nmax + rmin)/(max - min) in steps of rdelta, squared (or absolute, mad) weighted error; returns
/// the scale and stores -min in *theMin. Shared by the k-quants and the weighted Q4_1/Q5_1.
static inline float qk_make_qkx2_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *theMin,
                                        float rmin, float rdelta, int nstep, int mad) {
    uint8_t Laux[32];
    float mn = x[0], mx = x[0], sumW = w[0], sumX = sumW * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        sumW += w[i];
        sumX += w[i] * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *theMin = -mn;
        return 0.f;
    }
    float iscale = nmax / (mx - mn), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        int l = qk_nearest_int(iscale * (x[i] - mn));
        L[i] = (uint8_t)(l < 0 ? 0 : (l > nmax ? nmax : l));
        float diff = scale * L[i] + mn - x[i];
        diff = mad ? fabsf(diff) : diff * diff;
        best += w[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (mx - mn);
        float sumL = 0, sumL2 = 0, sumXL = 0;
        for (int i = 0; i < n; i++) {
            int l = qk_nearest_int(iscale * (x[i] - mn));
            l = l < 0 ? 0 : (l > nmax ? nmax : l);
            Laux[i] = (uint8_t)l;
            sumL += w[i] * l;
            sumL2 += w[i] * l * l;
            sumXL += w[i] * l * x[i];
        }
        float D = sumW * sumL2 - sumL * sumL;
        if (D > 0) {
            float thisScale = (sumW * sumXL - sumX * sumL) / D;
            float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
            if (thisMin > 0) { thisMin = 0; thisScale = sumXL / sumL2; }
            float cur = 0;
            for (int i = 0; i < n; i++) {
                float diff = thisScale * Laux[i] + thisMin - x[i];
                diff = mad ? fabsf(diff) : diff * diff;
                cur += w[i] * diff;
            }
            if (cur < best) {
                memcpy(L, Laux, (size_t)n);
                best = cur; scale = thisScale; mn = thisMin;
            }
        }
    }
    *theMin = -mn;
    return scale;
}

/// ggml's make_qx_quants(n, nmax, x, L, 1, qw) with importance weights qw (non-NULL): the symmetric
/// fit that tries 18 inverse scales around -nmax/max and keeps the weighted least-squares scale;
/// codes stored + nmax. Shared by the weighted Q3_K, Q6_K, Q4_0 and Q5_0.
static inline float qk_make_qx_quants_weighted(int n, int nmax, const float *x, int8_t *L, const float *qw) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) { float ax = fabsf(x[i]); if (ax > amax) { amax = ax; max = x[i]; } }
    if (amax < 1e-15f) { for (int i = 0; i < n; i++) L[i] = 0; return 0.f; }   // GROUP_MAX_EPS
    float iscale = -nmax / max, sumLX = 0, sumL2 = 0;
    for (int i = 0; i < n; i++) {
        int l = qk_nearest_int(iscale * x[i]);
        l = l < -nmax ? -nmax : (l > nmax - 1 ? nmax - 1 : l);
        L[i] = (int8_t)(l + nmax);
        float w = qw[i];
        sumLX += w * x[i] * l;
        sumL2 += w * l * l;
    }
    float scale = sumL2 ? sumLX / sumL2 : 0.0f;
    float best = scale * sumLX;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumLX = sumL2 = 0;
        for (int i = 0; i < n; i++) {
            int l = qk_nearest_int(iscale * x[i]);
            l = l < -nmax ? -nmax : (l > nmax - 1 ? nmax - 1 : l);
            float w = qw[i];
            sumLX += w * x[i] * l;
            sumL2 += w * l * l;
        }
        if (sumL2 > 0 && sumLX * sumLX > best * sumL2) {
            for (int i = 0; i < n; i++) {
                int l = qk_nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : (l > nmax - 1 ? nmax - 1 : l)));
            }
            scale = sumLX / sumL2; best = scale * sumLX;
        }
    }
    return scale;
}

/// ggml's per-row σ² of the weighted legacy quantizers (quantize_row_q4_0_impl, …): Σx²/n over
/// the whole row, accumulated in order.
static inline float qk_row_sigma2(const float *x, size_t n) {
    float sumX2 = 0;
    for (size_t j = 0; j < n; j++) sumX2 += x[j] * x[j];
    return sumX2 / (float)(int64_t)n;
}

#if defined(__x86_64__)
/// make_qx_quants(32, nmax, …) with weights qw · sqrt(σ² + x²) of `count` (8 or 16) consecutive
/// blocks of 32 (x, qw), one block per AVX2 lane, codes + nmax in L and scales: the fits of the
/// weighted Q4_0 (nmax 8) and Q5_0 (nmax 16), defined with the AVX2 fits in ggml_kquants.c. Call
/// only when qk_isa_avx2().
void qk_ggml_qx_fit32_weighted_avx2(const float *x, const float *qw, float sigma2, int count, int nmax, int8_t *L, float *scales);
/// make_qkx3_quants(32, nmax, …, -0.9, 0.05, 36) with weights qw · sqrt(σ² + x²) of `count` (8 or
/// 16) consecutive blocks of 32, one block per AVX2 lane: codes in L, scales and -min in mins; the
/// fits of the weighted Q4_1 (nmax 15) and Q5_1 (nmax 31). Call only when qk_isa_avx2().
void qk_ggml_qkx_fit32_weighted_avx2(const float *x, const float *qw, float sigma2, int count, int nmax, uint8_t *L,
                                     float *scales, float *mins);
#endif

/// An encoder of `blocks` blocks (elements for F16/BF16) of finite input; -1 or the first block
/// whose FP16 scale overflowed.
typedef long (*qk_ggml_encode_fn)(const float *x, uint8_t *out, size_t blocks);
/// An importance-weighted encoder (ggml_quantize_chunk with a non-NULL imatrix) of `rows` rows of
/// `columns` finite floats, every row weighted by the same `columns` importance values; -1 or the
/// first block (counted over all rows) whose FP16 scale overflowed.
typedef long (*qk_ggml_weighted_fn)(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance);
/// A one-pass encoder that also detects NaN/±inf (sets *nonFinite; AVX2 only).
typedef long (*qk_ggml_checked_fn)(const float *x, uint8_t *out, size_t blocks, int *nonFinite);
/// A decoder of `blocks` blocks laid out `bytesPerBlock` apart, `blockSize` floats each.
typedef void (*qk_ggml_decode_fn)(const uint8_t *in, float *out, size_t blocks, size_t blockSize, size_t bytesPerBlock);

// Each family file defines, per type NAME, `qk_ggml_NAME_encode` and `qk_ggml_NAME_portable`
// (qk_ggml_encode_fn), on x86-64 `qk_ggml_NAME_checked` (qk_ggml_checked_fn) where it has a
// one-pass checked encoder, and ggml_decode.c `qk_ggml_decode_NAME` (qk_ggml_decode_fn); the type
// lists of ggml_kernels.c declare and tabulate them; where ggml has an importance-weighted path,
// the family file also defines `qk_ggml_NAME_weighted` (qk_ggml_weighted_fn).

#endif
