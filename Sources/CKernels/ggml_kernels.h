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

/// An encoder of `blocks` blocks (elements for F16/BF16) of finite input; -1 or the first block
/// whose FP16 scale overflowed.
typedef long (*qk_ggml_encode_fn)(const float *x, uint8_t *out, size_t blocks);
/// A one-pass encoder that also detects NaN/±inf (sets *nonFinite; AVX2 only).
typedef long (*qk_ggml_checked_fn)(const float *x, uint8_t *out, size_t blocks, int *nonFinite);
/// A decoder of `blocks` blocks laid out `bytesPerBlock` apart, `blockSize` floats each.
typedef void (*qk_ggml_decode_fn)(const uint8_t *in, float *out, size_t blocks, size_t blockSize, size_t bytesPerBlock);

// Each family file defines, per type NAME, `qk_ggml_NAME_encode` and `qk_ggml_NAME_portable`
// (qk_ggml_encode_fn), on x86-64 `qk_ggml_NAME_checked` (qk_ggml_checked_fn) where it has a
// one-pass checked encoder, and ggml_decode.c `qk_ggml_decode_NAME` (qk_ggml_decode_fn); the type
// lists of ggml_kernels.c declare and tabulate them.

#endif
