#!/usr/bin/env python3
"""Checks the tiny llama fixture with the oracle packages (not with our Swift code).

  1. fixtures/tiny-llama/: the index, both shards (read with the `safetensors` package) and the
     shapes and dtypes of every LlamaForCausalLM tensor against config.json.
  2. The tokenizer (read with the `tokenizers` package): size, BOS/EOS ids, a lossless round trip.
  3. fixtures/tiny-llama.gguf (read with gguf-py's GGUFReader): llama metadata against config.json,
     tokens/merges against tokenizer.json, and every tensor, after undoing the Q/K permutation,
     equal to the safetensors weight rounded to the GGUF tensor type (F16 round-to-nearest-even for
     matrices, exact F32 for norms).
  3b. A float64 numpy Llama forward pass on the GGUF tensors with llama.cpp's interleaved RoPE
     gives the same logits as on the safetensors tensors with transformers' rotate-half RoPE, and
     differs when the Q/K permutation is left out (so the permutation means what llama.cpp needs).
  4. When `transformers` is importable: AutoConfig and AutoTokenizer load the directory; when
     `torch` is importable too, AutoModelForCausalLM loads it, its weights equal the shards and its
     logits equal the float64 Llama forward pass of this script (which anchors check 3b). What cannot be imported is skipped with a message (tools/setup.sh
     installs neither).

Exit status 0 when every check passes, 1 otherwise.
Usage: .venv/bin/python tools/check_model.py [MODEL_DIR [GGUF_FILE]]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors import safe_open
from tokenizers import Tokenizer
import gguf

REPO = Path(__file__).resolve().parent.parent
failures: list[str] = []


def check(condition: bool, what: str) -> bool:
    print(("ok    " if condition else "FAIL  ") + what)
    if not condition:
        failures.append(what)
    return condition


def expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    hidden = config["hidden_size"]
    inter = config["intermediate_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim") or hidden // heads
    vocab = config["vocab_size"]
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,)}
    if not config.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (vocab, hidden)
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        shapes.update({
            p + "self_attn.q_proj.weight": (heads * head_dim, hidden),
            p + "self_attn.k_proj.weight": (kv_heads * head_dim, hidden),
            p + "self_attn.v_proj.weight": (kv_heads * head_dim, hidden),
            p + "self_attn.o_proj.weight": (hidden, heads * head_dim),
            p + "mlp.gate_proj.weight": (inter, hidden),
            p + "mlp.up_proj.weight": (inter, hidden),
            p + "mlp.down_proj.weight": (hidden, inter),
            p + "input_layernorm.weight": (hidden,),
            p + "post_attention_layernorm.weight": (hidden,),
        })
    return shapes


def check_directory(model_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    config = json.loads((model_dir / "config.json").read_text())
    check(config.get("architectures") == ["LlamaForCausalLM"] and config.get("model_type") == "llama",
          "config.json names LlamaForCausalLM / llama")
    index = json.loads((model_dir / "model.safetensors.index.json").read_text())
    weight_map: dict[str, str] = index["weight_map"]
    shapes = expected_shapes(config)
    check(set(weight_map) == set(shapes),
          f"index weight_map lists exactly the {len(shapes)} LlamaForCausalLM tensors")
    shard_names = sorted(set(weight_map.values()))
    check(shard_names == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"],
          "two shards named model-0000i-of-00002.safetensors")

    weights: dict[str, np.ndarray] = {}
    for shard in shard_names:
        with safe_open(str(model_dir / shard), framework="numpy") as f:
            check(f.metadata() == {"format": "pt"}, f"{shard}: __metadata__ is {{'format': 'pt'}}")
            names = set(f.keys())
            check(names == {n for n, s in weight_map.items() if s == shard},
                  f"{shard}: holds exactly the tensors weight_map assigns to it ({len(names)})")
            for name in names:
                weights[name] = f.get_tensor(name)
    bad_shape = [n for n, s in shapes.items() if n in weights and tuple(weights[n].shape) != s]
    check(not bad_shape and len(weights) == len(shapes),
          f"every tensor has the shape config.json implies {bad_shape[:3]}")
    check(all(a.dtype == ml_dtypes.bfloat16 for a in weights.values()),
          "every tensor is BF16 (config torch_dtype bfloat16)")
    total_size = sum(a.nbytes for a in weights.values())
    total_params = sum(a.size for a in weights.values())
    check(index["metadata"].get("total_size") == total_size,
          f"index metadata.total_size = sum of tensor bytes = {total_size}")
    check(index["metadata"].get("total_parameters") == total_params,
          f"index metadata.total_parameters = {total_params}")
    values = np.concatenate([a.astype(np.float32).ravel() for a in weights.values()])
    check(bool(np.isfinite(values).all()), "all weights finite")
    norms = [a for n, a in weights.items() if a.ndim == 1]
    check(all((a.astype(np.float32) == 1).all() for a in norms), "norm weights are ones")
    q = weights["model.layers.0.self_attn.q_proj.weight"].astype(np.float32)
    column_peak = np.abs(q).max(axis=0)
    check(column_peak.max() > 4 * np.median(column_peak),
          f"outlier columns present (q_proj column max {column_peak.max():.3f} vs median "
          f"{np.median(column_peak):.3f})")
    return config, weights


def check_tokenizer(model_dir: Path, config: dict) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    check(tokenizer.get_vocab_size(with_added_tokens=True) == config["vocab_size"],
          f"tokenizer size = config vocab_size = {config['vocab_size']}")
    tc = json.loads((model_dir / "tokenizer_config.json").read_text())
    check(tokenizer.token_to_id(tc["bos_token"]) == config["bos_token_id"]
          and tokenizer.token_to_id(tc["eos_token"]) == config["eos_token_id"],
          "BOS/EOS tokens in tokenizer_config.json have config.json's ids")
    text = "The lighthouse keeper measured 0.0047 error at 15:30, and wrote ümlaut 日本 too."
    encoding = tokenizer.encode(text)
    check(encoding.ids[0] == config["bos_token_id"], "encode prepends BOS")
    check(tokenizer.decode(encoding.ids, skip_special_tokens=True) == text,
          f"byte-level round trip is lossless ({len(encoding.ids)} tokens)")
    return tokenizer


def unpermute(weights: np.ndarray, heads: int) -> np.ndarray:
    """Inverse of convert_hf_to_gguf's LlamaModel.permute (formats.md §2.9)."""
    rows = weights.shape[0]
    return (weights.reshape(heads, rows // heads // 2, 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def hf_name(gguf_name: str) -> str:
    fixed = {"token_embd.weight": "model.embed_tokens.weight",
             "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if gguf_name in fixed:
        return fixed[gguf_name]
    modules = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
               "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
               "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
               "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
    _, layer, module, _ = gguf_name.split(".")
    return f"model.layers.{layer}.{modules[module]}.weight"


def field_value(reader: gguf.GGUFReader, key: str):
    field = reader.get_field(key)
    return None if field is None else field.contents()


def check_gguf(path: Path, config: dict, weights: dict[str, np.ndarray], tokenizer_json: dict) -> None:
    reader = gguf.GGUFReader(str(path))
    heads = config["num_attention_heads"]
    kv_heads = config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    expected = {
        "general.architecture": "llama",
        "llama.context_length": config["max_position_embeddings"],
        "llama.embedding_length": config["hidden_size"],
        "llama.block_count": config["num_hidden_layers"],
        "llama.feed_forward_length": config["intermediate_size"],
        "llama.attention.head_count": heads,
        "llama.attention.head_count_kv": kv_heads,
        "llama.rope.dimension_count": head_dim,
        "llama.vocab_size": config["vocab_size"],
        "llama.attention.layer_norm_rms_epsilon": float(np.float32(config["rms_norm_eps"])),
        "llama.rope.freq_base": float(np.float32(config["rope_theta"])),
        "general.quantization_version": 2,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "gpt-2",
        "tokenizer.ggml.bos_token_id": config["bos_token_id"],
        "tokenizer.ggml.eos_token_id": config["eos_token_id"],
    }
    wrong = {k: (field_value(reader, k), v) for k, v in expected.items() if field_value(reader, k) != v}
    check(not wrong, f"GGUF llama metadata matches config.json ({len(expected)} keys) {wrong}")

    vocab = tokenizer_json["model"]["vocab"]
    added = {t["id"]: t["content"] for t in tokenizer_json["added_tokens"]}
    by_id = {i: t for t, i in vocab.items()} | added
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    check(tokens == [by_id[i] for i in range(config["vocab_size"])],
          "tokenizer.ggml.tokens = tokenizer.json vocab in id order")
    types = field_value(reader, "tokenizer.ggml.token_type")
    check(types == [3 if i in added else 1 for i in range(config["vocab_size"])],
          "token_type: CONTROL for BOS/EOS, NORMAL otherwise")
    merges = [" ".join(m) if isinstance(m, list) else m for m in tokenizer_json["model"]["merges"]]
    check(field_value(reader, "tokenizer.ggml.merges") == merges,
          f"tokenizer.ggml.merges = tokenizer.json merges ({len(merges)})")

    matrix_types = {t.tensor_type for t in reader.tensors if len(t.shape) == 2}
    file_type = field_value(reader, "general.file_type")
    check(matrix_types == {gguf.GGMLQuantizationType.F16} and file_type == gguf.LlamaFileType.MOSTLY_F16,
          "general.file_type 1 (MOSTLY_F16) and every matrix is F16")
    check(len(reader.tensors) == len(weights), f"GGUF holds {len(weights)} tensors")

    permuted_differs = True
    for tensor in reader.tensors:
        source_name = hf_name(tensor.name)
        source = weights[source_name].astype(np.float32)
        data = np.asarray(tensor.data)
        if source_name.endswith("q_proj.weight"):
            permuted_differs &= not np.array_equal(data, source.astype(np.float16))
            data = unpermute(data, heads)
        elif source_name.endswith("k_proj.weight"):
            permuted_differs &= not np.array_equal(data, source.astype(np.float16))
            data = unpermute(data, kv_heads)
        if data.shape != source.shape:
            check(False, f"{tensor.name}: shape {data.shape} != {source.shape}")
            continue
        if tensor.tensor_type == gguf.GGMLQuantizationType.F32:
            ok = data.dtype == np.float32 and np.array_equal(data, source)
            detail = "F32, exact"
        else:
            rounded = source.astype(np.float16)
            # F16 has a 10-bit mantissa: rounding error <= 2^-11 relative (normal range),
            # <= 2^-25 absolute (subnormal half-spacing).
            bound = np.maximum(np.abs(source) * 2.0 ** -11, 2.0 ** -25)
            ok = (data.dtype == np.float16 and np.array_equal(data.view(np.uint16), rounded.view(np.uint16))
                  and bool((np.abs(data.astype(np.float32) - source) <= bound).all()))
            max_error = float(np.abs(data.astype(np.float32) - source).max())
            detail = f"F16, max |error| {max_error:.2e}"
        check(ok, f"{tensor.name} = {source_name} ({detail})")
    check(permuted_differs, "attn_q/attn_k rows are permuted in the GGUF (differ before un-permuting)")


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * weight


def rope_rotate_half(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    """transformers' Llama RoPE: dimension i pairs with i + head_dim/2."""
    half = x.shape[-1] // 2
    angles = positions[:, None] * theta ** (-np.arange(half) * 2.0 / x.shape[-1])
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def rope_interleaved(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    """llama.cpp's LLAMA_ROPE_TYPE_NORM (used for llama): dimension 2i pairs with 2i + 1."""
    half = x.shape[-1] // 2
    angles = positions[:, None] * theta ** (-np.arange(half) * 2.0 / x.shape[-1])
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = odd * cos + even * sin
    return out


def llama_forward(tensors: dict[str, np.ndarray], names: dict[str, str], config: dict,
                  ids: list[int], rope) -> np.ndarray:
    """Float64 Llama forward pass (causal, GQA, RMSNorm, SiLU MLP); returns logits [tokens, vocab].

    `names` maps the role ("embed", "q.0", ...) to the tensor name; weights are [out, in]."""
    w = lambda role: tensors[names[role]].astype(np.float64)  # noqa: E731
    heads = config["num_attention_heads"]
    kv_heads = config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    eps, theta = config["rms_norm_eps"], config["rope_theta"]
    positions = np.arange(len(ids), dtype=np.float64)
    mask = np.triu(np.full((len(ids), len(ids)), -np.inf), k=1)
    x = w("embed")[ids]
    for layer in range(config["num_hidden_layers"]):
        h = rms_norm(x, w(f"attn_norm.{layer}"), eps)
        q = (h @ w(f"q.{layer}").T).reshape(len(ids), heads, head_dim)
        k = (h @ w(f"k.{layer}").T).reshape(len(ids), kv_heads, head_dim)
        v = (h @ w(f"v.{layer}").T).reshape(len(ids), kv_heads, head_dim)
        q, k = rope(q, positions, theta), rope(k, positions, theta)
        group = heads // kv_heads
        out = np.empty_like(q)
        for head in range(heads):
            scores = q[:, head] @ k[:, head // group].T / np.sqrt(head_dim) + mask
            probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs /= probs.sum(axis=-1, keepdims=True)
            out[:, head] = probs @ v[:, head // group]
        x = x + out.reshape(len(ids), -1) @ w(f"o.{layer}").T
        h = rms_norm(x, w(f"ffn_norm.{layer}"), eps)
        gate = h @ w(f"gate.{layer}").T
        x = x + ((gate / (1 + np.exp(-gate))) * (h @ w(f"up.{layer}").T)) @ w(f"down.{layer}").T
    return rms_norm(x, w("final_norm"), eps) @ w("lm_head").T


ROLES_HF = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
            "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
            "down": "mlp.down_proj", "attn_norm": "input_layernorm",
            "ffn_norm": "post_attention_layernorm"}
ROLES_GGUF = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output", "gate": "ffn_gate",
              "up": "ffn_up", "down": "ffn_down", "attn_norm": "attn_norm", "ffn_norm": "ffn_norm"}


def role_names(config: dict, gguf_names: bool) -> dict[str, str]:
    if gguf_names:
        names = {"embed": "token_embd.weight", "final_norm": "output_norm.weight",
                 "lm_head": "output.weight"}
        layer_name = lambda role, n: f"blk.{n}.{ROLES_GGUF[role]}.weight"  # noqa: E731
    else:
        names = {"embed": "model.embed_tokens.weight", "final_norm": "model.norm.weight",
                 "lm_head": "lm_head.weight"}
        layer_name = lambda role, n: f"model.layers.{n}.{ROLES_HF[role]}.weight"  # noqa: E731
    for n in range(config["num_hidden_layers"]):
        names.update({f"{role}.{n}": layer_name(role, n) for role in ROLES_HF})
    return names


SAMPLE_IDS_TEXT = "Maria kept the lighthouse at the end of the northern pier."


def check_forward(config: dict, weights: dict[str, np.ndarray], gguf_path: Path,
                  tokenizer: Tokenizer) -> np.ndarray:
    """The GGUF, run the llama.cpp way (interleaved RoPE on the permuted rows), must compute what
    the safetensors weights compute the transformers way (rotate-half RoPE)."""
    ids = tokenizer.encode(SAMPLE_IDS_TEXT).ids
    reader = gguf.GGUFReader(str(gguf_path))
    gguf_tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    hf_names, gguf_names = role_names(config, False), role_names(config, True)
    hf_as_f16 = {n: (a.astype(np.float32).astype(np.float16) if a.ndim == 2 else a)
                 for n, a in weights.items()}
    reference = llama_forward(hf_as_f16, hf_names, config, ids, rope_rotate_half)
    from_gguf = llama_forward(gguf_tensors, gguf_names, config, ids, rope_interleaved)
    difference = float(np.abs(from_gguf - reference).max())
    check(difference < 1e-9 * max(1.0, float(np.abs(reference).max())),
          f"GGUF forward (interleaved RoPE) = safetensors forward (rotate-half RoPE) on "
          f"{len(ids)} tokens, max |logit difference| {difference:.1e}")
    unpermuted = dict(gguf_tensors)
    for n in range(config["num_hidden_layers"]):
        unpermuted[f"blk.{n}.attn_q.weight"] = hf_as_f16[f"model.layers.{n}.self_attn.q_proj.weight"]
        unpermuted[f"blk.{n}.attn_k.weight"] = hf_as_f16[f"model.layers.{n}.self_attn.k_proj.weight"]
    wrong = llama_forward(unpermuted, gguf_names, config, ids, rope_interleaved)
    wrong_difference = float(np.abs(wrong - reference).max())
    check(wrong_difference > 1000 * max(difference, 1e-12),
          f"control: without the Q/K permutation the GGUF forward differs "
          f"(max |logit difference| {wrong_difference:.1e})")
    return llama_forward(weights, hf_names, config, ids, rope_rotate_half)


def check_transformers(model_dir: Path, weights: dict[str, np.ndarray], logits: np.ndarray,
                       sample_ids: list[int]) -> None:
    try:
        import transformers
    except ImportError:
        print("skip  transformers not importable; AutoConfig/AutoTokenizer/AutoModelForCausalLM "
              "loading was not checked")
        return
    config = transformers.AutoConfig.from_pretrained(model_dir)
    check(type(config).__name__ == "LlamaConfig",
          f"transformers {transformers.__version__}: AutoConfig gives LlamaConfig")
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    text = "The river town woke slowly."
    ids = tokenizer(text)["input_ids"]
    check(ids[0] == config.bos_token_id and len(tokenizer) == config.vocab_size,
          f"AutoTokenizer ({type(tokenizer).__name__}) prepends BOS, size {len(tokenizer)}")
    check(tokenizer.decode(ids, skip_special_tokens=True) == text, "AutoTokenizer round trip")
    try:
        import torch
    except ImportError:
        print("skip  torch not importable; AutoModelForCausalLM loading was not checked")
        return
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16) \
        if int(transformers.__version__.split(".")[0]) >= 5 else \
        transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.bfloat16)
    state = model.state_dict()
    mismatched = [n for n, a in weights.items()
                  if not torch.equal(state[n].float(), torch.from_numpy(a.astype(np.float32)))]
    check(not mismatched, f"AutoModelForCausalLM weights equal the shards {mismatched[:3]}")
    with torch.no_grad():
        output = model.float()(torch.tensor([sample_ids])).logits[0].double().numpy()
    difference = float(np.abs(output - logits).max())
    check(output.shape == logits.shape and difference < 1e-4,
          f"AutoModelForCausalLM (float32) logits = this script's float64 Llama forward, "
          f"max |difference| {difference:.1e} (max |logit| {np.abs(logits).max():.2f})")


def main() -> int:
    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "fixtures" / "tiny-llama"
    gguf_path = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "fixtures" / "tiny-llama.gguf"
    config, weights = check_directory(model_dir)
    tokenizer = check_tokenizer(model_dir, config)
    tokenizer_json = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    check_gguf(gguf_path, config, weights, tokenizer_json)
    logits = check_forward(config, weights, gguf_path, tokenizer)
    check_transformers(model_dir, weights, logits, tokenizer.encode(SAMPLE_IDS_TEXT).ids)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
