#ifndef QUANTIZE_CZSTD_SHIM_H
#define QUANTIZE_CZSTD_SHIM_H
// The experimental part of the API (ZSTD_compressSequences, ZSTD_c_literalCompressionMode) is
// needed for literals-only frames (formats/compressed.md); the symbols are exported by libzstd ≥ 1.5.
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>
#endif
