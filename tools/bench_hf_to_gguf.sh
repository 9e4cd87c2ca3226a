#!/usr/bin/env bash
# Hugging Face directory → Q4_K_M GGUF: `quantize --to q4_k_m DIR` (one pass) against llama.cpp's
# two steps, `convert_hf_to_gguf.py DIR --outtype f16` then `llama-quantize F16.gguf OUT Q4_K_M`,
# on the same ≥ 1 GB llama directory, one run each, time and peak RSS from /usr/bin/time -v.
#
#   tools/bench_hf_to_gguf.sh [--gigabytes 1] [--threads 2] [--bench-dir DIR] [--binary PATH] [--no-build] [--nice N]
#
# 1. Makes, once (cached under the bench directory, default $BENCH_DIR or /tmp/quantize-bench):
#    a BF16 llama directory of --gigabytes (tools/make_synthetic.py --format safetensors, fixed
#    seed: Llama-3-8B-shaped layers, vocabulary 32000) with fixtures/trained-llama's tokenizer.model
#    and tokenizer_config.json copied in (the conversion needs a SentencePiece model; the 3,072
#    pieces are padded to the 32,000 rows with [PADn] tokens by both tools).
# 2. Reads the input once (cat > /dev/null) so every step finds it in the page cache, then runs,
#    each under `nice -n N` (default 0; both sides get the same N):
#      quantize --to q4_k_m DIR -o OURS.gguf --threads T --force --quiet           (with the accuracy check)
#      quantize --to q4_k_m DIR -o OURS.gguf --threads T --force --quiet --no-check
#      convert_hf_to_gguf DIR --outtype f16 --outfile F16.gguf
#      llama-quantize F16.gguf REF.gguf Q4_K_M T
#    and, the other way, `quantize --to bf16 OURS.gguf -o DIR/` (GGUF → Hugging Face export).
# 3. Prints one Markdown table (seconds, peak RSS, output sha256) with the end-to-end ratio, and
#    the largest tensor's size for the memory target (peak RSS ≤ largest tensor + 256 MB).
# LLAMA_CPP_DIR: default <repo>/.llama.cpp; its bin/convert_hf_to_gguf and bin/llama-quantize are
# used. The quantize binary is .build/release/quantize, built first unless --no-build or --binary.
# Python: $PYTHON, else <repo>/.venv/bin/python (numpy, safetensors, ml_dtypes). Not run by CI.
set -uo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
GB="1"
THREADS=2
BENCH_DIR="${BENCH_DIR:-/tmp/quantize-bench}"
BINARY=""
BUILD=1
NICE=0

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { printf 'bench_hf_to_gguf: error: %s\n' "$*" >&2; exit 2; }
log() { printf 'bench_hf_to_gguf: %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --gigabytes) [ $# -ge 2 ] || die "--gigabytes needs a number"; GB="$2"; shift 2 ;;
        --threads) [ $# -ge 2 ] || die "--threads needs a count"; THREADS="$2"; shift 2 ;;
        --bench-dir) [ $# -ge 2 ] || die "--bench-dir needs a folder"; BENCH_DIR="$2"; shift 2 ;;
        --binary) [ $# -ge 2 ] || die "--binary needs a path"; BINARY="$2"; BUILD=0; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --nice) [ $# -ge 2 ] || die "--nice needs a niceness"; NICE="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

LLAMA="${LLAMA_CPP_DIR:-$ROOT/.llama.cpp}"
LQ="$LLAMA/bin/llama-quantize"
CONVERT="$LLAMA/bin/convert_hf_to_gguf"
[ -x "$LQ" ] || die "$LQ not found: run tools/build_llama_cpp.sh or set LLAMA_CPP_DIR"
[ -x "$CONVERT" ] || die "$CONVERT not found: run tools/build_llama_cpp.sh or set LLAMA_CPP_DIR"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3

if [ -z "$BINARY" ]; then
    BINARY="$ROOT/.build/release/quantize"
    if [ "$BUILD" = 1 ]; then
        log "building the release binary"
        (cd "$ROOT" && swift build -c release --product quantize >&2) || die "swift build failed"
    fi
fi
[ -x "$BINARY" ] || die "$BINARY not found (build it: swift build -c release --product quantize)"

mkdir -p "$BENCH_DIR" || die "cannot create $BENCH_DIR"
MODEL="$BENCH_DIR/llama-hf-${GB}g"
if [ ! -d "$MODEL" ]; then
    log "making $MODEL"
    "$PY" "$ROOT/tools/make_synthetic.py" --gigabytes "$GB" --format safetensors "$MODEL" >&2 || die "make_synthetic.py failed"
fi
cp "$ROOT/fixtures/trained-llama/tokenizer.model" "$ROOT/fixtures/trained-llama/tokenizer_config.json" "$MODEL/"
OUT="$BENCH_DIR/out"
rm -rf "$OUT"; mkdir -p "$OUT"
cat "$MODEL"/*.safetensors > /dev/null

# run LABEL COMMAND… : one timed run; appends "label seconds peak_kb" to $OUT/times.
run() {
    local label="$1"; shift
    log "$label: $*"
    if ! nice -n "$NICE" /usr/bin/time -v -o "$OUT/$label.time" "$@" > "$OUT/$label.log" 2>&1; then
        tail -5 "$OUT/$label.log" >&2
        die "$label failed (log: $OUT/$label.log)"
    fi
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$OUT/$label.time")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/$label.time")
    echo "$label $wall $rss" >> "$OUT/times"
}

run ours "$BINARY" --to q4_k_m "$MODEL" -o "$OUT/ours.gguf" --threads "$THREADS" --force --quiet
run ours_nocheck "$BINARY" --to q4_k_m "$MODEL" -o "$OUT/ours-nocheck.gguf" --threads "$THREADS" --force --quiet --no-check
run export "$BINARY" --to bf16 "$OUT/ours.gguf" -o "$OUT/exported/" --threads "$THREADS" --force --quiet
rm -rf "$OUT/exported"
run convert "$CONVERT" "$MODEL" --outtype f16 --outfile "$OUT/f16.gguf"
run llama_quantize "$LQ" "$OUT/f16.gguf" "$OUT/ref.gguf" Q4_K_M "$THREADS"

LARGEST=$("$PY" - "$MODEL" <<'EOF'
import json, os, struct, sys
largest = 0
for name in os.listdir(sys.argv[1]):
    if name.endswith(".safetensors"):
        with open(os.path.join(sys.argv[1], name), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        for key, value in header.items():
            if key != "__metadata__":
                largest = max(largest, value["data_offsets"][1] - value["data_offsets"][0])
print(largest)
EOF
)
INPUT_BYTES=$(cat "$MODEL"/*.safetensors | wc -c)
sha() { sha256sum "$1" | cut -c1-16; }
awk -v largest="$LARGEST" -v input="$INPUT_BYTES" -v gb="$GB" -v threads="$THREADS" -v nice="$NICE" \
    -v s_ours="$(sha "$OUT/ours.gguf")" -v s_nocheck="$(sha "$OUT/ours-nocheck.gguf")" -v s_f16="$(sha "$OUT/f16.gguf")" -v s_ref="$(sha "$OUT/ref.gguf")" '
{ t[$1] = $2; r[$1] = $3 }
END {
    mb = 1000 * 1000
    printf "\nHF → Q4_K_M GGUF, %.2f GB BF16 llama directory (largest tensor %.0f MB), %d threads, nice %d, one run each\n\n", input / 1e9, largest / mb, threads, nice
    printf "| step | seconds | peak RSS MB | output sha256 |\n|---|---:|---:|---|\n"
    printf "| quantize --to q4_k_m (with accuracy check) | %.2f | %.0f | %s |\n", t["ours"], r["ours"] * 1024 / mb, s_ours
    printf "| quantize --to q4_k_m --no-check | %.2f | %.0f | %s |\n", t["ours_nocheck"], r["ours_nocheck"] * 1024 / mb, s_nocheck
    printf "| convert_hf_to_gguf.py --outtype f16 | %.2f | %.0f | %s |\n", t["convert"], r["convert"] * 1024 / mb, s_f16
    printf "| llama-quantize F16 → Q4_K_M | %.2f | %.0f | %s |\n", t["llama_quantize"], r["llama_quantize"] * 1024 / mb, s_ref
    total = t["convert"] + t["llama_quantize"]; peak = r["convert"] > r["llama_quantize"] ? r["convert"] : r["llama_quantize"]
    printf "| llama.cpp total (two steps) | %.2f | %.0f | |\n", total, peak * 1024 / mb
    printf "| (the other way) quantize --to bf16 OURS.gguf -o DIR/ | %.2f | %.0f | |\n\n", t["export"], r["export"] * 1024 / mb
    printf "speed-up end to end: %.2f× with the check, %.2f× without (target ≥ 3×)\n", total / t["ours"], total / t["ours_nocheck"]
    printf "peak RSS of ours: %.0f MB with the check, %.0f MB without; largest tensor + 256 MB = %.0f MB\n", r["ours"] * 1024 / mb, r["ours_nocheck"] * 1024 / mb, (largest + 256 * mb) / mb
}' "$OUT/times"
