// Speed of ggml's quantizer (ggml_quantize_chunk, libggml-base.a) and of our kernels
// (Sources/CKernels) on the same rows in the same run, one thread, without and with an importance
// matrix, for tools/ggml_oracle.py --bench. Also checks that both give the same bytes.
//
// Usage: bench_harness ROWS COLUMNS REPEATS TYPE_ID:BLOCK_SIZE... ; prints one JSON line per type:
// MB/s of float32 input (10^6 bytes per second, the median of REPEATS interleaved runs).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ggml.h"

long qk_quant_ggml_encode(uint32_t type, const float *x, uint8_t *out, size_t blocks, size_t blockSize, int *nonFinite);
long qk_quant_ggml_encode_weighted(uint32_t type, const float *x, uint8_t *out, size_t rows, size_t columns,
                                   size_t blockSize, const float *importance);

static uint64_t state = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return ((state >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static double gaussian(void) { return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform()); }
// CPU time of this thread: the machine may be shared, and descheduled time is not the kernels'.
static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp); return v[n / 2]; }

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s ROWS COLUMNS REPEATS TYPE_ID:BLOCK_SIZE...\n", argv[0]); return 2; }
    size_t rows = (size_t)atol(argv[1]), cols = (size_t)atol(argv[2]), n = rows * cols;
    int repeats = atoi(argv[3]);
    float *x = malloc(n * 4), *imp = malloc(cols * 4), *copy = malloc(n * 4);
    // Weights like a trained model's: Gaussian rows of a per-row scale, a few outliers.
    for (size_t r = 0; r < rows; r++) {
        double s = 0.01 * exp(0.5 * gaussian());
        for (size_t c = 0; c < cols; c++) x[r * cols + c] = (float)(s * gaussian() * (uniform() < 0.002 ? 20 : 1));
    }
    // Importance like an imatrix's Σx²/N: log-normal over ~4 decades, a few zeros.
    for (size_t c = 0; c < cols; c++) imp[c] = uniform() < 0.005 ? 0.f : (float)(1e-2 * exp(1.5 * gaussian()));
    for (int a = 4; a < argc; a++) {
        int type = atoi(argv[a]);
        size_t bs = (size_t)atol(strchr(argv[a], ':') + 1);
        size_t bytes = rows * ggml_row_size((enum ggml_type)type, (int64_t)cols);
        uint8_t *g = malloc(bytes), *o = malloc(bytes);
        double t[5][64];
        int same[2] = {1, 1};
        for (int k = 0; k < repeats && k < 64; k++) {
            double t0 = now();
            ggml_quantize_chunk((enum ggml_type)type, x, g, 0, (int64_t)rows, (int64_t)cols, NULL);
            double t1 = now();
            qk_quant_ggml_encode((uint32_t)type, x, o, n / bs, bs, NULL);
            double t2 = now();
            same[0] &= memcmp(g, o, bytes) == 0;
            ggml_quantize_chunk((enum ggml_type)type, x, g, 0, (int64_t)rows, (int64_t)cols, imp);
            double t3 = now();
            qk_quant_ggml_encode_weighted((uint32_t)type, x, o, rows, cols, bs, imp);
            double t4 = now();
            same[1] &= memcmp(g, o, bytes) == 0;
            memcpy(copy, x, n * 4);
            double t5 = now();
            t[0][k] = t1 - t0; t[1][k] = t2 - t1; t[2][k] = t3 - t2; t[3][k] = t4 - t3; t[4][k] = t5 - t4;
        }
        double mb = n * 4 / 1e6;
        printf("{\"type\": %d, \"name\": \"%s\", \"ggml\": %.2f, \"ours\": %.2f, \"ggml_imatrix\": %.2f, \"ours_imatrix\": %.2f, "
               "\"memcpy\": %.1f, \"same_bytes\": %s, \"same_bytes_imatrix\": %s}\n",
               type, ggml_type_name((enum ggml_type)type), mb / median(t[0], repeats), mb / median(t[1], repeats),
               mb / median(t[2], repeats), mb / median(t[3], repeats), mb / median(t[4], repeats),
               same[0] ? "true" : "false", same[1] ? "true" : "false");
        fflush(stdout);
        free(g); free(o);
    }
    return 0;
}
