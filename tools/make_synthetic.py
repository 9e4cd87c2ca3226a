#!/usr/bin/env python3
"""Writes a llama-shaped synthetic checkpoint of a requested size, streaming, for benchmarks.

    .venv/bin/python tools/make_synthetic.py --gigabytes 30 --format safetensors OUT_DIR
    .venv/bin/python tools/make_synthetic.py --gigabytes 1 --format gguf OUT.gguf [--check]

A benchmark input, not a test fixture: its purpose is to show that quantize's time and peak
memory behave on checkpoints larger than this machine's RAM. Memory use is flat whatever the
size: the headers are computed from the shapes first, then tensor data is written in chunks of at
most --chunk-megabytes (default 64 MB) from a fixed pool of random values (below), so the model is
never in memory.

Formats
  safetensors  A Hugging Face model directory as transformers' save_pretrained writes it for a
               LlamaForCausalLM: config.json, generation_config.json and either model.safetensors
               or, above 5 GB, shards model-0000i-of-0000n.safetensors (greedy in state-dict
               order, 5,000,000,000-byte limit, as huggingface_hub splits) with
               model.safetensors.index.json. Each shard's header is written by hand per the
               safetensors spec (u64 length, JSON with __metadata__ {"format": "pt"}, tensors
               laid out sorted by name as the Rust serializer does for one dtype, padded with
               spaces to a multiple of 8). Default dtype BF16.
  gguf         One GGUF v3 file as llama.cpp's convert_hf_to_gguf.py --outtype f16 lays it out:
               llama metadata, a placeholder SentencePiece-style vocabulary, GGUF tensor names
               (token_embd, blk.N.attn_q, ...), norms F32 and matrices F16 (general.file_type 1).
               The header (KV pairs and tensor infos) is written by gguf-py's GGUFWriter
               (add_tensor_info + write_header_to_file/write_kv_data_to_file/
               write_ti_data_to_file, which need no data); the tensor data is then streamed into
               the writer's file by this script, padded to the 32-byte alignment exactly as
               GGUFWriter.write_tensor_data would (that method takes a whole array per tensor,
               262 MB for token_embd, so it is not used). Default dtype F16.

Shapes: Llama-3-8B-like (hidden 4096, intermediate 14336, 32 query heads and 8 key/value heads of
head_dim 128, vocabulary 32000, untied lm_head) with as many layers as the size needs: the result
is at least --gigabytes × 10^9 bytes of tensor data and at most one layer (436 MB) more. Sizes too
small for even one full-width layer divide hidden, intermediate, heads and vocabulary by a power
of two (head_dim stays 128), so that e.g. --gigabytes 0.05 gives a quick test input. Every
matrix row length is a multiple of 256, so every GGUF block type applies.

Values: matrices are normal(0, 0.02) rounded to the output dtype (ml_dtypes for BF16), norms are
ones. To keep generation cheap (it would otherwise cost more than the disk write), a pool of
POOL_MEGABYTES of random values is drawn once from numpy's default_rng(--seed) and every chunk is
a slice of that pool starting at an offset drawn from the same generator, so data is not
periodic along rows or tensors; --fresh draws new values for every chunk instead (slower). The
output is deterministic for a given --seed, size, format and dtype.

The output is written under OUT.partial and renamed to OUT when complete, so an interrupted run
never leaves something that looks finished. Existing outputs are never overwritten.
Prints the write rate (bytes of file per second) on stderr at the end.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np

GB = 1_000_000_000
MAX_SHARD_SIZE = 5_000_000_000          # huggingface_hub / transformers default max_shard_size
POOL_MEGABYTES = 96                     # random values drawn once; chunks are slices of it
MATRIX_STD = 0.02
GGUF_ALIGNMENT = 32

FULL = dict(hidden=4096, intermediate=14336, heads=32, kv_heads=8, vocab=32000)
HEAD_DIM = 128

DTYPES = {
    "bf16": (ml_dtypes.bfloat16, "BF16", 30, 2),   # numpy type, safetensors name, ggml type, size
    "f16": (np.float16, "F16", 1, 2),
    "f32": (np.float32, "F32", 0, 4),
}


@dataclass(frozen=True)
class Shapes:
    """Model dimensions chosen for a requested size."""
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    layers: int

    def hf_tensors(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, numpy shape) in LlamaForCausalLM state-dict order."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * HEAD_DIM
        out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (self.vocab, h))]
        for n in range(self.layers):
            p = f"model.layers.{n}."
            out += [
                (p + "self_attn.q_proj.weight", (self.heads * HEAD_DIM, h)),
                (p + "self_attn.k_proj.weight", (kv, h)),
                (p + "self_attn.v_proj.weight", (kv, h)),
                (p + "self_attn.o_proj.weight", (h, self.heads * HEAD_DIM)),
                (p + "mlp.gate_proj.weight", (i, h)),
                (p + "mlp.up_proj.weight", (i, h)),
                (p + "mlp.down_proj.weight", (h, i)),
                (p + "input_layernorm.weight", (h,)),
                (p + "post_attention_layernorm.weight", (h,)),
            ]
        out += [("model.norm.weight", (h,)), ("lm_head.weight", (self.vocab, h))]
        return out

    def gguf_tensors(self) -> list[tuple[str, tuple[int, ...]]]:
        """(GGUF name, numpy shape) in convert_hf_to_gguf.py's order (HF order, renamed)."""
        rename = {
            "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
            "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
            "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
            "post_attention_layernorm": "ffn_norm",
        }
        out = []
        for name, shape in self.hf_tensors():
            if name == "model.embed_tokens.weight":
                g = "token_embd.weight"
            elif name == "model.norm.weight":
                g = "output_norm.weight"
            elif name == "lm_head.weight":
                g = "output.weight"
            else:
                _, _, n, rest = name.split(".", 3)
                g = f"blk.{n}.{rename[rest.removesuffix('.weight')]}.weight"
            out.append((g, shape))
        return out


def choose_shapes(target_bytes: int, element_size: int) -> Shapes:
    """Widest shapes with at least one layer within the target; then layers to reach it."""
    for shift in range(0, 6):
        f = 1 << shift
        heads = FULL["heads"] // f
        base = Shapes(
            hidden=FULL["hidden"] // f, intermediate=FULL["intermediate"] // f, heads=heads,
            kv_heads=max(1, heads // 4), vocab=FULL["vocab"] // f, layers=0,
        )
        fixed = tensor_bytes(base, element_size)
        per_layer = tensor_bytes(Shapes(**{**base.__dict__, "layers": 1}), element_size) - fixed
        if fixed + per_layer <= target_bytes or shift == 5:
            layers = max(1, math.ceil((target_bytes - fixed) / per_layer))
            return Shapes(**{**base.__dict__, "layers": layers})
    raise AssertionError("unreachable")


def tensor_bytes(shapes: Shapes, element_size: int) -> int:
    return sum(math.prod(s) * element_size for _, s in shapes.hf_tensors())


class Source:
    """Yields the bytes of one tensor in chunks: random matrices or ones for norms."""

    def __init__(self, dtype: str, seed: int, chunk_bytes: int, fresh: bool) -> None:
        self.np_type, _, _, self.size = DTYPES[dtype]
        self.rng = np.random.default_rng(seed)
        self.fresh = fresh
        self.chunk_elements = max(1, chunk_bytes // self.size)
        pool_elements = POOL_MEGABYTES * 1_000_000 // self.size
        self.pool = None if fresh else self._draw(max(pool_elements, self.chunk_elements * 3 // 2))

    def _draw(self, n: int) -> np.ndarray:
        """n values normal(0, 0.02) in the output dtype, drawn in pieces to bound float32 scratch."""
        out = np.empty(n, dtype=self.np_type)
        piece = 4_000_000
        for start in range(0, n, piece):
            values = self.rng.standard_normal(min(piece, n - start), dtype=np.float32)
            values *= np.float32(MATRIX_STD)
            out[start:start + values.size] = values    # rounds to nearest even (ml_dtypes for bf16)
        return out

    def chunks(self, elements: int, ones: bool, element_type=None):
        np_type = element_type or self.np_type
        if ones:
            yield np.ones(elements, dtype=np_type)
            return
        done = 0
        while done < elements:
            n = min(self.chunk_elements, elements - done)
            if self.fresh:
                yield self._draw(n)
            else:
                start = int(self.rng.integers(0, self.pool.size - n + 1))
                yield self.pool[start:start + n]
            done += n


def write_all(f, array: np.ndarray) -> None:
    view = memoryview(array.view(np.uint8))
    while view:
        written = f.write(view)
        view = view[written:]


# MARK: safetensors

def shard_plan(tensors, element_size: int) -> list[list[tuple[str, tuple[int, ...]]]]:
    """Greedy split in key order as huggingface_hub's split_state_dict_into_shards_factory."""
    shards: list[list] = []
    current: list = []
    current_size = 0
    for name, shape in tensors:
        size = math.prod(shape) * element_size
        if size > MAX_SHARD_SIZE:
            shards.append([(name, shape)])
            continue
        if current and current_size + size > MAX_SHARD_SIZE:
            shards.append(current)
            current, current_size = [], 0
        current.append((name, shape))
        current_size += size
    if current:
        shards.append(current)
    return shards


def safetensors_header(tensors, st_dtype: str, element_size: int) -> tuple[bytes, list]:
    """Header bytes (u64 length + padded JSON) and the data layout, sorted by name."""
    layout = sorted(tensors)
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in layout:
        size = math.prod(shape) * element_size
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, layout


def config_json(s: Shapes, dtype: str) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "hidden_size": s.hidden,
        "initializer_range": MATRIX_STD,
        "intermediate_size": s.intermediate,
        "max_position_embeddings": 8192,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": s.heads,
        "num_hidden_layers": s.layers,
        "num_key_value_heads": s.kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}[dtype],
        "transformers_version": "4.46.0",
        "use_cache": True,
        "vocab_size": s.vocab,
    }


def write_safetensors(out: Path, s: Shapes, dtype: str, source: Source, progress) -> None:
    _, st_dtype, _, size = DTYPES[dtype]
    out.mkdir()
    (out / "config.json").write_text(json.dumps(config_json(s, dtype), indent=2, sort_keys=True) + "\n")
    (out / "generation_config.json").write_text(json.dumps(
        {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2,
         "transformers_version": "4.46.0"}, indent=2, sort_keys=True) + "\n")
    tensors = s.hf_tensors()
    shards = shard_plan(tensors, size)
    names = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    weight_map = {}
    for shard, file_name in zip(shards, names):
        header, layout = safetensors_header(shard, st_dtype, size)
        with open(out / file_name, "wb") as f:
            f.write(header)
            for name, shape in layout:
                weight_map[name] = file_name
                for chunk in source.chunks(math.prod(shape), ones=len(shape) == 1):
                    write_all(f, chunk)
                    progress(chunk.nbytes)
    if len(shards) > 1:
        index = {
            "metadata": {"total_parameters": sum(math.prod(sh) for _, sh in tensors),
                         "total_size": sum(math.prod(sh) * size for _, sh in tensors)},
            "weight_map": weight_map,
        }
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


# MARK: GGUF

def write_gguf(out: Path, s: Shapes, dtype: str, source: Source, progress) -> None:
    import gguf

    np_type, _, ggml_type, size = DTYPES[dtype]
    w = gguf.GGUFWriter(out, "llama")
    w.add_name(f"synthetic-llama-{s.layers}L")
    w.add_context_length(8192)
    w.add_embedding_length(s.hidden)
    w.add_block_count(s.layers)
    w.add_feed_forward_length(s.intermediate)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_head_count(s.heads)
    w.add_head_count_kv(s.kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(500000.0)
    w.add_vocab_size(s.vocab)
    w.add_file_type({"f32": 0, "f16": 1, "bf16": 32}[dtype])
    # A placeholder SentencePiece vocabulary so the metadata is as large as a real model's.
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"tok{i}" for i in range(len(tokens), s.vocab)]
    tokens = tokens[:s.vocab]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (len(tokens) - 259) if len(tokens) >= 259
                      else [1] * len(tokens))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    layout = []
    for name, shape in s.gguf_tensors():
        is_norm = len(shape) == 1          # the converter keeps 1-D tensors (norms) in F32
        t_type = np.float32 if is_norm else np_type
        t_size = 4 if is_norm else size
        raw = gguf.GGMLQuantizationType(0 if is_norm else ggml_type)
        nbytes = math.prod(shape) * t_size
        # With raw_dtype given and a non-uint8 tensor_dtype, GGUFWriter takes the shape as is.
        w.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=raw)
        layout.append((name, shape, is_norm, t_type, nbytes))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None and len(w.fout) == 1
    f = w.fout[0]
    for name, shape, is_norm, t_type, nbytes in layout:
        w.write_padding(f, f.tell())
        for chunk in source.chunks(math.prod(shape), ones=is_norm, element_type=t_type):
            write_all(f, chunk)
            progress(chunk.nbytes)
        w.write_padding(f, nbytes)
    w.close()


# MARK: checks

def check(out: Path, fmt: str, s: Shapes, dtype: str) -> None:
    """Opens the result with the reference package and compares names, shapes and a few values."""
    if fmt == "safetensors":
        from safetensors import safe_open
        files = sorted(out.glob("*.safetensors"))
        found = {}
        for file in files:
            with safe_open(file, framework="numpy") as st:
                assert st.metadata() == {"format": "pt"}, st.metadata()
                for key in st.keys():
                    sl = st.get_slice(key)
                    found[key] = tuple(sl.get_shape())
                    assert sl.get_dtype() == DTYPES[dtype][1], (key, sl.get_dtype())
                    if len(found[key]) == 2:
                        row = np.asarray(sl[0:1], dtype=np.float32)
                        assert 0.005 < float(np.std(row)) < 0.05, (key, float(np.std(row)))
                    else:
                        assert np.all(np.asarray(sl[:], dtype=np.float32) == 1.0), key
        expected = dict(s.hf_tensors())
        assert found == expected, "tensor names or shapes differ"
        if len(files) > 1:
            index = json.loads((out / "model.safetensors.index.json").read_text())
            assert set(index["weight_map"]) == set(expected)
            for key, file in index["weight_map"].items():
                with safe_open(out / file, framework="numpy") as st:
                    assert key in st.keys(), (key, file)
        config = json.loads((out / "config.json").read_text())
        assert config["num_hidden_layers"] == s.layers
        print(f"check: safetensors opened {len(found)} tensors in {len(files)} file(s); shapes, "
              f"dtype, metadata and value spread as expected", file=sys.stderr)
    else:
        import gguf
        r = gguf.GGUFReader(out)
        expected = dict(s.gguf_tensors())
        found = {}
        for t in r.tensors:
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            found[t.name] = shape
            want_type = 0 if len(shape) == 1 else DTYPES[dtype][2]
            assert int(t.tensor_type) == want_type, (t.name, t.tensor_type)
            values = np.asarray(t.data).reshape(-1)[:4096]
            if dtype == "bf16" and len(shape) > 1:
                values = values.view(ml_dtypes.bfloat16)
            values = values.astype(np.float32)
            if len(shape) == 1:
                assert np.all(values == 1.0), t.name
            else:
                assert 0.005 < float(np.std(values)) < 0.05, (t.name, float(np.std(values)))
        assert found == expected, "tensor names or shapes differ"
        arch = r.fields["general.architecture"]
        assert bytes(arch.parts[arch.data[0]]).decode() == "llama"
        blocks = r.fields["llama.block_count"]
        assert int(blocks.parts[blocks.data[0]][0]) == s.layers
        print(f"check: gguf-py GGUFReader read {len(found)} tensors; names, shapes, types, "
              f"metadata and values as expected", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="output directory (safetensors) or .gguf file")
    parser.add_argument("--gigabytes", type=float, required=True,
                        help="minimum tensor data size in GB (10^9 bytes), e.g. 0.05, 1 or 30")
    parser.add_argument("--format", choices=["safetensors", "gguf"], required=True)
    parser.add_argument("--dtype", choices=sorted(DTYPES),
                        help="matrix dtype (default bf16 for safetensors, f16 for gguf)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--chunk-megabytes", type=int, default=64)
    parser.add_argument("--fresh", action="store_true",
                        help="draw new random values for every chunk instead of slicing a pool")
    parser.add_argument("--check", action="store_true",
                        help="open the result with safetensors / gguf-py's GGUFReader afterwards")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args()

    dtype = args.dtype or ("bf16" if args.format == "safetensors" else "f16")
    if args.gigabytes <= 0:
        parser.error("--gigabytes must be positive")
    if args.chunk_megabytes <= 0:
        parser.error("--chunk-megabytes must be positive")
    out: Path = args.output
    partial = out.with_name(out.name + ".partial")
    if out.exists() or out.is_symlink():
        print(f"error: {out} exists; this script never overwrites. Remove it or choose another path.",
              file=sys.stderr)
        return 1
    if not out.parent.is_dir():
        print(f"error: the folder {out.parent} does not exist; create it first.", file=sys.stderr)
        return 1
    if partial.exists():   # left over from an interrupted run of this script
        shutil.rmtree(partial) if partial.is_dir() else partial.unlink()

    s = choose_shapes(int(args.gigabytes * GB), DTYPES[dtype][3])
    total = tensor_bytes(s, DTYPES[dtype][3])
    if args.format == "gguf":   # norms are F32 in GGUF whatever the matrix dtype
        total += sum(math.prod(sh) * (4 - DTYPES[dtype][3]) for _, sh in s.hf_tensors() if len(sh) == 1)
    free = shutil.disk_usage(out.parent).free
    if total + 64 * 2**20 > free:
        print(f"error: {total / GB:.2f} GB needed but only {free / GB:.2f} GB free in {out.parent}.",
              file=sys.stderr)
        return 1
    print(f"make_synthetic: {args.format} {dtype}, hidden {s.hidden}, intermediate {s.intermediate}, "
          f"heads {s.heads}/{s.kv_heads}, vocab {s.vocab}, {s.layers} layers, "
          f"{total / GB:.3f} GB of tensor data -> {out}", file=sys.stderr)

    source = Source(dtype, args.seed, args.chunk_megabytes * 1_000_000, args.fresh)
    start = time.monotonic()
    state = {"done": 0, "last": start}

    def progress(n: int) -> None:
        state["done"] += n
        now = time.monotonic()
        if not args.quiet and now - state["last"] >= 5:
            state["last"] = now
            print(f"  {state['done'] / GB:.2f} / {total / GB:.2f} GB, "
                  f"{state['done'] / GB / (now - start):.2f} GB/s", file=sys.stderr)

    try:
        if args.format == "safetensors":
            write_safetensors(partial, s, dtype, source, progress)
        else:
            write_gguf(partial, s, dtype, source, progress)
    except BaseException:
        if partial.exists():
            shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
        raise
    elapsed = time.monotonic() - start
    file_bytes = (sum(p.stat().st_size for p in partial.iterdir()) if partial.is_dir()
                  else partial.stat().st_size)
    partial.rename(out)
    print(f"make_synthetic: wrote {file_bytes / GB:.3f} GB in {elapsed:.2f} s, "
          f"{file_bytes / GB / elapsed:.2f} GB/s (page cache; not synced)", file=sys.stderr)
    if args.check:
        check(out, args.format, s, dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
