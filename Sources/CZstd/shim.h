#ifndef QUANTIZE_CZSTD_SHIM_H
#define QUANTIZE_CZSTD_SHIM_H
#include <zstd.h>
#include <zstd_errors.h>
#endif
