#ifndef QUANTIZE_CKERNELS_H
#define QUANTIZE_CKERNELS_H
#include <stddef.h>
#include <stdint.h>
#include "guarded_read.h"
#include "file_io.h"

/// Returns 1 when the CPU supports F16C and AVX2 (checked once at run time), else 0.
int qk_cpu_has_f16c_avx2(void);
/// Returns 1 when the CPU and OS support AVX-512F (checked at run time), else 0.
int qk_cpu_has_avx512(void);

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
// MARK: Quantize module kernels (kernel_shared.c, quant_fp8.c, quant_int.c, ggml_legacy.c,
// ggml_kquants.c, ggml_decode.c, dispatched from the table in ggml_kernels.c)

/// FP32 → FP8 E4M3FN byte: round-to-nearest-even, saturating at ±448, NaN → 0x7F with sign.
uint8_t qk_quant_f32_to_e4m3(float value);
/// FP32 → FP8 E5M2 byte: round-to-nearest-even, saturating at ±57344, NaN → 0x7E with sign.
uint8_t qk_quant_f32_to_e5m2(float value);
/// FP8 E4M3FN byte → FP32 (0x7F/0xFF decode as NaN).
float qk_quant_e4m3_to_f32(uint8_t value);
/// FP8 E5M2 byte → FP32.
float qk_quant_e5m2_to_f32(uint8_t value);
/// out[i] = fp8(clamp(x[i] / scale, -limit, limit)) for E4M3 (e5m2 = 0) or E5M2 (e5m2 = 1).
void qk_quant_fp8_encode_scaled(const float *x, uint8_t *out, size_t n, float scale, float limit, int e5m2);
/// The same as qk_quant_fp8_encode_scaled without the AVX2 path (identical bytes; for tests).
void qk_quant_fp8_encode_scaled_portable(const float *x, uint8_t *out, size_t n, float scale, float limit, int e5m2);
/// FP8 with one scale per tile of tileRows × tileCols elements of a rows × cols row-major matrix
/// (per channel 1 × cols, groups 1 × g, blocks r × c): scale = qk_quant_round_scale(amax / limit, 0)
/// with amax the tile's largest magnitude (finite input), codes as qk_quant_fp8_encode_scaled. Scales
/// are stored as little-endian F32 at scaleOut + 4 * ((r / tileRows) * ceil(cols / tileCols) + c / tileCols).
/// Returns 1 when the input holds a NaN or infinity (the output is then meaningless), else 0.
int qk_quant_fp8_encode_tiles(const float *x, size_t rows, size_t cols, size_t tileRows, size_t tileCols,
                              float limit, int e5m2, uint8_t *out, uint8_t *scaleOut);
/// out[i] = fp8(x[i]) with the saturating cast above.
void qk_quant_fp8_encode(const float *x, uint8_t *out, size_t n, int e5m2);
/// out[i] = float(q[i]) * scale.
void qk_quant_fp8_decode(const uint8_t *q, float *out, size_t n, float scale, int e5m2);
/// max |x[i]| (0 for n = 0); the input must be free of NaN.
float qk_quant_amax(const float *x, size_t n);
/// Smallest and largest of n >= 1 values.
void qk_quant_minmax(const float *x, size_t n, float *minOut, float *maxOut);
/// Index of the first NaN or infinity, or -1.
long qk_quant_first_nonfinite(const float *x, size_t n);
/// Index of the first value whose magnitude bits (sign cleared) are >= magnitudeBits, or -1.
long qk_quant_first_abs_at_least(const float *x, size_t n, uint32_t magnitudeBits);

/// FP32 → IEEE binary16 bits, round-to-nearest-even, overflow → ±inf, NaN → 0x7E00 (ggml rule).
uint16_t qk_quant_f32_to_f16(float value);
/// IEEE binary16 bits → FP32.
float qk_quant_f16_to_f32(uint16_t value);
/// FP32 → BF16 bits exactly as ggml/gguf-py: NaN forced quiet, otherwise round-to-nearest-even.
uint16_t qk_quant_f32_to_bf16(float value);
/// What the kernel table (ggml_kernels.c) holds for a ggml type: qk_quant_ggml_kernels returns
/// QK_GGML_ENCODES | QK_GGML_DECODES, either, or 0 for a type without kernels, plus
/// QK_GGML_WEIGHTS when the encoder has ggml's importance-weighted path (every k-quant, IQ4_NL,
/// IQ4_XS, Q4_0, Q4_1, Q5_0, Q5_1; not Q8_0, F16, BF16, whose ggml quantizers ignore an imatrix).
#define QK_GGML_ENCODES 1
#define QK_GGML_DECODES 2
#define QK_GGML_WEIGHTS 4
int qk_quant_ggml_kernels(uint32_t type);
/// Encodes `blocks` blocks of `blockSize` elements (GGMLType.blockSize; for F16/BF16 blocks are
/// elements and blockSize is 1) of ggml type id `type` through the kernel table, taking the AVX2
/// path when `qk_cpu_has_f16c_avx2()`; it gives the bytes of the portable path for finite input.
/// With `nonFinite` NULL the input must be finite (the Quantize module refuses or sanitises
/// non-finite weights first; F16/BF16 accept any value). Otherwise the input may hold NaN or
/// infinity: *nonFinite is set to 1 when it does (the output bytes and the return value are then
/// meaningless), else to 0; the AVX2 legacy-block paths detect them while encoding, so the input is
/// read once. Returns -1, the index of the first block whose FP16 scale overflowed, or -2 for a
/// type without an encoder.
long qk_quant_ggml_encode(uint32_t type, const float *x, uint8_t *out, size_t blocks, size_t blockSize, int *nonFinite);
/// Encodes `rows` rows of `columns` finite floats (a multiple of `blockSize`, GGMLType.blockSize)
/// of ggml type id `type` as ggml_quantize_chunk does with a non-NULL imatrix (llama-quantize
/// --imatrix): `importance` holds `columns` finite weights (the imatrix entry of the tensor, or of
/// one expert, Σx²/N per input column) and weights every row alike. With `importance` NULL, or
/// for a type whose ggml quantizer ignores the importance (no QK_GGML_WEIGHTS: Q8_0, F16, BF16),
/// this is qk_quant_ggml_encode without the non-finite check, as ggml. Returns -1, the index of
/// the first block (counted over all rows) whose FP16 scale overflowed, or -2 for a type without
/// an encoder or a row length that is not a multiple of blockSize.
long qk_quant_ggml_encode_weighted(uint32_t type, const float *x, uint8_t *out, size_t rows, size_t columns,
                                   size_t blockSize, const float *importance);
/// The portable path of qk_quant_ggml_encode_weighted (for tests: the dispatched AVX2 fits give its
/// bytes); -2 for a type without an importance-weighted path or NULL importance.
long qk_quant_ggml_encode_weighted_portable(uint32_t type, const float *x, uint8_t *out, size_t rows, size_t columns,
                                            const float *importance);
/// The portable path of the encoder of ggml type id `type` (for tests); returns what the encoder
/// returns, -1 for F16/BF16, or -2 for a type without an encoder.
long qk_quant_ggml_encode_portable(uint32_t type, const float *x, uint8_t *out, size_t blocks);
/// qk_quant_ggml_encode (no non-finite check) and qk_quant_ggml_encode_weighted without the
/// AVX-512 paths: the AVX2 kernels where the CPU has AVX2, else the portable ones (for tests on
/// AVX-512 machines: every path gives the same bytes). Only the calling thread's dispatch changes,
/// and only for the duration of the call.
long qk_quant_ggml_encode_avx2(uint32_t type, const float *x, uint8_t *out, size_t blocks, size_t blockSize);
long qk_quant_ggml_encode_weighted_avx2(uint32_t type, const float *x, uint8_t *out, size_t rows, size_t columns,
                                        size_t blockSize, const float *importance);
/// Decodes `blocks` blocks of ggml type id `type`, laid out `bytesPerBlock` bytes apart with
/// `blockSize` elements each (GGMLType's sizes; elements for F32/F16/BF16); -1 if unsupported.
int qk_quant_ggml_decode(uint32_t type, const uint8_t *in, float *out, size_t blocks, size_t blockSize, size_t bytesPerBlock);
/// n floats → n little-endian F16 / BF16 values (2n bytes), AVX2 when available.
void qk_quant_f16_encode(const float *x, uint8_t *out, size_t n);
void qk_quant_bf16_encode(const float *x, uint8_t *out, size_t n);

/// Rounds a positive scale to its stored dtype (0 F32, 1 BF16, 2 F16), raised to the dtype's
/// smallest normal; +inf if it overflows.
float qk_quant_round_scale(float scale, int scaleType);
/// Group-wise integer quantization of a rows × cols block (see quant_int.c); codes [rows, cols],
/// scales [rows, groups] (already rounded to scaleType), zeros [rows, groups] or NULL when
/// symmetric. `search`: 0 min-max round-to-nearest, 1 clipping search, 2 HQQ refinement.
/// Returns -1 or the flat index of the first group whose scale overflowed.
long qk_quant_int_encode_rows(const float *x, size_t rows, size_t cols, size_t groupSize, int bits,
                              int symmetric, int scaleType, int search,
                              int8_t *codes, float *scales, int8_t *zeros);
/// qk_quant_int_encode_rows on input that may hold NaN or infinity: sets *nonFinite to 1 when it
/// does (the outputs and the return value are then meaningless), else to 0. The AVX2 path detects
/// them during its min/max scan, so the input is read once.
long qk_quant_int_encode_rows_checked(const float *x, size_t rows, size_t cols, size_t groupSize, int bits,
                                      int symmetric, int scaleType, int search,
                                      int8_t *codes, float *scales, int8_t *zeros, int *nonFinite);
/// qk_quant_int_encode_rows without its AVX2 min/max and code loops (identical results; for tests).
long qk_quant_int_encode_rows_portable(const float *x, size_t rows, size_t cols, size_t groupSize, int bits,
                                       int symmetric, int scaleType, int search,
                                       int8_t *codes, float *scales, int8_t *zeros);
/// Squared error of one group decoded with (scale, zp) after round-to-nearest.
double qk_quant_int_group_error(const float *x, size_t n, float scale, float zp, int bits);
/// compressed-tensors int4 packing along the last dim ([rows, ceil(cols/8)] int32, LE bytes).
void qk_quant_pack_int4_rows(const int8_t *codes, size_t rows, size_t cols, uint8_t *out);
void qk_quant_unpack_int4_rows(const uint8_t *packed, size_t rows, size_t cols, int8_t *codes);
/// compressed-tensors int4 packing along dim 0 (zero points: [ceil(rows/8), groups] int32).
void qk_quant_pack_int4_columns(const int8_t *zeros, size_t rows, size_t groups, uint8_t *out);
void qk_quant_unpack_int4_columns(const uint8_t *packed, size_t rows, size_t groups, int8_t *zeros);
/// compressed-tensors int8 packing along the last dim ([rows, ceil(cols/4)] int32, value + 128).
void qk_quant_pack_int8_rows(const int8_t *codes, size_t rows, size_t cols, uint8_t *out);
void qk_quant_unpack_int8_rows(const uint8_t *packed, size_t rows, size_t cols, int8_t *codes);
/// out = (q - zp) * scale with one scale (and zero point, or none when zeros is NULL) per groupSize
/// consecutive codes of a row; scales/zeros are [rows, ceil(cols/groupSize)].
void qk_quant_int_decode_rows(const int8_t *codes, size_t rows, size_t cols, size_t groupSize,
                              const float *scales, const float *zeros, float *out);

// MARK: Compressed container (byteplanes.c, formats/compressed.md)

/// Splits `count` elements of `width` bytes (2, 4 or 8; any other width copies) into `width` planes
/// laid out one after another in `planes` (plane k holds byte k of every element, little-endian),
/// after rotating each element left by one bit when `rotate` is nonzero (the sign bit moves to bit 0,
/// so a float's exponent fills the top plane).
void qk_planes_split(const void *source, size_t count, int width, int rotate, uint8_t *planes);
/// The inverse of qk_planes_split: interleaves `width` planes of `count` bytes each (`planes[k]` is
/// plane k; 1 plane for other widths, copied) back into elements, rotating right when `rotate` is set.
void qk_planes_join(const uint8_t *const *planes, size_t count, int width, int rotate, void *destination);
/// XXH64 of `length` bytes with `seed` (the reference xxHash algorithm; XXH64("", 0) = 0xEF46DB3751D8E999).
uint64_t qk_xxh64(const void *data, size_t length, uint64_t seed);

// MARK: Machine probes (cpu_probe.c; `quantize fit --device local`)
//
// Timing kernels for Sources/Fit/LocalProbe.swift, one thread each over caller-owned buffers; AVX2
// when the CPU has it, portable C otherwise. The results only keep the work from being optimised away.

/// Reads `bytes` bytes at `data` once, front to back, and returns the sum of their 64-bit words
/// (wrapping); nothing is written.
uint64_t qk_probe_read(const void *data, size_t bytes);
/// Dot product of `blocks` Q8_0 blocks (34 bytes: F16 scale, 32 int8) at `x` with as many at `y`.
float qk_probe_dot_q8_0(const void *x, const void *y, size_t blocks);
/// Dot product of `blocks` Q4_0 blocks (18 bytes) at `x` with as many Q8_0 blocks (34 bytes) at `y`.
float qk_probe_dot_q4_0(const void *x, const void *y, size_t blocks);
/// Dot product of `blocks` Q4_K super-blocks (144 bytes per 256 weights) at `x` with as many Q8_K
/// blocks (292 bytes: F32 scale, 256 int8, 16 int16 sums) at `y`.
float qk_probe_dot_q4_k(const void *x, const void *y, size_t blocks);
/// Dot product of `count` F16 values at `x` with `count` at `y`, in float32.
float qk_probe_dot_f16(const void *x, const void *y, size_t count);
/// Runs up to `rounds` rounds on `threads` threads (the caller's plus threads-1 new ones), each
/// round a Q8_0 dot product over `blocks` cache-resident blocks per thread followed by a spinning
/// barrier, as llama.cpp's threads run one graph op after another; stops after the round that
/// passes `budget` seconds. Returns the wall seconds (-1 when memory runs out), the fastest round's
/// seconds in `*fastest` and the rounds run in `*completed`.
double qk_probe_synchronized_rounds(int threads, int rounds, size_t blocks, double budget, double *fastest, int *completed);

#endif
