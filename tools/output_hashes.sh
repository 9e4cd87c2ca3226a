#!/usr/bin/env bash
# Prints the SHA-256 of every output the shipped fixtures give, scheme by scheme (weights, config,
# index; reports carry timings and are left out), so a refactor can show its outputs are unchanged:
#   bash tools/output_hashes.sh > after.txt && diff before.txt after.txt
# Uses the release build of this checkout. Writes under a temporary directory it removes.
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
swift build -c release --product quantize >/dev/null
Q="$ROOT/.build/release/quantize"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
run() { # name, args...
    local name="$1"; shift
    "$Q" "$@" -o "$TMP/$name" --no-check --quiet >/dev/null 2>&1 || { echo "$name: FAILED ($*)"; return; }
    if [ -d "$TMP/$name" ]; then
        (cd "$TMP/$name" && find . -type f ! -name 'quantize-report*' | sort | while read -r f; do
            printf '%s %s/%s\n' "$(sha256sum "$f" | cut -c1-16)" "$name" "${f#./}"; done)
    else
        printf '%s %s\n' "$(sha256sum "$TMP/$name" | cut -c1-16)" "$name"
    fi
}
M=fixtures/tiny-llama; G=fixtures/tiny-llama.gguf
run fp8 --to fp8 "$M"
run fp8-tensor --to fp8 --granularity tensor "$M"
run fp8-block --to fp8 --granularity block "$M"
run fp8-e5m2 --to fp8-e5m2 "$M"
run int8 --to int8 "$M"
run int8-int --to int8 --int8-layout int-quantized "$M"
run int4 --to int4 "$M"
run int4-g32 --to int4 --group-size 32 "$M"
run int4-asym --to int4 --asymmetric "$M"
run int4-search --to int4 --search "$M"
for t in q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q6_k f16 bf16; do run "$t.gguf" --to "$t" "$G"; done
for f in $(ls fixtures/*.safetensors 2>/dev/null | head -3); do run "$(basename "$f" .safetensors)-fp8.safetensors" --to fp8 "$f"; done
