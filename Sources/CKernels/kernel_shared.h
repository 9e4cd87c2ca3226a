// The helpers every quantization kernel file shares: the bottom floor of the kernels.
//
// quant_fp8.c, quant_int.c and the ggml_*.c files include this header and CKernels.h and nothing
// of each other, so no kernel file borrows a helper from another one; what more than one file
// needs lives here (inline) or in kernel_shared.c. Every kernel is evaluated in plain float32
// without fused multiply-add (the bytes must equal the reference implementations'), so the pragmas
// that switch contraction off are set here for every file that includes this header.
#ifndef QUANTIZE_KERNEL_SHARED_H
#define QUANTIZE_KERNEL_SHARED_H
#include "CKernels.h"
#include <string.h>
#include <math.h>

#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)

/// The bits of a float32, and the float32 of some bits.
static inline uint32_t qk_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float qk_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/// FP32 → FP16 bits (round to nearest even, overflow → ±inf, NaN → 0x7E00 with its sign), FP16
/// bits → FP32, FP32 → BF16 bits (NaN forced quiet, else round to nearest even): the ggml rules,
/// inline so that the kernels' loops do not call across files (CKernels.h exports them too).
static inline uint16_t qk_f16_from_f32(float f) {
    uint32_t u = qk_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return sign | 0x7E00;                  // NaN
    if (a >= 0x477FF000u) return sign | 0x7C00;                 // >= 65520 rounds to infinity
    if (a >= 0x38800000u) {                                     // normal (>= 2^-14)
        uint32_t r = (a + 0xFFFu + ((a >> 13) & 1u)) >> 13;
        return sign | (uint16_t)(r - (112u << 10));
    }
    float y = qk_float(a) * 16777216.0f + 8388608.0f;                 // units of 2^-24, RNE
    return sign | (uint16_t)(qk_bits(y) - 0x4B000000u);
}

static inline float qk_f32_from_f16(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1F, m = h & 0x3FF;
    if (e == 0x1F) return qk_float(sign | 0x7F800000u | (m << 13));
    if (e == 0) {
        float f = (float)m * 5.9604644775390625e-08f;          // m * 2^-24, exact
        return qk_float(qk_bits(f) | sign);
    }
    return qk_float(sign | ((e + 112u) << 23) | (m << 13));
}

static inline uint16_t qk_bf16_from_f32(float f) {
    uint32_t n = qk_bits(f);
    if ((n & 0x7FFFFFFFu) > 0x7F800000u) n = (n & 0xFFFF0000u) | (64u << 16);
    return (uint16_t)(((uint64_t)n + (0x7FFFu + ((n >> 16) & 1u))) >> 16);
}

/// Rounds a positive float32 scale to the stored dtype (0 = F32, 1 = BF16, 2 = F16) and applies the
/// smallest-normal floor. Returns +inf when the dtype cannot hold it.
static inline float qk_round_scale(float s, int scaleType) {
    float r;
    switch (scaleType) {
    case 1: r = qk_float((uint32_t)qk_bf16_from_f32(s) << 16); break;
    case 2: r = qk_f32_from_f16(qk_f16_from_f32(s)); break;
    default: r = s; break;
    }
    float smallest = scaleType == 2 ? 6.103515625e-05f : 1.17549435e-38f;
    if (!(r >= smallest)) r = smallest;   // zero, subnormal (NaN cannot occur: inputs are finite)
    return r;
}

/// Little-endian 16-bit loads and stores at any alignment.
static inline uint16_t qk_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void qk_wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
/// The FP16 value stored at p, as float32.
static inline float qk_h2f(const uint8_t *p) { return qk_f32_from_f16(qk_rd16(p)); }
/// BF16 bits as float32 (exact).
static inline float qk_bf16_to_f32(uint16_t h) { return qk_float((uint32_t)h << 16); }
/// Whether FP16 bits are ±infinity (an FP16 scale that overflowed).
static inline int qk_is_inf16(uint16_t h) { return (h & 0x7FFF) == 0x7C00; }

/// max |x[i]| of NaN-free input, eight lanes so that the compiler vectorises it (0 for n = 0).
static inline float qk_amax_scalar(const float *x, size_t n) {
    float m[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) { float a = fabsf(x[i + k]); m[k] = a > m[k] ? a : m[k]; }
    float r = 0;
    for (int k = 0; k < 8; k++) r = m[k] > r ? m[k] : r;
    for (; i < n; i++) { float a = fabsf(x[i]); r = a > r ? a : r; }
    return r;
}

/// Index of the first value with an all-ones exponent (NaN or ±inf), or -1.
static inline long qk_first_nonfinite_scalar(const float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint32_t any = 0;
        for (int k = 0; k < 16; k++) { uint32_t u; memcpy(&u, x + i + k, 4); any |= ((u & 0x7F800000u) == 0x7F800000u); }
        if (any) break;
    }
    for (; i < n; i++) { uint32_t u; memcpy(&u, x + i, 4); if ((u & 0x7F800000u) == 0x7F800000u) return (long)i; }
    return -1;
}

/// 1 when the AVX2 paths may run on this CPU (qk_cpu_has_f16c_avx2, asked once), else 0.
int qk_isa_avx2(void);
/// 1 when the AVX-512 paths may run (qk_cpu_has_avx512 and qk_isa_avx2, asked once, and the
/// environment variable QUANTIZE_NO_AVX512 unset: it lets the tests compare the AVX2 path on an
/// AVX-512 machine), else 0.
int qk_isa_avx512(void);
/// Turns the AVX-512 paths off (on = 1) or back (0) for the calling thread; returns the previous value.
int qk_ggml_avx2_scope(int on);

#if defined(__x86_64__)
#include <immintrin.h>
/// The target attribute of the AVX2 + F16C kernels (FMA stays off: see the pragmas above).
#define QK_V __attribute__((target("avx2,f16c")))
#endif

#endif
