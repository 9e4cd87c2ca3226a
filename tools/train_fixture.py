#!/usr/bin/env python3
"""Trains fixtures/trained-llama/: a small Llama (LlamaForCausalLM) with its own SentencePiece
tokenizer, on text that ships with Debian and Python, so model-level accuracy (perplexity, KL
divergence) has real, peaked next-token distributions to measure instead of a random model's flat
logits.

Corpus (fixed for Debian 12 "bookworm" with python3.11):
  * the docstrings (module, class, function; `ast.get_docstring`, so indentation is cleaned) of
    Python's standard library in /usr/lib/python3.11 (test suites, lib2to3 and idlelib's tests
    left out), one file's docstrings per document, identical docstrings kept once;
  * the license texts in /usr/share/common-licenses (symlinks and duplicates read once).
  Held out for evaluation (never trained on, the tokenizer never sees them): the docstrings of the
  standard-library files whose path relative to the library hashes (SHA-256) to 0 mod 16, in
  sorted order, until the held-out text holds at least EVAL_CHARS characters. They are written to
  fixtures/trained-llama/eval.txt.

Tokenizer: SentencePiece BPE with Llama 2's settings (byte fallback, digits split, identity
normalisation, dummy prefix, runs of spaces kept), <unk>=0, <s>=1, </s>=2, so llama.cpp's converter
writes it as a `llama` (SPM) vocabulary. No whitespace-only pieces (Llama 2 allows them): then '▁'
only ever starts a piece, no merge can cross a word boundary, and sentencepiece (which splits into
words before merging), transformers' tokenizer.json and llama.cpp (which merge over the whole text)
give the same tokens; the script checks the first two on the held-out text.

Model: hidden 256, intermediate 768, 4 layers, 4 attention heads and 2 key/value heads (GQA) of
head_dim 64, vocabulary 3072, RMSNorm eps 1e-5, RoPE theta 10000, untied lm_head. Trained in FP32
on CPU (1 thread, fixed seeds) on random 512-token windows of the training text, AdamW with warm-up
and cosine decay, then saved in BF16 by transformers' save_pretrained. The held-out perplexity is
measured with llama-perplexity's protocol (512-token chunks, first token replaced by BOS, second
half scored) on the saved BF16 weights, and written to fixtures/trained-llama/training.json.

Run with the reference venv (tools/setup_reference.sh):
    .venv-ref/bin/python tools/train_fixture.py            # ≈ 11 min on a busy 2-core machine
Options: --steps N, --threads N, --out DIR, --check (retrain into a temporary directory and compare
with the committed fixture).
"""
import argparse
import ast
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STDLIB = "/usr/lib/python3.11"
LICENSES = "/usr/share/common-licenses"
SKIP_DIRS = {"test", "tests", "idle_test", "lib2to3", "site-packages", "dist-packages", "__pycache__"}
EVAL_CHARS = 28_000   # ≈ 17 chunks of 512 tokens at the tokenizer's ≈ 3.2 characters per token
VOCAB = 3072
SEQ = 512
SEED = 20261201


def fail(msg):
    sys.exit(f"train_fixture: {msg}")


def stdlib_documents():
    """(relative path, docstring text) per standard-library file, sorted by path."""
    if not os.path.isfile(os.path.join(STDLIB, "os.py")):
        fail(f"{STDLIB} is missing (Debian's libpython3.11-minimal/-stdlib provide it: apt-get install python3.11)")
    docs = []
    for dirpath, dirnames, filenames in os.walk(STDLIB):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            try:
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read())
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            parts = []
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc and len(doc) >= 40:
                        parts.append(doc.strip())
            if parts:
                docs.append((os.path.relpath(path, STDLIB), parts))
    docs.sort()
    return docs


def license_documents():
    if not os.path.isdir(LICENSES):
        fail(f"{LICENSES} is missing (Debian's base-files provides it)")
    seen, texts = set(), []
    for name in sorted(os.listdir(LICENSES)):
        real = os.path.realpath(os.path.join(LICENSES, name))
        if real in seen or not os.path.isfile(real):
            continue
        seen.add(real)
        with open(real, encoding="utf-8", errors="replace") as f:
            text = f.read().strip()
        if text not in texts:
            texts.append(text)
    return texts


def build_corpus():
    """(training text, held-out text). Identical docstrings are kept once, held-out ones first."""
    docs = stdlib_documents()
    held, train_docs = [], []
    held_chars = 0
    for rel, parts in docs:
        h = int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "big")
        if h % 16 == 0 and held_chars < EVAL_CHARS:
            held.append((rel, parts))
            held_chars += sum(len(p) + 2 for p in parts)
        else:
            train_docs.append((rel, parts))
    seen = set()
    eval_parts = []
    for _, parts in held:
        for p in parts:
            if p not in seen:
                seen.add(p)
                eval_parts.append(p)
    train_parts = []
    for _, parts in train_docs:
        for p in parts:
            if p not in seen:
                seen.add(p)
                train_parts.append(p)
    train_parts.extend(license_documents())
    return "\n\n".join(train_parts) + "\n", "\n\n".join(eval_parts) + "\n", [r for r, _ in held]


def train_tokenizer(train_text, workdir):
    import sentencepiece as spm
    inp = os.path.join(workdir, "train.txt")
    with open(inp, "w", encoding="utf-8") as f:
        f.write(train_text)
    prefix = os.path.join(workdir, "tokenizer")
    spm.SentencePieceTrainer.train(
        input=inp, model_prefix=prefix, model_type="bpe", vocab_size=VOCAB,
        character_coverage=0.9995, byte_fallback=True, split_digits=True,
        normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=False, split_by_unicode_script=True, split_by_whitespace=True,
        max_sentence_length=16384, shuffle_input_sentence=False, input_sentence_size=0,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2,
        train_extremely_large_corpus=False)
    return prefix + ".model"


def save_hf_tokenizer(sp, sp_path, out, eval_text):
    """tokenizer.model plus the tokenizer.json transformers derives from it (vocabulary in id order,
    merges generated from the vocabulary as transformers' SentencePieceExtractor does; built here
    from the sentencepiece API because that extractor needs protobuf), checked token for token."""
    from transformers import LlamaTokenizer
    from transformers.tokenization_utils_base import generate_merges
    vocab = {sp.id_to_piece(i): i for i in range(sp.vocab_size())}
    tok = LlamaTokenizer(vocab=vocab, merges=generate_merges(vocab), legacy=False,
                         add_bos_token=True, add_eos_token=False)
    tok.save_pretrained(out)
    shutil.copyfile(sp_path, os.path.join(out, "tokenizer.model"))
    probe = ("Hello  world\n\n  x = 12345.678\tdef f(a, b):\n    return a ** b  # comment\n"
             "naïve café Ångström, 日本語のテキスト, emoji 😀🚀, ünïcödé; trailing   \n")
    # Not compared: text that starts with a space. sentencepiece (and llama.cpp) always prepend the
    # dummy '▁', transformers' Metaspace(prepend_scheme="first") only when the text does not already
    # start with one: " a" is ['▁', '▁a'] for the first two and ['▁a'] for transformers.
    for text in (probe, "a\n\n\nb  c   d", eval_text):
        a = sp.encode(text)
        b = tok(text, add_special_tokens=False)["input_ids"]
        if a != b:
            fail(f"transformers' tokenizer differs from sentencepiece on {text[:200]!r}")


def chunk_ppl(model, ids, bos, n_ctx=512):
    """llama-perplexity's protocol: chunks of n_ctx tokens, first replaced by BOS, second half scored."""
    import torch
    n_chunk = len(ids) // n_ctx
    nll, count = 0.0, 0
    with torch.no_grad():
        for c in range(n_chunk):
            chunk = list(ids[c * n_ctx:(c + 1) * n_ctx])
            chunk[0] = bos
            logits = model(torch.tensor([chunk])).logits[0].float()
            logp = torch.log_softmax(logits, dim=-1)
            first = n_ctx // 2
            tgt = torch.tensor(chunk[first + 1:])
            nll -= logp[first:n_ctx - 1].gather(1, tgt[:, None]).sum().item()
            count += n_ctx - 1 - first
    return math.exp(nll / count), n_chunk, count


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "fixtures", "trained-llama"))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2.5e-3)
    # One thread by default: on a shared, oversubscribed 2-core machine two OpenMP threads were 4–5×
    # slower per step than one (measured with torch 2.15: 4 s vs 15–23 s for 2 × 512 tokens).
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--check", action="store_true",
                    help="retrain into a temporary directory and compare with the committed fixture")
    args = ap.parse_args()

    import numpy as np
    import torch
    import sentencepiece as spm
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    t_start = time.time()

    out = args.out
    if args.check:
        out = tempfile.mkdtemp(prefix="trained-llama-check-")
    os.makedirs(out, exist_ok=True)

    train_text, eval_text, held_files = build_corpus()
    work = tempfile.mkdtemp(prefix="train-fixture-")
    try:
        sp_path = train_tokenizer(train_text, work)
        sp = spm.SentencePieceProcessor(model_file=sp_path)
        assert sp.vocab_size() == VOCAB and sp.bos_id() == 1 and sp.eos_id() == 2 and sp.unk_id() == 0
        # Documents are separated by blank lines; tokenise the text as one stream (as the evaluation does).
        train_ids = np.array(sp.encode(train_text), dtype=np.int64)
        eval_ids = sp.encode(eval_text)
        if len(eval_ids) < 8 * SEQ:
            fail(f"held-out text tokenises to {len(eval_ids)} tokens, fewer than 8 chunks of {SEQ}")
        print(f"corpus: train {len(train_text)} chars / {len(train_ids)} tokens, "
              f"held out {len(eval_text)} chars / {len(eval_ids)} tokens ({len(eval_ids) // SEQ} chunks of {SEQ}), "
              f"{len(held_files)} held-out files", flush=True)

        config = LlamaConfig(
            vocab_size=VOCAB, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=2048,
            rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu",
            attention_bias=False, mlp_bias=False, initializer_range=0.02,
            bos_token_id=1, eos_token_id=2, pad_token_id=None)
        model = LlamaForCausalLM(config)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
        warm = max(1, args.steps // 15)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else
            0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, args.steps - warm))))
        rng = np.random.default_rng(SEED)
        t_train = time.time()
        losses = []
        for step in range(args.steps):
            starts = rng.integers(0, len(train_ids) - SEQ - 1, size=args.batch)
            x = torch.from_numpy(np.stack([train_ids[s:s + SEQ] for s in starts]))
            x[:, 0] = 1  # BOS first, as the evaluation protocol puts it
            loss = model(input_ids=x, labels=x).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if step % 20 == 0 or step == args.steps - 1:
                print(f"step {step:4d}  loss {loss.item():.3f}  lr {sched.get_last_lr()[0]:.2e}  "
                      f"{time.time() - t_train:.0f}s", flush=True)
        train_seconds = time.time() - t_train

        model.eval()
        model = model.to(torch.bfloat16)
        model.generation_config.do_sample = False
        model.save_pretrained(out, safe_serialization=True)
        save_hf_tokenizer(sp, sp_path, out, eval_text)
        with open(os.path.join(out, "eval.txt"), "w", encoding="utf-8") as f:
            f.write(eval_text)

        # Held-out perplexity of the saved BF16 weights, computed in FP32.
        reloaded = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32)
        reloaded.eval()
        # As llama-perplexity: the text is tokenised once with BOS prepended, then cut into chunks.
        ppl, n_chunk, scored = chunk_ppl(reloaded, [1] + eval_ids, bos=1)
        train_sample = train_ids[:4 * SEQ].tolist()
        train_ppl, _, _ = chunk_ppl(reloaded, train_sample, bos=1)
        report = {
            "seed": SEED, "steps": args.steps, "batch": args.batch, "sequence": SEQ, "lr": args.lr,
            "threads": args.threads, "train_seconds": round(train_seconds, 1),
            "train_tokens": int(len(train_ids)), "tokens_seen": args.steps * args.batch * SEQ,
            "final_loss": round(float(np.mean(losses[-10:])), 4),
            "eval_tokens": len(eval_ids), "eval_chunks": n_chunk, "eval_scored_tokens": scored,
            "eval_perplexity_bf16": round(ppl, 4), "train_sample_perplexity_bf16": round(train_ppl, 4),
            "held_out_files": held_files,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "sentencepiece": spm.__version__, "python": sys.version.split()[0]},
        }
        with open(os.path.join(out, "training.json"), "w") as f:
            json.dump(report, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"held-out perplexity {ppl:.3f} over {n_chunk} chunks ({scored} scored tokens), "
              f"training-text perplexity {train_ppl:.3f}; training {train_seconds:.0f}s, "
              f"total {time.time() - t_start:.0f}s -> {out}")

        if args.check:
            ref = os.path.join(ROOT, "fixtures", "trained-llama")
            bad = []
            for name in ("eval.txt", "tokenizer.model", "model.safetensors"):
                a, b = os.path.join(out, name), os.path.join(ref, name)
                if not os.path.exists(b) or open(a, "rb").read() != open(b, "rb").read():
                    bad.append(name)
            print("check: identical to the committed fixture" if not bad else f"check: differs: {bad}")
            shutil.rmtree(out)
            sys.exit(1 if bad else 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
