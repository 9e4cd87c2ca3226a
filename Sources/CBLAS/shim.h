#ifndef QUANTIZE_CBLAS_SHIM_H
#define QUANTIZE_CBLAS_SHIM_H
#include <cblas.h>

// LAPACK's Cholesky routines, which libopenblas carries (OpenBLAS's own implementations of
// interface/lapack/potrf.c and potri.c: no hidden Fortran string-length arguments). Column-major;
// `uplo` is "U" or "L"; `info` is 0 on success, i > 0 when the leading minor of order i is not
// positive definite. Used by the GPTQ solve (Sources/Quantize/GPTQ.swift).
void spotrf_(const char *uplo, const blasint *n, float *a, const blasint *lda, blasint *info);
void spotri_(const char *uplo, const blasint *n, float *a, const blasint *lda, blasint *info);
#endif
