"""Proof of the forward pass: our logits against transformers' (torch, FP32).

Generates tiny random-weight models for every architecture the forward pass implements (llama,
llama3 RoPE scaling, mistral sliding window, qwen2 q/k/v biases, qwen3 q/k norms and a head_dim
that is not hidden/heads, tied embeddings, mixtral, qwen2-moe with a shared expert, qwen3-moe with
norm_topk_prob and a dense layer), saves them with transformers (BF16 weights, so the files are
small and transformers upcasts them exactly to FP32), runs transformers in FP32, runs
`quantize eval MODEL --tokens … --dump-logits …`, and compares: max |ours − ref| / max |ref|
must be ≤ 1e-4. A GGUF twin of the llama model (F32, llama.cpp names, Q/K rows permuted as
convert_hf_to_gguf.py does, written with gguf-py) checks the GGUF path against the same numbers.

With --write-fixtures it also stores the models under fixtures/reference-models/ together with
expected-logits.json (transformers' logits at a few positions), which ModelTests read.

Usage:  tools/reference_logits.sh [--write-fixtures] [--quantize PATH_TO_BINARY] [--only NAME]
        (runs this file with $ROOT/.venv-ref/bin/python; VENV_REF=DIR overrides)
Extra checkpoints (trained fixture, its GGUF twin): --extra HF_DIR[=GGUF] … compares each against
transformers on tokens drawn from the vocabulary.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 96
CONTEXT = 32
CHUNKS = 2
BOS = 1
SEED = 20261201


def base(**extra):
    cfg = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
               bos_token_id=BOS, eos_token_id=2, rms_norm_eps=1e-5, tie_word_embeddings=False)
    cfg.update(extra)
    return cfg


def architectures():
    from transformers import (LlamaConfig, MistralConfig, MixtralConfig, Qwen2Config, Qwen2MoeConfig,
                              Qwen3Config, Qwen3MoeConfig)
    return {
        "llama": (LlamaConfig, base(rope_theta=10000.0)),
        "llama3-rope": (LlamaConfig, base(rope_parameters={
            "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 16})),
        "mistral-sliding": (MistralConfig, base(sliding_window=8, head_dim=8)),
        "qwen2-bias": (Qwen2Config, base()),
        "qwen3-qknorm": (Qwen3Config, base(head_dim=16)),
        "llama-tied": (LlamaConfig, base(tie_word_embeddings=True)),
        "mixtral": (MixtralConfig, base(num_local_experts=4, num_experts_per_tok=2, intermediate_size=48)),
        "qwen2-moe-shared": (Qwen2MoeConfig, base(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
                                                  shared_expert_intermediate_size=32, norm_topk_prob=False)),
        "qwen3-moe": (Qwen3MoeConfig, base(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
                                           norm_topk_prob=True, mlp_only_layers=[1], head_dim=8)),
    }


def randomize(model, seed):
    """Weights large enough that attention, norms and routing all matter (init std 0.02 gives flat logits)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name:
                p.copy_(1 + 0.2 * noise)
            elif name.endswith("mlp.gate.weight") or "block_sparse_moe.gate" in name:
                p.copy_(0.8 * noise)  # routers: clear top-k gaps, so no near-ties flip a choice
            elif name.endswith("bias"):
                p.copy_(0.3 * noise)
            else:
                p.copy_(noise / max(1.0, p.shape[-1] ** 0.5) * 1.5)


def make_tokens(seed, vocab=VOCAB, bos=BOS):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, vocab, size=CONTEXT * CHUNKS).tolist()
    for c in range(CHUNKS):
        tokens[c * CONTEXT] = bos
    return tokens


def transformers_logits(directory, tokens, context=CONTEXT):
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    chunks = [tokens[i * context:(i + 1) * context] for i in range(len(tokens) // context)]
    with torch.no_grad():
        out = model(torch.tensor(chunks, dtype=torch.long)).logits
    return out.float().numpy()


def our_logits(binary, checkpoint, tokens, context=CONTEXT, vocab=VOCAB, extra=()):
    with tempfile.TemporaryDirectory() as tmp:
        tpath = os.path.join(tmp, "tokens.json")
        with open(tpath, "w") as f:
            json.dump(tokens, f)
        out = os.path.join(tmp, "logits.bin")
        subprocess.run([binary, "eval", checkpoint, "--tokens", tpath, "--context", str(context), "--dump-logits", out, "--quiet", *extra],
                       check=True)
        data = np.fromfile(out, dtype="<f4")
    return data.reshape(-1, context, vocab)


def relative_error(ours, ref):
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


GGUF_ARCH = {"llama": "llama", "mixtral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen2_moe": "qwen2moe", "qwen3_moe": "qwen3moe"}


def write_gguf_twin(directory, path):
    """The model as llama.cpp's convert_hf_to_gguf.py writes it (F32): llama.cpp names, Q/K rows
    permuted for `llama` (incl. Mixtral), experts stacked into 3-D tensors, Llama 3 RoPE scaling as
    rope_freqs.weight. Returns False for a family llama.cpp has no GGUF form of here (mistral's
    sliding window is not represented by the llama architecture)."""
    import gguf
    from safetensors import safe_open
    cfg = json.load(open(os.path.join(directory, "config.json")))
    model_type = cfg["model_type"]
    if model_type not in GGUF_ARCH:
        return False
    arch = GGUF_ARCH[model_type]
    tensors = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(directory, name), "pt") as f:
                for k in f.keys():
                    tensors[k] = f.get_tensor(k).float().numpy()
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    rope = cfg.get("rope_parameters") or {}

    def permute(w, h):
        return w.reshape(h, 2, w.shape[0] // h // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(rope.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg["vocab_size"])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_file_type(0)
    experts = cfg.get("num_local_experts") or cfg.get("num_experts")
    if experts:
        w.add_expert_count(experts)
        w.add_expert_used_count(cfg["num_experts_per_tok"])
        if cfg.get("moe_intermediate_size"):
            w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
        if cfg.get("shared_expert_intermediate_size"):
            w.add_expert_shared_feed_forward_length(cfg["shared_expert_intermediate_size"])
    if rope.get("rope_type") == "llama3":
        import math
        base, dim = rope["rope_theta"], head_dim
        factor, low, high, old = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"], rope["original_max_position_embeddings"]
        freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
        factors = []
        for f in freqs:
            wavelen = 2 * math.pi / f
            if wavelen < old / high:
                factors.append(1)
            elif wavelen > old / low:
                factors.append(factor)
            else:
                smooth = (old / wavelen - low) / (high - low)
                factors.append(1 / ((1 - smooth) / factor + smooth))
        w.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
                 "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
                 "mlp.gate": "ffn_gate_inp", "block_sparse_moe.gate": "ffn_gate_inp",
                 "mlp.shared_expert.gate_proj": "ffn_gate_shexp", "mlp.shared_expert.up_proj": "ffn_up_shexp",
                 "mlp.shared_expert.down_proj": "ffn_down_shexp", "mlp.shared_expert_gate": "ffn_gate_inp_shexp"}
    expert_names = {"gate_proj": "ffn_gate_exps", "w1": "ffn_gate_exps", "up_proj": "ffn_up_exps", "w3": "ffn_up_exps",
                    "down_proj": "ffn_down_exps", "w2": "ffn_down_exps"}
    stacked = {}
    for k, v in tensors.items():
        if k in names:
            w.add_tensor(names[k], np.ascontiguousarray(v, dtype=np.float32))
            continue
        parts = k.split(".")
        layer = parts[2]
        if ".experts." in k:
            i = parts.index("experts")
            stacked.setdefault(f"blk.{layer}.{expert_names[parts[i + 2]]}.weight", {})[int(parts[i + 1])] = v
            continue
        module = ".".join(parts[3:-1])
        if arch == "llama" and module == "self_attn.q_proj":
            v = permute(v, heads)
        elif arch == "llama" and module == "self_attn.k_proj":
            v = permute(v, kv)
        w.add_tensor(f"blk.{layer}.{per_layer[module]}.{parts[-1]}", np.ascontiguousarray(v, dtype=np.float32))
    for gname, by_expert in stacked.items():
        w.add_tensor(gname, np.ascontiguousarray(np.stack([by_expert[e] for e in sorted(by_expert)]), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return True


def protocol_statistics(base_logits, q_logits, tokens, context):
    """llama-perplexity's statistics (calibration.md §1) in float64 numpy from two models' logits."""
    def log_softmax(x):
        x = x.astype(np.float64)
        m = x.max(axis=-1, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
    first = context // 2
    nll_b, nll_q, kld, dp, same = [], [], [], [], []
    for c in range(base_logits.shape[0]):
        lb, lq = log_softmax(base_logits[c]), log_softmax(q_logits[c])
        for j in range(first, context - 1):
            t = tokens[c * context + j + 1]
            nll_b.append(-lb[j, t]); nll_q.append(-lq[j, t])
            kld.append(float(np.sum(np.exp(lb[j]) * (lb[j] - lq[j]))))
            dp.append(float(np.exp(lq[j, t]) - np.exp(lb[j, t])))
            same.append(int(np.argmax(lb[j]) == np.argmax(lq[j])))
    kld = np.array(kld)
    return {"originalPerplexity": float(np.exp(np.mean(nll_b))), "perplexity": float(np.exp(np.mean(nll_q))),
            "kldMean": float(kld.mean()), "kldMax": float(kld.max()), "kldP99": float(np.percentile(kld, 99)),
            "kldP90": float(np.percentile(kld, 90)), "kldMedian": float(np.median(kld)),
            "deltaPMean": float(np.mean(dp)), "deltaPRMS": float(np.sqrt(np.mean(np.square(dp)))),
            "sameTopToken": float(np.mean(same)), "count": len(kld)}


def write_eval_expected(out_root):
    """Expected `quantize eval` statistics of llama-perturbed (llama's weights with 5 % relative
    Gaussian noise, a stand-in for a coarse quantization) against llama on 2 chunks of 32 tokens,
    from transformers' logits (what ModelTests' evaluation test checks)."""
    model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(out_root, "llama"), dtype=torch.float32)
    g = torch.Generator().manual_seed(SEED + 200)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.mul_(1 + 0.05 * torch.randn(p.shape, generator=g))
    perturbed = os.path.join(out_root, "llama-perturbed")
    if os.path.exists(perturbed):
        shutil.rmtree(perturbed)
    model.to(torch.bfloat16).save_pretrained(perturbed)
    if os.path.exists(os.path.join(perturbed, "generation_config.json")):
        os.remove(os.path.join(perturbed, "generation_config.json"))
    tokens = make_tokens(SEED + 100)
    base_logits = transformers_logits(os.path.join(out_root, "llama"), tokens)
    q_logits = transformers_logits(perturbed, tokens)
    stats = protocol_statistics(base_logits, q_logits, tokens, CONTEXT)
    stats.update({"generator": "tools/reference_logits.py write_eval_expected (transformers logits, numpy float64)",
                  "original": "llama", "quantized": "llama-perturbed", "context": CONTEXT, "bos": BOS, "tokens": tokens})
    with open(os.path.join(out_root, "eval-expected.json"), "w") as f:
        json.dump(stats, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quantize", default=os.path.join(ROOT, ".build", "debug", "quantize"))
    parser.add_argument("--write-fixtures", action="store_true")
    parser.add_argument("--only")
    parser.add_argument("--extra", action="append", default=[], help="HF_DIR[=GGUF] of another model to compare")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    torch.manual_seed(SEED)
    failures = 0
    out_root = os.path.join(ROOT, "fixtures", "reference-models")
    work = tempfile.mkdtemp(prefix="reference-models-")
    rows = []
    try:
        for index, (name, (config_class, cfg)) in enumerate(architectures().items()):
            if args.only and name != args.only:
                continue
            config = config_class(**cfg)
            model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            randomize(model, SEED + index)
            model = model.to(torch.bfloat16)
            directory = os.path.join(out_root if args.write_fixtures else work, name)
            if os.path.exists(directory):
                shutil.rmtree(directory)
            model.save_pretrained(directory)
            for extra in ("generation_config.json",):
                p = os.path.join(directory, extra)
                if os.path.exists(p):
                    os.remove(p)
            tokens = make_tokens(SEED + index)
            ref = transformers_logits(directory, tokens)
            ours = our_logits(args.quantize, directory, tokens)
            err = relative_error(ours, ref)
            ok = err <= args.tolerance
            failures += not ok
            rows.append((name, "safetensors BF16", err, ok))
            # GGUF twin of every family llama.cpp converts (committed only for llama).
            gguf_path = os.path.join(out_root, "llama.gguf") if (args.write_fixtures and name == "llama") else os.path.join(work, name + ".gguf")
            if write_gguf_twin(directory, gguf_path):
                g = our_logits(args.quantize, gguf_path, tokens)
                gerr = relative_error(g, ref)
                failures += gerr > args.tolerance
                rows.append((name, "GGUF F32" + (" (permuted Q/K)" if GGUF_ARCH.get(config.model_type) == "llama" else ""), gerr, gerr <= args.tolerance))
            if args.write_fixtures:
                positions = [0, CONTEXT // 2, CONTEXT - 1]
                expected = {"generator": "tools/reference_logits.py (transformers %s, torch %s, FP32)" % (transformers.__version__, torch.__version__),
                            "context": CONTEXT, "tokens": tokens[:CONTEXT], "positions": positions,
                            "logits": [[float(x) for x in ref[0, p]] for p in positions]}
                with open(os.path.join(directory, "expected-logits.json"), "w") as f:
                    json.dump(expected, f, indent=1)
        if args.write_fixtures and not args.only:
            write_eval_expected(out_root)
        # Our quantized outputs of the llama model, loaded by transformers + compressed-tensors
        # (which decompresses the weights and, for fp8, fake-quantizes linear inputs per token as
        # the config declares): the same logits as ours with activation quantization on.
        if not args.only or args.only == "llama":
            llama_dir = os.path.join(out_root if args.write_fixtures else work, "llama")
            tokens = make_tokens(SEED)
            for scheme, extra in (("fp8", []), ("int8", []), ("int4", ["--group-size", "32"])):
                out = os.path.join(work, "llama-" + scheme)
                subprocess.run([args.quantize, "--to", scheme, llama_dir, "-o", out, "--force", "--no-check", *extra],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                ref = transformers_logits(out, tokens)
                err = relative_error(our_logits(args.quantize, out, tokens), ref)
                # With activations fake-quantized on both sides, a last-bit difference of a matmul
                # (BLAS order) can move an input across an FP8 rounding boundary: one code step is
                # 2^-3 relative, so a single flip moves logits by ~1e-4..1e-3. Hence 1e-3 there, and
                # the weights alone are checked at the strict tolerance below.
                limit = 1e-3 if scheme == "fp8" else args.tolerance
                failures += err > limit
                rows.append(("llama", f"our {scheme} (compressed-tensors)", err, err <= limit))
                if scheme == "fp8":
                    config_path = os.path.join(out, "config.json")
                    config = json.load(open(config_path))
                    for group in config["quantization_config"]["config_groups"].values():
                        group["input_activations"] = None
                    json.dump(config, open(config_path, "w"), indent=2)
                    ref = transformers_logits(out, tokens)
                    err = relative_error(our_logits(args.quantize, out, tokens, extra=["--weights-only"]), ref)
                    failures += err > args.tolerance
                    rows.append(("llama", "our fp8, weights only", err, err <= args.tolerance))
        for spec in args.extra:
            hf, _, gguf_path = spec.partition("=")
            if not gguf_path:
                # No GGUF given: the twin convert_hf_to_gguf.py would write (F32), made here.
                gguf_path = os.path.join(work, os.path.basename(os.path.normpath(hf)) + ".gguf")
                if not write_gguf_twin(hf, gguf_path):
                    gguf_path = ""
            cfg = json.load(open(os.path.join(hf, "config.json")))
            vocab = cfg["vocab_size"]
            context = 64
            rng = np.random.default_rng(SEED)
            bos = cfg.get("bos_token_id") or 1
            tokens = rng.integers(3, vocab, size=context * CHUNKS).tolist()
            for c in range(CHUNKS):
                tokens[c * context] = bos
            ref = transformers_logits(hf, tokens, context)
            if args.write_fixtures:
                positions = [0, context // 2, context - 1]
                name = os.path.basename(os.path.normpath(hf))
                with open(os.path.join(out_root, name + "-expected-logits.json"), "w") as f:
                    json.dump({"generator": "tools/reference_logits.py --extra (transformers %s, torch %s, FP32)" % (transformers.__version__, torch.__version__),
                               "checkpoint": os.path.relpath(os.path.abspath(hf), ROOT), "context": context, "tokens": tokens[:context],
                               "positions": positions, "logits": [[round(float(x), 6) for x in ref[0, p]] for p in positions]}, f)
            for label, path in (("safetensors", hf), ("GGUF", gguf_path)):
                if not path:
                    continue
                ours = our_logits(args.quantize, path, tokens, context, vocab)
                err = relative_error(ours, ref)
                failures += err > args.tolerance
                rows.append((os.path.basename(os.path.normpath(hf)), label + " " + os.path.basename(path), err, err <= args.tolerance))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'model':<20} {'checkpoint':<32} {'max|Δ|/max|ref|':>16}  result")
    for name, kind, err, ok in rows:
        print(f"{name:<20} {kind:<32} {err:16.3e}  {'ok' if ok else 'FAIL'}")
    print(f"tolerance {args.tolerance:g}; transformers {transformers.__version__}, torch {torch.__version__}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
