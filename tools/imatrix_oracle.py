#!/usr/bin/env python3
"""llama-imatrix's importance matrices of the trained fixture, and their agreement with `quantize imatrix`.

Needs the tools built by tools/build_llama_cpp.sh in <repo>/.llama.cpp (llama.cpp vendored by
llama-cpp-python 0.3.36) and <repo>/.venv-ref (the converter, numpy, torch); run it with
.venv-ref/bin/python (gguf-py is the one vendored with llama.cpp). Scratch files go to
<repo>/out/imatrix/ (git-ignored). Every llama.cpp run is under nice -n 19.

  imatrix_oracle.py fixtures [--out fixtures/imatrix]
      1. the F32 GGUF twin of fixtures/trained-llama (llama_cpp_reference.twin: convert_hf_to_gguf
         --outtype f32, so the weights are exactly the BF16 ones and llama.cpp multiplies in FP32);
      2. llama-imatrix on fixtures/trained-llama/eval.txt, --ctx-size 128, --chunks 6, 2 threads, run
         from the repository root so the dataset recorded in the file is the relative path:
           llama-imatrix-c128.gguf        default settings (flash attention auto, F16 KV cache)
           llama-imatrix-c128.dat         the same with --output-format dat (the legacy layout)
           llama-imatrix-c128-f32kv.gguf  -fa off -ctk f32 -ctv f32 (no F16 rounding of K and V)
           llama-imatrix-c130x4-f32kv.gguf  the same with -c 130 --chunks 4 (a micro-batch of 8 tokens skipped)
      3. OUT/manifest.json: each file's sha256, size and exact command, and the llama.cpp version.
      The Swift tests (Tests/ModelTests/ImportanceCollectionTests.swift,
      Tests/QuantizeTests/ImportanceMatrixTests.swift) compare against these without llama.cpp.
  imatrix_oracle.py moe [--out fixtures/imatrix]
      GGUF twins of fixtures/reference-models/{mixtral,qwen2-moe-shared} (reference_logits.write_gguf_twin)
      with a 96-entry character vocabulary, eval.txt reduced to it (OUT/moe-text.txt), llama-tokenize's ids
      (OUT/moe-tokens.json) and llama-imatrix -c 64 --chunks 8 -fa off -ctk f32 -ctv f32 on each
      (OUT/llama-imatrix-NAME.gguf), recorded in OUT/manifest.json under "moe". Needs .venv-ref (torch).
  imatrix_oracle.py compare [--quantize PATH] [--ctx 128] [--chunks 6] [--threads 2] [--fa-off-f32kv]
      runs llama-imatrix and `quantize imatrix` (on the safetensors fixture and on the F32 twin) with
      the same text, context, chunks and threads, and prints per column the worst, median and 99th
      percentile relative difference of Σx², whether the counts are equal, and both tools' tokens/s
      (whole-process wall time). Exit 1 when a count differs or the worst difference is above --tol.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import llama_cpp_reference as ref  # noqa: E402  (the twin, the tool paths, logflush)

FIXTURE_TEXT = "fixtures/trained-llama/eval.txt"
WORK = os.path.join(ROOT, "out", "imatrix")


def fail(msg):
    sys.exit(f"imatrix_oracle: {msg}")


def twin():
    """The F32 twin, made as llama_cpp_reference makes it; where this machine's converter wrapper
    points at a missing tree, the converter of .llama.cpp/llama.cpp is run the same way."""
    os.makedirs(WORK, exist_ok=True)
    out = os.path.join(WORK, "trained-llama-f32.gguf")
    wrapper = os.path.join(ref.LLAMA, "convert_hf_to_gguf")
    script = os.path.join(ROOT, ".llama.cpp", "llama.cpp", "convert_hf_to_gguf.py")
    broken = os.path.exists(wrapper) and not all(
        os.path.exists(tok.strip('"')) for tok in open(wrapper).read().split() if tok.startswith('"/') and tok.endswith('.py"'))
    if not broken:
        return ref.twin(WORK)
    src = os.path.join(ref.FIXTURE, "model.safetensors")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".llama.cpp", "llama.cpp", "gguf-py"))
        env.pop("NO_LOCAL_GGUF", None)
        python = os.path.join(ROOT, ".venv-ref", "bin", "python")
        p = subprocess.run(["nice", "-n", "19", python, script, ref.FIXTURE, "--outtype", "f32", "--outfile", out],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        if p.returncode != 0:
            sys.stderr.write(p.stdout[-3000:])
            fail("convert_hf_to_gguf.py failed")
    return out


def llama_imatrix(model, out, ctx, chunks, threads, extra=(), text=FIXTURE_TEXT):
    """Runs llama-imatrix from the repository root; returns (command, wall seconds)."""
    cmd = ["nice", "-n", "19", ref.tool("llama-imatrix"), "-m", os.path.relpath(model, ROOT), "-f", text,
           "-o", os.path.relpath(out, ROOT), "-c", str(ctx), "--chunks", str(chunks), "-t", str(threads), *extra]
    env = dict(os.environ)
    if os.path.exists(ref.LOGFLUSH):
        env["LD_PRELOAD"] = ref.LOGFLUSH
    t = time.time()
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env)
    wall = time.time() - t - (ref.LOGFLUSH_SECONDS if "LD_PRELOAD" in env else 0)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:])
        fail(f"llama-imatrix exited with {p.returncode}")
    return cmd[3:], wall


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fixtures(args):
    model = twin()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    f32kv = ("-fa", "off", "-ctk", "f32", "-ctv", "f32")
    runs = [("llama-imatrix-c128.gguf", 128, 6, ()), ("llama-imatrix-c128.dat", 128, 6, ("--output-format", "dat")),
            ("llama-imatrix-c128-f32kv.gguf", 128, 6, f32kv),
            # 4 chunks of 130 share one batch: micro-batches of 4 × 128 and 4 × 2 tokens, and the
            # second (8 < 16 rows) is left out of every dense tensor.
            ("llama-imatrix-c130x4-f32kv.gguf", 130, 4, f32kv)]
    manifest = {"llama.cpp": open(os.path.join(ROOT, ".llama.cpp", "llama.cpp.version")).read().strip()
                if os.path.exists(os.path.join(ROOT, ".llama.cpp", "llama.cpp.version")) else "unknown",
                "model": "fixtures/trained-llama converted by convert_hf_to_gguf.py --outtype f32 (out/imatrix/trained-llama-f32.gguf)",
                "model_sha256": sha256(model), "files": {}}
    for name, ctx, chunks, extra in runs:
        path = os.path.join(out, name)
        cmd, _ = llama_imatrix(model, path, ctx, chunks, 2, extra)
        cmd = ["llama-imatrix"] + cmd[1:]
        manifest["files"][name] = {"sha256": sha256(path), "bytes": os.path.getsize(path), "command": " ".join(cmd)}
        print(f"{name}: {os.path.getsize(path)} bytes  {' '.join(cmd)}")
    # What llama-quantize writes into its output for this matrix: the last keys of a Q4_K_M made
    # with --imatrix (the path as given), in order, with their GGUF types.
    imatrix_arg = os.path.relpath(os.path.join(out, "llama-imatrix-c128.gguf"), ROOT)
    quantized = os.path.join(WORK, "q4_k_m-imatrix.gguf")
    env = dict(os.environ, LD_PRELOAD=ref.LOGFLUSH) if os.path.exists(ref.LOGFLUSH) else dict(os.environ)
    p = subprocess.run(["nice", "-n", "19", ref.tool("llama-quantize"), "--imatrix", imatrix_arg, model, quantized, "Q4_K_M", "2"],
                       cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:])
        fail("llama-quantize --imatrix failed")
    sys.path.insert(0, os.path.join(ROOT, ".llama.cpp", "llama.cpp", "gguf-py"))
    import gguf
    reader = gguf.GGUFReader(quantized)
    keys = [k for k in reader.fields if not k.startswith("GGUF.")]
    manifest["llama_quantize_tail_keys"] = {
        "command": f"llama-quantize --imatrix {imatrix_arg} out/imatrix/trained-llama-f32.gguf out/imatrix/q4_k_m-imatrix.gguf Q4_K_M 2",
        "keys": [{"key": k, "type": reader.fields[k].types[0].name.lower(), "value": reader.fields[k].contents()} for k in keys[-6:]]}
    previous = os.path.join(out, "manifest.json")
    if os.path.exists(previous) and "moe" in json.load(open(previous)):
        manifest["moe"] = json.load(open(previous))["moe"]  # written by the moe mode
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


MOE_MODELS = ["mixtral", "qwen2-moe-shared"]  # qwen3-moe has a dense layer, which llama.cpp's qwen3moe cannot load
MOE_CONTEXT, MOE_CHUNKS = 64, 8


def moe_vocabulary():
    """A character vocabulary of 96 entries for the tiny reference models (vocab_size 96):
    <unk>, <s>, </s>, the SentencePiece space ▁, a–z, 0–9, '.', ',', the newline byte and fillers."""
    pieces = ["<unk>", "<s>", "</s>", "\u2581"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)] + [".", ","]
    pieces += ["<0x0A>"]  # llama.cpp's SentencePiece vocabulary looks up the newline byte
    pieces += [f"<pad{i}>" for i in range(96 - len(pieces))]
    types = [2, 3, 3] + [6 if p == "<0x0A>" else 1 for p in pieces[3:]]
    return pieces, types


def moe_text():
    """eval.txt reduced to the vocabulary's characters (lower case, other characters as spaces)."""
    import re
    text = open(os.path.join(ROOT, FIXTURE_TEXT), encoding="utf-8").read().lower()
    text = re.sub(r"[^a-z0-9.,]+", " ", text)
    return re.sub(r" +", " ", text).strip()[:1500] + "\n"


def moe(args):
    """llama-imatrix on GGUF twins of the tiny MoE reference models, with a character vocabulary
    so that llama.cpp can tokenize a text: OUT/moe-text.txt, OUT/moe-tokens.json (llama-tokenize's
    ids, BOS first) and OUT/llama-imatrix-<model>.gguf (-c 64 --chunks 8 -fa off, F32 KV)."""
    sys.path.insert(0, os.path.join(ROOT, ".llama.cpp", "llama.cpp", "gguf-py"))
    import gguf
    import reference_logits
    pieces, types = moe_vocabulary()
    original = gguf.GGUFWriter

    class WithVocabulary(original):
        def __init__(self, path, arch, *a, **k):
            super().__init__(path, arch, *a, **k)
            self.add_tokenizer_model("llama")
            self.add_token_list(pieces)
            self.add_token_scores([0.0] * len(pieces))
            self.add_token_types(types)
            self.add_bos_token_id(1)
            self.add_eos_token_id(2)
            self.add_unk_token_id(0)
            self.add_add_bos_token(True)
            self.add_add_eos_token(False)

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    text_path = os.path.join(out, "moe-text.txt")
    with open(text_path, "w") as f:
        f.write(moe_text())
    manifest_path = os.path.join(out, "manifest.json")
    manifest = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {}
    manifest["moe"] = {"text": os.path.relpath(text_path, ROOT), "vocabulary": "tools/imatrix_oracle.py moe_vocabulary()", "files": {}}
    gguf.GGUFWriter = WithVocabulary
    tokens = None
    try:
        for name in MOE_MODELS:
            twin_path = os.path.join(WORK, f"{name}-f32.gguf")
            reference_logits.write_gguf_twin(os.path.join(ROOT, "fixtures", "reference-models", name), twin_path)
            if tokens is None:
                env = dict(os.environ)
                if os.path.exists(ref.LOGFLUSH):
                    env["LD_PRELOAD"] = ref.LOGFLUSH
                p = subprocess.run([ref.tool("llama-tokenize"), "-m", twin_path, "-f", text_path, "--ids", "--log-disable"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                if p.returncode != 0:
                    sys.stderr.write(p.stderr[-2000:])
                    fail("llama-tokenize failed")
                tokens = json.loads(p.stdout.strip().splitlines()[-1])
                with open(os.path.join(out, "moe-tokens.json"), "w") as f:
                    json.dump(tokens, f)
            target = os.path.join(out, f"llama-imatrix-{name}.gguf")
            cmd, _ = llama_imatrix(twin_path, target, MOE_CONTEXT, MOE_CHUNKS, 2, ("-fa", "off", "-ctk", "f32", "-ctv", "f32"),
                                   text=os.path.relpath(text_path, ROOT))
            manifest["moe"]["files"][os.path.basename(target)] = {"sha256": sha256(target), "bytes": os.path.getsize(target),
                                                                  "command": " ".join(["llama-imatrix"] + cmd[1:])}
            print(f"{name}: {os.path.getsize(target)} bytes")
    finally:
        gguf.GGUFWriter = original
    manifest["moe"]["tokens"] = len(tokens)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def read_imatrix(path):
    sys.path.insert(0, os.path.join(ROOT, ".llama.cpp", "llama.cpp", "gguf-py"))
    import gguf
    import numpy as np
    r = gguf.GGUFReader(path)
    return {t.name: np.array(t.data, dtype=np.float64).ravel() for t in r.tensors}


def find_quantize(explicit):
    for p in ([explicit] if explicit else []) + [os.path.join(ROOT, ".build", c, "quantize") for c in ("release", "debug")]:
        if p and os.access(p, os.X_OK):
            return p
    fail("no quantize binary: swift build -c release --product quantize (or --quantize PATH)")


def compare(args):
    import numpy as np
    model = twin()
    quantize = find_quantize(args.quantize)
    extra = ("-fa", "off", "-ctk", "f32", "-ctv", "f32") if args.fa_off_f32kv else ()
    theirs = os.path.join(WORK, "compare-llama.gguf")
    _, llama_wall = llama_imatrix(model, theirs, args.ctx, args.chunks, args.threads, extra)
    tokens = args.ctx * args.chunks
    ref_data = read_imatrix(theirs)
    status = 0
    print(f"llama-imatrix: {tokens} tokens in {llama_wall:.2f} s = {tokens / llama_wall:.0f} tokens/s (whole process, {args.threads} threads{', -fa off, F32 KV' if extra else ''})")
    for label, source in [("safetensors", ref.FIXTURE), ("F32 GGUF twin", model)]:
        ours = os.path.join(WORK, "compare-ours.gguf")
        cmd = ["nice", "-n", "19", quantize, "imatrix", source, "--text", os.path.join(ROOT, FIXTURE_TEXT), "-o", ours, "--ctx", str(args.ctx),
               "--chunks", str(args.chunks), "--threads", str(args.threads), "--force", "--json"]
        t = time.time()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wall = time.time() - t
        if p.returncode != 0:
            sys.stderr.write(p.stderr)
            fail("quantize imatrix failed")
        doc = json.loads(p.stdout)
        data = read_imatrix(ours)
        if set(data) != set(ref_data):
            print(f"  {label}: tensor sets differ: {sorted(set(data) ^ set(ref_data))}")
            status = 1
            continue
        rel = []
        worst = (0.0, "")
        counts_equal = True
        for name in sorted(data):
            if name.endswith(".counts"):
                counts_equal &= bool(np.array_equal(data[name], ref_data[name]))
                continue
            r = np.abs(data[name] - ref_data[name]) / np.maximum(np.abs(ref_data[name]), 1e-30)
            rel.append(r)
            worst = max(worst, (float(r.max()), name))
        rel = np.concatenate(rel)
        print(f"  ours on the {label}: {rel.size} columns, worst {worst[0]:.2e} ({worst[1]}), median {np.median(rel):.2e}, "
              f"p99 {np.quantile(rel, 0.99):.2e}; counts {'equal' if counts_equal else 'DIFFER'}; "
              f"{tokens / wall:.0f} tokens/s whole process ({doc['tokensPerSecond']:.0f} in the forward passes)")
        if not counts_equal or worst[0] > args.tol:
            status = 1
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("mode", choices=["fixtures", "compare", "moe"])
    ap.add_argument("--out", default=os.path.join(ROOT, "fixtures", "imatrix"))
    ap.add_argument("--quantize")
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--chunks", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--fa-off-f32kv", action="store_true", help="run llama-imatrix with -fa off -ctk f32 -ctv f32")
    args = ap.parse_args()
    if shutil.which("nice") is None:
        fail("nice not found")
    if args.mode == "fixtures":
        fixtures(args)
    elif args.mode == "moe":
        moe(args)
    else:
        sys.exit(compare(args))


if __name__ == "__main__":
    main()
