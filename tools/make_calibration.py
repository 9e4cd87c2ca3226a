#!/usr/bin/env python3
"""Calibration token windows for fixtures/trained-llama, disjoint from its held-out eval.txt.

The text is the fixture's own training corpus (tools/train_fixture.py build_corpus: docstrings of
the Python standard library outside the held-out files, plus the Debian license texts), which shares
no document with eval.txt. It is tokenized with the fixture's tokenizer.json (the `tokenizers`
package; quantize's tokenizer gives the same ids, ModelTests check that), and N windows of T tokens
are taken at seeded random, non-overlapping positions; the first id of each window is BOS, as in
the evaluation's chunks. The output is a JSON array of N arrays of T ids, which both
`quantize --method gptq --calibration FILE` and tools/llmcompressor_reference.py read, so that both
calibrate on exactly the same tokens.

Usage: .venv/bin/python tools/make_calibration.py [--samples 128] [--length 512] [--seed 20261201] -o /tmp/calibration.json
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "fixtures" / "trained-llama"))
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()

    from tokenizers import Tokenizer
    import train_fixture

    train_text, eval_text, _ = train_fixture.build_corpus()
    held = (Path(args.model) / "eval.txt").read_text()
    if eval_text != held:
        sys.exit("make_calibration: the rebuilt held-out text differs from eval.txt (another Python standard library?); "
                 "the split would not be the fixture's")
    tokenizer = Tokenizer.from_file(str(Path(args.model) / "tokenizer.json"))
    config = json.loads((Path(args.model) / "config.json").read_text())
    ids = tokenizer.encode(train_text, add_special_tokens=False).ids
    slots = len(ids) // args.length
    if slots < args.samples:
        sys.exit(f"make_calibration: the text gives {slots} windows of {args.length}, fewer than {args.samples}")
    chosen = sorted(random.Random(args.seed).sample(range(slots), args.samples))
    windows = []
    for slot in chosen:
        window = ids[slot * args.length:(slot + 1) * args.length]
        window[0] = config["bos_token_id"]
        windows.append(window)
    with open(args.output, "w") as f:
        json.dump(windows, f)
    print(f"{args.samples} windows × {args.length} tokens from {len(ids)} training-text tokens (seed {args.seed}) → {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
