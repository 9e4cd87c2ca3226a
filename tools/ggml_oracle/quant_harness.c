// A tiny harness around ggml's own quantizer (ggml_quantize_chunk, no importance matrix: the call
// llama-quantize makes for a tensor when it has none), for tools/ggml_oracle.py. Built against the
// llama.cpp that tools/build_llama_cpp.sh builds; no llama.cpp code is in this file.
//
// Usage: quant_harness TYPE_ID ROWS N_PER_ROW < rows.f32 > blocks.bin
#include <stdio.h>
#include <stdlib.h>
#include "ggml.h"

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s TYPE_ID ROWS N_PER_ROW < f32 > out\n", argv[0]); return 2; }
    enum ggml_type type = (enum ggml_type)atoi(argv[1]);
    long rows = atol(argv[2]), perRow = atol(argv[3]);
    size_t n = (size_t)rows * (size_t)perRow;
    float *x = malloc(n * sizeof(float));
    if (!x || fread(x, sizeof(float), n, stdin) != n) { fprintf(stderr, "short input\n"); return 1; }
    size_t rowSize = ggml_row_size(type, perRow);
    void *out = calloc((size_t)rows, rowSize);
    size_t written = ggml_quantize_chunk(type, x, out, 0, rows, perRow, NULL);
    if (written != (size_t)rows * rowSize) { fprintf(stderr, "ggml wrote %zu bytes, expected %zu\n", written, (size_t)rows * rowSize); return 1; }
    fwrite(out, 1, written, stdout);
    return 0;
}
