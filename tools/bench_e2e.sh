#!/usr/bin/env bash
# End-to-end benchmark: quantize a whole synthetic checkpoint, against `cp` of the same input.
#
#   tools/bench_e2e.sh [--sizes 1[,4,30]] [--bench-dir DIR] [--binary PATH] [--no-build]
#                      [--cache cold,warm] [--gguf-schemes q8_0[,q4_0]] [--evict-inputs] [--no-fsync]
#
# For each size (GB = 10^9 bytes of tensor data; default 1) it:
#   1. generates, once, with tools/make_synthetic.py (cached under the bench directory, which it
#      prints; default $BENCH_DIR or /tmp/quantize-bench): a BF16 safetensors model directory and
#      an F16 GGUF file of that size (each rounded up to a whole layer, at most 0.44 GB more);
#   2. times, cold and warm (--cache), with peak RSS from /usr/bin/time:
#        cp -r INPUT OUT                                         (the reference)
#        quantize --to fp8  INPUT_DIR  -o OUT      --force --quiet
#        quantize --to q8_0 INPUT.gguf -o OUT.gguf --force --quiet   (and each --gguf-schemes)
#      cold = `sync; echo 3 > /proc/sys/vm/drop_caches` right before the run (needs root; the rows
#      say "n/a" otherwise), warm = the input was just read in full (cat > /dev/null) so it is in
#      the page cache, as far as RAM allows (an input larger than RAM is marked "warm (> RAM)":
#      only its tail can be cached);
#   3. prints one Markdown table: seconds of the command, seconds including an fsync of the
#      output files (so data written but still in the page cache is counted; `sync FILE...`, not
#      a global sync), the ratio to cp in each, GB/s of input, peak RSS and output size.
# A failing command (the CLI not built yet, an unknown flag, a crash) becomes a row that says
# "failed (exit N): <last line of its output>"; the script carries on.
#
# The quantize binary is .build/release/quantize, built first with
# `swift build -c release --product quantize` unless --no-build or --binary PATH is given.
# Disk: before generating anything the script checks free space for the inputs it still has to
# generate plus the largest output (the cp copy, one input's size), and refuses with a message if
# it does not fit; --evict-inputs deletes each input after its rows (regenerated next time), so
# only one input and one output need room at a time, which is what a 30 GB run needs here.
# Python: $PYTHON, else <repo>/.venv/bin/python, else python3 (numpy, ml_dtypes, gguf needed).
# Results are also appended to BENCH_DIR/results.md. Not run by CI: it is a benchmark.
set -uo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
SIZES="1"
BENCH_DIR="${BENCH_DIR:-/tmp/quantize-bench}"
BINARY=""
BUILD=1
CACHE_MODES="cold,warm"
GGUF_SCHEMES="q8_0"
EVICT=0
FSYNC=1

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { printf 'bench_e2e: error: %s\n' "$*" >&2; exit 2; }
log() { printf 'bench_e2e: %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) [ $# -ge 2 ] || die "--sizes needs a value, e.g. 1,4,30"; SIZES="$2"; shift 2 ;;
        --bench-dir) [ $# -ge 2 ] || die "--bench-dir needs a folder"; BENCH_DIR="$2"; shift 2 ;;
        --binary) [ $# -ge 2 ] || die "--binary needs a path"; BINARY="$2"; BUILD=0; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --cache) [ $# -ge 2 ] || die "--cache needs cold, warm or cold,warm"; CACHE_MODES="$2"; shift 2 ;;
        --gguf-schemes) [ $# -ge 2 ] || die "--gguf-schemes needs e.g. q8_0,q4_0"; GGUF_SCHEMES="$2"; shift 2 ;;
        --evict-inputs) EVICT=1; shift ;;
        --no-fsync) FSYNC=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

IFS=',' read -r -a SIZE_LIST <<<"$SIZES"
for s in "${SIZE_LIST[@]}"; do
    [[ "$s" =~ ^([0-9]+(\.[0-9]*)?|\.[0-9]+)$ ]] && awk -v s="$s" 'BEGIN{exit !(s > 0)}' ||
        die "size '$s' is not a positive number of GB"
done
IFS=',' read -r -a CACHE_LIST <<<"$CACHE_MODES"
for c in "${CACHE_LIST[@]}"; do
    [ "$c" = cold ] || [ "$c" = warm ] || die "--cache takes cold, warm or cold,warm, not '$c'"
done
IFS=',' read -r -a GGUF_LIST <<<"$GGUF_SCHEMES"

if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import numpy, ml_dtypes, gguf' 2>/dev/null ||
    die "$PYTHON lacks numpy/ml_dtypes/gguf; run tools/setup.sh or set PYTHON=/path/to/venv/bin/python"

if [ ! -x /usr/bin/time ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        log "installing the Debian package 'time' for /usr/bin/time"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends time >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends time >/dev/null 2>&1; } ||
            die "could not install /usr/bin/time (Debian package 'time')"
    else
        die "/usr/bin/time is missing; install the Debian package 'time'"
    fi
fi

mkdir -p "$BENCH_DIR/inputs" || die "cannot create $BENCH_DIR"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd -P)"
OUT_DIR="$BENCH_DIR/out"
RESULTS="$BENCH_DIR/results.md"
GB=1000000000

# Sizes in bytes (make_synthetic rounds up to a whole layer: at most 0.44 GB more).
input_estimate() { awk -v s="$1" -v gb=$GB 'BEGIN{printf "%.0f", s * gb + 0.44 * gb}'; }
st_input() { printf '%s/inputs/llama-%sgb-bf16' "$BENCH_DIR" "$1"; }
gguf_input() { printf '%s/inputs/llama-%sgb-f16.gguf' "$BENCH_DIR" "$1"; }

# MARK: disk check, before anything is generated
avail=$(df --output=avail -B1 "$BENCH_DIR" | tail -n 1 | tr -d ' ')
need_keep=0; need_evict=0
for s in "${SIZE_LIST[@]}"; do
    est=$(input_estimate "$s")
    for input in "$(st_input "$s")" "$(gguf_input "$s")"; do
        [ -e "$input" ] || need_keep=$((need_keep + est))
    done
    [ $((est * 2)) -gt "$need_evict" ] && need_evict=$((est * 2))
done
largest_out=0
for s in "${SIZE_LIST[@]}"; do e=$(input_estimate "$s"); [ "$e" -gt "$largest_out" ] && largest_out=$e; done
need_keep=$((need_keep + largest_out + GB))
need_evict=$((need_evict + GB))
need=$need_keep; [ "$EVICT" -eq 1 ] && need=$need_evict
if [ "$need" -gt "$avail" ]; then
    msg="not enough disk in $BENCH_DIR: this run needs about $((need / GB)) GB (inputs still to generate, plus one copy for the largest output, plus 1 GB), $((avail / GB)) GB are free."
    if [ "$EVICT" -eq 0 ] && [ "$need_evict" -le "$avail" ]; then
        msg="$msg With --evict-inputs (each input deleted after its rows) it needs $((need_evict / GB)) GB, which fits."
    else
        msg="$msg Free space, pick another --bench-dir, or run fewer/smaller --sizes."
    fi
    die "$msg"
fi

# MARK: build
BUILD_NOTE=""
if [ -z "$BINARY" ]; then
    BINARY="$ROOT/.build/release/quantize"
    if [ "$BUILD" -eq 1 ]; then
        log "building: swift build -c release --product quantize"
        if ! build_log=$(cd "$ROOT" && swift build -c release --product quantize 2>&1); then
            BUILD_NOTE="build failed: $(printf '%s\n' "$build_log" | grep -m1 -E 'error' || printf '%s\n' "$build_log" | tail -n 1)"
            log "$BUILD_NOTE"
        fi
    fi
fi

ROOT_CAN_DROP=0
[ -w /proc/sys/vm/drop_caches ] && ROOT_CAN_DROP=1
MEM_BYTES=$(awk '/^MemTotal:/ {printf "%.0f", $2 * 1024}' /proc/meminfo)

# MARK: helpers
bytes_of() { du -sb --apparent-size "$1" 2>/dev/null | cut -f1; }
now() { date +%s.%N; }
md_escape() { printf '%s' "$1" | tr '\n|' ' /' | cut -c1-160; }

prepare_cache() {   # $1 = cold|warm, $2 = input path; prints the cache label
    local mode=$1 input=$2
    if [ "$mode" = cold ]; then
        if [ "$ROOT_CAN_DROP" -eq 1 ]; then
            sync; echo 3 > /proc/sys/vm/drop_caches; printf 'cold'
        else
            printf 'n/a (not root)'
        fi
    else
        find "$input" -type f -exec cat {} + > /dev/null
        if [ "$(bytes_of "$input")" -gt "$MEM_BYTES" ]; then printf 'warm (> RAM)'; else printf 'warm'; fi
    fi
}

descendants() {   # all processes below $1, whose RssAnon is summed
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do
        printf '%s\n' "$child"
        descendants "$child"
    done
}

NCOLS=12
add_row() {   # cells...; pads to the table's column count
    local row="|" i
    for ((i = 1; i <= NCOLS; i++)); do
        if [ "$i" -le $# ]; then row+=" ${!i} |"; else row+=" |"; fi
    done
    ROWS+=("$row")
}

ROWS=()
CP_S=""; CP_FS=""
run_case() {   # $1 = label, $2 = input, $3 = output, $4 = cache mode, $5.. = command
    local label=$1 input=$2 output=$3 mode=$4; shift 4
    rm -rf -- "$output"
    local cache; cache=$(prepare_cache "$mode" "$input")
    if [ "$mode" = cold ] && [ "$ROOT_CAN_DROP" -eq 0 ]; then
        add_row "$label" "$(md_escape "$*")" "$cache" "" "" "" "" "" "" "" "" "skipped"
        return
    fi
    local in_bytes; in_bytes=$(bytes_of "$input")
    local time_file log_file stamp_file; time_file=$(mktemp); log_file=$(mktemp); stamp_file=$(mktemp)
    log "$cache: $*"
    local t0 t1 t2 t3 rc
    # The command's own start and end times come from a wrapper, so the sampler below adds no
    # error; /usr/bin/time's %M (ru_maxrss of its child and the child's children) is the
    # command's, the wrapper shell being far smaller.
    BENCH_E2E_STAMP="$stamp_file" /usr/bin/time -f '%M' -o "$time_file" bash -c \
        's=$(date +%s.%N); "$@"; rc=$?; e=$(date +%s.%N); echo "$s $e" > "$BENCH_E2E_STAMP"; exit $rc' \
        bench_e2e "$@" >"$log_file" 2>&1 &
    local tpid=$! anon_kb=0 child kb
    # Peak RssAnon (heap, not mapped file pages), sampled 10 times a second: ru_maxrss (%M)
    # counts the resident pages of memory-mapped inputs too, which the kernel may keep.
    while kill -0 "$tpid" 2>/dev/null; do
        kb=0
        for child in $(descendants "$tpid"); do
            kb=$((kb + $(awk '/^RssAnon:/ {print $2}' "/proc/$child/status" 2>/dev/null || echo 0)))
        done
        [ "$kb" -gt "$anon_kb" ] && anon_kb=$kb
        sleep 0.1
    done
    wait "$tpid"
    rc=$?
    read -r t0 t1 < "$stamp_file" || { t0=0; t1=0; }
    t2=$(now)
    if [ "$FSYNC" -eq 1 ] && [ -e "$output" ]; then
        find "$output" -type f -exec sync -- {} +
    fi
    t3=$(now)
    local rss_kb; rss_kb=$(tail -n 1 "$time_file" | tr -dc '0-9')
    local secs fsecs gbps rss_mb out_gb status ratio fratio
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}')
    fsecs=$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN{printf "%.3f", b - a + d - c}')
    if [ "$FSYNC" -eq 0 ]; then fsecs=""; fi
    rss_mb=$(awk -v k="${rss_kb:-0}" 'BEGIN{printf "%.0f", k / 1024}')
    local anon_mb; anon_mb=$(awk -v k="$anon_kb" 'BEGIN{printf "%.0f", k / 1024}')
    if [ "$rc" -eq 0 ]; then
        status="ok"
        gbps=$(awk -v n="$in_bytes" -v s="$secs" -v gb=$GB 'BEGIN{printf "%.2f", n / gb / s}')
        out_gb=$( [ -e "$output" ] && awk -v n="$(bytes_of "$output")" -v gb=$GB 'BEGIN{printf "%.3f", n / gb}' || printf 'none')
    else
        local why; why=$(grep -m1 -i 'error' "$log_file" || grep -v '^[[:space:]]*$' "$log_file" | tail -n 1)
        status="failed (exit $rc): $(md_escape "$why")"
        gbps=""; out_gb=""; secs=""; fsecs=""; rss_mb=""; anon_mb=""
    fi
    if [ "$label" = cp ]; then
        if [ "$rc" -eq 0 ]; then CP_S=$secs; CP_FS=$fsecs; else CP_S=""; CP_FS=""; fi
    fi
    ratio=""; fratio=""
    if [ "$rc" -eq 0 ] && [ -n "$CP_S" ]; then
        ratio=$(awk -v a="$secs" -v b="$CP_S" 'BEGIN{printf "%.2f", a / b}')
        [ -n "$fsecs" ] && [ -n "$CP_FS" ] && fratio=$(awk -v a="$fsecs" -v b="$CP_FS" 'BEGIN{printf "%.2f", a / b}')
    fi
    local shown_cmd="${*/#$ROOT\//}"
    shown_cmd=$(md_escape "${shown_cmd//$BENCH_DIR/\$B}")
    add_row "$label" "\`$shown_cmd\`" "$cache" "$secs" "$fsecs" "$ratio" "$fratio" "$gbps" "$rss_mb" "$anon_mb" "$out_gb" "$status"
    rm -f -- "$time_file" "$log_file" "$stamp_file"
    rm -rf -- "$output"
}

ensure_input() {   # $1 = format, $2 = size, $3 = path
    [ -e "$3" ] && return 0
    log "generating $3"
    "$PYTHON" "$ROOT/tools/make_synthetic.py" --quiet --format "$1" --gigabytes "$2" "$3" >&2 ||
        { log "make_synthetic.py failed for $3"; return 1; }
}

# MARK: run
log "bench directory: $BENCH_DIR (inputs cached in $BENCH_DIR/inputs, outputs in $OUT_DIR, deleted after each row)"
mkdir -p "$OUT_DIR"
SIZE_TABLES=()
for s in "${SIZE_LIST[@]}"; do
    ROWS=()
    st=$(st_input "$s"); gg=$(gguf_input "$s")
    for format in safetensors gguf; do
        if [ "$format" = safetensors ]; then input=$st; else input=$gg; fi
        if ! ensure_input "$format" "$s" "$input"; then
            add_row "(input)" "make_synthetic.py --format $format --gigabytes $s" "" "" "" "" "" "" "" "" "" "failed: see stderr"
            continue
        fi
        in_gb=$(awk -v n="$(bytes_of "$input")" -v gb=$GB 'BEGIN{printf "%.3f", n / gb}')
        add_row "**$format input, $in_gb GB**" "\`$(md_escape "${input//$BENCH_DIR/\$B}")\`"
        for mode in "${CACHE_LIST[@]}"; do
            CP_S=""; CP_FS=""
            if [ "$format" = safetensors ]; then
                run_case cp "$input" "$OUT_DIR/copy" "$mode" cp -r -- "$input" "$OUT_DIR/copy"
                targets=(fp8)
            else
                run_case cp "$input" "$OUT_DIR/copy.gguf" "$mode" cp -- "$input" "$OUT_DIR/copy.gguf"
                targets=("${GGUF_LIST[@]}")
            fi
            for scheme in "${targets[@]}"; do
                if [ "$format" = safetensors ]; then out="$OUT_DIR/quantized-$scheme"; else out="$OUT_DIR/quantized-$scheme.gguf"; fi
                if [ -n "$BUILD_NOTE" ]; then   # never time a stale binary
                    add_row "quantize $scheme" "" "$mode" "" "" "" "" "" "" "" "" "$(md_escape "$BUILD_NOTE")"
                    continue
                fi
                run_case "quantize $scheme" "$input" "$out" "$mode" \
                    "$BINARY" --to "$scheme" "$input" -o "$out" --force --quiet
            done
        done
        if [ "$EVICT" -eq 1 ]; then log "evicting $input"; rm -rf -- "$input"; fi
    done
    table="### ${s} GB"$'\n\n'
    table+="| what | command | cache | s | s incl. fsync | × cp | × cp incl. fsync | GB/s in | peak RSS MiB | peak anon MiB | output GB | status |"$'\n'
    table+="|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"$'\n'
    for row in "${ROWS[@]}"; do table+="$row"$'\n'; done
    SIZE_TABLES+=("$table")
done

{
    echo "## quantize end to end vs cp"
    echo
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S') UTC; machine: $(nproc) cores, $((MEM_BYTES / 1024 / 1024 / 1024)) GiB RAM; bench dir \$B = $BENCH_DIR ($(df --output=fstype "$BENCH_DIR" | tail -n 1 | tr -d ' '))  "
    echo "binary: ${BINARY/#$ROOT\//}${BUILD_NOTE:+ ($BUILD_NOTE)}; command: tools/bench_e2e.sh --sizes $SIZES --cache $CACHE_MODES --gguf-schemes $GGUF_SCHEMES$([ "$EVICT" -eq 1 ] && echo ' --evict-inputs')$([ "$FSYNC" -eq 0 ] && echo ' --no-fsync')  "
    echo "one run per row; cold = page cache dropped before the run, warm = input read just before; s = the command alone, s incl. fsync = plus fsync of every output file; × cp = ratio to the cp row above it (same cache state); GB/s of input, GB = 10^9 bytes; peak RSS = ru_maxrss from /usr/bin/time (%M; counts resident pages of memory-mapped files too), peak anon = largest RssAnon sampled every 0.1 s."
    echo
    for t in "${SIZE_TABLES[@]}"; do printf '%s\n' "$t"; done
} | tee -a "$RESULTS"
log "also appended to $RESULTS"
