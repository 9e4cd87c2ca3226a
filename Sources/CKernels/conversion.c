// Element conversions to and from float32 (declared in CKernels.h, bit rules there).
//
// The scalar kernels are the definition; the AVX2/F16C kernels reproduce their bits. The hardware
// half conversions (vcvtph2ps, vcvtps2ph) handle every finite value and infinity exactly as numpy
// does, but quiet signalling NaNs and set the quiet bit, which numpy does not: a block of eight that
// holds a NaN is therefore redone with the scalar rule.
#include "CKernels.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QK_X86 1
#define QK_AVX2 __attribute__((target("avx2,f16c,fma")))
#else
#define QK_X86 0
#endif

static inline uint16_t load_u16(const unsigned char *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t float_bits(float f) {
    uint32_t v;
    memcpy(&v, &f, sizeof v);
    return v;
}

static inline float bits_float(uint32_t v) {
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}

// MARK: Scalar rules

static inline uint32_t f16_to_f32_bits(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = h & 0x7C00u;
    uint32_t mantissa = h & 0x03FFu;
    if (exponent == 0x7C00u) return sign | 0x7F800000u | (mantissa << 13);  // inf, NaN with payload
    if (exponent != 0) return sign | (((uint32_t)(h & 0x7FFFu) << 13) + 0x38000000u);
    // Zero or subnormal: mantissa * 2^-24, exact in float32 (integer conversion, then a power of two).
    return sign | float_bits((float)mantissa * 0x1p-24f);
}

static inline uint16_t f32_to_f16_bits(uint32_t f) {
    uint16_t sign = (uint16_t)((f >> 16) & 0x8000u);
    uint32_t exponent = f & 0x7F800000u;
    uint32_t mantissa = f & 0x007FFFFFu;
    if (exponent == 0x7F800000u) {
        if (mantissa == 0) return sign | 0x7C00u;
        uint16_t nan = (uint16_t)(0x7C00u | (mantissa >> 13));
        return sign | (nan == 0x7C00u ? 0x7C01u : nan);  // keep it a NaN (numpy's rule)
    }
    if (exponent >= 0x47800000u) return sign | 0x7C00u;  // |x| >= 2^16 overflows
    if (exponent <= 0x38000000u) {                       // |x| < 2^-14: subnormal or zero
        if (exponent < 0x33000000u) return sign;         // |x| < 2^-25 rounds to zero
        uint32_t significand = mantissa | 0x00800000u;
        uint32_t shift = 126u - (exponent >> 23);         // 14...24
        uint32_t result = significand >> shift;
        uint32_t rest = significand & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rest > half || (rest == half && (result & 1u))) result += 1u;
        return sign | (uint16_t)result;
    }
    uint32_t result = ((exponent - 0x38000000u) >> 13) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) result += 1u;  // may carry into inf
    return sign | (uint16_t)result;
}

static inline uint16_t f32_to_bf16_bits(uint32_t f) {
    if ((f & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)(((f >> 16) & 0x8000u) | 0x7FC0u);
    return (uint16_t)((f + 0x7FFFu + ((f >> 16) & 1u)) >> 16);
}

static inline uint32_t f8e4m3fn_to_f32_bits(uint8_t b) {
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t magnitude = b & 0x7Fu;
    if (magnitude == 0x7Fu) return sign | 0x7FC00000u;
    if (magnitude >= 8u) return sign | ((magnitude << 20) + (120u << 23));
    return sign | float_bits((float)magnitude * 0x1p-9f);
}

static inline uint32_t f8e5m2_to_f32_bits(uint8_t b) {
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    if ((b & 0x7Fu) > 0x7Cu) return sign | 0x7FC00000u;  // every NaN code to the quiet NaN
    return f16_to_f32_bits((uint16_t)(b << 8));       // E5M2 is the high byte of a float16
}

// MARK: Scalar kernels

void qk_f16_to_f32_scalar(const void *source, float *destination, size_t count) {
    const unsigned char *s = source;
    for (size_t i = 0; i < count; i++) destination[i] = bits_float(f16_to_f32_bits(load_u16(s + 2 * i)));
}

void qk_f32_to_f16_scalar(const float *source, void *destination, size_t count) {
    unsigned char *d = destination;
    for (size_t i = 0; i < count; i++) {
        uint16_t h = f32_to_f16_bits(float_bits(source[i]));
        memcpy(d + 2 * i, &h, 2);
    }
}

void qk_bf16_to_f32_scalar(const void *source, float *destination, size_t count) {
    const unsigned char *s = source;
    for (size_t i = 0; i < count; i++) destination[i] = bits_float((uint32_t)load_u16(s + 2 * i) << 16);
}

void qk_f32_to_bf16_scalar(const float *source, void *destination, size_t count) {
    unsigned char *d = destination;
    for (size_t i = 0; i < count; i++) {
        uint16_t h = f32_to_bf16_bits(float_bits(source[i]));
        memcpy(d + 2 * i, &h, 2);
    }
}

void qk_f8e4m3fn_to_f32_scalar(const void *source, float *destination, size_t count) {
    const uint8_t *s = source;
    for (size_t i = 0; i < count; i++) destination[i] = bits_float(f8e4m3fn_to_f32_bits(s[i]));
}

void qk_f8e5m2_to_f32_scalar(const void *source, float *destination, size_t count) {
    const uint8_t *s = source;
    for (size_t i = 0; i < count; i++) destination[i] = bits_float(f8e5m2_to_f32_bits(s[i]));
}

void qk_u8_table_to_f32(const void *source, float *destination, size_t count, const float *table) {
    const uint8_t *s = source;
    for (size_t i = 0; i < count; i++) destination[i] = table[s[i]];
}

#define QK_CAST_KERNEL(name, type)                                                   \
    void name(const void *source, float *destination, size_t count) {              \
        const unsigned char *s = source;                                           \
        for (size_t i = 0; i < count; i++) {                                       \
            type v;                                                                \
            memcpy(&v, s + sizeof(type) * i, sizeof(type));                       \
            destination[i] = (float)v;                                             \
        }                                                                          \
    }

QK_CAST_KERNEL(qk_i16_to_f32, int16_t)
QK_CAST_KERNEL(qk_u16_to_f32, uint16_t)
QK_CAST_KERNEL(qk_i32_to_f32, int32_t)
QK_CAST_KERNEL(qk_u32_to_f32, uint32_t)
QK_CAST_KERNEL(qk_i64_to_f32, int64_t)
QK_CAST_KERNEL(qk_u64_to_f32, uint64_t)
QK_CAST_KERNEL(qk_f64_to_f32, double)

void qk_bool_to_f32(const void *source, float *destination, size_t count) {
    const uint8_t *s = source;
    for (size_t i = 0; i < count; i++) destination[i] = s[i] != 0 ? 1.0f : 0.0f;
}

// MARK: AVX2 + F16C kernels

#if QK_X86

QK_AVX2 void qk_f16_to_f32_avx2(const void *source, float *destination, size_t count) {
    const unsigned char *s = source;
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(s + 2 * i));
        __m256 f = _mm256_cvtph_ps(h);
        if (__builtin_expect(_mm256_movemask_ps(_mm256_cmp_ps(f, f, _CMP_UNORD_Q)) != 0, 0)) {
            qk_f16_to_f32_scalar(s + 2 * i, destination + i, 8);
            continue;
        }
        _mm256_storeu_ps(destination + i, f);
    }
    qk_f16_to_f32_scalar(s + 2 * i, destination + i, count - i);
}

QK_AVX2 void qk_f32_to_f16_avx2(const float *source, void *destination, size_t count) {
    unsigned char *d = destination;
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 f = _mm256_loadu_ps(source + i);
        if (__builtin_expect(_mm256_movemask_ps(_mm256_cmp_ps(f, f, _CMP_UNORD_Q)) != 0, 0)) {
            qk_f32_to_f16_scalar(source + i, d + 2 * i, 8);
            continue;
        }
        _mm_storeu_si128((__m128i *)(d + 2 * i), _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    qk_f32_to_f16_scalar(source + i, d + 2 * i, count - i);
}

QK_AVX2 void qk_bf16_to_f32_avx2(const void *source, float *destination, size_t count) {
    const unsigned char *s = source;
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256i a = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + 2 * i)));
        __m256i b = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + 2 * i + 16)));
        _mm256_storeu_si256((__m256i *)(destination + i), _mm256_slli_epi32(a, 16));
        _mm256_storeu_si256((__m256i *)(destination + i + 8), _mm256_slli_epi32(b, 16));
    }
    qk_bf16_to_f32_scalar(s + 2 * i, destination + i, count - i);
}

QK_AVX2 static inline __m256i bf16_round8(__m256 f) {
    __m256i x = _mm256_castps_si256(f);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7FFF)), lsb), 16);
    __m256i nan = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x8000)),
                                  _mm256_set1_epi32(0x7FC0));
    __m256 isNaN = _mm256_cmp_ps(f, f, _CMP_UNORD_Q);
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(rounded), _mm256_castsi256_ps(nan), isNaN));
}

QK_AVX2 void qk_f32_to_bf16_avx2(const float *source, void *destination, size_t count) {
    unsigned char *d = destination;
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256i a = bf16_round8(_mm256_loadu_ps(source + i));
        __m256i b = bf16_round8(_mm256_loadu_ps(source + i + 8));
        // packus interleaves 128-bit halves: a0-3 b0-3 a4-7 b4-7; the permute puts them in order.
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
        _mm256_storeu_si256((__m256i *)(d + 2 * i), packed);
    }
    qk_f32_to_bf16_scalar(source + i, d + 2 * i, count - i);
}

// Both FP8 kernels widen 16 codes to float16 bit patterns and let vcvtph2ps do the rest.
QK_AVX2 static inline void store_halves(__m256i halves, float *destination, __m256 scale) {
    __m256 low = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(halves)), scale);
    __m256 high = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(halves, 1)), scale);
    _mm256_storeu_ps(destination, low);
    _mm256_storeu_ps(destination + 8, high);
}

// E4M3FN code b as float16 bits: sign | (b & 0x7F) << 7 has the value 2^-8 times the E4M3 value,
// for normal and subnormal codes alike (the exponent fields differ by 8 in bias), so a multiply by
// 256 finishes it exactly. The NaN code 0x7F becomes the float16 quiet NaN 0x7E00, which converts
// to 0x7FC00000 and passes through the multiply unchanged.
QK_AVX2 void qk_f8e4m3fn_to_f32_avx2(const void *source, float *destination, size_t count) {
    const uint8_t *s = source;
    const __m256i signMask = _mm256_set1_epi16((short)0x8000);
    const __m256i magnitudeMask = _mm256_set1_epi16(0x7F00);
    const __m256i quietNaN = _mm256_set1_epi16(0x7E00);
    const __m256 scale = _mm256_set1_ps(256.0f);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256i w = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(s + i))), 8);
        __m256i magnitude = _mm256_and_si256(w, magnitudeMask);
        __m256i nan = _mm256_cmpeq_epi16(magnitude, magnitudeMask);
        __m256i body = _mm256_or_si256(_mm256_andnot_si256(nan, _mm256_srli_epi16(magnitude, 1)),
                                       _mm256_and_si256(nan, quietNaN));
        store_halves(_mm256_or_si256(_mm256_and_si256(w, signMask), body), destination + i, scale);
    }
    qk_f8e4m3fn_to_f32_scalar(s + i, destination + i, count - i);
}

// E5M2 code b is exactly the float16 b << 8; its NaN codes become the quiet NaN 0x7E00 first.
QK_AVX2 void qk_f8e5m2_to_f32_avx2(const void *source, float *destination, size_t count) {
    const uint8_t *s = source;
    const __m256i signMask = _mm256_set1_epi16((short)0x8000);
    const __m256i magnitudeMask = _mm256_set1_epi16(0x7FFF);
    const __m256i infinity = _mm256_set1_epi16(0x7C00);
    const __m256i quietNaN = _mm256_set1_epi16(0x7E00);
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256i w = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(s + i))), 8);
        __m256i magnitude = _mm256_and_si256(w, magnitudeMask);
        __m256i nan = _mm256_cmpgt_epi16(magnitude, infinity);
        __m256i body = _mm256_or_si256(_mm256_andnot_si256(nan, magnitude), _mm256_and_si256(nan, quietNaN));
        store_halves(_mm256_or_si256(_mm256_and_si256(w, signMask), body), destination + i, one);
    }
    qk_f8e5m2_to_f32_scalar(s + i, destination + i, count - i);
}

#else

void qk_f16_to_f32_avx2(const void *source, float *destination, size_t count) {
    qk_f16_to_f32_scalar(source, destination, count);
}
void qk_f32_to_f16_avx2(const float *source, void *destination, size_t count) {
    qk_f32_to_f16_scalar(source, destination, count);
}
void qk_bf16_to_f32_avx2(const void *source, float *destination, size_t count) {
    qk_bf16_to_f32_scalar(source, destination, count);
}
void qk_f32_to_bf16_avx2(const float *source, void *destination, size_t count) {
    qk_f32_to_bf16_scalar(source, destination, count);
}
void qk_f8e4m3fn_to_f32_avx2(const void *source, float *destination, size_t count) {
    qk_f8e4m3fn_to_f32_scalar(source, destination, count);
}
void qk_f8e5m2_to_f32_avx2(const void *source, float *destination, size_t count) {
    qk_f8e5m2_to_f32_scalar(source, destination, count);
}

#endif
