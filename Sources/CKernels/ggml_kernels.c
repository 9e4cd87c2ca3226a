// The one dispatch table of the GGUF kernels: for each ggml type id, its encoder (dispatched to
// AVX2 when the CPU has it), its one-pass checked encoder (AVX2, legacy blocks), its portable
// encoder, its importance-weighted encoder (ggml's imatrix path) and its decoder. Block sizes and bytes per block are not restated here: the callers pass
// them from GGMLType.all (Formats), the one table of ggml sizes.
#include "ggml_kernels.h"

typedef struct {
    uint32_t type;                       // the ggml type id (GGMLType.id)
    qk_ggml_encode_fn encode;            // NULL: decode only
    qk_ggml_checked_fn encodeChecked;    // NULL: the dispatcher scans for NaN/±inf first
    qk_ggml_encode_fn encodePortable;    // the reference path the tests compare with
    qk_ggml_weighted_fn encodeWeighted;  // NULL: ggml ignores an importance matrix for this type
    qk_ggml_weighted_fn encodeWeightedPortable;
    qk_ggml_decode_fn decode;
} qk_ggml_kernel;

// The types with kernels, one line each: X(ggml type id, name, whether an AVX2 one-pass checked
// encoder exists, whether ggml has an importance-weighted path: ggml_quantize_chunk ignores the
// imatrix for F16, BF16 and Q8_0, whose quantize_q8_0 never reads it). QK_ENCODED_TYPES have an
// encoder and a decoder, QK_DECODED_TYPES a decoder only.
#define QK_ENCODED_TYPES(X) \
    X(0, f32, 0, 0) \
    X(1, f16, 0, 0) \
    X(2, q4_0, 1, 1) \
    X(3, q4_1, 1, 1) \
    X(6, q5_0, 1, 1) \
    X(7, q5_1, 1, 1) \
    X(8, q8_0, 1, 0) \
    X(10, q2_k, 0, 1) \
    X(11, q3_k, 0, 1) \
    X(12, q4_k, 0, 1) \
    X(13, q5_k, 0, 1) \
    X(14, q6_k, 0, 1) \
    X(20, iq4_nl, 0, 1) \
    X(23, iq4_xs, 0, 1) \
    X(30, bf16, 0, 0)
#define QK_DECODED_TYPES(X) \
    X(9, q8_1) \
    X(34, tq1_0) \
    X(35, tq2_0) \
    X(39, mxfp4)

// Declarations of what the family files define.
#if defined(__x86_64__)
#define QK_DECLARE_CHECKED_1(name) long qk_ggml_##name##_checked(const float *x, uint8_t *out, size_t blocks, int *nonFinite);
#define QK_CHECKED_1(name) qk_ggml_##name##_checked
#else
#define QK_DECLARE_CHECKED_1(name)
#define QK_CHECKED_1(name) 0
#endif
#define QK_DECLARE_CHECKED_0(name)
#define QK_DECLARE_WEIGHTED_1(name) \
    long qk_ggml_##name##_weighted(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance); \
    long qk_ggml_##name##_weighted_portable(const float *x, uint8_t *out, size_t rows, size_t columns, const float *importance);
#define QK_DECLARE_WEIGHTED_0(name)
#define QK_WEIGHTED_1(name) qk_ggml_##name##_weighted, qk_ggml_##name##_weighted_portable
#define QK_WEIGHTED_0(name) 0, 0
#define QK_CHECKED_0(name) 0
#define QK_DECLARE_DECODER(name) \
    void qk_ggml_decode_##name(const uint8_t *in, float *out, size_t blocks, size_t blockSize, size_t bytesPerBlock);
#define QK_DECLARE_ENCODED(id, name, checked, weighted) \
    long qk_ggml_##name##_encode(const float *x, uint8_t *out, size_t blocks); \
    long qk_ggml_##name##_portable(const float *x, uint8_t *out, size_t blocks); \
    QK_DECLARE_CHECKED_##checked(name) \
    QK_DECLARE_WEIGHTED_##weighted(name) \
    QK_DECLARE_DECODER(name)
#define QK_DECLARE_DECODED(id, name) QK_DECLARE_DECODER(name)
QK_ENCODED_TYPES(QK_DECLARE_ENCODED)
QK_DECODED_TYPES(QK_DECLARE_DECODED)

// The table.
#define QK_ENCODED_ENTRY(id, name, checked, weighted) \
    {id, qk_ggml_##name##_encode, QK_CHECKED_##checked(name), qk_ggml_##name##_portable, QK_WEIGHTED_##weighted(name), qk_ggml_decode_##name},
#define QK_DECODED_ENTRY(id, name) {id, 0, 0, 0, 0, 0, qk_ggml_decode_##name},
static const qk_ggml_kernel kKernels[] = {
    QK_ENCODED_TYPES(QK_ENCODED_ENTRY)
    QK_DECODED_TYPES(QK_DECODED_ENTRY)
};

static const qk_ggml_kernel *kernel(uint32_t type) {
    for (size_t i = 0; i < sizeof kKernels / sizeof kKernels[0]; i++)
        if (kKernels[i].type == type) return &kKernels[i];
    return 0;
}

int qk_quant_ggml_kernels(uint32_t type) {
    const qk_ggml_kernel *k = kernel(type);
    if (!k) return 0;
    return (k->encode ? QK_GGML_ENCODES : 0) | (k->decode ? QK_GGML_DECODES : 0) | (k->encodeWeighted ? QK_GGML_WEIGHTS : 0);
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

long qk_quant_ggml_encode_weighted(uint32_t type, const float *x, uint8_t *out, size_t rows, size_t columns,
                                   size_t blockSize, const float *importance) {
    const qk_ggml_kernel *k = kernel(type);
    if (!k || !k->encode || blockSize == 0 || columns % blockSize != 0) return -2;
    // Without an importance-weighted path (or without importance) ggml runs its plain quantizer.
    if (!k->encodeWeighted || !importance) return k->encode(x, out, rows * (columns / blockSize));
    return k->encodeWeighted(x, out, rows, columns, importance);
}

long qk_quant_ggml_encode_weighted_portable(uint32_t type, const float *x, uint8_t *out, size_t rows, size_t columns,
                                            const float *importance) {
    const qk_ggml_kernel *k = kernel(type);
    return k && k->encodeWeightedPortable && importance ? k->encodeWeightedPortable(x, out, rows, columns, importance) : -2;
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

long qk_quant_ggml_encode_avx2(uint32_t type, const float *x, uint8_t *out, size_t blocks, size_t blockSize) {
    const int was = qk_ggml_avx2_scope(1);
    const long r = qk_quant_ggml_encode(type, x, out, blocks, blockSize, 0);
    qk_ggml_avx2_scope(was);
    return r;
}

long qk_quant_ggml_encode_weighted_avx2(uint32_t type, const float *x, uint8_t *out, size_t rows, size_t columns,
                                        size_t blockSize, const float *importance) {
    const int was = qk_ggml_avx2_scope(1);
    const long r = qk_quant_ggml_encode_weighted(type, x, out, rows, columns, blockSize, importance);
    qk_ggml_avx2_scope(was);
    return r;
}
