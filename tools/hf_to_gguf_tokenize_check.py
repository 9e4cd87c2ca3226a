#!/usr/bin/env python3
"""Does llama.cpp tokenize our converted BPE GGUFs like the Hugging Face tokenizer?

For each BPE family of `tools/hf_to_gguf_oracle.py families` (llama3-bpe, qwen2-bpe, qwen3-bpe):
assembles the directory, converts it with our `quantize --to q8_0`, then tokenizes a few texts
(English, code, digits, accents, CJK, emoji, special tokens, words outside the pruned vocabulary)
with llama.cpp's `llama-tokenize --ids --no-bos` (vocab-only load, special tokens parsed) and with
the `tokenizers` package (add_special_tokens false), and prints every difference. Exit 1 on any.

Usage: .venv-ref/bin/python tools/hf_to_gguf_tokenize_check.py [--quantize .build/debug/quantize]
(LLAMA_CPP_DIR, default <repo>/.llama.cpp). The converted files only load vocab-only in llama.cpp:
the fixtures' embeddings have 96 rows under a real 128256/151936-entry vocabulary.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_to_gguf_oracle as oracle  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

TEXTS = ["Hello, world! The quick brown fox jumps over the lazy dog.",
         "It's John's book; they're here, we've seen it. DON'T SHOUT!",
         "def add(a, b):\n    return a + b  # 12345\n",
         "Numbers: 7 12 345 6789 3.14159 -42",
         "Accents: café naïve Zürich; CJK: 日本語 中文; emoji 😀👍",
         "system\nYou are a helpful assistant.\nuser\nHi there\nassistant\nHello! How can I help?",
         "<|im_start|>user\nHello<|im_end|>", "<|begin_of_text|>Hi<|eot_id|>", "   leading and trailing   ",
         "unseen words: xylophone quizzical zebra"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quantize", default=os.path.join(oracle.ROOT, ".build", "debug", "quantize"))
    args = p.parse_args()
    same = differ = 0
    with tempfile.TemporaryDirectory(prefix="hf-to-gguf-tok-") as work:
        for family in [f for f in oracle.FAMILIES if f.endswith("-bpe")]:
            model = oracle.assemble(family, work)
            gguf = os.path.join(work, f"{family}.gguf")
            oracle.run([args.quantize, "--to", "q8_0", model, "-o", gguf, "--no-check", "--quiet", "--force"])
            reference = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
            for text in TEXTS:
                want = reference.encode(text, add_special_tokens=False).ids
                out = subprocess.run([oracle.llama_tool("llama-tokenize"), "-m", gguf, "-p", text, "--ids", "--no-bos", "--log-disable"],
                                     capture_output=True, text=True)
                got = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else None
                if got == want:
                    same += 1
                else:
                    differ += 1
                    print(f"{family} {text!r}: tokenizers {want}, llama-tokenize {got} {out.stderr[-200:]}")
    print(f"llama-tokenize on our converted files vs tokenizers: {same} texts equal, {differ} different")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
