// A tiny harness around ggml's own quantizer (ggml_quantize_chunk: the call llama-quantize makes
// for a tensor), for tools/ggml_oracle.py. Built against the llama.cpp that
// tools/build_llama_cpp.sh builds; no llama.cpp code is in this file.
//
// Usage: quant_harness TYPE_ID ROWS N_PER_ROW [IMPORTANCE.f32 ROWS_PER_EXPERT] < rows.f32 > blocks.bin
// Without IMPORTANCE the imatrix is NULL. With it, the file holds N_PER_ROW float32 per expert and
// rows [e·ROWS_PER_EXPERT, (e+1)·ROWS_PER_EXPERT) are quantized with expert e's values, as
// llama-quantize's llama_tensor_quantize_impl passes `imatrix + expert · n_per_row`.
#include <stdio.h>
#include <stdlib.h>
#include "ggml.h"

int main(int argc, char **argv) {
    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: %s TYPE_ID ROWS N_PER_ROW [IMPORTANCE.f32 ROWS_PER_EXPERT] < f32 > out\n", argv[0]);
        return 2;
    }
    enum ggml_type type = (enum ggml_type)atoi(argv[1]);
    long rows = atol(argv[2]), perRow = atol(argv[3]);
    long perExpert = argc == 6 ? atol(argv[5]) : rows;
    if (perExpert <= 0 || rows % perExpert != 0) { fprintf(stderr, "ROWS must be a multiple of ROWS_PER_EXPERT\n"); return 2; }
    size_t n = (size_t)rows * (size_t)perRow;
    float *x = malloc(n * sizeof(float));
    if (!x || fread(x, sizeof(float), n, stdin) != n) { fprintf(stderr, "short input\n"); return 1; }
    float *importance = NULL;
    if (argc == 6) {
        size_t m = (size_t)(rows / perExpert) * (size_t)perRow;
        FILE *f = fopen(argv[4], "rb");
        importance = malloc(m * sizeof(float));
        if (!f || !importance || fread(importance, sizeof(float), m, f) != m) { fprintf(stderr, "short importance file\n"); return 1; }
        fclose(f);
    }
    size_t rowSize = ggml_row_size(type, perRow);
    char *out = calloc((size_t)rows, rowSize);
    size_t written = 0;
    for (long e = 0; e < rows / perExpert; e++)
        written += ggml_quantize_chunk(type, x + (size_t)e * perExpert * perRow, out + (size_t)e * perExpert * rowSize, 0, perExpert, perRow,
                                       importance ? importance + (size_t)e * perRow : NULL);
    if (written != (size_t)rows * rowSize) { fprintf(stderr, "ggml wrote %zu bytes, expected %zu\n", written, (size_t)rows * rowSize); return 1; }
    fwrite(out, 1, written, stdout);
    return 0;
}
