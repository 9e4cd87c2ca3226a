#ifndef QUANTIZE_CKERNELS_H
#define QUANTIZE_CKERNELS_H
#include <stddef.h>
#include <stdint.h>

/// Returns 1 when the CPU supports F16C and AVX2 (checked once at run time), else 0.
int qk_cpu_has_f16c_avx2(void);

#endif
