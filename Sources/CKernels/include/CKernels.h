#ifndef QUANTIZE_CKERNELS_H
#define QUANTIZE_CKERNELS_H
#include <stddef.h>
#include <stdint.h>

/// Returns 1 when the CPU supports F16C and AVX2 (checked once at run time), else 0.
int qk_cpu_has_f16c_avx2(void);

// MARK: Element conversion (conversion.c)
//
// Every kernel converts `count` elements from `source` to `destination`. `source` may be unaligned;
// `destination` must be aligned for its element type. The buffers must not overlap. The kernels keep
// no state, so they may run concurrently on disjoint buffers.
//
// Each conversion has a portable `_scalar` kernel and, where it pays, an `_avx2` kernel (AVX2 + F16C +
// FMA, compiled with per-function target attributes). Call an `_avx2` kernel only when
// `qk_cpu_has_f16c_avx2()` returned 1; it then produces exactly the bits of the `_scalar` kernel.
// On CPUs other than x86-64 the `_avx2` symbols exist and run the scalar code.
//
// Bit rules (equal to numpy 2.x / ml_dtypes 0.6):
//  - float16 -> float32 is exact; a NaN keeps its sign and payload (payload << 13), quiet or not.
//  - float32 -> float16 rounds to nearest even; overflow gives infinity; a NaN keeps its sign and the
//    top 10 payload bits, and becomes 0x7C01 (with its sign) when those bits are all zero.
//  - bfloat16 -> float32 is exact (the bits shifted into the high half).
//  - float32 -> bfloat16 rounds to nearest even; overflow gives infinity; every NaN becomes the quiet
//    NaN 0x7FC0 with the input's sign.

void qk_f16_to_f32_scalar(const void *source, float *destination, size_t count);
void qk_f16_to_f32_avx2(const void *source, float *destination, size_t count);
void qk_f32_to_f16_scalar(const float *source, void *destination, size_t count);
void qk_f32_to_f16_avx2(const float *source, void *destination, size_t count);
void qk_bf16_to_f32_scalar(const void *source, float *destination, size_t count);
void qk_bf16_to_f32_avx2(const void *source, float *destination, size_t count);
void qk_f32_to_bf16_scalar(const float *source, void *destination, size_t count);
void qk_f32_to_bf16_avx2(const float *source, void *destination, size_t count);

/// OCP E4M3FN (safetensors F8_E4M3) to float32; both NaN codes become the quiet NaN 0x7FC00000 with
/// the code's sign, as ml_dtypes does.
void qk_f8e4m3fn_to_f32_scalar(const void *source, float *destination, size_t count);
void qk_f8e4m3fn_to_f32_avx2(const void *source, float *destination, size_t count);
/// OCP E5M2 (safetensors F8_E5M2) to float32; every NaN code becomes the quiet NaN 0x7FC00000 with the
/// code's sign, as ml_dtypes does.
void qk_f8e5m2_to_f32_scalar(const void *source, float *destination, size_t count);
void qk_f8e5m2_to_f32_avx2(const void *source, float *destination, size_t count);

/// Any 8-bit code to float32 through a 256-entry table of float32 values (FP8 variants, E8M0, I8, U8).
void qk_u8_table_to_f32(const void *source, float *destination, size_t count, const float *table);

/// Integer and float64 element types to float32, rounding to nearest even (the C casts numpy uses).
void qk_i16_to_f32(const void *source, float *destination, size_t count);
void qk_u16_to_f32(const void *source, float *destination, size_t count);
void qk_i32_to_f32(const void *source, float *destination, size_t count);
void qk_u32_to_f32(const void *source, float *destination, size_t count);
void qk_i64_to_f32(const void *source, float *destination, size_t count);
void qk_u64_to_f32(const void *source, float *destination, size_t count);
void qk_f64_to_f32(const void *source, float *destination, size_t count);
/// Bytes to 0.0 (zero byte) or 1.0 (any other byte), as numpy's bool -> float32 cast.
void qk_bool_to_f32(const void *source, float *destination, size_t count);

#endif
