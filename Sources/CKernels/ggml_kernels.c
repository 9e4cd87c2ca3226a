// The one dispatch table of the GGUF kernels: for each ggml type id, its encoder (dispatched to
// AVX2 when the CPU has it), its one-pass checked encoder (AVX2, legacy blocks), its portable
// encoder and its decoder. Block sizes and bytes per block are not restated here: the callers pass
// them from GGMLType.all (Formats), the one table of ggml sizes.
#include "ggml_kernels.h"

typedef struct {
    uint32_t type;                       // the ggml type id (GGMLType.id)
    qk_ggml_encode_fn encode;            // NULL: decode only
    qk_ggml_checked_fn encodeChecked;    // NULL: the dispatcher scans for NaN/±inf first
    qk_ggml_encode_fn encodePortable;    // the reference path the tests compare with
    qk_ggml_decode_fn decode;
} qk_ggml_kernel;

#if defined(__x86_64__)
#define QK_CHECKED(name) qk_ggml_##name##_checked
#else
#define QK_CHECKED(name) 0
#endif
#define QK_ENCODES(name, checked) qk_ggml_##name##_encode, checked, qk_ggml_##name##_portable, qk_ggml_decode_##name
#define QK_DECODES(name) 0, 0, 0, qk_ggml_decode_##name

static const qk_ggml_kernel kKernels[] = {
    {0, QK_DECODES(f32)},
    {1, QK_ENCODES(f16, 0)},
    {2, QK_ENCODES(q4_0, QK_CHECKED(q4_0))},
    {3, QK_ENCODES(q4_1, QK_CHECKED(q4_1))},
    {6, QK_ENCODES(q5_0, QK_CHECKED(q5_0))},
    {7, QK_ENCODES(q5_1, QK_CHECKED(q5_1))},
    {8, QK_ENCODES(q8_0, QK_CHECKED(q8_0))},
    {9, QK_DECODES(q8_1)},
    {10, QK_DECODES(q2_k)},
    {11, QK_DECODES(q3_k)},
    {12, QK_ENCODES(q4_k, 0)},
    {13, QK_DECODES(q5_k)},
    {14, QK_ENCODES(q6_k, 0)},
    {20, QK_DECODES(iq4_nl)},
    {23, QK_DECODES(iq4_xs)},
    {30, QK_ENCODES(bf16, 0)},
    {34, QK_DECODES(tq1_0)},
    {35, QK_DECODES(tq2_0)},
    {39, QK_DECODES(mxfp4)},
};

static const qk_ggml_kernel *kernel(uint32_t type) {
    for (size_t i = 0; i < sizeof kKernels / sizeof kKernels[0]; i++)
        if (kKernels[i].type == type) return &kKernels[i];
    return 0;
}

int qk_quant_ggml_kernels(uint32_t type) {
    const qk_ggml_kernel *k = kernel(type);
    if (!k) return 0;
    return (k->encode ? QK_GGML_ENCODES : 0) | (k->decode ? QK_GGML_DECODES : 0);
}

long qk_quant_ggml_encode(uint32_t type, const float *x, uint8_t *out, size_t blocks, size_t blockSize, int *nonFinite) {
    const qk_ggml_kernel *k = kernel(type);
    if (!k || !k->encode) { if (nonFinite) *nonFinite = 0; return -2; }
    if (nonFinite) {
        if (k->encodeChecked && qk_isa_avx2()) return k->encodeChecked(x, out, blocks, nonFinite);
        *nonFinite = qk_quant_first_nonfinite(x, blocks * blockSize) >= 0;
        if (*nonFinite) return -1;
    }
    return k->encode(x, out, blocks);
}

long qk_quant_ggml_encode_portable(uint32_t type, const float *x, uint8_t *out, size_t blocks) {
    const qk_ggml_kernel *k = kernel(type);
    return k && k->encodePortable ? k->encodePortable(x, out, blocks) : -2;
}

int qk_quant_ggml_decode(uint32_t type, const uint8_t *in, float *out, size_t blocks, size_t blockSize, size_t bytesPerBlock) {
    const qk_ggml_kernel *k = kernel(type);
    if (!k || !k->decode) return -1;
    k->decode(in, out, blocks, blockSize, bytesPerBlock);
    return 0;
}
