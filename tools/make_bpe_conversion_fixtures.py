#!/usr/bin/env python3
"""Small Hugging Face directories with real byte-level BPE tokenizers, for the HF → GGUF conversion tests.

llama.cpp's converter names a BPE pre-tokenizer by the sha256 of the token ids of one check text
(`get_vocab_base_pre`, its `chktxt`), so a tokenizer trained on our own text is refused by it. These
fixtures are therefore the real Llama 3 and Qwen2 tokenizers, rebuilt from the vocab-only GGUFs that
ship with llama.cpp (models/ggml-vocab-llama-bpe.gguf, models/ggml-vocab-qwen2.gguf: every token and
merge) with their published pre-tokenizer settings, and then pruned: only the 256 byte tokens, the
tokens and merges that the check text and the test texts below go through, and a few special tokens
are kept, each at its original id (so the vocabulary has holes, and config.json's vocab_size is the
real one). Every merge a text applies is kept, and a merge it does not apply never was the
lowest-ranked pair present, so the pruned tokenizer encodes those texts exactly as the full one does;
the script checks that with the `tokenizers` package (and that transformers' AutoTokenizer gives the
check-text hash llama.cpp knows) and fails otherwise.

Writes fixtures/hf-to-gguf/<name>/ (tokenizer.json, tokenizer_config.json, config.json,
generation_config.json); the weights come from fixtures/reference-models/<weights>/model.safetensors
(the tests and tools/hf_to_gguf_oracle.py copy them in):
  llama3-bpe    Llama 3.1 style: reference-models/llama3-rope (llama3 RoPE scaling), pre llama-bpe,
                BOS template, <|eot_id|> and header tokens, a chat template.
  qwen2-bpe     Qwen2 style: reference-models/qwen2-bias (q/k/v biases), pre qwen2, NFC, no BOS,
                <|im_start|>/<|im_end|>, a chat template.
  qwen3-bpe     only config.json: reference-models/qwen3-qknorm's (q_norm/k_norm, head_dim 16) with
                the Qwen2 vocabulary size and ids; the oracle pairs it with qwen2-bpe's tokenizer files.
                (`--configs-only` rewrites just these derived configs.)
Usage: .venv-ref/bin/python tools/make_bpe_conversion_fixtures.py   (deterministic; no randomness)
"""
from __future__ import annotations

import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA_DIR = os.environ.get("LLAMA_CPP_DIR", os.path.join(ROOT, ".llama.cpp"))
sys.path.insert(0, os.path.join(LLAMA_DIR, "llama.cpp", "gguf-py"))

import gguf  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors  # noqa: E402

# convert_hf_to_gguf.py's get_vocab_base_pre check text.
CHKTXT = '\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, \'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL'
TEXTS = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "It's John's book; they're here, we've seen it. DON'T SHOUT!",
    "def add(a, b):\n    return a + b  # 12345\n",
    "Numbers: 7 12 345 6789 3.14159 -42",
    "Accents: café naïve Zürich; CJK: 日本語 中文; emoji 😀👍",
    "system\nYou are a helpful assistant.\nuser\nHi there\nassistant\nHello! How can I help?",
]
LLAMA3_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LLAMA3_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
                   " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
QWEN2_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

FAMILIES = {
    "llama3-bpe": {
        "vocab": "llama-bpe", "weights": "llama3-rope", "regex": LLAMA3_REGEX, "ignore_merges": True, "nfc": False,
        "hash": "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5",
        "specials": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "bos": "<|begin_of_text|>",
        "tokenizer_config": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "clean_up_tokenization_spaces": True,
                             "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": LLAMA3_TEMPLATE},
        "config": {"vocab_size": 128256, "bos_token_id": 128000, "eos_token_id": [128001, 128009]},
        "generation": {"bos_token_id": 128000, "eos_token_id": [128001, 128009], "do_sample": True, "temperature": 0.6, "top_p": 0.9},
    },
    "qwen2-bpe": {
        "vocab": "qwen2", "weights": "qwen2-bias", "regex": QWEN2_REGEX, "ignore_merges": False, "nfc": True,
        "hash": "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea",
        "specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "bos": None,
        "tokenizer_config": {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "errors": "replace",
                             "clean_up_tokenization_spaces": False, "model_max_length": 32768,
                             "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": QWEN2_TEMPLATE},
        "config": {"vocab_size": 151936, "bos_token_id": 151643, "eos_token_id": 151645},
        "generation": {"bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643, "do_sample": True,
                       "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05},
    },
}


def fail(message):
    sys.exit(f"make_bpe_conversion_fixtures: {message}")


def build(vocab, merges, family, specials):
    """A tokenizers.Tokenizer with the family's published settings over vocab (token → id) and merges."""
    # The special tokens sit in the model's vocabulary at their ids, so that adding them below keeps those ids.
    model = models.BPE(vocab={**vocab, **specials}, merges=merges, ignore_merges=family["ignore_merges"])
    tok = Tokenizer(model)
    if family["nfc"]:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(family["regex"]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    byte_level = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    if family["bos"]:
        bos = family["bos"]
        template = processors.TemplateProcessing(single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                                                 special_tokens=[(bos, specials[bos])])
        tok.post_processor = processors.Sequence([byte_level, template])
    else:
        tok.post_processor = byte_level
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in sorted(specials, key=specials.get)])
    return tok


def bpe_trace(word, ranks, vocab, ignore_merges):
    """The merges BPE applies to one pre-token (byte-level string), and the resulting symbols."""
    if ignore_merges and word in vocab:
        return [], [word]
    symbols = list(word)
    used = []
    while len(symbols) > 1:
        best = None
        for i in range(len(symbols) - 1):
            r = ranks.get((symbols[i], symbols[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        r, _ = best
        pair = None
        merged = []
        i = 0
        # tokenizers merges every occurrence of the best pair, left to right
        while i < len(symbols):
            if i < len(symbols) - 1 and ranks.get((symbols[i], symbols[i + 1])) == r:
                merged.append(symbols[i] + symbols[i + 1])
                pair = (symbols[i], symbols[i + 1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        used.append(pair)
        symbols = merged
    return used, symbols


def make(name, family):
    reader = gguf.GGUFReader(os.path.join(LLAMA_DIR, "llama.cpp", "models", f"ggml-vocab-{family['vocab']}.gguf"))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ", 1)) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    specials = {t: i for i, t in enumerate(tokens) if types[i] == 3 and t in family["specials"]}
    vocab = {t: i for i, t in enumerate(tokens) if types[i] == 1}
    full = build(vocab, merges, family, specials)
    texts = [CHKTXT] + TEXTS
    expected = [full.encode(t).ids for t in texts]
    if hashlib.sha256(str(expected[0]).encode()).hexdigest() != family["hash"]:
        fail(f"{name}: the rebuilt full tokenizer does not give llama.cpp's check-text hash for {family['vocab']}")

    ranks = {pair: r for r, pair in enumerate(merges)}
    keep_tokens = set(gguf.vocab.bytes_to_unicode().values()) if hasattr(gguf.vocab, "bytes_to_unicode") else None
    if keep_tokens is None:
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        keep_tokens = {chr(c) for c in cs}
    keep_merges = set()
    for text in texts:
        normalized = full.normalizer.normalize_str(text) if full.normalizer else text
        # added tokens are split out first; the pre-tokenizer runs on the rest
        for word, _ in full.pre_tokenizer.pre_tokenize_str(normalized):
            used, symbols = bpe_trace(word, ranks, vocab, family["ignore_merges"])
            keep_merges.update(used)
            keep_tokens.update(symbols)
            for a, b in used:
                keep_tokens.update([a, b, a + b])
    pruned_vocab = {t: i for t, i in vocab.items() if t in keep_tokens}
    pruned_merges = [m for m in merges if m in keep_merges]
    pruned = build(pruned_vocab, pruned_merges, family, specials)
    got = [pruned.encode(t).ids for t in texts]
    if got != expected:
        bad = [texts[i][:40] for i in range(len(texts)) if got[i] != expected[i]]
        fail(f"{name}: the pruned tokenizer encodes {bad} differently from the full one")

    out = os.path.join(ROOT, "fixtures", "hf-to-gguf", name)
    os.makedirs(out, exist_ok=True)
    pruned.save(os.path.join(out, "tokenizer.json"), pretty=False)
    # the AutoTokenizer check the converter runs
    from transformers import AutoTokenizer
    config = dict(family["tokenizer_config"])
    config["added_tokens_decoder"] = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                               "single_word": False, "special": True} for t, i in sorted(specials.items(), key=lambda x: x[1])}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(ROOT, "fixtures", "reference-models", family["weights"], "config.json")) as f:
        model_config = json.load(f)
    model_config.update(family["config"])
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(model_config, f, indent=2)
        f.write("\n")
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(family["generation"], f, indent=2)
        f.write("\n")
    auto = AutoTokenizer.from_pretrained(out)
    ids = auto.encode(CHKTXT)
    digest = hashlib.sha256(str(ids).encode()).hexdigest()
    if digest != family["hash"]:
        fail(f"{name}: AutoTokenizer gives check-text hash {digest}, not {family['hash']}")
    print(f"{name}: {len(pruned_vocab)} tokens (ids to {max(pruned_vocab.values())}), {len(pruned_merges)} merges, "
          f"{len(specials)} special; check-text hash {digest[:12]}… = llama.cpp's '{family['vocab']}'")


# Families that reuse another's tokenizer: only their config.json is written.
DERIVED_CONFIGS = {
    "qwen3-bpe": ("qwen3-qknorm", {"vocab_size": 151936, "bos_token_id": 151643, "eos_token_id": 151645}),
}


def make_derived():
    for name, (weights, changes) in DERIVED_CONFIGS.items():
        with open(os.path.join(ROOT, "fixtures", "reference-models", weights, "config.json")) as f:
            config = json.load(f)
        config.update(changes)
        out = os.path.join(ROOT, "fixtures", "hf-to-gguf", name)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        print(f"{name}: config.json from reference-models/{weights}")


def main():
    if "--configs-only" not in sys.argv:
        for name, family in FAMILIES.items():
            make(name, family)
    make_derived()


if __name__ == "__main__":
    main()
