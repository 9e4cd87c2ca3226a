#!/usr/bin/env python3
"""llama.cpp's own numbers on the trained fixture, and their agreement with `quantize eval`.

Needs the tools built by tools/build_llama_cpp.sh (llama.cpp vendored by llama-cpp-python 0.3.36)
in <repo>/.llama.cpp/bin. Generated files go to <repo>/out/llama-cpp/ (git-ignored) unless --work.
Only the standard library is used, so any python3 runs it; the converter runs with .venv-ref.

  llama_cpp_reference.py llama [--types Q8_0,Q4_0,…] [--threads 2] [--context 512]
      1. the GGUF twin of fixtures/trained-llama made by llama.cpp's convert_hf_to_gguf.py
         (--outtype f32: exact for the BF16 weights, and llama.cpp multiplies F32 weights in FP32);
      2. llama-quantize of that twin to every type (no importance matrix);
      3. llama-perplexity on fixtures/trained-llama/eval.txt: the twin with
         --kl-divergence-base (its perplexity and the base logits file), then every quantized file
         with --kl-divergence against it, same context and threads;
      writes WORK/llama_cpp.json: per type PPL ±, mean KLD ±, KLD percentiles (max, 99.9, 99, 95,
      90, median), mean and RMS Δp, same-top fraction (0–1), file size, bits per weight, and the
      tokens/s llama-perplexity reports (its prompt-eval rate) and wall seconds of each run.
  llama_cpp_reference.py compare [--quantize PATH] [--original PATH] …
      runs the llama half (reusing WORK/llama_cpp.json when it matches the options, unless --fresh),
      then `quantize eval ORIGINAL Q… --text FILE --context N --threads T --json` on the same files
      (ORIGINAL defaults to the F32 twin, so both tokenise alike; pass fixtures/trained-llama to
      evaluate the safetensors original), and prints the side-by-side table: perplexity within 1 %,
      mean KLD within 10 %, and the tokens/s of both; and writes every llama.cpp mixture among the
      types with `quantize --to MIXTURE` and says whether the file is identical to llama-quantize's.
      Exit 1 when a row disagrees or a file differs. --imatrix FILE quantizes with that importance
      matrix on both sides (give it its own --work directory).
      The JSON read is the contract of issue 9: original.perplexity and results[] with path,
      perplexity, kld.mean, kld.p99, kld.max, sameTopToken (fraction), in the order given.
  llama_cpp_reference.py logits [--out fixtures/trained-llama/llama-cpp-logits]
      llama.cpp's reference output on the F32 twin for the first 512-token chunk of eval.txt:
      llama-perplexity's --kl-divergence-base file for that chunk (tokens with BOS first, and the
      log-probabilities of the scored half, uint16-quantised over [max − 16, max]) and, from
      llama-debug --save-logits, the exact FP32 logits at the last position of prefixes of that
      chunk; a small JSON index describes them. See fixtures/README.md.
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA = os.path.join(ROOT, ".llama.cpp", "bin")
# Gives llama.cpp's (never joined) logging thread time to print the last lines at exit; its sleep is
# taken off the wall time reported. Made by tools/build_llama_cpp.sh.
LOGFLUSH = os.path.join(ROOT, ".llama.cpp", "lib", "logflush.so")
LOGFLUSH_SECONDS = 1.5
FIXTURE = os.path.join(ROOT, "fixtures", "trained-llama")
TEXT = os.path.join(FIXTURE, "eval.txt")
DEFAULT_TYPES = ["Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1", "IQ4_XS",
                 "Q3_K_M", "Q3_K_S", "Q2_K"]
MIXTURES = ["q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k", "iq4_xs"]
PPL_TOL = 0.01   # relative
KLD_TOL = 0.10   # relative


def fail(msg):
    sys.exit(f"llama_cpp_reference: {msg}")


def tool(name):
    path = os.path.join(LLAMA, name)
    if not os.access(path, os.X_OK):
        fail(f"{path} not found: run tools/build_llama_cpp.sh first")
    return path


def run(cmd, log=None):
    """Runs cmd, returns (combined output, wall seconds); a failure prints the tail and exits."""
    env = dict(os.environ)
    if cmd[0].startswith(LLAMA) and os.path.exists(LOGFLUSH):
        env["LD_PRELOAD"] = LOGFLUSH
    t = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env)
    wall = time.time() - t
    if env.get("LD_PRELOAD") == LOGFLUSH:
        wall -= LOGFLUSH_SECONDS
    if log:
        with open(log, "w") as f:
            f.write(" ".join(cmd) + "\n" + p.stdout)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-4000:])
        fail(f"{os.path.basename(cmd[0])} exited with {p.returncode}" + (f" (log: {log})" if log else ""))
    return p.stdout, wall


def num(pattern, text, what, group=1):
    m = re.search(pattern, text, re.M)
    if not m:
        fail(f"could not find {what} in llama-perplexity's output (pattern {pattern!r})")
    return float(m.group(group))


def twin(work, force=False):
    """The F32 GGUF twin of the fixture, made by llama.cpp's converter."""
    out = os.path.join(work, "trained-llama-f32.gguf")
    src = os.path.join(FIXTURE, "model.safetensors")
    if force or not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        run([tool("convert_hf_to_gguf"), FIXTURE, "--outtype", "f32", "--outfile", out],
            log=os.path.join(work, "convert.log"))
    return out


def quantized(work, base, qtype, threads, force=False, imatrix=None):
    out = os.path.join(work, f"trained-llama-{qtype}.gguf")
    if force or not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(base) \
            or (imatrix and os.path.getmtime(out) < os.path.getmtime(imatrix)):
        extra = ["--imatrix", imatrix] if imatrix else []
        text, _ = run([tool("llama-quantize"), *extra, base, out, qtype, str(threads)],
                      log=os.path.join(work, f"quantize-{qtype}.log"))
    return out


def rate(text, args, wall):
    """Evaluation tokens/s of one llama-perplexity run: its own prompt-eval counter when it prints
    one (llama_perf_context_print), else the chunks' tokens over the run's wall time (loading
    included)."""
    m = re.search(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens", text)
    if m and float(m.group(1)) > 0:
        return round(int(m.group(2)) / (float(m.group(1)) / 1000.0), 1)
    c = re.search(r"(?:calculating perplexity|computing) over (\d+) chunks", text)
    return round(int(c.group(1)) * args.context / wall, 1) if c and wall > 0 else None


def perplexity_args(args):
    a = ["-c", str(args.context), "-t", str(args.threads), "-b", str(args.batch)]
    if args.chunks:
        a += ["--chunks", str(args.chunks)]
    return a


def llama_half(args):
    work = args.work
    os.makedirs(work, exist_ok=True)
    base = twin(work, force=args.fresh)
    base_kld = os.path.join(work, "base.kld")
    out, wall = run([tool("llama-perplexity"), "-m", base, "-f", args.text, *perplexity_args(args),
                     "--kl-divergence-base", base_kld], log=os.path.join(work, "perplexity-base.log"))
    n_chunk = int(num(r"calculating perplexity over (\d+) chunks", out, "the chunk count"))
    result = {
        "llama_cpp": open(os.path.join(ROOT, ".llama.cpp", "llama.cpp.version")).read().strip()
        if os.path.exists(os.path.join(ROOT, ".llama.cpp", "llama.cpp.version")) else "unknown",
        "text": os.path.relpath(args.text, ROOT), "context": args.context, "threads": args.threads,
        "batch": args.batch, "chunks": n_chunk, "imatrix": args.imatrix,
        "scored_tokens": n_chunk * (args.context - 1 - args.context // 2),
        "original": {
            "path": os.path.relpath(base, ROOT), "bytes": os.path.getsize(base),
            "perplexity": num(r"Final estimate: PPL = ([\d.]+)", out, "the base perplexity"),
            "perplexity_pm": num(r"Final estimate: PPL = [\d.]+ \+/- ([\d.]+)", out, "the base ±"),
            "tokens_per_second": rate(out, args, wall), "wall_seconds": round(wall, 2),
        },
        "results": [],
    }
    for qtype in args.types:
        q = quantized(work, base, qtype, args.threads, force=args.fresh, imatrix=args.imatrix)
        qlog = open(os.path.join(work, f"quantize-{qtype}.log")).read() \
            if os.path.exists(os.path.join(work, f"quantize-{qtype}.log")) else ""
        out, wall = run([tool("llama-perplexity"), "-m", q, "-f", args.text, *perplexity_args(args),
                         "--kl-divergence-base", base_kld, "--kl-divergence"],
                        log=os.path.join(work, f"perplexity-{qtype}.log"))
        bpw = re.search(r"quant size\s*=\s*[\d.]+ [KMG]iB \(([\d.]+) BPW\)", qlog)
        r = {
            "type": qtype, "path": os.path.relpath(q, ROOT), "bytes": os.path.getsize(q),
            "bits_per_weight": float(bpw.group(1)) if bpw else None,
            "perplexity": num(r"Mean PPL\(Q\)\s*:\s*([\d.]+)", out, "PPL(Q)"),
            "perplexity_pm": num(r"Mean PPL\(Q\)\s*:\s*[\d.]+ ±\s*([\d.]+)", out, "PPL(Q) ±"),
            "perplexity_base": num(r"Mean PPL\(base\)\s*:\s*([\d.]+)", out, "PPL(base)"),
            "kld": {
                "mean": num(r"Mean\s+KLD:\s*([-\d.]+)", out, "mean KLD"),
                "mean_pm": num(r"Mean\s+KLD:\s*[-\d.]+ ±\s*([\d.]+)", out, "mean KLD ±"),
                "max": num(r"Maximum KLD:\s*([-\d.]+)", out, "max KLD"),
                "p999": num(r"99\.9%\s+KLD:\s*([-\d.]+)", out, "99.9% KLD"),
                "p99": num(r"99\.0%\s+KLD:\s*([-\d.]+)", out, "99% KLD"),
                "p95": num(r"95\.0%\s+KLD:\s*([-\d.]+)", out, "95% KLD"),
                "p90": num(r"90\.0%\s+KLD:\s*([-\d.]+)", out, "90% KLD"),
                "median": num(r"Median\s+KLD:\s*([-\d.]+)", out, "median KLD"),
            },
            "deltaP": {
                "mean": num(r"Mean\s+Δp:\s*([-\d.]+)", out, "mean Δp") / 100,
                "rms": num(r"RMS Δp\s*:\s*([-\d.]+)", out, "RMS Δp") / 100,
            },
            "sameTopToken": num(r"Same top p:\s*([-\d.]+)", out, "same top p") / 100,
            "tokens_per_second": rate(out, args, wall), "wall_seconds": round(wall, 2),
        }
        if "imatrix" in qlog.lower() and "no imatrix" not in qlog.lower():
            r["note"] = "see the quantize log about the importance matrix"
        result["results"].append(r)
        print(f"  {qtype:7s} PPL {r['perplexity']:9.4f}  KLD {r['kld']['mean']:.6f}  "
              f"same-top {100 * r['sameTopToken']:6.2f} %  {r['bits_per_weight']} bpw", flush=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    return result


def print_llama_table(res):
    o = res["original"]
    print(f"\nllama.cpp ({res['llama_cpp']}), {os.path.basename(res['text'])}: {res['chunks']} chunks × "
          f"{res['context']} ({res['scored_tokens']} scored tokens), {res['threads']} threads")
    print(f"{'type':8s} {'bpw':>5s} {'PPL':>16s} {'mean KLD':>18s} {'p99 KLD':>9s} {'max KLD':>9s} "
          f"{'same-top':>8s} {'tok/s':>7s}")
    print(f"{'F32':8s} {32.0:5.2f} {o['perplexity']:9.4f} ±{o['perplexity_pm']:6.4f} {'':>18s} {'':>9s} "
          f"{'':>9s} {'':>8s} {o['tokens_per_second'] or 0:7.0f}")
    for r in res["results"]:
        k = r["kld"]
        print(f"{r['type']:8s} {r['bits_per_weight'] or 0:5.2f} {r['perplexity']:9.4f} ±{r['perplexity_pm']:6.4f} "
              f"{k['mean']:9.6f} ±{k['mean_pm']:8.6f} {k['p99']:9.5f} {k['max']:9.5f} "
              f"{100 * r['sameTopToken']:7.2f}% {r['tokens_per_second'] or 0:7.0f}")


def cached_or_run(args):
    if not args.fresh and os.path.exists(args.json):
        with open(args.json) as f:
            res = json.load(f)
        same = (res.get("context") == args.context and res.get("threads") == args.threads
                and res.get("text") == os.path.relpath(args.text, ROOT) and res.get("imatrix") == args.imatrix
                and [r["type"] for r in res.get("results", [])] == args.types
                and all(os.path.exists(os.path.join(ROOT, r["path"])) for r in res["results"]))
        if same:
            print(f"(llama.cpp numbers from {os.path.relpath(args.json, ROOT)}; --fresh reruns them)")
            return res
    return llama_half(args)


def find_quantize(explicit):
    if explicit:
        return explicit
    for cand in (os.path.join(ROOT, ".build", "release", "quantize"), os.path.join(ROOT, ".build", "debug", "quantize")):
        if os.access(cand, os.X_OK):
            return cand
    found = shutil.which("quantize")
    if not found:
        fail("no quantize binary: build it (swift build -c release --product quantize) or pass --quantize PATH")
    return found


def same_bytes(res, quantize, work, imatrix=None):
    """`quantize --to TYPE` on the twin for every llama-quantize type it writes: identical files?"""
    import hashlib

    def digest(path):
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()

    base = os.path.join(ROOT, res["original"]["path"])
    print("\nbytes: `quantize --to MIXTURE` of the F32 twin against llama-quantize's file of that mixture")
    differing = 0
    for r in res["results"]:
        name = r["type"].lower()
        if name not in MIXTURES:
            print(f"  {r['type']:8s} (a single type: quantize --to {name} keeps embeddings and output as they are; not compared)")
            continue
        out = os.path.join(work, f"ours-{name}.gguf")
        if os.path.exists(out):
            os.remove(out)
        extra = ["--imatrix", imatrix] if imatrix else []
        p = subprocess.run([quantize, "--to", name, base, "-o", out, "--no-check", "--quiet", *extra], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"  {r['type']:8s} not written by quantize: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
            continue
        same = digest(out) == digest(os.path.join(ROOT, r["path"]))
        differing += not same
        print(f"  {r['type']:8s} {'identical' if same else 'DIFFERENT'}")
        os.remove(out)
    return differing


def compare(args):
    res = cached_or_run(args)
    print_llama_table(res)
    quantize = find_quantize(args.quantize)
    differing = same_bytes(res, quantize, args.work, args.imatrix)
    original = args.original or os.path.join(ROOT, res["original"]["path"])
    paths = [os.path.join(ROOT, r["path"]) for r in res["results"]]
    cmd = [quantize, "eval", original, *paths, "--text", args.text, "--context", str(args.context),
           "--threads", str(args.threads), "--json"]
    if args.chunks:
        cmd += ["--chunks", str(args.chunks)]
    t = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.time() - t
    if p.returncode not in (0, 1):
        sys.stderr.write(p.stderr[-4000:])
        fail(f"quantize eval exited with {p.returncode}: {' '.join(cmd)}")
    try:
        ours = json.loads(p.stdout)
    except json.JSONDecodeError as e:
        fail(f"quantize eval --json did not print JSON ({e}); stdout starts {p.stdout[:200]!r}")
    try:
        ours_orig = float(ours["original"]["perplexity"])
        ours_rows = ours["results"]
        if len(ours_rows) != len(paths):
            fail(f"quantize eval returned {len(ours_rows)} results for {len(paths)} checkpoints")
        for row, path in zip(ours_rows, paths):
            if os.path.realpath(row["path"]) != os.path.realpath(path) and os.path.basename(row["path"]) != os.path.basename(path):
                fail(f"results[] out of order: {row['path']} where {path} was given")
    except (KeyError, TypeError, ValueError) as e:
        fail(f"quantize eval's JSON lacks a field of the contract ({e!r}): original.perplexity, "
             "results[].path/perplexity/kld.mean/kld.p99/kld.max/sameTopToken")

    def rel(a, b):
        return abs(a - b) / abs(b) if b else float("inf")

    n_eval = (1 + len(paths)) * res["chunks"] * args.context
    llama_wall = res["original"]["wall_seconds"] + sum(r["wall_seconds"] for r in res["results"])
    print(f"\nagreement: quantize eval vs llama-perplexity (PPL within {100 * PPL_TOL:.0f} %, "
          f"mean KLD within {100 * KLD_TOL:.0f} %)")
    print(f"{'type':8s} {'PPL llama':>10s} {'PPL ours':>10s} {'Δ%':>6s}  {'KLD llama':>10s} {'KLD ours':>10s} "
          f"{'Δ%':>6s}  {'p99 l/o':>17s}  {'same-top l/o':>15s}  ok")
    bad = 0
    d = rel(ours_orig, res["original"]["perplexity"])
    ok = d <= PPL_TOL
    bad += not ok
    print(f"{'original':8s} {res['original']['perplexity']:10.4f} {ours_orig:10.4f} {100 * d:6.2f}  "
          f"{'':>10s} {'':>10s} {'':>6s}  {'':>17s}  {'':>15s}  {'yes' if ok else 'NO'}")
    for r, o in zip(res["results"], ours_rows):
        dp = rel(float(o["perplexity"]), r["perplexity"])
        dk = rel(float(o["kld"]["mean"]), r["kld"]["mean"])
        ok = dp <= PPL_TOL and dk <= KLD_TOL
        bad += not ok
        print(f"{r['type']:8s} {r['perplexity']:10.4f} {float(o['perplexity']):10.4f} {100 * dp:6.2f}  "
              f"{r['kld']['mean']:10.6f} {float(o['kld']['mean']):10.6f} {100 * dk:6.1f}  "
              f"{r['kld']['p99']:8.5f}/{float(o['kld']['p99']):8.5f}  "
              f"{100 * r['sameTopToken']:6.2f}/{100 * float(o['sameTopToken']):6.2f} %  {'yes' if ok else 'NO'}")
    llama_tps = n_eval / llama_wall
    ours_tps = n_eval / wall
    print(f"\nspeed, {args.threads} threads, {n_eval} tokens evaluated ({1 + len(paths)} models × {res['chunks']} × "
          f"{args.context}), wall clock including loading: llama-perplexity {llama_tps:.0f} tok/s "
          f"({llama_wall:.1f} s over {1 + len(paths)} runs), quantize eval {ours_tps:.0f} tok/s ({wall:.1f} s, one run); "
          f"ratio {ours_tps / llama_tps:.2f}×")
    rates = [r["tokens_per_second"] for r in res["results"] if r.get("tokens_per_second")]
    if rates:
        print(f"llama-perplexity per quantized file: {min(rates):.0f}–{max(rates):.0f} tok/s")
    if bad:
        print(f"{bad} row(s) outside the tolerance")
    if differing:
        print(f"{differing} file(s) differ from llama-quantize's")
    return 1 if bad or differing else 0


def read_kld_base(path):
    """Header of llama-perplexity's --kl-divergence-base file: (n_ctx, n_vocab, n_chunk, tokens)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"_logits_":
        fail(f"{path}: not a llama-perplexity logits file (magic {data[:8]!r})")
    n_ctx, n_vocab, n_chunk = struct.unpack_from("<3i", data, 8)
    tokens = list(struct.unpack_from(f"<{n_ctx * n_chunk}i", data, 20))
    return n_ctx, n_vocab, n_chunk, tokens, len(data)


def logits(args):
    work = args.work
    os.makedirs(work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    base = twin(work, force=args.fresh)
    kld = os.path.join(args.out, "chunk0.kld")
    run([tool("llama-perplexity"), "-m", base, "-f", args.text, "-c", str(args.context), "-t", str(args.threads),
         "-b", str(args.batch), "--chunks", "1", "--kl-divergence-base", kld],
        log=os.path.join(work, "logits-kld.log"))
    n_ctx, n_vocab, n_chunk, tokens, size = read_kld_base(kld)
    # Exact FP32 logits at the last position of prefixes of the chunk (llama-debug tokenises its
    # prompt; the tokens it used are saved next to the logits and checked against the chunk's).
    tmp = os.path.join(work, "debug")
    shutil.rmtree(tmp, ignore_errors=True)
    prefixes = []
    for k in args.prefixes:
        if k > n_ctx:
            continue
        # The prefix: BOS followed by the chunk's tokens 1..k-1 (chunk token 0 is replaced by BOS).
        text = tokens_to_text(base, tokens[1:k]) if k > 1 else ""
        if not text:
            continue
        run([tool("llama-debug"), "-m", base, "-p", text, "-c", str(n_ctx), "-t", str(args.threads),
             "--save-logits", "--logits-output-dir", tmp], log=os.path.join(work, f"logits-debug-{k}.log"))
        stem = os.path.join(tmp, "llamacpp-" + os.path.splitext(os.path.basename(base))[0])
        with open(stem + "-tokens.bin", "rb") as f:
            raw = f.read()
        used = list(struct.unpack(f"<{len(raw) // 4}i", raw))
        with open(stem + ".bin", "rb") as f:
            row = f.read()
        if len(row) != 4 * n_vocab:
            fail(f"llama-debug wrote {len(row)} bytes of logits, expected {4 * n_vocab}")
        name = f"prefix{len(used):03d}.f32"
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(row)
        prefixes.append({"file": name, "tokens": used, "matches_chunk": used == tokens[:len(used)],
                         "logits": "float32 little-endian, n_vocab values: the logits after the last token"})
    index = {
        "model": "fixtures/trained-llama converted by llama.cpp's convert_hf_to_gguf.py --outtype f32",
        "llama_cpp": open(os.path.join(ROOT, ".llama.cpp", "llama.cpp.version")).read().strip(),
        "text": os.path.relpath(args.text, ROOT), "n_ctx": n_ctx, "n_vocab": n_vocab, "threads": args.threads,
        "chunk0": {"file": "chunk0.kld", "bytes": size, "tokens": tokens,
                   "format": "llama-perplexity --kl-divergence-base: '_logits_', int32 n_ctx, n_vocab, n_chunk, "
                             "int32 tokens[n_ctx*n_chunk] (the chunk as tokenised, before BOS replaces token 0), then "
                             "for each scored position j in [n_ctx/2, n_ctx-1): float32 scale, float32 min_log_prob, "
                             "uint16 q[2*((n_vocab+1)/2)] with log_prob[v] = min_log_prob + scale*q[v] "
                             "(min_log_prob = max - 16 clamps; resolution scale = 16/65535)"},
        "prefixes": prefixes,
    }
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: chunk0.kld ({size} bytes), {len(prefixes)} exact logit rows")


def tokens_to_text(gguf, ids):
    """Detokenises ids with llama.cpp's vocabulary read by the vendored gguf-py (SentencePiece
    pieces: '▁' is a space, <0xXX> a byte)."""
    vocab = gguf_tokens(gguf)
    out = bytearray()
    for i in ids:
        piece = vocab[i]
        m = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
        if m:
            out.append(int(m.group(1), 16))
        else:
            out += piece.replace("\u2581", " ").encode("utf-8")
    text = out.decode("utf-8", errors="replace")
    return text[1:] if text.startswith(" ") else text


_VOCAB = {}


def gguf_tokens(gguf):
    if gguf not in _VOCAB:
        sys.path.insert(0, os.path.join(ROOT, ".llama.cpp", "llama.cpp", "gguf-py"))
        try:
            import gguf as gg
        except ImportError as e:
            fail(f"cannot import the vendored gguf-py ({e}); run with .venv-ref/bin/python")
        r = gg.GGUFReader(gguf)
        f = r.fields["tokenizer.ggml.tokens"]
        _VOCAB[gguf] = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    return _VOCAB[gguf]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("mode", choices=["llama", "compare", "logits"])
    ap.add_argument("--types", default=",".join(DEFAULT_TYPES), help="llama-quantize types, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--batch", type=int, default=2048, help="llama-perplexity -b (tokens per batch)")
    ap.add_argument("--chunks", type=int, default=0, help="limit the number of chunks (0: all)")
    ap.add_argument("--text", default=TEXT)
    ap.add_argument("--work", default=os.path.join(ROOT, "out", "llama-cpp"))
    ap.add_argument("--imatrix", help="quantize with this importance matrix (llama-quantize --imatrix and quantize --to … --imatrix, same path); use a separate --work")
    ap.add_argument("--json", help="llama.cpp numbers (default WORK/llama_cpp.json)")
    ap.add_argument("--fresh", action="store_true", help="reconvert, requantize and rerun everything")
    ap.add_argument("--quantize", help="our quantize binary (default .build/release or .build/debug)")
    ap.add_argument("--original", help="ORIGINAL for quantize eval (default: the F32 GGUF twin)")
    ap.add_argument("--out", default=os.path.join(FIXTURE, "llama-cpp-logits"), help="logits mode: output folder")
    ap.add_argument("--prefixes", default="2,16,128,512", help="logits mode: prefix lengths (tokens with BOS)")
    args = ap.parse_args()
    args.types = [t.strip() for t in args.types.split(",") if t.strip()]
    args.prefixes = [int(k) for k in args.prefixes.split(",")]
    args.text = os.path.abspath(args.text)
    args.work = os.path.abspath(args.work)
    args.json = os.path.abspath(args.json or os.path.join(args.work, "llama_cpp.json"))
    if not os.path.isfile(args.text):
        fail(f"{args.text} not found (the held-out text is made by tools/train_fixture.py)")
    if args.mode == "llama":
        print_llama_table(llama_half(args))
    elif args.mode == "compare":
        sys.exit(compare(args))
    else:
        logits(args)


if __name__ == "__main__":
    main()
