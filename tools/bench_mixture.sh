#!/usr/bin/env bash
# End-to-end mixture benchmark: `quantize --to MIXTURE` against `llama-quantize … MIXTURE` on the
# same warm F16 GGUF with the same threads, without and with an importance matrix.
#
#   tools/bench_mixture.sh [--gigabytes 1] [--mixture q4_k_m] [--threads 2] [--runs 3]
#                          [--bench-dir DIR] [--binary PATH] [--no-build] [--no-imatrix]
#
# 1. Generates, once (cached under the bench directory, default $BENCH_DIR or /tmp/quantize-bench):
#    an F16 GGUF of --gigabytes (tools/make_synthetic.py --format gguf) and an importance matrix
#    for it in llama.cpp's GGUF imatrix layout (tools/mixture_bytes_oracle.py's make_imatrix:
#    seeded Σx² over six decades with some zero columns, for every matrix llama-imatrix collects).
# 2. Reads the input once (cat > /dev/null) so both tools find it in the page cache, then runs,
#    interleaved, --runs times each (medians reported):
#      llama-quantize [--imatrix M] IN OUT.ref MIXTURE THREADS
#      quantize --to mixture IN -o OUT --threads THREADS --force --quiet --json [--imatrix M]
#    with peak RSS from /usr/bin/time. quantize fsyncs its output (always); llama-quantize does
#    not, so a `sync FILE` after llama-quantize is timed too and shown separately.
# 3. Checks that both outputs have the same sha256 (exit 1 if not) and prints one Markdown table:
#    seconds (median, min–max), the ratio, peak RSS, quantize's own check seconds (--json
#    checkSeconds) and the hashes.
# LLAMA_CPP_DIR: default <repo>/.llama.cpp (tools/build_llama_cpp.sh); its bin/llama-quantize is used.
# The quantize binary is .build/release/quantize, built first (`swift build -c release --product
# quantize`) unless --no-build or --binary PATH. Python: $PYTHON, else <repo>/.venv/bin/python,
# else python3 (numpy, gguf). Not run by CI: it is a benchmark.
set -uo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
GB="1"
MIXTURE="q4_k_m"
THREADS=2
RUNS=3
BENCH_DIR="${BENCH_DIR:-/tmp/quantize-bench}"
BINARY=""
BUILD=1
IMATRIX=1

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { printf 'bench_mixture: error: %s\n' "$*" >&2; exit 2; }
log() { printf 'bench_mixture: %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --gigabytes) [ $# -ge 2 ] || die "--gigabytes needs a number"; GB="$2"; shift 2 ;;
        --mixture) [ $# -ge 2 ] || die "--mixture needs a name, e.g. q4_k_m"; MIXTURE="$2"; shift 2 ;;
        --threads) [ $# -ge 2 ] || die "--threads needs a count"; THREADS="$2"; shift 2 ;;
        --runs) [ $# -ge 2 ] || die "--runs needs a count"; RUNS="$2"; shift 2 ;;
        --bench-dir) [ $# -ge 2 ] || die "--bench-dir needs a folder"; BENCH_DIR="$2"; shift 2 ;;
        --binary) [ $# -ge 2 ] || die "--binary needs a path"; BINARY="$2"; BUILD=0; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --no-imatrix) IMATRIX=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
case "$RUNS" in ''|*[!0-9]*) die "--runs must be a positive integer, not '$RUNS'" ;; esac
[ "$RUNS" -ge 1 ] || die "--runs must be at least 1"

LLAMA="${LLAMA_CPP_DIR:-$ROOT/.llama.cpp}"
LQ="$LLAMA/bin/llama-quantize"
[ -x "$LQ" ] || die "$LQ not found: run tools/build_llama_cpp.sh or set LLAMA_CPP_DIR"
PY="${PYTHON:-}"
[ -n "$PY" ] || { [ -x "$ROOT/.venv/bin/python" ] && PY="$ROOT/.venv/bin/python"; } || PY=python3
[ -n "$PY" ] || PY=python3
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time): it measures peak RSS"
if [ -z "$BINARY" ]; then
    BINARY="$ROOT/.build/release/quantize"
    if [ "$BUILD" = 1 ]; then
        log "building quantize (release)"
        (cd "$ROOT" && swift build -c release --product quantize >&2) || die "swift build failed"
    fi
fi
[ -x "$BINARY" ] || die "quantize binary $BINARY not found (build it or pass --binary)"
LLAMA_TYPE="$(printf '%s' "$MIXTURE" | tr '[:lower:]' '[:upper:]')"

mkdir -p "$BENCH_DIR" || die "cannot create $BENCH_DIR"
IN="$BENCH_DIR/synthetic-${GB}gb-f16.gguf"
MATRIX="$BENCH_DIR/synthetic-${GB}gb-f16.imatrix.gguf"
if [ ! -s "$IN" ]; then
    log "generating $IN"
    "$PY" "$ROOT/tools/make_synthetic.py" --gigabytes "$GB" --format gguf "$IN" --quiet || die "make_synthetic.py failed"
fi
if [ "$IMATRIX" = 1 ] && [ ! -s "$MATRIX" ]; then
    log "generating $MATRIX"
    "$PY" -c "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import mixture_bytes_oracle as m; m.make_imatrix(Path(sys.argv[2]), Path(sys.argv[3]), None)" \
        "$ROOT/tools" "$IN" "$MATRIX" || die "making the importance matrix failed"
fi
OUT_REF="$BENCH_DIR/out-llama.gguf"
OUT_OURS="$BENCH_DIR/out-quantize.gguf"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
minmax() { sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.1f–%.1f", lo, hi}'; }

# run LABEL CMD...: one timed run; appends "seconds rss_kb" to $SCRATCH/LABEL.
run() {
    local label="$1"; shift
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$SCRATCH/rss" "$@" > "$SCRATCH/stdout" 2> "$SCRATCH/stderr"
    local rc=$?
    t1=$(date +%s.%N)
    if [ $rc -ne 0 ]; then
        log "$label failed (exit $rc): $(tail -n 3 "$SCRATCH/stderr" | tr '\n' ' ')"
        return $rc
    fi
    echo "$(echo "$t1 - $t0" | bc -l) $(tail -n 1 "$SCRATCH/rss")" >> "$SCRATCH/$label"
}

size=$(stat -c %s "$IN")
echo
echo "\`quantize --to $MIXTURE\` vs \`llama-quantize … $LLAMA_TYPE $THREADS\`, $THREADS threads, warm $(echo "$size / 1000000000" | bc -l | xargs printf '%.2f') GB F16 GGUF ($(basename "$IN")), median of $RUNS interleaved runs, $(date -u +%Y-%m-%d)"
echo
echo "| importance | llama-quantize s (min–max) | + sync s | quantize s, incl. fsync (min–max) | of it, check s | speed-up | peak RSS llama / ours | same sha256 (llama / ours) |"
echo "|---|---|---|---|---|---|---|---|"
STATUS=0
variants="plain"
[ "$IMATRIX" = 1 ] && variants="plain imatrix"
for v in $variants; do
    extra_l=(); extra_q=()
    if [ "$v" = imatrix ]; then extra_l=(--imatrix "$MATRIX"); extra_q=(--imatrix "$MATRIX"); fi
    cat "$IN" > /dev/null
    for r in $(seq 1 "$RUNS"); do
        log "$v run $r/$RUNS: llama-quantize"
        rm -f "$OUT_REF"
        run "llama-$v" "$LQ" "${extra_l[@]}" "$IN" "$OUT_REF" "$LLAMA_TYPE" "$THREADS" || { STATUS=1; continue; }
        t0=$(date +%s.%N); sync "$OUT_REF"; t1=$(date +%s.%N)
        echo "$t1 - $t0" | bc -l >> "$SCRATCH/sync-$v"
        log "$v run $r/$RUNS: quantize"
        run "ours-$v" "$BINARY" --to "$MIXTURE" "$IN" -o "$OUT_OURS" --threads "$THREADS" --force --quiet --json "${extra_q[@]}" || { STATUS=1; continue; }
        "$PY" -c "import json,sys; print(json.load(open(sys.argv[1])).get('checkSeconds', 'nan'))" "$SCRATCH/stdout" >> "$SCRATCH/check-$v" 2>/dev/null || echo nan >> "$SCRATCH/check-$v"
    done
    [ -s "$SCRATCH/llama-$v" ] && [ -s "$SCRATCH/ours-$v" ] || { echo "| $v | failed | | | | | | |"; continue; }
    h_ref=$(sha256sum "$OUT_REF" | cut -c1-16); h_ours=$(sha256sum "$OUT_OURS" | cut -c1-16)
    same="yes"; [ "$h_ref" = "$h_ours" ] || { same="**no**"; STATUS=1; }
    l_med=$(cut -d' ' -f1 "$SCRATCH/llama-$v" | median); o_med=$(cut -d' ' -f1 "$SCRATCH/ours-$v" | median)
    l_rng=$(cut -d' ' -f1 "$SCRATCH/llama-$v" | minmax); o_rng=$(cut -d' ' -f1 "$SCRATCH/ours-$v" | minmax)
    l_rss=$(cut -d' ' -f2 "$SCRATCH/llama-$v" | sort -g | tail -n 1); o_rss=$(cut -d' ' -f2 "$SCRATCH/ours-$v" | sort -g | tail -n 1)
    s_med=$(median < "$SCRATCH/sync-$v"); c_med=$(median < "$SCRATCH/check-$v")
    ratio=$(echo "$l_med / $o_med" | bc -l)
    printf '| %s | %.1f (%s) | %.1f | %.1f (%s) | %.1f | **%.2f×** | %d / %d MB | %s (%s / %s) |\n' \
        "$v" "$l_med" "$l_rng" "$s_med" "$o_med" "$o_rng" "$c_med" "$ratio" $((l_rss / 1024)) $((o_rss / 1024)) "$same" "$h_ref" "$h_ours"
done
exit $STATUS
