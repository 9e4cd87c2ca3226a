#!/usr/bin/env bash
# Tokenization speed of every tokenizer kind on ~1 MB of text (TokenizerSpeedTests, release build),
# and of the reference libraries (sentencepiece, tokenizers) on the same text for comparison.
# Usage: tools/bench_tokenizers.sh   (the reference part needs .venv-ref from tools/setup_reference.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
QUANTIZE_TOKENIZER_BENCH=1 swift test -c release --filter TokenizerSpeedTests 2>&1 | grep -E "tokenizer speed|passed after|failed after|error:" || true
PY="${ROOT}/.venv-ref/bin/python"
[ -x "$PY" ] || bash "$ROOT/tools/setup_reference.sh"
if [ -x "$PY" ]; then
  "$PY" - <<'PYEOF'
import glob, json, os, time
import sentencepiece as spm
from tokenizers import Tokenizer
corpus = ""
for name in sorted(os.listdir("/usr/share/common-licenses")):
    path = os.path.join("/usr/share/common-licenses", name)
    if os.path.isfile(path):
        corpus += open(path, encoding="utf-8", errors="replace").read() + "\n"
corpus += "\n".join(json.load(open("fixtures/tokenizers/texts.json", encoding="utf-8")))
text = ""
while len(text.encode()) < 1 << 20:
    text += corpus
mb = len(text.encode()) / 1e6
for path in ["fixtures/tokenizers/bpe-llama3/tokenizer.json", "fixtures/tokenizers/bpe-qwen2/tokenizer.json"]:
    tok = Tokenizer.from_file(path); start = time.perf_counter(); ids = tok.encode(text, add_special_tokens=False).ids
    s = time.perf_counter() - start; print(f"reference tokenizers {path}: {mb:.2f} MB, {len(ids)} tokens in {s:.3f} s = {mb/s:.1f} MB/s")
for path in ["fixtures/tokenizers/sp-unigram/tokenizer.model", "fixtures/tokenizers/sp-bpe/tokenizer.model"]:
    sp = spm.SentencePieceProcessor(model_file=path); start = time.perf_counter(); ids = sp.encode(text)
    s = time.perf_counter() - start; print(f"reference sentencepiece {path}: {mb:.2f} MB, {len(ids)} tokens in {s:.3f} s = {mb/s:.1f} MB/s")
PYEOF
fi
