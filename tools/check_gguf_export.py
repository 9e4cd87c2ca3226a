"""Proof of the GGUF → Hugging Face export: transformers loads our directory and gives the original's logits.

For the trained fixture (fixtures/trained-llama, BF16):
  1. `quantize --to f32 fixtures/trained-llama -o a.gguf` (the F32 twin), and GGUFs of it at bf16, q8_0
     and q4_k_m (`quantize --to TYPE a.gguf`);
  2. `quantize --to f32|bf16 GGUF -o DIR/` for each;
  3. transformers (FP32, CPU) runs the original directory and every exported one on the tokens of
     fixtures/reference-models/trained-llama-expected-logits.json; f32/bf16 exports of the F32 twin
     must give the original's logits exactly (max |Δ| / max |ref| ≤ 1e-6: the weights are the same
     bits), the quantized ones within their quantization error (reported, with top-1 agreement);
  4. tokenizers: sentencepiece on our rebuilt tokenizer.model against the original tokenizer.model
     on fixtures/trained-llama/eval.txt (ids equal line by line); transformers' AutoTokenizer on the
     exported directory (when its SentencePiece conversion can run here) against the original's;
  5. the round trip `quantize --to f32 DIR -o b.gguf` equals a.gguf byte for byte;
  6. `quantize --to fp8|int8|int4 a.gguf -o DIR/` (quantized straight from the GGUF): transformers
     loads each, and its logits equal those of the same scheme run on the original directory.

Usage:  .venv-ref/bin/python tools/check_gguf_export.py [--quantize BINARY] [--json OUT.json]
        (BINARY defaults to .build/release/quantize, else .build/debug/quantize)
"""
import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "fixtures", "trained-llama")
EXPECTED = os.path.join(ROOT, "fixtures", "reference-models", "trained-llama-expected-logits.json")


def quantize(binary, *args):
    result = subprocess.run([binary, *args, "--quiet"], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"quantize {' '.join(args)} failed ({result.returncode}): {result.stderr}")


def logits(directory, tokens):
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].numpy()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quantize", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    binary = args.quantize
    if binary is None:
        for candidate in ["release", "debug"]:
            path = os.path.join(ROOT, ".build", candidate, "quantize")
            if os.path.exists(path):
                binary = path
                break
    if binary is None:
        sys.exit("no quantize binary; build it (swift build -c release --product quantize) or pass --quantize")
    expected = json.load(open(EXPECTED))
    tokens = expected["tokens"]
    report = {"binary": binary, "transformers": transformers.__version__, "torch": torch.__version__, "rows": []}
    ok = True
    with tempfile.TemporaryDirectory() as scratch:
        twin = os.path.join(scratch, "a.gguf")
        quantize(binary, "--to", "f32", FIXTURE, "-o", twin)
        reference = logits(FIXTURE, tokens)
        stored = np.array(expected["logits"], dtype=np.float64)
        positions = expected["positions"]
        drift = float(np.max(np.abs(reference[positions] - stored)) / np.max(np.abs(stored)))
        print(f"original: transformers now vs the stored expected logits: {drift:.2e}")
        cases = [("f32", None, "f32"), ("f32", None, "bf16")]
        for gguf_type in ["bf16", "q8_0", "q4_k_m"]:
            cases.append((gguf_type, gguf_type, "bf16"))
        for label, gguf_type, export_type in cases:
            source = twin
            if gguf_type is not None:
                source = os.path.join(scratch, f"a-{gguf_type}.gguf")
                quantize(binary, "--to", gguf_type, twin, "-o", source, "--no-check")
            directory = os.path.join(scratch, f"hf-{label}-{export_type}")
            quantize(binary, "--to", export_type, source, "-o", directory + "/")
            ours = logits(directory, tokens)
            relative = float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))
            top1 = float(np.mean(np.argmax(ours, axis=-1) == np.argmax(reference, axis=-1)))
            exact = gguf_type is None or gguf_type == "bf16"
            passed = relative <= 1e-6 if exact else relative <= 0.5
            ok &= passed
            row = {"gguf": label, "export": export_type, "max_rel_logit_diff": relative, "top1_agreement": top1, "passed": passed}
            report["rows"].append(row)
            print(f"{label:>7} GGUF → {export_type} directory: max |Δlogit|/max|ref| {relative:.2e}, top-1 agreement {top1:.3f} {'ok' if passed else 'FAILED'}")

        # Quantized exports straight from the F32 twin (`--to fp8|int8|int4 a.gguf -o DIR/`):
        # transformers + compressed-tensors load them, and since the twin holds the BF16 weights
        # exactly they must give the logits of the same scheme run on the original directory.
        # (Asymmetric int4 is left out: transformers 5.23-5.24 cannot load asymmetric pack-quantized
        # checkpoints of any origin — `quantize verify --target transformers` says so.)
        for scheme in [["fp8"], ["int8"], ["int4"], ["int4", "--group-size", "32"]]:
            label = "-".join(scheme).replace("--", "")
            exported = os.path.join(scratch, f"q-{label}-from-gguf")
            direct = os.path.join(scratch, f"q-{label}-from-hf")
            quantize(binary, "--to", *scheme, twin, "-o", exported)
            quantize(binary, "--to", *scheme, FIXTURE, "-o", direct, "--no-check")
            ours = logits(exported, tokens)
            theirs = logits(direct, tokens)
            same = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
            relative = float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))
            top1 = float(np.mean(np.argmax(ours, axis=-1) == np.argmax(reference, axis=-1)))
            passed = same <= 1e-6
            ok &= passed
            report["rows"].append({"gguf": "f32", "export": " ".join(scheme), "max_rel_logit_diff_vs_hf_path": same,
                                   "max_rel_logit_diff": relative, "top1_agreement": top1, "passed": passed})
            print(f"    f32 GGUF → {' '.join(scheme)} directory: vs the same scheme from the HF original {same:.2e}; "
                  f"vs the original {relative:.2e}, top-1 agreement {top1:.3f} {'ok' if passed else 'FAILED'}")

        # Tokenizers.
        directory = os.path.join(scratch, "hf-f32-f32")
        import sentencepiece
        original = sentencepiece.SentencePieceProcessor(model_file=os.path.join(FIXTURE, "tokenizer.model"))
        rebuilt = sentencepiece.SentencePieceProcessor(model_file=os.path.join(directory, "tokenizer.model"))
        lines = open(os.path.join(FIXTURE, "eval.txt"), encoding="utf-8").read().splitlines()
        same = sum(original.encode(line) == rebuilt.encode(line) for line in lines)
        report["sentencepiece_lines_equal"] = [same, len(lines)]
        ok &= same == len(lines)
        print(f"sentencepiece: rebuilt tokenizer.model gives the original's ids on {same}/{len(lines)} lines of eval.txt")
        try:
            fast = transformers.AutoTokenizer.from_pretrained(directory)
            reference_tokenizer = transformers.AutoTokenizer.from_pretrained(FIXTURE)
            same = sum(fast(line)["input_ids"] == reference_tokenizer(line)["input_ids"] for line in lines)
            report["transformers_tokenizer_lines_equal"] = [same, len(lines)]
            ok &= same == len(lines)
            print(f"transformers AutoTokenizer ({type(fast).__name__}) on the export: {same}/{len(lines)} lines equal the original's")
        except Exception as error:  # the SentencePiece → fast conversion needs protobuf
            report["transformers_tokenizer_error"] = f"{type(error).__name__}: {error}"
            print(f"transformers AutoTokenizer could not load the export here: {type(error).__name__}: {str(error)[:200]}")

        # Round trip.
        back = os.path.join(scratch, "b.gguf")
        quantize(binary, "--to", "f32", directory, "-o", back)
        identical = filecmp.cmp(twin, back, shallow=False)
        report["round_trip_identical"] = identical
        ok &= identical
        print(f"GGUF → HF → GGUF at f32: {'byte-identical' if identical else 'DIFFERENT'} ({os.path.getsize(twin)} bytes)")
    report["passed"] = bool(ok)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
            out.write("\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
