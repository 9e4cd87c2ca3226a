#!/usr/bin/env bash
# FP8 KV-cache scales: ours against llm-compressor's on fixtures/trained-llama with the same
# calibration token ids, and what the FP8 cache costs in quantize eval (README, "FP8 KV cache").
#
#   1. calibration windows (tools/make_calibration.py, seeded): SAMPLES × LENGTH token ids
#   2. quantize --to fp8 (and int4 --method gptq) with and without --kv-cache fp8
#   3. llm-compressor oneshot with kv_cache_scheme on the same windows (tools/kv_cache_reference.py)
#   4. per-layer relative difference of k_scale / v_scale (compare), transformers loads ours (loads)
#   5. quantize eval of all of them against the original on the held-out eval.txt
#
# Needs .build/debug/quantize (or QUANTIZE=…), $ROOT/.venv (tokenizers) and $ROOT/.venv-ref (torch,
# transformers, compressed-tensors, llmcompressor, datasets). Everything runs under nice -n 19.
# Usage: tools/bench_kv_cache.sh [OUT_DIR]   (SAMPLES=128 LENGTH=512 GPTQ=1 by default)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-/tmp/kv-cache-bench}"
QUANTIZE="${QUANTIZE:-$ROOT/.build/debug/quantize}"
VENV="${VENV:-$ROOT/.venv}"
VENV_REF="${VENV_REF:-$ROOT/.venv-ref}"
SAMPLES="${SAMPLES:-128}"
LENGTH="${LENGTH:-512}"
GPTQ="${GPTQ:-1}"
MODEL="$ROOT/fixtures/trained-llama"
TEXT="$MODEL/eval.txt"
mkdir -p "$OUT"
N="nice -n 19"
CAL="$OUT/calibration.json"
CALIB=(--calibration "$CAL" --calibration-samples "$SAMPLES" --calibration-length "$LENGTH")

[ -f "$CAL" ] || $N "$VENV/bin/python" "$ROOT/tools/make_calibration.py" --samples "$SAMPLES" --length "$LENGTH" -o "$CAL"

# Each run once (an existing output is kept); its wall time and peak RSS go to times.txt, its log to NAME.log.
run() {
    local name="$1"; shift
    [ -d "$OUT/$name" ] && return 0
    /usr/bin/time -a -o "$OUT/times.txt" -f "$name %e s %M KB" $N "$@" >"$OUT/$name.log" 2>&1 || { tail -20 "$OUT/$name.log"; exit 1; }
}
run ours-fp8 "$QUANTIZE" --to fp8 "$MODEL" --no-check -o "$OUT/ours-fp8" --quiet
run ours-fp8-kv "$QUANTIZE" --to fp8 "$MODEL" --kv-cache fp8 "${CALIB[@]}" --no-check -o "$OUT/ours-fp8-kv" --quiet
run lc-fp8-kv "$VENV_REF/bin/python" "$ROOT/tools/kv_cache_reference.py" oneshot "$MODEL" "$OUT/lc-fp8-kv" --calibration "$CAL" --scheme FP8_DYNAMIC
EVAL=("$OUT/ours-fp8" "$OUT/ours-fp8-kv" "$OUT/lc-fp8-kv")
if [ "$GPTQ" = 1 ]; then
    run ours-gptq-kv "$QUANTIZE" --to int4 "$MODEL" --method gptq --act-order --kv-cache fp8 "${CALIB[@]}" --no-check -o "$OUT/ours-gptq-kv" --quiet
    run lc-gptq-kv "$VENV_REF/bin/python" "$ROOT/tools/kv_cache_reference.py" oneshot "$MODEL" "$OUT/lc-gptq-kv" --calibration "$CAL" --scheme W4A16 --gptq
    EVAL+=("$OUT/ours-gptq-kv" "$OUT/lc-gptq-kv")
fi

$N "$VENV_REF/bin/python" "$ROOT/tools/kv_cache_reference.py" compare "$OUT/ours-fp8-kv" "$OUT/lc-fp8-kv" > "$OUT/compare-fp8.json"
[ "$GPTQ" = 1 ] && $N "$VENV_REF/bin/python" "$ROOT/tools/kv_cache_reference.py" compare "$OUT/ours-gptq-kv" "$OUT/lc-gptq-kv" > "$OUT/compare-gptq.json"
$N "$VENV_REF/bin/python" "$ROOT/tools/kv_cache_reference.py" loads "$OUT/ours-fp8-kv" > "$OUT/loads-fp8.json" || true
$N "$QUANTIZE" eval "$MODEL" "${EVAL[@]}" --text "$TEXT" --json > "$OUT/eval.json"
$N "$QUANTIZE" eval "$MODEL" "$OUT/ours-fp8-kv" "$OUT/lc-fp8-kv" --text "$TEXT" --weights-only --json > "$OUT/eval-weights-only.json"

"$VENV_REF/bin/python" - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
for label in ["fp8", "gptq"]:
    try:
        c = json.load(open(f"{out}/compare-{label}.json"))
    except FileNotFoundError:
        continue
    print(f"\n{label}: k_scale / v_scale, ours vs llm-compressor (same {len(c['tensors']) // 2} layers, same names: {c['same_names']})")
    print("| tensor | ours | llm-compressor | relative difference |")
    print("|---|---|---|---|")
    for r in c["tensors"]:
        o, t = r["ours"], r["llmcompressor"]
        print(f"| {r['tensor']} | {o['value']:.6g} ({o['dtype']} {o['shape']}) | {t['value']:.6g} ({t['dtype']} {t['shape']}) | {r['relative_difference']:.2e} |")
    print(f"max relative difference {c['max_relative_difference']:.2e}")
for name in ["eval", "eval-weights-only"]:
    e = json.load(open(f"{out}/{name}.json"))
    print(f"\n{name}: original PPL {e['original']['perplexity']:.4f}, {e['scoredTokens']} scored tokens")
    print("| checkpoint | FP8 KV cache | mean KLD | PPL | same top token |")
    print("|---|---|---|---|---|")
    for r in e["results"]:
        print(f"| {r['path'].split('/')[-1]} | {r['fp8KVCache']} | {r['kld']['mean']:.6f} ± {r['kld']['uncertainty']:.6f} | {r['perplexity']:.4f} | {100 * r['sameTopToken']:.2f} % |")
print("\n" + open(f"{out}/loads-fp8.json").read().strip())
print(open(f"{out}/times.txt").read().strip())
EOF
