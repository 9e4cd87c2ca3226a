#!/usr/bin/env python3
"""The oracle of the Hugging Face → GGUF conversion (`quantize --to TYPE MODEL_DIR -o OUT.gguf`).

What we claim: our output equals llama.cpp's two-step path byte for byte —
convert_hf_to_gguf.py --outtype f32 (the "F32 twin"), then llama-quantize of the twin
(`llama-quantize TWIN OUT Q4_K_M` for a mixture, `llama-quantize --pure TWIN OUT TYPE` for a
single type, TYPE being the llama.cpp file type our scheme writes: q4_k → Q4_K_S, q8_0 → Q8_0 …).

  hf_to_gguf_oracle.py fixture [--model fixtures/trained-llama] [--out fixtures/hf-to-gguf/trained-llama.json]
      runs the converter and llama-quantize (LLAMA_CPP_DIR, default <repo>/.llama.cpp) and writes
      the small fixture the Swift tests check against without llama.cpp: per type the sha256 and
      size of llama-quantize's file, and per metadata key of the twin its type and a digest of its
      value (canonical form below); the same for the variant directory (VARIANT_NAME) and the
      other shapes (OTHERS) at a few types.
  hf_to_gguf_oracle.py families [--only NAME]
      the other families (FAMILIES below): assembles each directory, converts it, and writes
      fixtures/hf-to-gguf/<name>.json: the twin's metadata and per-tensor (type, shape, sha256),
      llama-quantize's file of every type (sha256, size), and per one-step --outtype f16/bf16/q8_0 of
      the converter its metadata and per-tensor digests (which a --to f16/bf16/q8_0 run matches
      tensor by tensor).
  hf_to_gguf_oracle.py quantized [--quantize PATH]
      already-quantized inputs (QUANTIZED_INPUTS: trained-llama as compressed-tensors fp8, int8
      int-quantized, int4 g128 and asymmetric g32 made by our quantize, and block FP8 made by
      tools/make_fp8_block_checkpoint.py): converts each, runs llama-quantize for q8_0 and q4_k_m,
      compares our files (identical bytes; --to f32 tensor by tensor) and writes
      fixtures/hf-to-gguf/quantized-inputs.json (input sha256, the twin's tensors, the outputs).
  hf_to_gguf_oracle.py imatrix [--quantize PATH]
      trained-llama converted with an importance matrix (IMATRIX): llama-quantize --imatrix of the
      twin for IMATRIX_TYPES, against ours; writes fixtures/hf-to-gguf/trained-llama-imatrix.json.
  hf_to_gguf_oracle.py compare [--quantize PATH] [--model …]
      also runs our quantize for every type and says per type whether the file is identical; then
      compares our f16/bf16/q8_0 files with convert_hf_to_gguf.py --outtype f16/bf16/q8_0 (a
      one-step conversion, which llama-quantize's rule does not govern) key by key (values, not
      order) and tensor by tensor, printing every difference; and times both paths. Exit 1 when a
      type that should be identical is not.

Canonical value digest: sha256 over the value written as text: integers in decimal, float32 /
float64 as the hex of their bit pattern (8 / 16 digits), bools 1/0, strings as UTF-8; an array is
its elements' forms each prefixed by its byte length and ':'. Needs gguf-py and numpy (.venv, or
the vendored gguf-py on PYTHONPATH).
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAMA_DIR = os.environ.get("LLAMA_CPP_DIR", os.path.join(ROOT, ".llama.cpp"))
MIXTURES = {"q2_k": "Q2_K", "q3_k_s": "Q3_K_S", "q3_k_m": "Q3_K_M", "q3_k_l": "Q3_K_L", "q4_k_s": "Q4_K_S",
            "q4_k_m": "Q4_K_M", "q5_k_s": "Q5_K_S", "q5_k_m": "Q5_K_M", "q6_k": "Q6_K", "iq4_xs": "IQ4_XS"}
# Our single-type schemes and the llama.cpp file type each writes (Scheme.swift llamaFileType).
SINGLE = {"f16": "F16", "bf16": "BF16", "q8_0": "Q8_0", "q4_0": "Q4_0", "q4_1": "Q4_1", "q5_0": "Q5_0", "q5_1": "Q5_1",
          "q2_k": None, "q3_k": "Q3_K_S", "q4_k": "Q4_K_S", "q5_k": "Q5_K_S", "iq4_nl": "IQ4_NL"}
# q2_k and q6_k and iq4_xs parse as mixtures on our command line; the single types are the rest.
SINGLE = {k: v for k, v in SINGLE.items() if v is not None}
DIRECT = ["f16", "bf16", "q8_0"]   # convert_hf_to_gguf.py --outtype choices compared with ours
# The variant: trained-llama's weights and tokenizer.model/tokenizer.json under another directory
# name, with the text files of fixtures/hf-to-gguf/variant/ over its own (a model id in
# _name_or_path, linear RoPE scaling, sampling defaults, a chat template, add_eos/add_prefix_space,
# added tokens). It exercises gguf-py's name heuristics and SpecialVocab beyond the plain fixture.
VARIANT_NAME = "trained-llama-v0.2"
VARIANT_TYPES = {"q4_k_m": ("Q4_K_M", False), "f16": ("F16", True)}
# Other shapes, with trained-llama's tokenizer.model added (and nothing else changed): tiny-llama
# (two shards with an index, 8/4 heads, vocab_size 1024 < the 3072 pieces) and reference-models/
# llama-tied (tied embeddings: no output.weight; hidden 32, so every k-quant falls back by row length).
OTHERS = {"tiny-llama": "fixtures/tiny-llama", "llama-tied": "fixtures/reference-models/llama-tied"}


# The other families: the directory name (general.name comes from it), then what it is made of:
# files copied from the repository, in order (a later one replaces an earlier one of the same name).
# fixtures/hf-to-gguf/llama3-bpe and qwen2-bpe are made by tools/make_bpe_conversion_fixtures.py.
FAMILIES = {
    "llama3-bpe": ["fixtures/reference-models/llama3-rope/model.safetensors", "fixtures/hf-to-gguf/llama3-bpe/*"],
    "qwen2-bpe": ["fixtures/reference-models/qwen2-bias/model.safetensors", "fixtures/hf-to-gguf/qwen2-bpe/*"],
    "mistral-sliding": ["fixtures/reference-models/mistral-sliding/*", "fixtures/trained-llama/tokenizer.model"],
    "qwen3-bpe": ["fixtures/reference-models/qwen3-qknorm/model.safetensors", "fixtures/hf-to-gguf/qwen2-bpe/*",
                  "fixtures/hf-to-gguf/qwen3-bpe/config.json"],
}
FAMILY_EXCLUDE = {"expected-logits.json"}


def fail(msg):
    sys.exit(f"hf_to_gguf_oracle: {msg}")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def run(cmd):
    t = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    if p.returncode != 0:
        fail(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}")
    return time.time() - t


def llama_tool(name):
    path = os.path.join(LLAMA_DIR, "bin", name)
    if not os.access(path, os.X_OK):
        fail(f"{path} not found: set LLAMA_CPP_DIR or run tools/build_llama_cpp.sh")
    return path


def gguf_module():
    try:
        import gguf  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.join(LLAMA_DIR, "llama.cpp", "gguf-py"))
    import gguf
    return gguf


def canonical(kind, value):
    """The canonical text form of one scalar (see the module doc)."""
    if kind in ("UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "UINT64", "INT64"):
        return str(int(value)).encode()
    if kind == "FLOAT32":
        return ("%08x" % struct.unpack("<I", struct.pack("<f", float(value)))[0]).encode()
    if kind == "FLOAT64":
        return ("%016x" % struct.unpack("<Q", struct.pack("<d", float(value)))[0]).encode()
    if kind == "BOOL":
        return b"1" if value else b"0"
    if kind == "STRING":
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)
    fail(f"unknown value type {kind}")


def metadata(path):
    """[(key, type, digest, value-preview)] of a GGUF file, in file order, without the GGUF.* pseudo keys."""
    gguf = gguf_module()
    reader = gguf.GGUFReader(path)
    out = []
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        kinds = [gguf.GGUFValueType(t).name for t in field.types]
        value = field.contents()
        if kinds[0] == "ARRAY":
            parts = [canonical(kinds[1], v) for v in value]
            data = b"".join(str(len(p)).encode() + b":" + p for p in parts)
            kind = f"array[{kinds[1].lower()}]"
            preview = f"{len(value)} items"
        else:
            data = canonical(kinds[0], value)
            kind = kinds[0].lower()
            preview = value if not isinstance(value, str) or len(value) < 60 else value[:57] + "…"
        out.append({"key": key, "type": kind, "sha256": hashlib.sha256(data).hexdigest(), "value": preview})
    return out


def tensors(path):
    gguf = gguf_module()
    reader = gguf.GGUFReader(path)
    return {t.name: (t.tensor_type.name, [int(x) for x in t.shape], hashlib.sha256(bytes(t.data.tobytes())).hexdigest())
            for t in reader.tensors}


def make_outputs(model, work):
    """The twin and llama-quantize's file of every type; returns (twin path, {ours: (path, llama name, pure)}, timings)."""
    twin = os.path.join(work, "twin-f32.gguf")
    timings = {"convert_f32_seconds": run([llama_tool("convert_hf_to_gguf"), model, "--outtype", "f32", "--outfile", twin])}
    outputs = {}
    quantize = llama_tool("llama-quantize")
    for ours, llama in list(MIXTURES.items()) + list(SINGLE.items()):
        pure = ours in SINGLE and ours not in MIXTURES
        out = os.path.join(work, f"llama-{ours}.gguf")
        timings[f"llama_quantize_{ours}_seconds"] = run([quantize] + (["--pure"] if pure else []) + [twin, out, llama, "1"])
        outputs[ours] = (out, llama, pure)
    return twin, outputs, timings


def make_variant(work):
    """The variant directory under work (see VARIANT_NAME)."""
    model = os.path.join(ROOT, "fixtures", "trained-llama")
    overlay = os.path.join(ROOT, "fixtures", "hf-to-gguf", "variant")
    target = os.path.join(work, "variant", VARIANT_NAME)
    os.makedirs(target)
    for name in ["model.safetensors", "tokenizer.model", "tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(model, name), target)
    for name in os.listdir(overlay):
        shutil.copy(os.path.join(overlay, name), target)
    return target


def variant_outputs(work):
    target = make_variant(work)
    twin = os.path.join(work, "variant-twin-f32.gguf")
    run([llama_tool("convert_hf_to_gguf"), target, "--outtype", "f32", "--outfile", twin])
    outputs = []
    for ours, (llama, pure) in VARIANT_TYPES.items():
        out = os.path.join(work, f"variant-{ours}.gguf")
        run([llama_tool("llama-quantize")] + (["--pure"] if pure else []) + [twin, out, llama, "1"])
        outputs.append({"to": ours, "llama_quantize": ("--pure " if pure else "") + llama, "sha256": sha256(out), "bytes": os.path.getsize(out)})
    meta = metadata(twin)
    for entry in meta:
        entry["value"] = str(entry["value"])
    return {"directory_name": VARIANT_NAME, "twin": {"sha256": sha256(twin), "bytes": os.path.getsize(twin), "metadata": meta},
            "outputs": outputs}


def other_outputs(work):
    out = []
    for name, source in OTHERS.items():
        target = os.path.join(work, "others", name)
        shutil.copytree(os.path.join(ROOT, source), target)
        shutil.copy(os.path.join(ROOT, "fixtures", "trained-llama", "tokenizer.model"), target)
        twin = os.path.join(work, f"{name}-twin-f32.gguf")
        run([llama_tool("convert_hf_to_gguf"), target, "--outtype", "f32", "--outfile", twin])
        for ours, (llama, pure) in {"q4_k_m": ("Q4_K_M", False), "q8_0": ("Q8_0", True)}.items():
            path = os.path.join(work, f"{name}-{ours}.gguf")
            run([llama_tool("llama-quantize")] + (["--pure"] if pure else []) + [twin, path, llama, "1"])
            out.append({"model": name, "source": source, "to": ours, "llama_quantize": ("--pure " if pure else "") + llama,
                        "sha256": sha256(path), "bytes": os.path.getsize(path)})
    return out


def command_fixture(args):
    model = os.path.abspath(args.model)
    with tempfile.TemporaryDirectory(prefix="hf-to-gguf-") as work:
        twin, outputs, _ = make_outputs(model, work)
        doc = {
            "source": os.path.relpath(model, ROOT),
            "made_by": "tools/hf_to_gguf_oracle.py fixture (convert_hf_to_gguf.py --outtype f32, then llama-quantize; llama.cpp vendored by llama-cpp-python 0.3.36)",
            "twin": {"sha256": sha256(twin), "bytes": os.path.getsize(twin), "metadata": metadata(twin)},
            "outputs": [{"to": ours, "llama_quantize": ("--pure " if pure else "") + llama, "sha256": sha256(path),
                         "bytes": os.path.getsize(path)} for ours, (path, llama, pure) in outputs.items()],
        }
        if os.path.abspath(args.model) == os.path.join(ROOT, "fixtures", "trained-llama"):
            doc["variant"] = variant_outputs(work)
            doc["others"] = other_outputs(work)
    for entry in doc["twin"]["metadata"]:
        entry["value"] = str(entry["value"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out}: {len(doc['outputs'])} types, {len(doc['twin']['metadata'])} metadata keys")


def compare_direct(ours, theirs):
    """Differences between our file and convert_hf_to_gguf's one-step file: keys (values, not order), tensors."""
    lines = []
    a = {m["key"]: m for m in metadata(ours)}
    b = {m["key"]: m for m in metadata(theirs)}
    for key in sorted(set(a) | set(b)):
        if key not in a:
            lines.append(f"  key {key}: only in the converter's ({b[key]['type']} {b[key]['value']})")
        elif key not in b:
            lines.append(f"  key {key}: only in ours ({a[key]['type']} {a[key]['value']})")
        elif (a[key]["type"], a[key]["sha256"]) != (b[key]["type"], b[key]["sha256"]):
            lines.append(f"  key {key}: ours {a[key]['type']} {a[key]['value']}, converter {b[key]['type']} {b[key]['value']}")
    ta, tb = tensors(ours), tensors(theirs)
    for name in sorted(set(ta) | set(tb)):
        if name not in ta or name not in tb:
            lines.append(f"  tensor {name}: only in {'the converter' if name in tb else 'ours'}")
        elif ta[name] != tb[name]:
            what = "type" if ta[name][0] != tb[name][0] else "shape" if ta[name][1] != tb[name][1] else "bytes"
            lines.append(f"  tensor {name}: {what} differ (ours {ta[name][0]} {ta[name][1]}, converter {tb[name][0]} {tb[name][1]})")
    return lines


def assemble(name, parent):
    """The directory of family `name` under parent, from FAMILIES."""
    import glob
    target = os.path.join(parent, name)
    os.makedirs(target)
    for pattern in FAMILIES[name]:
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            if os.path.basename(path) not in FAMILY_EXCLUDE:
                shutil.copy(path, os.path.join(target, os.path.basename(path)))
    return target


def tensor_list(path):
    return [{"name": n, "type": t, "shape": s, "sha256": h} for n, (t, s, h) in tensors(path).items()]


def command_families(args):
    for name in FAMILIES:
        if args.only and name != args.only:
            continue
        with tempfile.TemporaryDirectory(prefix="hf-to-gguf-") as work:
            model = assemble(name, work)
            twin, outputs, _ = make_outputs(model, work)
            meta = metadata(twin)
            for entry in meta:
                entry["value"] = str(entry["value"])
            doc = {"directory_name": name, "made_of": FAMILIES[name],
                   "made_by": "tools/hf_to_gguf_oracle.py families (convert_hf_to_gguf.py --outtype f32, then llama-quantize; llama.cpp vendored by llama-cpp-python 0.3.36)",
                   "twin": {"sha256": sha256(twin), "bytes": os.path.getsize(twin), "metadata": meta, "tensors": tensor_list(twin)},
                   "outputs": [{"to": ours, "llama_quantize": ("--pure " if pure else "") + llama, "sha256": sha256(path),
                                "bytes": os.path.getsize(path)} for ours, (path, llama, pure) in outputs.items()],
                   "direct": []}
            for outtype in DIRECT:
                direct = os.path.join(work, f"convert-{outtype}.gguf")
                run([llama_tool("convert_hf_to_gguf"), model, "--outtype", outtype, "--outfile", direct])
                dmeta = metadata(direct)
                for entry in dmeta:
                    entry["value"] = str(entry["value"])
                doc["direct"].append({"outtype": outtype, "metadata": dmeta, "tensors": tensor_list(direct)})
        out = os.path.join(ROOT, "fixtures", "hf-to-gguf", f"{name}.json")
        with open(out, "w") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"wrote {out}: {len(doc['outputs'])} types, {len(meta)} metadata keys, {len(doc['twin']['tensors'])} tensors")


def command_compare(args):
    model = os.path.abspath(args.model)
    quantize = args.quantize or os.path.join(ROOT, ".build", "release", "quantize")
    if not os.access(quantize, os.X_OK):
        fail(f"{quantize} not found: swift build -c release --product quantize, or pass --quantize")
    bad = 0
    with tempfile.TemporaryDirectory(prefix="hf-to-gguf-") as work:
        twin, outputs, timings = make_outputs(model, work)
        print(f"{'--to':8} {'llama-quantize':16} {'bytes':>9}  identical  ours s   convert f32 + llama-quantize s")
        for ours, (path, llama, pure) in outputs.items():
            mine = os.path.join(work, f"ours-{ours}.gguf")
            t = run([quantize, "--to", ours, model, "-o", mine, "--no-check", "--quiet", "--force"])
            same = sha256(mine) == sha256(path)
            bad += 0 if same else 1
            theirs = timings["convert_f32_seconds"] + timings[f"llama_quantize_{ours}_seconds"]
            print(f"{ours:8} {('--pure ' if pure else '') + llama:16} {os.path.getsize(mine):9d}  {'yes' if same else 'NO ':9}  {t:6.2f}   {theirs:6.2f}")
        for outtype in DIRECT:
            direct = os.path.join(work, f"convert-{outtype}.gguf")
            run([llama_tool("convert_hf_to_gguf"), model, "--outtype", outtype, "--outfile", direct])
            mine = os.path.join(work, f"ours-{outtype}.gguf")
            lines = compare_direct(mine, direct)
            print(f"\nours --to {outtype} vs convert_hf_to_gguf.py --outtype {outtype}: "
                  f"{'file identical' if sha256(mine) == sha256(direct) else f'not the same file (order of keys/tensors), {len(lines)} difference(s) in keys and tensors'}")
            print("\n".join(lines))
    sys.exit(1 if bad else 0)


# Already-quantized inputs: trained-llama written by our quantize in the compressed-tensors layouts
# llama.cpp's converter decodes (dequant_model), and by tools/make_fp8_block_checkpoint.py as
# DeepSeek-style block FP8. The test makes the same directories and checks their sha256 first.
QUANTIZED_INPUTS = {
    "fp8": ["quantize", "--to", "fp8"],
    "int8-int-quantized": ["quantize", "--to", "int8", "--int8-layout", "int-quantized"],
    "int4": ["quantize", "--to", "int4"],
    "int4-asym-g32": ["quantize", "--to", "int4", "--asymmetric", "--group-size", "32"],
    "fp8-block-128x128": ["make_fp8_block_checkpoint.py", "--block", "128", "128"],
    "fp8-block-96x80": ["make_fp8_block_checkpoint.py", "--block", "96", "80"],
}
QUANTIZED_TYPES = {"q8_0": ("Q8_0", True), "q4_k_m": ("Q4_K_M", False)}


def write_fixture(doc, name, bad):
    """Writes fixtures/hf-to-gguf/NAME and exits 1 when `bad` comparisons failed."""
    out = os.path.join(ROOT, "fixtures", "hf-to-gguf", name)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {out}")
    sys.exit(1 if bad else 0)


def make_quantized_input(name, source, target, quantize):
    how = QUANTIZED_INPUTS[name]
    if how[0] == "quantize":
        run([quantize] + how[1:] + [source, "-o", target, "--no-check", "--quiet"])
    else:
        run([sys.executable, os.path.join(ROOT, "tools", how[0]), source, target] + how[1:])


def command_quantized(args):
    quantize = args.quantize or os.path.join(ROOT, ".build", "debug", "quantize")
    if not os.access(quantize, os.X_OK):
        fail(f"{quantize} not found: swift build --product quantize, or pass --quantize")
    source = os.path.join(ROOT, "fixtures", "trained-llama")
    doc = {"made_by": "tools/hf_to_gguf_oracle.py quantized (convert_hf_to_gguf.py --outtype f32 of each directory, then "
                      "llama-quantize; llama.cpp vendored by llama-cpp-python 0.3.36)",
           "source": "fixtures/trained-llama", "cases": []}
    bad = 0
    for name in QUANTIZED_INPUTS:
        with tempfile.TemporaryDirectory(prefix="hf-to-gguf-q-") as work:
            model = os.path.join(work, name)
            make_quantized_input(name, source, model, quantize)
            twin = os.path.join(work, "twin-f32.gguf")
            run([llama_tool("convert_hf_to_gguf"), model, "--outtype", "f32", "--outfile", twin])
            case = {"name": name, "made_with": QUANTIZED_INPUTS[name], "input_sha256": sha256(os.path.join(model, "model.safetensors")),
                    "twin_tensors": tensor_list(twin), "outputs": []}
            line = [name]
            for ours, (llama, pure) in QUANTIZED_TYPES.items():
                path = os.path.join(work, f"{ours}.gguf")
                run([llama_tool("llama-quantize")] + (["--pure"] if pure else []) + [twin, path, llama])
                case["outputs"].append({"to": ours, "llama_quantize": ("--pure " if pure else "") + llama, "sha256": sha256(path),
                                        "bytes": os.path.getsize(path)})
                mine = os.path.join(work, f"ours-{ours}.gguf")
                run([quantize, "--to", ours, model, "-o", mine, "--no-check", "--quiet"])
                same = sha256(mine) == sha256(path)
                bad += 0 if same else 1
                line.append(f"{ours} {'identical' if same else 'DIFFERS'}")
            mine = os.path.join(work, "ours-f32.gguf")
            run([quantize, "--to", "f32", model, "-o", mine, "--no-check", "--quiet"])
            ours_tensors = sorted(tensor_list(mine), key=lambda t: t["name"])
            # Metadata: every key of the twin with the same value (ours adds general.file_type and
            # general.quantization_version as llama-quantize does).
            keys = lambda path: {m["key"]: m["sha256"] for m in metadata(path)
                                 if m["key"] not in ("general.file_type", "general.quantization_version")}
            same = ours_tensors == sorted(case["twin_tensors"], key=lambda t: t["name"]) and keys(mine) == keys(twin)
            bad += 0 if same else 1
            line.append(f"f32 tensors {'identical' if same else 'DIFFER'}")
            doc["cases"].append(case)
            print("  ".join(line))
    write_fixture(doc, "quantized-inputs.json", bad)


# Conversions with an importance matrix: llama-quantize --imatrix of the twin, for the mixtures and
# types whose quantizers use one. The path is given relative to the repository (it is recorded in
# quantize.imatrix.file), and the runs happen there.
IMATRIX = "fixtures/imatrix/llama-imatrix-c128.gguf"
IMATRIX_TYPES = {"q4_k_m": ("Q4_K_M", False), "q3_k_s": ("Q3_K_S", False), "iq4_xs": ("IQ4_XS", False), "q4_0": ("Q4_0", True)}


def command_imatrix(args):
    quantize = args.quantize or os.path.join(ROOT, ".build", "debug", "quantize")
    os.chdir(ROOT)
    model = os.path.join("fixtures", "trained-llama")
    doc = {"made_by": "tools/hf_to_gguf_oracle.py imatrix (convert_hf_to_gguf.py --outtype f32, then llama-quantize --imatrix "
                      f"{IMATRIX}; llama.cpp vendored by llama-cpp-python 0.3.36)",
           "source": model, "imatrix": IMATRIX, "imatrix_sha256": sha256(IMATRIX), "outputs": []}
    bad = 0
    with tempfile.TemporaryDirectory(prefix="hf-to-gguf-imatrix-") as work:
        twin = os.path.join(work, "twin-f32.gguf")
        run([llama_tool("convert_hf_to_gguf"), model, "--outtype", "f32", "--outfile", twin])
        for ours, (llama, pure) in IMATRIX_TYPES.items():
            path = os.path.join(work, f"{ours}.gguf")
            plain = os.path.join(work, f"{ours}-plain.gguf")
            flags = ["--pure"] if pure else []
            run([llama_tool("llama-quantize")] + flags + ["--imatrix", IMATRIX, twin, path, llama])
            run([llama_tool("llama-quantize")] + flags + [twin, plain, llama])
            entry = {"to": ours, "llama_quantize": " ".join(flags + ["--imatrix", IMATRIX, llama]), "sha256": sha256(path),
                     "bytes": os.path.getsize(path), "differs_without": sha256(path) != sha256(plain)}
            doc["outputs"].append(entry)
            mine = os.path.join(work, f"ours-{ours}.gguf")
            if os.access(quantize, os.X_OK):
                run([quantize, "--to", ours, model, "-o", mine, "--imatrix", IMATRIX, "--no-check", "--quiet"])
                same = sha256(mine) == entry["sha256"]
                bad += 0 if same else 1
                print(f"{ours}: ours {'identical' if same else 'DIFFERS'}; the matrix changes llama-quantize's file: {entry['differs_without']}")
    write_fixture(doc, "trained-llama-imatrix.json", bad)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fixture")
    f.add_argument("--model", default=os.path.join(ROOT, "fixtures", "trained-llama"))
    f.add_argument("--out", default=os.path.join(ROOT, "fixtures", "hf-to-gguf", "trained-llama.json"))
    fam = sub.add_parser("families")
    fam.add_argument("--only")
    c = sub.add_parser("compare")
    c.add_argument("--model", default=os.path.join(ROOT, "fixtures", "trained-llama"))
    c.add_argument("--quantize")
    q = sub.add_parser("quantized")
    q.add_argument("--quantize")
    i = sub.add_parser("imatrix")
    i.add_argument("--quantize")
    args = p.parse_args()
    {"fixture": command_fixture, "families": command_families, "compare": command_compare,
     "quantized": command_quantized, "imatrix": command_imatrix}[args.command](args)


if __name__ == "__main__":
    main()
