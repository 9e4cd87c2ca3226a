// Our encoders (Sources/CKernels) behind the same command line as quant_harness.c, for
// tools/ggml_oracle.py --stress: TYPE_ID ROWS N_PER_ROW < rows.f32 > blocks.bin.
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

long qk_quant_ggml_encode(uint32_t type, const float *x, uint8_t *out, size_t blocks, size_t blockSize, int *nonFinite);

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s TYPE_ID ROWS N_PER_ROW BLOCK_SIZE BYTES_PER_BLOCK < f32 > out\n", argv[0]); return 2; }
    uint32_t type = (uint32_t)atoi(argv[1]);
    size_t n = (size_t)atol(argv[2]) * (size_t)atol(argv[3]), bs = (size_t)atol(argv[4]), bpb = (size_t)atol(argv[5]);
    float *x = malloc(n * sizeof(float));
    uint8_t *out = calloc(n / bs, bpb);
    if (!x || !out || fread(x, sizeof(float), n, stdin) != n) { fprintf(stderr, "short input\n"); return 1; }
    qk_quant_ggml_encode(type, x, out, n / bs, bs, NULL);
    fwrite(out, bpb, n / bs, stdout);
    return 0;
}
