"""Seeds for the tokenizer-json fuzz target (tools/fuzz.sh): each tokenizer.json cut to its first
400 ids (the byte alphabet and the first merges; merges outside them dropped, at most 8 added
tokens renumbered after them). Every structure of the full files in a few kB, which libFuzzer
mutates far faster than the 55-90 kB originals.

Usage: python3 tools/fuzz_trim_tokenizers.py OUT_DIR TOKENIZER.json...
"""
import json
import os
import sys

KEEP = 400


def trimmed(data):
    model = data["model"]
    vocab = {token: id for token, id in model["vocab"].items() if id < KEEP}

    def keep(merge):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        return left in vocab and right in vocab and left + right in vocab

    model["vocab"] = vocab
    model["merges"] = [m for m in model.get("merges", []) if keep(m)]
    added = data.get("added_tokens", [])
    data["added_tokens"] = [t for t in added if t["id"] < KEEP] + \
        [dict(t, id=KEEP + i) for i, t in enumerate([t for t in added if t["id"] >= KEEP][:8])]
    return data


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for path in sys.argv[2:]:
        data = trimmed(json.load(open(path, encoding="utf-8")))
        name = "seed-" + path.replace("/", "_")
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))


if __name__ == "__main__":
    main()
