#!/usr/bin/env bash
# The whole job against the disk: quantize with and without the accuracy check, llama-quantize for
# the same type, a copy of the input with fsync, and a write of the output's size with fsync,
# interleaved on the same warm input, in one run.
#
#   tools/bench_pipeline.sh [--rounds 3] [--bench-dir DIR] [--binary PATH] [--baseline PATH]
#                           [--cases q8_0,q4_0,fp8,int8,int4] [--gigabytes 1]
#
# Inputs (made once with tools/make_synthetic.py and kept under the bench directory, default
# $BENCH_DIR or /tmp/quantize-bench-pipeline): an F16 GGUF (for q8_0, q4_0) and a BF16
# safetensors model directory (for fp8, int8, int4), each --gigabytes of tensor data rounded up to
# a whole layer. Every round reads each input whole first (`cat > /dev/null`, so it is in the page
# cache) and then runs every command once, in turn, so a change in the machine's load touches all
# of them alike; the table gives each command's median over the rounds:
#   quantize        quantize --to T IN -o OUT --force --quiet --json   (the check on; its share
#                   of the run is checkSeconds / seconds from the JSON)
#   --no-check      the same with --no-check
#   baseline        the same with --no-check through --baseline PATH (another build), if given
#   llama-quantize  $LLAMA_CPP_DIR/bin/llama-quantize --pure IN OUT TYPE (GGUF types only; it does
#                   not fsync its output, so its time excludes the disk)
#   cp + fsync      dd if=IN of=COPY bs=4M conv=fsync, file by file
#   write floor     dd if=/dev/zero of=F bs=4M count=<output size / 4 MiB> conv=fsync
# and the ratios of quantize (check on / off) to the write floor, the CPU seconds (user + system)
# of the --no-check runs (on a loaded machine the wall time follows the CPU share the job gets;
# on an idle one it cannot go below CPU seconds / cores), and quantize's peak RSS (/usr/bin/time %M). The load average before and after and the CPU count are printed with the
# table. The quantize binary is .build/release/quantize unless --binary is given (build it first:
# swift build -c release --product quantize). Not run by CI: it is a benchmark.
set -uo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
ROUNDS=3
BENCH_DIR="${BENCH_DIR:-/tmp/quantize-bench-pipeline}"
BINARY="$ROOT/.build/release/quantize"
BASELINE=""
CASES="q8_0,q4_0,fp8,int8,int4"
GIGABYTES=1
LLAMA_CPP_DIR="${LLAMA_CPP_DIR:-$ROOT/.llama.cpp}"

die() { printf 'bench_pipeline: error: %s\n' "$*" >&2; exit 2; }
log() { printf 'bench_pipeline: %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) [ $# -ge 2 ] || die "--rounds needs a number"; ROUNDS="$2"; shift 2 ;;
        --bench-dir) [ $# -ge 2 ] || die "--bench-dir needs a folder"; BENCH_DIR="$2"; shift 2 ;;
        --binary) [ $# -ge 2 ] || die "--binary needs a path"; BINARY="$2"; shift 2 ;;
        --baseline) [ $# -ge 2 ] || die "--baseline needs a path"; BASELINE="$2"; shift 2 ;;
        --cases) [ $# -ge 2 ] || die "--cases needs e.g. q8_0,fp8"; CASES="$2"; shift 2 ;;
        --gigabytes) [ $# -ge 2 ] || die "--gigabytes needs a number"; GIGABYTES="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds takes a positive whole number, not '$ROUNDS'"
[ -x "$BINARY" ] || die "no quantize binary at $BINARY; build it with: swift build -c release --product quantize"
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || die "no baseline binary at $BASELINE"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing; install the Debian package 'time'"
LLAMA_QUANTIZE="$LLAMA_CPP_DIR/bin/llama-quantize"
[ -x "$LLAMA_QUANTIZE" ] || { log "no llama-quantize at $LLAMA_QUANTIZE (set LLAMA_CPP_DIR): its column stays empty"; LLAMA_QUANTIZE=""; }
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

mkdir -p "$BENCH_DIR" || die "cannot create $BENCH_DIR"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd -P)"
GGUF_IN="$BENCH_DIR/llama-${GIGABYTES}gb-f16.gguf"
ST_IN="$BENCH_DIR/llama-${GIGABYTES}gb-bf16"
OUT="$BENCH_DIR/out"
mkdir -p "$OUT"
for pair in "gguf:$GGUF_IN" "safetensors:$ST_IN"; do
    format=${pair%%:*}; path=${pair#*:}
    if [ ! -e "$path" ]; then
        log "generating $path"
        "$PYTHON" "$ROOT/tools/make_synthetic.py" --gigabytes "$GIGABYTES" --format "$format" "$path" >&2 ||
            die "make_synthetic.py failed for $format (run tools/setup.sh for numpy, ml_dtypes, gguf)"
    fi
done

bytes_of() { du -sb --apparent-size "$1" | cut -f1; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'; }
# Runs a command, appends "seconds peak_kb user_s system_s" to the file $1.
timed() {
    local record=$1; shift
    local t; t=$(mktemp)
    if /usr/bin/time -f '%e %M %U %S' -o "$t" "$@" >"$OUT/last.stdout" 2>"$OUT/last.stderr"; then
        cat "$t" >> "$record"
    else
        log "failed: $* ($(tail -n 1 "$OUT/last.stderr"))"
    fi
    rm -f "$t"
}
copy_fsync() {   # input (file or directory) → $OUT/copy, every file synced
    rm -rf "$OUT/copy"; mkdir -p "$OUT/copy"
    if [ -d "$1" ]; then
        for f in "$1"/*; do dd if="$f" of="$OUT/copy/$(basename "$f")" bs=4M conv=fsync status=none || return 1; done
    else
        dd if="$1" of="$OUT/copy/input" bs=4M conv=fsync status=none
    fi
}
write_floor() { dd if=/dev/zero of="$OUT/floor" bs=4M count="$1" conv=fsync status=none; }
export OUT
export -f copy_fsync write_floor   # run by /usr/bin/time through bash -c
llama_type() { printf '%s' "$1" | tr 'a-z' 'A-Z'; }

IFS=',' read -r -a CASE_LIST <<<"$CASES"
for c in "${CASE_LIST[@]}"; do
    case "$c" in q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|q6_k|fp8|int8|int4) ;; *) die "unknown case '$c'" ;; esac
done
input_of() { case "$1" in fp8|int8|int4) printf '%s' "$ST_IN" ;; *) printf '%s' "$GGUF_IN" ;; esac; }
output_of() { case "$1" in fp8|int8|int4) printf '%s/q-%s' "$OUT" "$1" ;; *) printf '%s/q-%s.gguf' "$OUT" "$1" ;; esac; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
REC="$BENCH_DIR/records"; rm -rf "$REC"; mkdir -p "$REC"
for ((round = 1; round <= ROUNDS; round++)); do
    for c in "${CASE_LIST[@]}"; do
        in=$(input_of "$c"); out=$(output_of "$c")
        log "round $round/$ROUNDS: $c"
        find "$in" -type f -exec cat {} + > /dev/null
        rm -rf "$out"; timed "$REC/$c.check" "$BINARY" --to "$c" "$in" -o "$out" --force --quiet --json
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("checkSeconds", 0) / d["seconds"])' \
            "$OUT/last.stdout" >> "$REC/$c.share" 2>/dev/null
        outbytes=$(bytes_of "$out"); echo "$outbytes" > "$REC/$c.outbytes"
        rm -rf "$out"; timed "$REC/$c.nocheck" "$BINARY" --to "$c" "$in" -o "$out" --force --quiet --no-check
        if [ -n "$BASELINE" ]; then rm -rf "$out"; timed "$REC/$c.baseline" "$BASELINE" --to "$c" "$in" -o "$out" --force --quiet --no-check; fi
        rm -rf "$out"
        if [ -n "$LLAMA_QUANTIZE" ] && [ "$in" = "$GGUF_IN" ]; then
            timed "$REC/$c.llama" "$LLAMA_QUANTIZE" --pure "$in" "$OUT/llama.gguf" "$(llama_type "$c")"
            rm -f "$OUT/llama.gguf"
        fi
        timed "$REC/$c.cp" bash -c 'copy_fsync "$1"' _ "$in"; rm -rf "$OUT/copy"
        timed "$REC/$c.floor" bash -c 'write_floor "$1"' _ $(( (outbytes + 4194303) / 4194304 )); rm -f "$OUT/floor"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

col() { [ -s "$REC/$1.$2" ] && cut -d' ' -f1 "$REC/$1.$2" | median; }
cpu() { [ -s "$REC/$1.$2" ] && awk '{print $3 + $4}' "$REC/$1.$2" | median; }
rss() { [ -s "$REC/$1.$2" ] && cut -d' ' -f2 "$REC/$1.$2" | median | awk '{printf "%.0f MiB", $1 / 1024}'; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a / b}'; }
printf '\n`tools/bench_pipeline.sh --rounds %s --gigabytes %s`, %s, %s CPUs, load average %s before and %s after (medians of %s interleaved rounds, page cache warm):\n\n' \
    "$ROUNDS" "$GIGABYTES" "$STARTED" "$(nproc)" "$LOAD_BEFORE" "$LOAD_AFTER" "$ROUNDS"
header='| type | input | output | quantize s | --no-check s | --no-check CPU s |'
[ -n "$BASELINE" ] && header+=' baseline --no-check s | baseline CPU s |'
header+=' llama-quantize s | cp + fsync s | write floor s | × floor | × floor (no check) | check share | peak RSS |'
printf '%s\n' "$header"
printf '%s' "$header" | awk -F'|' '{s="|"; for (i = 2; i < NF; i++) s = s (i <= 4 ? "---|" : "---:|"); print s}'
for c in "${CASE_LIST[@]}"; do
    in=$(input_of "$c")
    q=$(col "$c" check); n=$(col "$c" nocheck); f=$(col "$c" floor)
    share=$([ -s "$REC/$c.share" ] && median < "$REC/$c.share" | awk '{printf "%.0f %%", $1 * 100}')
    row="| $c | $(basename "$in") $(awk -v b="$(bytes_of "$in")" 'BEGIN{printf "%.2f GB", b / 1e9}') | $(awk -v b="$(cat "$REC/$c.outbytes" 2>/dev/null || echo 0)" 'BEGIN{printf "%.2f GB", b / 1e9}') | $q | $n | $(cpu "$c" nocheck) |"
    [ -n "$BASELINE" ] && row+=" $(col "$c" baseline) | $(cpu "$c" baseline) |"
    row+=" $(col "$c" llama) | $(col "$c" cp) | $f | $(ratio "$q" "$f") | $(ratio "$n" "$f") | $share | $(rss "$c" check) |"
    printf '%s\n' "$row"
done
