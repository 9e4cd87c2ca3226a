#ifndef QUANTIZE_CBLAS_SHIM_H
#define QUANTIZE_CBLAS_SHIM_H
#include <cblas.h>
#endif
