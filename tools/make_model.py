#!/usr/bin/env python3
"""Writes the small llama-shaped test model committed under fixtures/.

Outputs (all deterministic; run from anywhere):
  fixtures/tiny-llama/            Hugging Face model directory, as transformers' save_pretrained
                                  writes it for LlamaForCausalLM: config.json,
                                  generation_config.json, tokenizer.json, tokenizer_config.json,
                                  special_tokens_map.json, two BF16 safetensors shards and
                                  model.safetensors.index.json.
  fixtures/tiny-llama.gguf        The same weights as GGUF, written with gguf-py's GGUFWriter the
                                  way llama.cpp's convert_hf_to_gguf.py does with --outtype f16:
                                  llama metadata, tokenizer.ggml.*, GGUF tensor names, Q/K rows
                                  permuted, norms F32, matrices F16 (general.file_type 1).

Shapes: hidden 256, intermediate 768, 2 layers, 8 query heads and 4 key/value heads of head_dim 32,
vocabulary 1024 (a byte-level BPE trained here on TRAINING_TEXT), 2,098,432 parameters.

Weights: normal(0, 0.02) from numpy's default_rng(SEED) in the tensor order of
LlamaForCausalLM's state dict, rounded to BF16 (round to nearest even, ml_dtypes); norms are ones.
Outliers, so that quantizers meet what real checkpoints have: in every layer the input columns
OUTLIER_HIDDEN_COLUMNS of q/k/v/gate/up_proj are multiplied by OUTLIER_SCALE, and so are the input
columns OUTLIER_INTERMEDIATE_COLUMNS of down_proj (columns = the `in_features` axis, axis 1 of the
[out, in] weight).

Reference: /work/shared/reference/formats.md §1.5 (sharded index), §2.8–2.9 (GGUF llama keys,
tensor names, Q/K permutation).

Usage: .venv/bin/python tools/make_model.py   (after tools/setup.sh)
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file
import gguf
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "fixtures" / "tiny-llama"
GGUF_PATH = REPO / "fixtures" / "tiny-llama.gguf"

SEED = 20261126
MATRIX_STD = 0.02
OUTLIER_SCALE = 10.0
OUTLIER_HIDDEN_COLUMNS = [17, 101, 202]          # inputs of q/k/v/gate/up_proj (hidden size 256)
OUTLIER_INTERMEDIATE_COLUMNS = [5, 300, 613]     # inputs of down_proj (intermediate size 768)

HIDDEN = 256
INTERMEDIATE = 768
LAYERS = 2
HEADS = 8
KV_HEADS = 4
HEAD_DIM = 32
VOCAB = 1024
CONTEXT = 2048
RMS_EPS = 1e-5
ROPE_THETA = 10000.0

BOS_TOKEN = "<|begin_of_text|>"
EOS_TOKEN = "<|end_of_text|>"
BOS_ID = VOCAB - 2          # special tokens sit after the trained vocabulary, as in Llama 3
EOS_ID = VOCAB - 1

# transformers writes its own version into config.json; the key set below is the one that
# transformers 4.45's LlamaConfig.save_pretrained writes, so that version is recorded.
TRANSFORMERS_VERSION = "4.45.2"

# Two shards: greedy in state-dict order under this byte limit (huggingface_hub's
# split_state_dict_into_shards_factory). This limit puts the boundary inside layer 1 (after its
# v_proj), so a reader has to follow weight_map per tensor, not per layer.
MAX_SHARD_BYTES = 2_400_000

TRAINING_TEXT = """\
The river town woke slowly in the autumn of that year. Fog came down from the hills before dawn and
sat on the water until the ferry bell rang at seven. Fishermen pulled their boats onto the gravel,
counted the catch, and argued about the price of ice. The baker opened her shutters, the school bus
coughed twice and started, and somewhere a radio played an old song about trains.

Maria kept the lighthouse at the end of the northern pier. Her grandfather had kept it before her,
and his mother before him. Every evening she climbed one hundred and twelve steps, cleaned the lens
with a soft cloth, checked the oil, wound the clockwork that turned the great lamp, and wrote three
lines in the logbook: the weather, the ships she had seen, and one thing she had learned that day.

Some of the lines were practical. "Wind from the west, strong after noon; two cargo ships, one
sailing boat; the new battery lasts nine hours in the cold." Others were not. "Herons stand on one
leg to keep the other warm. The moon looks larger near the horizon, but it is the same size. My
neighbour's dog can open the gate by himself and is very proud of it."

In winter the storms arrived from the sea. Waves broke over the pier and the spray froze on the
railings. The harbour master closed the port, and the town waited behind thick windows, drinking
tea and mending nets. Children built forts from snow and old crates; their parents repaired roofs,
shovelled paths, and listened to the forecast on the radio, which was rarely right.

A computer stores numbers as patterns of bits. An integer with eight bits can hold values from zero
to two hundred and fifty-five, or from minus one hundred and twenty-eight to one hundred and
twenty-seven when it is signed. A floating point number keeps a sign, an exponent and a mantissa,
so it can represent very small and very large values with the same relative precision. Half
precision uses sixteen bits: one sign bit, five exponent bits and ten mantissa bits. The brain
float format also uses sixteen bits but keeps the eight exponent bits of single precision and only
seven mantissa bits, trading precision for range.

Quantization maps many values onto few. A weight matrix with millions of entries is divided into
blocks or channels; each block gets a scale, and every weight is divided by the scale, rounded to
the nearest small integer, and stored in four or eight bits. To read it back, the integer is
multiplied by the scale again. The error is the difference between the original and the restored
value. Large outliers make the scale large, so the small weights in the same block lose precision.
That is why careful tools choose the block size, keep sensitive layers in higher precision, and
measure the error on real inputs before they ship a model.

Recipe for a simple bread: mix five hundred grams of flour, ten grams of salt, seven grams of dried
yeast and three hundred and fifty millilitres of warm water. Knead for ten minutes until the dough
is smooth. Cover it and let it rise for an hour, or until it has doubled in size. Shape a loaf,
let it rise again for forty minutes, then bake at two hundred and twenty degrees for about thirty
minutes. The bread is done when it sounds hollow if you tap the bottom.

def mean(values):
    total = 0.0
    for value in values:
        total += value
    return total / len(values)

for (index, row) in matrix.enumerated() {
    let scale = row.map { abs($0) }.max() ?? 1.0
    print("row \\(index): scale = \\(scale)")
}

Questions people ask at the market: How much are the apples today? Do you have fresh eggs? Where
did these tomatoes grow? Can I pay by card? Is the cheese from the farm on the hill? What time do
you close on Sundays? Answers vary with the season, the weather and the mood of the seller.

Travel notes. Monday: train to the capital, three hours, a quiet carriage, a long conversation with
a retired engineer who had built bridges in twelve countries. Tuesday: museums, a storm in the
afternoon, soup in a small restaurant near the station. Wednesday: a walk along the canal, bicycles
everywhere, bookshops with cats sleeping in the windows. Thursday: the coast again, grey water,
white birds, the smell of salt and diesel. Friday: home, tired and happy, with a bag of postcards
that will never be sent.

Numbers and dates: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096.
The meeting is on 2026-11-26 at 15:30; the budget is 4,250.75 euros; the error fell from 0.031 to
0.0047 after the change (an 85% improvement). Version 2.1.0 was released on March 3rd.

Small words matter: the, a, an, of, to, in, on, at, by, for, with, from, and, or, but, if, then,
else, when, while, because, although, before, after, between, under, over, through, without.
Longer words appear less often: understanding, configuration, measurement, approximately,
representation, performance, throughput, memory, bandwidth, precision, accuracy, calibration,
distribution, experiment, observation, environment, infrastructure, responsibility.

At night the lamp turned and turned, sweeping its white arm across the dark water. Ships far out
at sea saw it blink every ten seconds and knew where the rocks were. Maria sat by the window with a
cup of coffee, listening to the wind, and wrote in the logbook: "Clear sky after midnight; one
fishing boat returning late; the light is steady. Today I learned that octopuses have three hearts
and blue blood, and that the oldest known bread was baked more than fourteen thousand years ago."
"""


def build_tokenizer() -> Tokenizer:
    """Byte-level BPE (GPT-2 pre-tokenizer regex), trained to VOCAB - 2 tokens, plus BOS/EOS."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - 2,
        min_frequency=1,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(TRAINING_TEXT.splitlines(keepends=True), trainer=trainer)
    trained = tokenizer.get_vocab_size(with_added_tokens=False)
    if trained != VOCAB - 2:
        sys.exit(f"make_model: BPE training produced {trained} tokens, expected {VOCAB - 2}; "
                 "lengthen TRAINING_TEXT")
    tokenizer.add_special_tokens([
        AddedToken(BOS_TOKEN, special=True, normalized=False),
        AddedToken(EOS_TOKEN, special=True, normalized=False),
    ])
    if tokenizer.token_to_id(BOS_TOKEN) != BOS_ID or tokenizer.token_to_id(EOS_TOKEN) != EOS_ID:
        sys.exit("make_model: special tokens did not get the expected ids")
    # BOS prepended on encode, as Llama tokenizers do (gguf-py reads add_bos_token from this).
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A",
        pair=f"{BOS_TOKEN} $A $B:1",
        special_tokens=[(BOS_TOKEN, BOS_ID)],
    )
    return tokenizer


def dump_json(path: Path, value: object) -> None:
    """JSON the way transformers writes its config files: indent 2, sorted keys, final newline."""
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")


def config_dict() -> dict:
    """config.json with the keys transformers 4.45 writes for LlamaForCausalLM."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": CONTEXT,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "pretraining_tp": 1,
        "rms_norm_eps": RMS_EPS,
        "rope_scaling": None,
        "rope_theta": ROPE_THETA,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": VOCAB,
    }


def write_tokenizer_files(tokenizer: Tokenizer, directory: Path) -> None:
    tokenizer.save(str(directory / "tokenizer.json"))
    special = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    dump_json(directory / "tokenizer_config.json", {
        "added_tokens_decoder": {
            str(BOS_ID): {"content": BOS_TOKEN, **special, "special": True},
            str(EOS_ID): {"content": EOS_TOKEN, **special, "special": True},
        },
        "bos_token": BOS_TOKEN,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS_TOKEN,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": CONTEXT,
        "tokenizer_class": "PreTrainedTokenizerFast",
    })
    dump_json(directory / "special_tokens_map.json", {
        "bos_token": {"content": BOS_TOKEN, **special},
        "eos_token": {"content": EOS_TOKEN, **special},
    })


def tensor_shapes() -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor of LlamaForCausalLM, in its state-dict order, with HF [out, in] shapes."""
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        shapes += [
            (p + "self_attn.q_proj.weight", (HEADS * HEAD_DIM, HIDDEN)),
            (p + "self_attn.k_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN)),
            (p + "self_attn.v_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN)),
            (p + "self_attn.o_proj.weight", (HIDDEN, HEADS * HEAD_DIM)),
            (p + "mlp.gate_proj.weight", (INTERMEDIATE, HIDDEN)),
            (p + "mlp.up_proj.weight", (INTERMEDIATE, HIDDEN)),
            (p + "mlp.down_proj.weight", (HIDDEN, INTERMEDIATE)),
            (p + "input_layernorm.weight", (HIDDEN,)),
            (p + "post_attention_layernorm.weight", (HIDDEN,)),
        ]
    shapes += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]
    return shapes


def make_weights() -> dict[str, np.ndarray]:
    """BF16 weights (ml_dtypes.bfloat16 arrays), insertion-ordered like the state dict."""
    rng = np.random.default_rng(SEED)
    weights: dict[str, np.ndarray] = {}
    for name, shape in tensor_shapes():
        if len(shape) == 1:
            values = np.ones(shape, dtype=np.float32)
        else:
            values = rng.normal(0.0, MATRIX_STD, size=shape).astype(np.float32)
            if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight",
                              "gate_proj.weight", "up_proj.weight")):
                values[:, OUTLIER_HIDDEN_COLUMNS] *= OUTLIER_SCALE
            elif name.endswith("down_proj.weight"):
                values[:, OUTLIER_INTERMEDIATE_COLUMNS] *= OUTLIER_SCALE
        weights[name] = values.astype(ml_dtypes.bfloat16)
    return weights


def write_shards(weights: dict[str, np.ndarray], directory: Path) -> None:
    # Greedy split in key order (huggingface_hub split_state_dict_into_shards_factory).
    shards: list[dict[str, np.ndarray]] = [{}]
    current = 0
    for name, array in weights.items():
        if current + array.nbytes > MAX_SHARD_BYTES and shards[-1]:
            shards.append({})
            current = 0
        shards[-1][name] = array
        current += array.nbytes
    if len(shards) != 2:
        sys.exit(f"make_model: expected 2 shards, got {len(shards)}; adjust MAX_SHARD_BYTES")
    weight_map: dict[str, str] = {}
    for index, shard in enumerate(shards, start=1):
        file_name = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(directory / file_name), metadata={"format": "pt"})
        weight_map.update({name: file_name for name in shard})
    dump_json(directory / "model.safetensors.index.json", {
        "metadata": {
            "total_parameters": sum(int(a.size) for a in weights.values()),
            "total_size": sum(int(a.nbytes) for a in weights.values()),
        },
        "weight_map": weight_map,
    })


def permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """HF rotate-half row order → llama.cpp interleaved order (convert_hf_to_gguf LlamaModel.permute)."""
    rows = weights.shape[0]
    return (weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def gguf_name(hf_name: str) -> str:
    """formats.md §2.9 table."""
    fixed = {"model.embed_tokens.weight": "token_embd.weight",
             "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf_name in fixed:
        return fixed[hf_name]
    _, _, layer, rest = hf_name.split(".", 3)
    module = rest.removesuffix(".weight")
    return f"blk.{layer}.{GGUF_NAMES[module]}.weight"


def gguf_vocab(tokenizer: Tokenizer) -> tuple[list[str], list[int]]:
    """Tokens and types as convert_hf_to_gguf's get_vocab_base makes them for a GPT-2 style BPE."""
    reverse = {i: t for t, i in tokenizer.get_vocab(with_added_tokens=True).items()}
    added = tokenizer.get_added_tokens_decoder()
    tokens: list[str] = []
    types: list[int] = []
    for i in range(VOCAB):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def write_gguf(weights: dict[str, np.ndarray], tokenizer: Tokenizer, path: Path) -> None:
    writer = gguf.GGUFWriter(path=None, arch="llama")
    total_params = sum(int(a.size) for a in weights.values())

    # Tensors: BF16 → F32 (exact) → F16 (round to nearest even) for matrices; F32 for norms.
    for hf_name, array in weights.items():
        data = array.astype(np.float32)
        if hf_name.endswith("q_proj.weight"):
            data = permute(data, HEADS)
        elif hf_name.endswith("k_proj.weight"):
            data = permute(data, KV_HEADS)
        name = gguf_name(hf_name)
        if data.ndim <= 1 or name.endswith("_norm.weight"):
            writer.add_tensor(name, data)
        else:
            writer.add_tensor(name, data.astype(np.float16))

    # Metadata, in the order convert_hf_to_gguf.py adds it (ModelBase.prepare_metadata).
    metadata = gguf.Metadata.load(None, MODEL_DIR, None, total_params)
    metadata.name = metadata.name or MODEL_DIR.name
    metadata.size_label = gguf.size_label(total_params, 0, 0, 0)
    writer.add_type(gguf.GGUFType.MODEL)
    metadata.set_gguf_meta_model(writer)
    writer.add_block_count(LAYERS)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(INTERMEDIATE)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(ROPE_THETA)
    writer.add_layer_norm_rms_eps(RMS_EPS)
    writer.add_key_length(HEAD_DIM)
    writer.add_value_length(HEAD_DIM)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_vocab_size(VOCAB)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # Tokenizer (convert_hf_to_gguf TextModel._set_vocab_gpt2). The pre-tokenizer is GPT-2's regex,
    # which llama.cpp calls "gpt-2" (llama-vocab.cpp maps it to LLAMA_VOCAB_PRE_TYPE_GPT2).
    tokens, types = gguf_vocab(tokenizer)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special_vocab = gguf.SpecialVocab(MODEL_DIR, load_merges=True, n_vocab=VOCAB)
    special_vocab.add_to_gguf(writer, quiet=True)

    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> None:
    if MODEL_DIR.exists():
        shutil.rmtree(MODEL_DIR)
    MODEL_DIR.mkdir(parents=True)

    tokenizer = build_tokenizer()
    write_tokenizer_files(tokenizer, MODEL_DIR)
    dump_json(MODEL_DIR / "config.json", config_dict())
    dump_json(MODEL_DIR / "generation_config.json", {
        "_from_model_config": True,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "transformers_version": TRANSFORMERS_VERSION,
    })
    weights = make_weights()
    write_shards(weights, MODEL_DIR)
    write_gguf(weights, tokenizer, GGUF_PATH)

    for path in sorted([*MODEL_DIR.iterdir(), GGUF_PATH]):
        print(f"{path.relative_to(REPO)}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
