// The GGUF kernels' internal interface: what each family file (ggml_legacy.c, ggml_kquants.c,
// ggml_decode.c) exports to the one dispatch table in ggml_kernels.c. Adding a GGUF type is a
// kernel in its family file, its declarations here and one line of that table; sizes come from
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

/// An encoder of `blocks` blocks (elements for F16/BF16) of finite input; -1 or the first block
/// whose FP16 scale overflowed.
typedef long (*qk_ggml_encode_fn)(const float *x, uint8_t *out, size_t blocks);
/// A one-pass encoder that also detects NaN/±inf (sets *nonFinite; AVX2 only).
typedef long (*qk_ggml_checked_fn)(const float *x, uint8_t *out, size_t blocks, int *nonFinite);
/// A decoder of `blocks` blocks laid out `bytesPerBlock` apart, `blockSize` floats each.
typedef void (*qk_ggml_decode_fn)(const uint8_t *in, float *out, size_t blocks, size_t blockSize, size_t bytesPerBlock);

// MARK: ggml_legacy.c (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
long qk_ggml_f16_encode(const float *x, uint8_t *out, size_t n);
long qk_ggml_f16_portable(const float *x, uint8_t *out, size_t n);
long qk_ggml_bf16_encode(const float *x, uint8_t *out, size_t n);
long qk_ggml_bf16_portable(const float *x, uint8_t *out, size_t n);
#define QK_DECLARE_BLOCK_ENCODER(name) \
    long qk_ggml_##name##_encode(const float *x, uint8_t *out, size_t blocks); \
    long qk_ggml_##name##_portable(const float *x, uint8_t *out, size_t blocks);
#define QK_DECLARE_CHECKED_ENCODER(name) \
    long qk_ggml_##name##_checked(const float *x, uint8_t *out, size_t blocks, int *nonFinite);
QK_DECLARE_BLOCK_ENCODER(q8_0)
QK_DECLARE_BLOCK_ENCODER(q4_0)
QK_DECLARE_BLOCK_ENCODER(q4_1)
QK_DECLARE_BLOCK_ENCODER(q5_0)
QK_DECLARE_BLOCK_ENCODER(q5_1)
#if defined(__x86_64__)
QK_DECLARE_CHECKED_ENCODER(q8_0)
QK_DECLARE_CHECKED_ENCODER(q4_0)
QK_DECLARE_CHECKED_ENCODER(q4_1)
QK_DECLARE_CHECKED_ENCODER(q5_0)
QK_DECLARE_CHECKED_ENCODER(q5_1)
#endif

// MARK: ggml_kquants.c (Q4_K, Q6_K)
QK_DECLARE_BLOCK_ENCODER(q4_k)
QK_DECLARE_BLOCK_ENCODER(q6_k)

// MARK: ggml_decode.c (every type dequantizeGGML reads)
#define QK_DECLARE_DECODER(name) \
    void qk_ggml_decode_##name(const uint8_t *in, float *out, size_t blocks, size_t blockSize, size_t bytesPerBlock);
QK_DECLARE_DECODER(f32)
QK_DECLARE_DECODER(f16)
QK_DECLARE_DECODER(bf16)
QK_DECLARE_DECODER(q4_0)
QK_DECLARE_DECODER(q4_1)
QK_DECLARE_DECODER(q5_0)
QK_DECLARE_DECODER(q5_1)
QK_DECLARE_DECODER(q8_0)
QK_DECLARE_DECODER(q8_1)
QK_DECLARE_DECODER(q2_k)
QK_DECLARE_DECODER(q3_k)
QK_DECLARE_DECODER(q4_k)
QK_DECLARE_DECODER(q5_k)
QK_DECLARE_DECODER(q6_k)
QK_DECLARE_DECODER(iq4_nl)
QK_DECLARE_DECODER(iq4_xs)
QK_DECLARE_DECODER(mxfp4)
QK_DECLARE_DECODER(tq1_0)
QK_DECLARE_DECODER(tq2_0)

#endif
