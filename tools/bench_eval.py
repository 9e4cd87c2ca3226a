"""Benchmarks of `quantize eval` (issue 9's "Measure" items), printing tables.

memory: random-weight llama checkpoints (BF16 safetensors, numpy seed 9) of the same width and
        4, 8 and 16 layers; peak RSS of `quantize eval MODEL --tokens … --save-logits …` (the
        forward pass of one model) must stay flat as the layers grow, because one layer is decoded
        at a time (plus the next one being prefetched).
speed:  `quantize eval` against llama.cpp's `llama-perplexity` on the same GGUF, the same text, the
        same context, chunks and thread count, one run each: tokens/s of each and the ratio.

kld:    our PPL and KLD of llama-quantize's GGUFs against `llama-perplexity --kl-divergence` on the
        same files, text, context and chunks (targets: PPL within 1 %, mean KLD within 10 %); also
        our statistics computed from llama.cpp's own base logits file (--logits), which shows the
        files interchange.

Usage:
  .venv-ref/bin/python tools/bench_eval.py memory [--quantize BIN] [--hidden 1024] [--layers 4 8 16]
  .venv-ref/bin/python tools/bench_eval.py speed --gguf MODEL.gguf --text FILE
        [--llama-perplexity .llama.cpp/bin/llama-perplexity] [--threads 2] [--context 512] [--chunks 8]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_random_llama(directory, layers, hidden, intermediate, heads, kv_heads, vocab, seed=9):
    from safetensors.numpy import save_file
    import ml_dtypes
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    d = hidden // heads

    def matrix(rows, cols):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16)

    tensors = {"model.embed_tokens.weight": matrix(vocab, hidden), "model.norm.weight": np.ones(hidden, ml_dtypes.bfloat16),
               "lm_head.weight": matrix(vocab, hidden)}
    for l in range(layers):
        p = f"model.layers.{l}."
        tensors.update({
            p + "input_layernorm.weight": np.ones(hidden, ml_dtypes.bfloat16),
            p + "post_attention_layernorm.weight": np.ones(hidden, ml_dtypes.bfloat16),
            p + "self_attn.q_proj.weight": matrix(heads * d, hidden), p + "self_attn.k_proj.weight": matrix(kv_heads * d, hidden),
            p + "self_attn.v_proj.weight": matrix(kv_heads * d, hidden), p + "self_attn.o_proj.weight": matrix(hidden, heads * d),
            p + "mlp.gate_proj.weight": matrix(intermediate, hidden), p + "mlp.up_proj.weight": matrix(intermediate, hidden),
            p + "mlp.down_proj.weight": matrix(hidden, intermediate),
        })
    save_file(tensors, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden, "intermediate_size": intermediate,
              "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 4096, "bos_token_id": 1,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    layer_bytes = 2 * (2 * hidden * heads * d + 2 * hidden * kv_heads * d + 3 * hidden * intermediate)
    return os.path.getsize(os.path.join(directory, "model.safetensors")), layer_bytes


def memory(args):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tokens = os.path.join(tmp, "tokens.json")
        rng = np.random.default_rng(1)
        with open(tokens, "w") as f:
            json.dump(rng.integers(3, args.vocab, size=args.context * 2).tolist(), f)
        for layers in args.layers:
            model = os.path.join(tmp, f"llama-{layers}")
            size, layer_bytes = write_random_llama(model, layers, args.hidden, args.intermediate, args.heads, args.kv_heads, args.vocab)
            # One process per measurement: ru_maxrss of RUSAGE_CHILDREN is the largest child so far.
            probe = [sys.executable, "-c", "import resource,subprocess,sys; subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL); "
                     "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
                     args.quantize, "eval", model, "--tokens", tokens, "--context", str(args.context), "--chunks", "2",
                     "--save-logits", os.path.join(tmp, "base.logits"), "--quiet", "--threads", str(args.threads)]
            start = time.time()
            peak = int(subprocess.run(probe, check=True, capture_output=True, text=True).stdout.strip()) * 1024
            seconds = time.time() - start
            rows.append((layers, size, layer_bytes, peak, seconds))
            os.remove(os.path.join(model, "model.safetensors"))
    print(f"{'layers':>6} {'checkpoint':>12} {'one layer BF16':>15} {'ckpt/layer':>10} {'peak RSS':>10} {'seconds':>8}")
    for layers, size, layer_bytes, peak, seconds in rows:
        print(f"{layers:>6} {size / 1e6:>10.1f} MB {layer_bytes / 1e6:>12.1f} MB {size / layer_bytes:>10.1f} {peak / 1e6:>7.1f} MB {seconds:>8.1f}")
    print(f"hidden {args.hidden}, intermediate {args.intermediate}, heads {args.heads}/{args.kv_heads}, vocab {args.vocab}, "
          f"context {args.context}, 2 chunks, {args.threads} threads; quantize eval … --save-logits (one model)")


def speed(args):
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "ours.logits")
        ours_cmd = [args.quantize, "eval", args.gguf, "--text", args.text, "--context", str(args.context), "--chunks", str(args.chunks),
                    "--threads", str(args.threads), "--save-logits", base, "--json"]
        start = time.time()
        report = json.loads(subprocess.run(ours_cmd, check=True, capture_output=True, text=True).stdout)
        ours_seconds = time.time() - start
        chunks = report["chunks"]
        llama_cmd = [args.llama_perplexity, "-m", args.gguf, "-f", args.text, "-c", str(args.context), "--chunks", str(chunks),
                     "-t", str(args.threads), "-b", str(args.context)]
        start = time.time()
        out = subprocess.run(llama_cmd, capture_output=True, text=True)
        llama_seconds = time.time() - start  # one run, as timed; a lost summary line only loses the PPL column
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        m = re.search(r"Final estimate: PPL = ([0-9.]+)", out.stdout + out.stderr)
        llama_ppl = float(m.group(1)) if m else float("nan")
    tokens = chunks * args.context
    print(f"{'tool':<20} {'seconds':>8} {'tokens/s':>10} {'PPL':>10}")
    print(f"{'quantize eval':<20} {ours_seconds:>8.2f} {tokens / ours_seconds:>10.0f} {report['original']['perplexity']:>10.4f}")
    print(f"{'llama-perplexity':<20} {llama_seconds:>8.2f} {tokens / llama_seconds:>10.0f} {llama_ppl:>10.4f}")
    print(f"ratio (ours / llama.cpp tokens/s): {llama_seconds / ours_seconds:.2f}×; {chunks} chunks × {args.context} tokens, "
          f"{args.threads} threads, whole-process wall time (load included); {os.path.basename(args.gguf)}")


def llama_kld(binary, base_gguf, quantized, text, context, chunks, threads, tmp):
    """llama-perplexity's base pass, then its --kl-divergence pass on each quantized GGUF."""
    base = os.path.join(tmp, "llama.logits")
    common = ["-f", text, "-c", str(context), "--chunks", str(chunks), "-t", str(threads), "-b", str(context)]
    out = subprocess.run([binary, "-m", base_gguf, "--kl-divergence-base", base, *common], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    results = {}
    for q in quantized:
        # llama.cpp logs from a background thread; now and then the last lines (the statistics) are
        # lost at exit, so a run whose summary is missing is repeated (up to 3 times).
        for _ in range(3):
            out = subprocess.run([binary, "-m", q, "--kl-divergence-base", base, "--kl-divergence", *common], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-3000:])
            log = out.stdout + out.stderr
            if "Mean    KLD" in log:
                break
        def number(pattern):
            m = re.search(pattern, log)
            return float(m.group(1)) if m else float("nan")
        results[q] = {"ppl": number(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)"), "base_ppl": number(r"Mean PPL\(base\)\s*:\s*([0-9.]+)"),
                      "kld": number(r"Mean\s+KLD:\s*([-0-9.e]+)"), "same_top": number(r"Same top p:\s*([0-9.]+)") / 100}
    return base, results


def kld(args):
    with tempfile.TemporaryDirectory() as tmp:
        base_file, theirs = llama_kld(args.llama_perplexity, args.gguf, args.quantized, args.text, args.context, args.chunks, args.threads, tmp)
        ours_cmd = [args.quantize, "eval", args.gguf, *args.quantized, "--text", args.text, "--context", str(args.context),
                    "--chunks", str(args.chunks), "--threads", str(args.threads), "--json"]
        ours = json.loads(subprocess.run(ours_cmd, check=True, capture_output=True, text=True).stdout)
        via_file = json.loads(subprocess.run([args.quantize, "eval", *args.quantized, "--logits", base_file, "--threads", str(args.threads), "--json"],
                                             check=True, capture_output=True, text=True).stdout)
    print(f"{'GGUF':<28} {'PPL ours':>10} {'PPL llama':>10} {'ΔPPL':>7} {'KLD ours':>10} {'KLD llama':>10} {'ΔKLD':>7} {'KLD ours on llama base':>22} {'same top ours/llama':>20}")
    ok = True
    for r, f in zip(ours["results"], via_file["results"]):
        t = theirs[r["path"]]
        dppl = r["perplexity"] / t["ppl"] - 1
        dkld = r["kld"]["mean"] / t["kld"] - 1
        ok &= abs(dppl) <= 0.01 and abs(dkld) <= 0.10
        print(f"{os.path.basename(r['path']):<28} {r['perplexity']:>10.4f} {t['ppl']:>10.4f} {100 * dppl:>6.2f}% {r['kld']['mean']:>10.6f} "
              f"{t['kld']:>10.6f} {100 * dkld:>6.1f}% {f['kld']['mean']:>22.6f} {r['sameTopToken']:>9.4f}/{t['same_top']:.4f}")
    print(f"original PPL ours {ours['original']['perplexity']:.4f}, llama.cpp {next(iter(theirs.values()))['base_ppl']:.4f}; "
          f"{ours['chunks']} chunks × {args.context}; targets PPL within 1 %, KLD within 10 %: {'met' if ok else 'NOT met'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["memory", "speed", "kld"])
    parser.add_argument("--quantized", nargs="+", default=[], help="kld: GGUFs made by llama-quantize from --gguf")
    parser.add_argument("--quantize", default=os.path.join(ROOT, ".build", "release", "quantize"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--intermediate", type=int, default=2816)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--layers", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--gguf")
    parser.add_argument("--text")
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--llama-perplexity", default=os.path.join(ROOT, ".llama.cpp", "bin", "llama-perplexity"))
    args = parser.parse_args()
    if args.mode == "memory":
        memory(args)
    else:
        if not args.gguf or not args.text:
            parser.error(f"{args.mode} needs --gguf and --text")
        speed(args) if args.mode == "speed" else kld(args)


if __name__ == "__main__":
    main()
