// GGUF block decoders of the Quantize module (formats.md §2.4–2.7): every type
// dequantizeGGML reads, in gguf-py's operation order, so that the floats are identical to
// `gguf.quants.dequantize`.
//
// Each decoder decodes one block; the run decoders below step through `blocks` blocks by the block
// size and bytes per block their caller passes (from GGMLType.all, the one table of sizes).
#include "ggml_kernels.h"

// MARK: Decoders (gguf-py operation order)

static const int8_t kIQ4NL[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
static const int8_t kMXFP4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

static inline float e8m0_half(uint8_t e) {
    return qk_float(e < 2 ? (0x00200000u << e) : ((uint32_t)(e - 1) << 23));
}

static void dec_q4_0(const uint8_t *p, float *y) {
    float d = qk_h2f(p);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((int)(p[2 + j] & 0xF) - 8);
        y[j + 16] = d * (float)((int)(p[2 + j] >> 4) - 8);
    }
}
static void dec_q4_1(const uint8_t *p, float *y) {
    float d = qk_h2f(p), m = qk_h2f(p + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(p[4 + j] & 0xF) + m;
        y[j + 16] = d * (float)(p[4 + j] >> 4) + m;
    }
}
static void dec_q5_0(const uint8_t *p, float *y) {
    float d = qk_h2f(p);
    uint32_t qh = (uint32_t)p[2] | ((uint32_t)p[3] << 8) | ((uint32_t)p[4] << 16) | ((uint32_t)p[5] << 24);
    for (int j = 0; j < 32; j++) {
        int lo = j < 16 ? (p[6 + j] & 0xF) : (p[6 + j - 16] >> 4);
        int q = lo | (int)(((qh >> j) & 1) << 4);
        y[j] = d * (float)(q - 16);
    }
}
static void dec_q5_1(const uint8_t *p, float *y) {
    float d = qk_h2f(p), m = qk_h2f(p + 2);
    uint32_t qh = (uint32_t)p[4] | ((uint32_t)p[5] << 8) | ((uint32_t)p[6] << 16) | ((uint32_t)p[7] << 24);
    for (int j = 0; j < 32; j++) {
        int lo = j < 16 ? (p[8 + j] & 0xF) : (p[8 + j - 16] >> 4);
        int q = lo | (int)(((qh >> j) & 1) << 4);
        y[j] = d * (float)q + m;
    }
}
static void dec_q8_0(const uint8_t *p, float *y) {
    float d = qk_h2f(p);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)p[2 + j] * d;
}
static void dec_q8_1(const uint8_t *p, float *y) {
    float d = qk_h2f(p);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)p[4 + j] * d;
}
static void dec_q2_k(const uint8_t *p, float *y) {
    const uint8_t *scales = p, *qs = p + 16;
    float d = qk_h2f(p + 80), dmin = qk_h2f(p + 82);
    for (int e = 0; e < 256; e++) {
        int half = e / 128, s = (e % 128) / 32, l = e % 32;
        int q = (qs[half * 32 + l] >> (2 * s)) & 3;
        uint8_t sc = scales[e / 16];
        float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
        y[e] = dl * (float)q - ml;
    }
}
static void dec_q3_k(const uint8_t *p, float *y) {
    const uint8_t *hmask = p, *qs = p + 32, *scales = p + 96;
    float d = qk_h2f(p + 108);
    for (int e = 0; e < 256; e++) {
        int j = e / 16;
        int lsc = j < 8 ? (scales[j] & 0xF) : (scales[j - 8] >> 4);
        int hsc = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        float dl = d * (float)((lsc | (hsc << 4)) - 32);
        int half = e / 128, s = (e % 128) / 32, l = e % 32;
        int ql = (qs[half * 32 + l] >> (2 * s)) & 3;
        int hb = (hmask[e % 32] >> (e / 32)) & 1;
        y[e] = dl * (float)(ql - ((hb ^ 1) << 2));
    }
}
static void dec_q4_k(const uint8_t *p, float *y) {
    float d = qk_h2f(p), dmin = qk_h2f(p + 2);
    const uint8_t *sc = p + 4, *qs = p + 16;
    for (int e = 0; e < 256; e++) {
        uint8_t s, m;
        qk_k4_scale_min(e / 32, sc, &s, &m);
        int chunk = e / 64, nib = (e % 64) / 32, l = e % 32;
        int q = (qs[chunk * 32 + l] >> (4 * nib)) & 0xF;
        y[e] = (d * (float)s) * (float)q - dmin * (float)m;
    }
}
static void dec_q5_k(const uint8_t *p, float *y) {
    float d = qk_h2f(p), dmin = qk_h2f(p + 2);
    const uint8_t *sc = p + 4, *qh = p + 16, *qs = p + 48;
    for (int e = 0; e < 256; e++) {
        uint8_t s, m;
        qk_k4_scale_min(e / 32, sc, &s, &m);
        int chunk = e / 64, nib = (e % 64) / 32, l = e % 32;
        int q = ((qs[chunk * 32 + l] >> (4 * nib)) & 0xF) | (((qh[l] >> (e / 32)) & 1) << 4);
        y[e] = (d * (float)s) * (float)q - dmin * (float)m;
    }
}
static void dec_q6_k(const uint8_t *p, float *y) {
    const uint8_t *ql = p, *qh = p + 128; const int8_t *sc = (const int8_t *)(p + 192);
    float d = qk_h2f(p + 208);
    for (int e = 0; e < 256; e++) {
        int half = e / 128, r = e % 128;
        int lo = (ql[half * 64 + (r % 64)] >> (4 * (r / 64))) & 0xF;
        int hi = (qh[half * 32 + (r % 32)] >> (2 * (r / 32))) & 3;
        y[e] = (d * (float)sc[e / 16]) * (float)((lo | (hi << 4)) - 32);
    }
}
static void dec_iq4_nl(const uint8_t *p, float *y) {
    float d = qk_h2f(p);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)kIQ4NL[p[2 + j] & 0xF];
        y[j + 16] = d * (float)kIQ4NL[p[2 + j] >> 4];
    }
}
static void dec_iq4_xs(const uint8_t *p, float *y) {
    float d = qk_h2f(p);
    uint16_t sh = qk_rd16(p + 2);
    const uint8_t *sl = p + 4, *qs = p + 8;
    for (int ib = 0; ib < 8; ib++) {
        int ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((sh >> (2 * ib)) & 3) << 4);
        float dl = d * (float)(ls - 32);
        for (int j = 0; j < 16; j++) {
            y[32 * ib + j] = dl * (float)kIQ4NL[qs[16 * ib + j] & 0xF];
            y[32 * ib + j + 16] = dl * (float)kIQ4NL[qs[16 * ib + j] >> 4];
        }
    }
}
static void dec_mxfp4(const uint8_t *p, float *y) {
    float d = e8m0_half(p[0]);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)kMXFP4[p[1 + j] & 0xF];
        y[j + 16] = d * (float)kMXFP4[p[1 + j] >> 4];
    }
}
static inline float trit(uint8_t q, uint8_t pow3) {
    uint8_t v = (uint8_t)(q * pow3);
    return (float)((int)(((uint16_t)v * 3) >> 8) - 1);
}
static void dec_tq1_0(const uint8_t *p, float *y) {
    static const uint8_t pw[5] = {1, 3, 9, 27, 81};
    const uint8_t *qs = p, *qh = p + 48;
    float d = qk_h2f(p + 52);
    for (int n = 0; n < 5; n++) for (int l = 0; l < 32; l++) y[n * 32 + l] = d * trit(qs[l], pw[n]);
    for (int n = 0; n < 5; n++) for (int l = 0; l < 16; l++) y[160 + n * 16 + l] = d * trit(qs[32 + l], pw[n]);
    for (int n = 0; n < 4; n++) for (int l = 0; l < 4; l++) y[240 + n * 4 + l] = d * trit(qh[l], pw[n]);
}
static void dec_tq2_0(const uint8_t *p, float *y) {
    float d = qk_h2f(p + 64);
    for (int e = 0; e < 256; e++) {
        int half = e / 128, s = (e % 128) / 32, l = e % 32;
        y[e] = d * (float)((int)((p[half * 32 + l] >> (2 * s)) & 3) - 1);
    }
}

// MARK: Run decoders (ggml_kernels.c's table)

void qk_ggml_decode_f32(const uint8_t *in, float *out, size_t n, size_t blockSize, size_t bytesPerBlock) {
    (void)blockSize; (void)bytesPerBlock;
    memcpy(out, in, 4 * n);
}
void qk_ggml_decode_f16(const uint8_t *in, float *out, size_t n, size_t blockSize, size_t bytesPerBlock) {
    (void)blockSize; (void)bytesPerBlock;
    for (size_t i = 0; i < n; i++) out[i] = qk_h2f(in + 2 * i);
}
void qk_ggml_decode_bf16(const uint8_t *in, float *out, size_t n, size_t blockSize, size_t bytesPerBlock) {
    (void)blockSize; (void)bytesPerBlock;
    for (size_t i = 0; i < n; i++) out[i] = qk_bf16_to_f32(qk_rd16(in + 2 * i));
}

#define QK_RUN_DECODER(name) \
    void qk_ggml_decode_##name(const uint8_t *in, float *out, size_t blocks, size_t blockSize, size_t bytesPerBlock) { \
        for (size_t b = 0; b < blocks; b++) dec_##name(in + bytesPerBlock * b, out + blockSize * b); \
    }
QK_RUN_DECODER(q4_0)
QK_RUN_DECODER(q4_1)
QK_RUN_DECODER(q5_0)
QK_RUN_DECODER(q5_1)
QK_RUN_DECODER(q8_0)
QK_RUN_DECODER(q8_1)
QK_RUN_DECODER(q2_k)
QK_RUN_DECODER(q3_k)
QK_RUN_DECODER(q4_k)
QK_RUN_DECODER(q5_k)
QK_RUN_DECODER(q6_k)
QK_RUN_DECODER(iq4_nl)
QK_RUN_DECODER(iq4_xs)
QK_RUN_DECODER(mxfp4)
QK_RUN_DECODER(tq1_0)
QK_RUN_DECODER(tq2_0)
