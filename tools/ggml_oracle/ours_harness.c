// Our encoders (Sources/CKernels) behind the same command line as quant_harness.c, for
// tools/ggml_oracle.py --stress:
//   TYPE_ID ROWS N_PER_ROW BLOCK_SIZE BYTES_PER_BLOCK [IMPORTANCE.f32 ROWS_PER_EXPERT] < rows.f32 > blocks.bin
// With IMPORTANCE, rows of expert e go through qk_quant_ggml_encode_weighted with expert e's values.
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

long qk_quant_ggml_encode(uint32_t type, const float *x, uint8_t *out, size_t blocks, size_t blockSize, int *nonFinite);
long qk_quant_ggml_encode_weighted(uint32_t type, const float *x, uint8_t *out, size_t rows, size_t columns,
                                   size_t blockSize, const float *importance);

int main(int argc, char **argv) {
    if (argc != 6 && argc != 8) {
        fprintf(stderr, "usage: %s TYPE_ID ROWS N_PER_ROW BLOCK_SIZE BYTES_PER_BLOCK [IMPORTANCE.f32 ROWS_PER_EXPERT] < f32 > out\n", argv[0]);
        return 2;
    }
    uint32_t type = (uint32_t)atoi(argv[1]);
    size_t rows = (size_t)atol(argv[2]), cols = (size_t)atol(argv[3]), bs = (size_t)atol(argv[4]), bpb = (size_t)atol(argv[5]);
    size_t n = rows * cols, perExpert = argc == 8 ? (size_t)atol(argv[7]) : rows;
    if (perExpert == 0 || rows % perExpert != 0) { fprintf(stderr, "ROWS must be a multiple of ROWS_PER_EXPERT\n"); return 2; }
    float *x = malloc(n * sizeof(float));
    uint8_t *out = calloc(n / bs, bpb);
    if (!x || !out || fread(x, sizeof(float), n, stdin) != n) { fprintf(stderr, "short input\n"); return 1; }
    if (argc == 6) {
        qk_quant_ggml_encode(type, x, out, n / bs, bs, NULL);
    } else {
        size_t m = rows / perExpert * cols;
        float *importance = malloc(m * sizeof(float));
        FILE *f = fopen(argv[6], "rb");
        if (!f || !importance || fread(importance, sizeof(float), m, f) != m) { fprintf(stderr, "short importance file\n"); return 1; }
        fclose(f);
        for (size_t e = 0; e < rows / perExpert; e++)
            qk_quant_ggml_encode_weighted(type, x + e * perExpert * cols, out + e * perExpert * (cols / bs) * bpb, perExpert, cols, bs,
                                          importance + e * cols);
    }
    fwrite(out, bpb, n / bs, stdout);
    return 0;
}
