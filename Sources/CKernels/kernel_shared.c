// The shared helpers of the quantization kernels (see kernel_shared.h): float16/bfloat16 scalar
// conversion with the ggml rules, rounding a scale to its stored dtype, the amax/min-max and
// non-finite scans, and the CPU check. Nothing here knows a scheme or a block layout.
#include "kernel_shared.h"
#include <stdlib.h>

int qk_isa_avx2(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) { v = qk_cpu_has_f16c_avx2(); __atomic_store_n(&cached, v, __ATOMIC_RELAXED); }
    return v;
}

// Set by qk_ggml_avx2_scope for the calls of the AVX2-only entry points (tests), on this thread only.
static _Thread_local int avx512Off = 0;

int qk_ggml_avx2_scope(int on) { int was = avx512Off; avx512Off = on; return was; }

int qk_isa_avx512(void) {
    if (avx512Off) return 0;
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *off = getenv("QUANTIZE_NO_AVX512");
        v = qk_isa_avx2() && qk_cpu_has_avx512() && !(off && *off && strcmp(off, "0") != 0);
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

// MARK: FP16 / BF16 scalars (ggml rules; the bodies are inline in kernel_shared.h)

uint16_t qk_quant_f32_to_f16(float value) { return qk_f16_from_f32(value); }
float qk_quant_f16_to_f32(uint16_t value) { return qk_f32_from_f16(value); }
uint16_t qk_quant_f32_to_bf16(float value) { return qk_bf16_from_f32(value); }

// MARK: Scale rounding (inline in kernel_shared.h)

float qk_quant_round_scale(float scale, int scaleType) { return qk_round_scale(scale, scaleType); }

// MARK: Scans

void qk_quant_minmax(const float *x, size_t n, float *minOut, float *maxOut) {
    float lo = x[0], hi = x[0];
    for (size_t i = 1; i < n; i++) { lo = x[i] < lo ? x[i] : lo; hi = x[i] > hi ? x[i] : hi; }
    *minOut = lo; *maxOut = hi;
}

static long first_abs_at_least_scalar(const float *x, size_t n, uint32_t magnitudeBits) {
    // First index whose |x| bit pattern (sign cleared) is >= magnitudeBits, or -1.
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint32_t any = 0;
        for (int k = 0; k < 16; k++) { uint32_t u; memcpy(&u, x + i + k, 4); any |= ((u & 0x7FFFFFFFu) >= magnitudeBits); }
        if (any) break;
    }
    for (; i < n; i++) { uint32_t u; memcpy(&u, x + i, 4); if ((u & 0x7FFFFFFFu) >= magnitudeBits) return (long)i; }
    return -1;
}


// MARK: AVX2 scans
//
// The same results as the scalar scans: a maximum of finite magnitudes is exact in any order, and
// the index scans only decide which run of 32 holds the first hit, then finish with the scalar code.
#if defined(__x86_64__)
__attribute__((target("avx2")))
static float amax_avx2(const float *x, size_t n) {
    const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 m[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) m[k] = _mm256_max_ps(m[k], _mm256_and_ps(_mm256_loadu_ps(x + i + 8 * k), absMask));
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3])));
    float r = qk_amax_scalar(x + i, n - i);
    for (int k = 0; k < 8; k++) r = lanes[k] > r ? lanes[k] : r;
    return r;
}

__attribute__((target("avx2")))
static size_t clean_prefix_avx2(const float *x, size_t n, uint32_t below) {
    // Length of the prefix of whole runs of 32 in which every magnitude bit pattern is < below.
    const __m256i mask = _mm256_set1_epi32(0x7FFFFFFF), threshold = _mm256_set1_epi32((int)(below - 1));
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i any = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++) {
            __m256i u = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i + 8 * k)), mask);
            any = _mm256_or_si256(any, _mm256_cmpgt_epi32(u, threshold));
        }
        if (!_mm256_testz_si256(any, any)) break;
    }
    return i;
}
#endif

float qk_quant_amax(const float *x, size_t n) {
#if defined(__x86_64__)
    if (qk_isa_avx2()) return amax_avx2(x, n);
#endif
    return qk_amax_scalar(x, n);
}

long qk_quant_first_nonfinite(const float *x, size_t n) {
    size_t i = 0;
#if defined(__x86_64__)
    if (qk_isa_avx2()) i = clean_prefix_avx2(x, n, 0x7F800000u);
#endif
    long r = qk_first_nonfinite_scalar(x + i, n - i);
    return r < 0 ? -1 : r + (long)i;
}

long qk_quant_first_abs_at_least(const float *x, size_t n, uint32_t magnitudeBits) {
    size_t i = 0;
#if defined(__x86_64__)
    if (magnitudeBits > 0 && qk_isa_avx2())
        i = clean_prefix_avx2(x, n, magnitudeBits);
#endif
    long r = first_abs_at_least_scalar(x + i, n - i, magnitudeBits);
    return r < 0 ? -1 : r + (long)i;
}
