#!/usr/bin/env bash
# Coverage-guided fuzzing of one parser or decoder (fuzz/README.md).
#
#   tools/fuzz.sh TARGET SECONDS      build, fuzz TARGET for SECONDS, minimise fuzz/corpus/TARGET
#   tools/fuzz.sh --list              the targets
#   tools/fuzz.sh --build             only build the harness
#
# TARGET: safetensors gguf index config tokenizer-json sentencepiece compressed decoders.
# The harness (fuzz/Harness, target QuantizeFuzz) exists only with QUANTIZE_FUZZ=1 and is built
# with ASan and libFuzzer (see build() for the flags) into .build/fuzz, apart from the normal build.
# The fuzzer runs under `nice -n 19`, one process (no -jobs/-workers), starting from the committed
# corpus fuzz/corpus/TARGET plus seeds cut from fixtures/; afterwards the corpus is minimised with
# -merge=1 and written back. Crashes, timeouts and OOMs land in fuzz/findings/TARGET/ (not
# committed: each becomes a fix and a regression test). One line per run is appended to
# fuzz/runs.tsv (executions, exec/s, CPU seconds, coverage, findings).
# Environment: FUZZ_MAX_LEN (bytes, default per target), FUZZ_TIMEOUT (wall seconds per input, 60: the shared machine can stall a niced process for seconds),
# FUZZ_RSS_MB (2048), FUZZ_NICE (niceness of the fuzzing run, 19), FUZZ_NO_BUILD=1 (use the harness as built), QUANTIZE (a quantize binary, to make compressed seeds; default `swift run`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGETS="safetensors gguf index config tokenizer-json sentencepiece compressed decoders"
SCRATCH="$ROOT/.build/fuzz"
BIN="$SCRATCH/debug/QuantizeFuzz"

build() {
    # `--sanitize fuzzer` makes SwiftPM link the executable for libFuzzer's main; the later
    # -sanitize=fuzzer,address wins for swiftc (given two -sanitize= flags, swiftc keeps only the
    # last, so `--sanitize fuzzer --sanitize address` leaves Swift code without coverage counters).
    # The C kernels get coverage (fuzzer-no-link) and ASan through -Xcc.
    QUANTIZE_FUZZ=1 nice -n 10 swift build --scratch-path "$SCRATCH" --product QuantizeFuzz -c debug --sanitize fuzzer \
        -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address >&2
}

# Seeds from fixtures/ for TARGET into directory $2 (files over 256 kB, 48 kB for gguf, are left
# out: libFuzzer mutates small inputs far faster, and every structure the big ones have appears in
# a small one).
seed() {
    local target="$1" out="$2" f
    mkdir -p "$out"
    local limit=262144
    [ "$target" = gguf ] && limit=49152  # the 68-100 kB GGUFs add no structure the 33-44 kB ones lack
    copy() { for f in "$@"; do [ -f "$f" ] && [ "$(stat -c %s "$f")" -le "$limit" ] && cp "$f" "$out/seed-$(echo "$f" | tr '/' '_')"; done; return 0; }
    case "$target" in
        safetensors) copy fixtures/safetensors/*.safetensors fixtures/safetensors/sharded/*.safetensors \
                          fixtures/malformed/safetensors/*.safetensors fixtures/malformed/safetensors/*/*.safetensors ;;
        gguf) copy fixtures/gguf/*.gguf fixtures/malformed/gguf/*.gguf fixtures/tokenizers/*.gguf fixtures/reference-models/*.gguf ;;
        index) copy $(find fixtures -name '*.index.json' | sort) ;;
        config) copy $(find fixtures -name 'config.json' | sort) ;;
        tokenizer-json) python3 tools/fuzz_trim_tokenizers.py "$out" fixtures/tokenizers/*/tokenizer.json fixtures/tiny-llama/tokenizer.json ;;
        sentencepiece) copy $(find fixtures -name 'tokenizer.model' | sort) ;;
        compressed)
            # Small containers (1 KiB chunks, so several chunks and regions) of small fixtures,
            # made once: a committed corpus already holds them.
            [ -n "$(ls "$ROOT/fuzz/corpus/compressed" 2>/dev/null)" ] && return 0
            local quantize="${QUANTIZE:-}" tmp
            if [ -z "$quantize" ]; then swift build --product quantize >&2; quantize="$(swift build --show-bin-path)/quantize"; fi
            tmp="$(mktemp -d)"
            for f in fixtures/safetensors/all_dtypes.safetensors fixtures/safetensors/subbyte.safetensors \
                     fixtures/gguf/v2.gguf fixtures/gguf/all_types_v3.gguf; do
                "$quantize" compress "$f" -o "$tmp/$(basename "$f").bpz" --chunk-kilobytes 1 >/dev/null 2>&1 || true
            done
            copy "$tmp"/*.bpz
            rm -rf "$tmp" ;;
        decoders)
            # Byte 0 picks the type (index into GGMLType.all, then the tensor layouts), byte 1 the
            # size mode (0: exact); the payload is oracle-made blocks from fixtures/ggml-kquants.
            python3 - "$out" <<'EOF'
import os, sys
out = sys.argv[1]
blocks = {name: open(f"fixtures/ggml-kquants/{name}.bin", "rb").read() for name in
          ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"]}
pool = b"".join(blocks.values())
# GGMLType.all order (Sources/Formats/GGUF/GGMLType.swift), then the 7 tensor layouts.
types = ["F32", "F16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K",
         "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64",
         "IQ1_M", "BF16", "TQ1_0", "TQ2_0", "MXFP4", "NVFP4", "Q1_0", "Q2_0"]
for index, name in enumerate(types):
    payload = blocks.get(name, pool[:600])[:1200]
    open(os.path.join(out, f"seed-{index:02d}-{name}"), "wb").write(bytes([index, 0]) + payload)
for layout in range(7):
    index = len(types) + layout
    for mode in (3, 7):
        open(os.path.join(out, f"seed-{index:02d}-layout{layout}-{mode}"), "wb").write(bytes([index, mode, 40, 4 * mode]) + pool[:800])
EOF
            ;;
        *) echo "unknown target '$target'; one of: $TARGETS" >&2; exit 2 ;;
    esac
}

default_max_len() {
    case "$1" in
        gguf|compressed) echo 131072 ;;
        safetensors|sentencepiece|tokenizer-json) echo 65536 ;;
        *) echo 16384 ;;
    esac
}

case "${1:-}" in
    --list) echo "$TARGETS"; exit 0 ;;
    --build) build; echo "$BIN"; exit 0 ;;
    ""|-h|--help) sed -n '2,20p' "$0"; exit 2 ;;
esac
TARGET="$1"; SECONDS_TO_RUN="${2:?usage: tools/fuzz.sh TARGET SECONDS}"
case " $TARGETS " in *" $TARGET "*) ;; *) echo "unknown target '$TARGET'; one of: $TARGETS" >&2; exit 2 ;; esac

[ "${FUZZ_NO_BUILD:-}" = 1 ] || build
CORPUS="$ROOT/fuzz/corpus/$TARGET"
WORK="$SCRATCH/work/$TARGET"
FINDINGS="$ROOT/fuzz/findings/$TARGET"
LOG="$SCRATCH/logs/$TARGET-$(date -u +%Y%m%dT%H%M%SZ).log"
mkdir -p "$CORPUS" "$WORK" "$FINDINGS" "$(dirname "$LOG")"
cp -n "$CORPUS"/* "$WORK"/ 2>/dev/null || true
seed "$TARGET" "$WORK"
MAX_LEN="${FUZZ_MAX_LEN:-$(default_max_len "$TARGET")}"
DICT=()
[ -f "$ROOT/fuzz/dict/$TARGET.dict" ] && DICT=(-dict="$ROOT/fuzz/dict/$TARGET.dict")
# slow-unit-* files are inputs over 10 s of wall time, not findings (a loaded machine makes many).
count_findings() { ls "$FINDINGS" | grep -vc '^slow-unit-' || true; }
before=$(count_findings)

export QUANTIZE_FUZZ_TARGET="$TARGET"
# ASan: no leak check (parsers hold caches by design; leaks are not what is hunted here).
# The Swift runtime's own backtracer fights ASan's; libFuzzer prints the stack.
export SWIFT_BACKTRACE="enable=no"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
TIMEFORMAT="%U %S"
{ time nice -n "${FUZZ_NICE:-19}" "$BIN" "$WORK" "${DICT[@]}" -max_total_time="$SECONDS_TO_RUN" -max_len="$MAX_LEN" \
      -timeout="${FUZZ_TIMEOUT:-60}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -malloc_limit_mb="${FUZZ_RSS_MB:-2048}" \
      -print_final_stats=1 -artifact_prefix="$FINDINGS/" -reload=0 >"$LOG" 2>&1 || true; } 2>"$SCRATCH/time-$TARGET.txt"
read -r user system <"$SCRATCH/time-$TARGET.txt"

# Minimise into a fresh directory, then replace the committed corpus with it.
MERGED="$SCRATCH/merged/$TARGET"
rm -rf "$MERGED"; mkdir -p "$MERGED"
nice -n 19 "$BIN" -merge=1 -max_len="$MAX_LEN" -timeout="${FUZZ_TIMEOUT:-60}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
    "$MERGED" "$WORK" >"$LOG.merge" 2>&1 || true
if [ "$(ls "$MERGED" | wc -l)" -gt 0 ]; then
    rm -rf "$CORPUS"; mkdir -p "$CORPUS"
    for f in "$MERGED"/*; do cp "$f" "$CORPUS/$(sha1sum "$f" | cut -c1-16)"; done
    # Inputs that were findings stay in the corpus under their names (CI replays them), even when
    # the minimisation finds their coverage elsewhere.
    for f in "$WORK"/finding-*; do [ -f "$f" ] && cp "$f" "$CORPUS/"; done
fi

final=$(grep -E '^#[0-9]+' "$LOG" | tail -1)
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$LOG" | grep -o '[0-9]*$' || echo 0)
rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$LOG" | grep -o '[0-9]*$' || echo 0)
cov=$(echo "$final" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo "?")
ft=$(echo "$final" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo "?")
found=$(( $(count_findings) - before ))
files=$(ls "$CORPUS" | wc -l); bytes=$(du -sb "$CORPUS" | cut -f1)
cpu=$(python3 -c "print(round($user + $system))")
echo "target $TARGET: ${SECONDS_TO_RUN} s asked, CPU ${cpu} s, ${execs} executions, ${rate} exec/s, cov ${cov}, ft ${ft}, new findings ${found}, corpus ${files} files / ${bytes} bytes"
grep -E '==ERROR|SUMMARY|Fatal error|quantize-fuzz:|Test unit written|^artifact_prefix' "$LOG" | head -20 || true
[ -f fuzz/runs.tsv ] || printf 'date\ttarget\tseconds\tcpu_s\texecutions\texec_per_s\tcov\tft\tfindings\tcorpus_files\tcorpus_bytes\n' >fuzz/runs.tsv
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$TARGET" "$SECONDS_TO_RUN" "$cpu" \
    "$execs" "$rate" "$cov" "$ft" "$found" "$files" "$bytes" >>fuzz/runs.tsv
echo "log: $LOG"
