#!/usr/bin/env python3
"""Small tokenizers and their reference token ids, for the Swift tokenizers' token-for-token test.

Writes fixtures/tokenizers/ (deterministic for the same package versions):
  sp-unigram/tokenizer.model   SentencePiece unigram, nmt_nfkc normalizer (precompiled charsmap),
                               remove_extra_whitespaces, no byte fallback (unknown characters → <unk>),
                               user-defined symbol <sep>.
  sp-bpe/tokenizer.model       SentencePiece BPE, identity normalizer, spaces kept as written
                               (remove_extra_whitespaces false), byte fallback (<0x00>…<0xFF>).
  sp-unigram-bytes/tokenizer.model
                               SentencePiece unigram, identity normalizer (no charsmap) with
                               remove_extra_whitespaces, byte fallback, user-defined <sep>.
  bpe-llama3/tokenizer.json    byte-level BPE trained with the `tokenizers` package with Llama 3's
                               settings: Split(Llama 3 regex, Isolated) + ByteLevel(use_regex false),
                               ignore_merges, <|begin_of_text|>/<|end_of_text|> special, BOS template.
  bpe-qwen2/tokenizer.json     the same with Qwen2's settings: NFC normalizer, Split(Qwen2 regex),
                               <|endoftext|>, <|im_start|>, <|im_end|> special, no BOS.
  *.gguf                       each one's GGUF twin as convert_hf_to_gguf.py writes the vocabulary
                               (gguf-py GGUFWriter, tokenizer.ggml.* plus the minimal llama hparams
                               llama.cpp's vocab-only loader reads; no tensors): `llama` for the
                               SentencePiece models, `gpt2` with pre llama-bpe / qwen2 for the BPEs.
  pretokenize.json             the pre-tokenizer regexes alone: GPT-2, Llama 3 and Qwen2 regexes run
                               by `tokenizers` (Split, Isolated) on the test texts and on 400 random
                               strings (fixed seed) drawn from letters, marks, digits (ASCII and
                               others), every kind of white space, apostrophe contractions in both
                               cases, punctuation, CJK and emoji — the pieces each regex returns.
  texts.json                   the test texts (then the first 120 random strings of pretokenize.json;
                               llama-tokenize runs on the first 30 of those, null after): English, code, digits, whitespace runs, tabs and
                               newlines, accents, ligatures and full-width forms (NFKC), CJK, emoji,
                               special tokens, empty and space-only strings.
  trained-llama.gguf           the GGUF twin of fixtures/trained-llama/tokenizer.model (tools/train_fixture.py),
                               when that fixture is present.
  expected.json                for every tokenizer (with `prefix`, the ids the reference puts in front
                               of a text when asked to add special tokens: BOS or nothing) — these five, fixtures/tiny-llama (tokenizer.json)
                               and fixtures/tiny-llama.gguf — and every text, the ids the reference
                               library produces (fixtures/trained-llama's tokenizer.json and
                               tokenizer.model included): `sentencepiece` (SentencePieceProcessor.encode) for
                               tokenizer.model, `tokenizers` (Tokenizer.encode, add_special_tokens
                               false) for tokenizer.json, and llama.cpp's llama-tokenize (--ids --no-bos,
                               with and without --no-parse-special) for the GGUFs when it is built
                               (null for a text llama-tokenize aborts on: a character that a
                               vocabulary without byte tokens cannot encode).

Training text: every file in /usr/share/common-licenses plus Python's LICENSE.txt (text that ships
with Debian and Python), plus the test texts themselves so that accented, CJK and emoji pieces exist.
Vocabulary 1500 pieces each, one thread, fixed seeds.

llama-tokenize is looked up in $LLAMA_CPP_BIN, then <repo>/.llama.cpp/**/bin; without it the GGUF
rows of expected.json are left out (the Swift test then checks only the Hugging Face references)
and the script says so.

Usage: .venv-ref/bin/python tools/compare_tokenizers.py   (after tools/setup_reference.sh)
"""
from __future__ import annotations

import glob
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import gguf
import sentencepiece as spm
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "fixtures" / "tokenizers"
VOCAB_SIZE = 1500
RANDOM_TEXTS = 120             # seeded random strings (the first of pretokenize.json's) added to the texts
RANDOM_TEXTS_LLAMA_CPP = 30    # of those, how many llama-tokenize runs on (one process per text)
SEED = 20261201

LLAMA3_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

TEXTS = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "It's John's book; they're here, we've seen it, I'm sure you'll see, he'd go. DON'T SHOUT, IT'S LOUD, We'Ll See.",
    "def tokenize(text: str) -> list[int]:\n    return [ord(c) for c in text if c.isalnum()]  # keep letters\n\n"
    "if __name__ == \"__main__\":\n\tprint(tokenize('abc'))\n",
    "Numbers: 0 7 12 345 6789 123456789 3.14159 -42 1,000,000 2026-12-01 0x1F 1e-5 v1.2.3",
    "Whitespace:   three spaces,     five spaces,\n\n\nthree newlines\r\nCRLF\ttab\t\ttwo tabs \t mixed   \n  trailing   ",
    "   leading spaces",
    "trailing spaces    ",
    "Accents: café naïve résumé Zürich Ångström façade São Paulo Ελληνικά русский текст",
    "Decomposed: cafe\u0301 Ame\u0301lie (combining acute); ligature \ufb01ne \ufb02ow; full-width \uff21\uff22\uff23\uff11\uff12\uff13; \u2460\u2461 circled; \u00bd half",
    "Quotes and dashes: “double” ‘single’ «guillemets» — em dash – en dash … ellipsis",
    "CJK: 日本語のテキストです。中文文本，简体字。한국어 텍스트입니다。",
    "Emoji: 😀 👍🏽 👨‍👩‍👧 🇫🇷 ❤️ 🤖!",
    "Special: <s> </s> <sep> <|begin_of_text|>Hi<|end_of_text|> <|im_start|>user\nHello<|im_end|> <|endoftext|>",
    "<s>Starts with a special token</s> and <sep>ends",
    "GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007\n\n Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>",
    "",
    " ",
    "\n",
    "a",
    "  \n\t  ",
]


GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
POOL = (list("abcXYZéßøÆ") + ["\u0301", "\u0308"] + list("0123456789") + ["\u0663", "\u00b2", "\u2167", "\u00bd"]
        + [" ", " ", " ", "\t", "\n", "\r", "\u000b", "\u000c", "\u00a0", "\u2028", "\u3000", "\u0085"]
        + ["'s", "'S", "'re", "'RE", "'ll", "'Ll", "'ve", "'d", "'M", "'t", "'x", "'"]
        + list(".,;:!?-_()[]{}<>/\\\"#$%&*+=@^`|~") + list("日本語中文한국") + ["😀", "👍🏽", "🇫🇷", "\u200d"])


def random_strings(count: int) -> list[str]:
    import random
    generator = random.Random(SEED)
    return ["".join(generator.choice(POOL) for _ in range(generator.randint(0, 24))) for _ in range(count)]


def corpus() -> str:
    parts = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path):
            parts.append(Path(path).read_text(encoding="utf-8", errors="replace"))
    for candidate in [Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "LICENSE.txt",
                      Path("/usr/lib/python3.11/LICENSE.txt")]:
        if candidate.exists():
            parts.append(candidate.read_text(encoding="utf-8", errors="replace"))
            break
    parts.extend(TEXTS * 3)
    return "\n".join(parts)


def train_sentencepiece(name: str, text: str, **options) -> Path:
    directory = OUT / name
    directory.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    sentences = [line for line in text.split("\n") if line.strip()]
    spm.set_random_generator_seed(SEED)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=VOCAB_SIZE,
        num_threads=1, minloglevel=2, hard_vocab_limit=False, **options)
    path = directory / "tokenizer.model"
    path.write_bytes(model.getvalue())
    return path


def train_bpe(name: str, text: str, regex: str, specials: list[str], normalizer, bos: str | None) -> Path:
    directory = OUT / name
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(ignore_merges=(name == "bpe-llama3")))
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[AddedToken(s, special=True, normalized=False) for s in specials])
    tokenizer.train_from_iterator([line for line in text.split("\n")], trainer=trainer)
    if bos is not None:
        bos_id = tokenizer.token_to_id(bos)
        tokenizer.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                                          special_tokens=[(bos, bos_id)]),
        ])
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    path = directory / "tokenizer.json"
    tokenizer.save(str(path))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 2048,
              "bos_token": bos, "eos_token": specials[1] if bos else specials[0],
              "clean_up_tokenization_spaces": False}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


def minimal_llama_hparams(writer: gguf.GGUFWriter, vocab: int) -> None:
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name("tokenizer fixture")
    writer.add_block_count(1)
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)
    writer.add_rope_dimension_count(32)


def write_gguf(path: Path, fill) -> None:
    writer = gguf.GGUFWriter(path=None, arch="llama")
    fill(writer)
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def sentencepiece_gguf(model_path: Path, gguf_path: Path, user_defined: list[str], add_dummy_prefix: bool = True) -> None:
    """convert_hf_to_gguf.py TextModel._set_vocab_sentencepiece, for a model without added tokens.

    The piece types come from the processor's queries (the protobuf package is not needed):
    sentencepiece's Type numbering is llama.cpp's token type numbering.
    """
    processor = spm.SentencePieceProcessor(model_file=str(model_path))
    tokens, scores, types = [], [], []
    for index in range(processor.get_piece_size()):
        piece = processor.id_to_piece(index)
        tokens.append(piece)
        scores.append(processor.get_score(index))
        if processor.is_unknown(index):
            types.append(gguf.TokenType.UNKNOWN)
        elif processor.is_control(index):
            types.append(gguf.TokenType.CONTROL)
        elif processor.is_unused(index):
            types.append(gguf.TokenType.UNUSED)
        elif processor.is_byte(index):
            types.append(gguf.TokenType.BYTE)
        elif piece in user_defined:
            types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)

    def fill(writer: gguf.GGUFWriter) -> None:
        minimal_llama_hparams(writer, len(tokens))
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_add_space_prefix(add_dummy_prefix)
        writer.add_bos_token_id(processor.bos_id())
        writer.add_eos_token_id(processor.eos_id())
        writer.add_unk_token_id(processor.unk_id())
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(False)
    write_gguf(gguf_path, fill)


def bpe_gguf(json_path: Path, gguf_path: Path, pre: str, bos: str | None, eos: str) -> None:
    """convert_hf_to_gguf.py TextModel._set_vocab_gpt2 (get_vocab_base) for a tokenizer.json."""
    tokenizer = Tokenizer.from_file(str(json_path))
    data = json.loads(json_path.read_text())
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    reverse = {i: t for t, i in vocab.items()}
    added = tokenizer.get_added_tokens_decoder()
    size = max(reverse) + 1
    tokens, types = [], []
    for i in range(size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]

    def fill(writer: gguf.GGUFWriter) -> None:
        minimal_llama_hparams(writer, size)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        if bos is not None:
            writer.add_bos_token_id(vocab[bos])
        writer.add_eos_token_id(vocab[eos])
        writer.add_add_bos_token(bos is not None)
    write_gguf(gguf_path, fill)


def find_llama_tokenize() -> Path | None:
    candidates = []
    if os.environ.get("LLAMA_CPP_BIN"):
        candidates.append(Path(os.environ["LLAMA_CPP_BIN"]) / "llama-tokenize")
    candidates += [Path(p) for p in sorted(glob.glob(str(REPO / ".llama.cpp" / "**" / "llama-tokenize"), recursive=True))]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def llama_tokenize(binary: Path, model: Path, text: str, parse_special: bool, bos: bool = False) -> list[int] | None:
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as handle:
        handle.write(text.encode("utf-8"))
        name = handle.name
    try:
        command = [str(binary), "-m", str(model), "-f", name, "--ids", "--log-disable", "--no-escape"] + ([] if bos else ["--no-bos"])
        if not parse_special:
            command.append("--no-parse-special")
        result = subprocess.run(command, capture_output=True, text=True)
    finally:
        os.unlink(name)
    lines = [l for l in result.stdout.strip().splitlines() if l.startswith("[")]
    if result.returncode != 0 or not lines:
        # llama.cpp aborts on a character a vocabulary without byte tokens cannot encode; no reference then.
        print(f"llama-tokenize failed on {model.name} {text[:40]!r}: {result.stderr.strip()[-200:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    text = corpus()
    sp_unigram = train_sentencepiece("sp-unigram", text, model_type="unigram", normalization_rule_name="nmt_nfkc",
                                     byte_fallback=False, user_defined_symbols=["<sep>"])
    sp_bpe = train_sentencepiece("sp-bpe", text, model_type="bpe", normalization_rule_name="identity",
                                 remove_extra_whitespaces=False, byte_fallback=True)
    sp_bytes = train_sentencepiece("sp-unigram-bytes", text, model_type="unigram", normalization_rule_name="identity",
                                   byte_fallback=True, user_defined_symbols=["<sep>"])
    llama3 = train_bpe("bpe-llama3", text, LLAMA3_REGEX, ["<|begin_of_text|>", "<|end_of_text|>"], None, "<|begin_of_text|>")
    qwen2 = train_bpe("bpe-qwen2", text, QWEN2_REGEX, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], normalizers.NFC(), None)
    for model in [sp_unigram, sp_bpe, sp_bytes]:
        sentencepiece_gguf(model, OUT / f"{model.parent.name}.gguf", ["<sep>"])
    bpe_gguf(llama3, OUT / "bpe-llama3.gguf", "llama-bpe", "<|begin_of_text|>", "<|end_of_text|>")
    trained = REPO / "fixtures" / "trained-llama" / "tokenizer.model"
    if trained.exists():
        sentencepiece_gguf(trained, OUT / "trained-llama.gguf", [])
    bpe_gguf(qwen2, OUT / "bpe-qwen2.gguf", "qwen2", None, "<|endoftext|>")
    strings = TEXTS + random_strings(400)
    texts = TEXTS + strings[len(TEXTS):len(TEXTS) + RANDOM_TEXTS]
    pieces = {"strings": strings}
    for name, regex in [("gpt2", GPT2_REGEX), ("llama3", LLAMA3_REGEX), ("qwen2", QWEN2_REGEX)]:
        splitter = pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False)
        pieces[name] = [[piece for piece, _ in splitter.pre_tokenize_str(string)] for string in strings]
    (OUT / "pretokenize.json").write_text(json.dumps(pieces, ensure_ascii=False) + "\n", encoding="utf-8")
    (OUT / "texts.json").write_text(json.dumps(texts, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    cases = []
    for model in [sp_unigram, sp_bpe, sp_bytes] + ([trained] if trained.exists() else []):
        processor = spm.SentencePieceProcessor(model_file=str(model))
        relative = model.parent if model != trained else model
        cases.append({"path": str(relative.relative_to(REPO / "fixtures")), "reference": f"sentencepiece {spm.__version__}",
                      "parse_special": True, "bos": processor.bos_id(), "prefix": [processor.bos_id()],
                      "ids": [processor.encode(t) for t in texts]})
    import tokenizers
    hf_jsons = [llama3, qwen2, REPO / "fixtures" / "tiny-llama" / "tokenizer.json"]
    if trained.exists():
        hf_jsons.append(REPO / "fixtures" / "trained-llama" / "tokenizer.json")
    for path in hf_jsons:
        tokenizer = Tokenizer.from_file(str(path))
        plain = tokenizer.encode("a", add_special_tokens=False).ids
        special = tokenizer.encode("a", add_special_tokens=True).ids
        cases.append({"path": str(path.parent.relative_to(REPO / "fixtures")), "reference": f"tokenizers {tokenizers.__version__}",
                      "parse_special": True, "prefix": special[:len(special) - len(plain)],
                      "ids": [tokenizer.encode(t, add_special_tokens=False).ids for t in texts]})
    binary = find_llama_tokenize()
    ggufs = [OUT / f"{n}.gguf" for n in ["sp-unigram", "sp-bpe", "sp-unigram-bytes", "bpe-llama3", "bpe-qwen2"]]
    ggufs.append(REPO / "fixtures" / "tiny-llama.gguf")
    if trained.exists():
        ggufs.append(OUT / "trained-llama.gguf")
    if binary is None:
        print("llama-tokenize not found ($LLAMA_CPP_BIN, .llama.cpp/): GGUF references left out", file=sys.stderr)
    else:
        version_file = binary.resolve().parent.parent.parent / "llama.cpp.version"
        version = version_file.read_text().strip() if version_file.exists() else str(binary)
        for path in ggufs:
            plain = llama_tokenize(binary, path, "a", True)
            with_bos = llama_tokenize(binary, path, "a", True, bos=True)
            for parse_special in (False, True):
                cases.append({"path": str(path.relative_to(REPO / "fixtures")), "reference": f"llama-tokenize, {version}",
                              "parse_special": parse_special, "prefix": with_bos[:len(with_bos) - len(plain)],
                              "ids": [llama_tokenize(binary, path, t, parse_special) if i < len(TEXTS) + RANDOM_TEXTS_LLAMA_CPP else None
                                      for i, t in enumerate(texts)]})
    (OUT / "expected.json").write_text(json.dumps({"texts": "texts.json", "cases": cases}, indent=None) + "\n")
    total = 0
    for path in sorted(OUT.rglob("*")):
        if path.is_file():
            total += path.stat().st_size
            print(f"{path.relative_to(REPO)}  {path.stat().st_size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
