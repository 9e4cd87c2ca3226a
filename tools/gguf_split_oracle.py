"""Independent re-implementation of llama.cpp's `llama-gguf-split --split` (tools/gguf-split/gguf-split.cpp)
on top of gguf-py's reader, to check `quantize --split-max-size/--split-max-tensors` byte for byte.

    .venv/bin/python tools/gguf_split_oracle.py WHOLE.gguf PREFIX (--split-max-size 2M | --split-max-tensors N)

Writes PREFIX-00001-of-0000N.gguf … exactly as gguf-split does: tensors in file order; a new shard
when the shard's tensor bytes (each padded to 32) plus the next tensor's would pass the size, or at
every multiple of N tensors; the first shard carries every KV pair of the input (raw bytes, in
order) followed by split.no (u16), split.count (u16), split.tensors.count (i32), the others only
those three; tensor infos with offsets inside the shard; header and every tensor padded to 32.
Then compares with the files given by --compare PREFIX2 (exit 1 on any difference).
"""
import argparse
import filecmp
import struct
import sys

from gguf import GGUFReader

ALIGN = 32


def pad(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def kv(key, fmt, type_id, value):
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", type_id) + struct.pack(fmt, value)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("prefix")
    parser.add_argument("--split-max-size")
    parser.add_argument("--split-max-tensors", type=int)
    parser.add_argument("--compare")
    args = parser.parse_args()
    reader = GGUFReader(args.input)
    raw = open(args.input, "rb").read()
    fields = [f for f in reader.fields.values() if not f.name.startswith("GGUF.")]
    kv_bytes = b"".join(b"".join(bytes(p) for p in f.parts) for f in fields)
    limit = None
    if args.split_max_size:
        unit = {"M": 1000 ** 2, "G": 1000 ** 3}[args.split_max_size[-1]]
        limit = int(args.split_max_size[:-1]) * unit
    shards, size = [[]], 0
    for i, t in enumerate(reader.tensors):
        n = pad(int(t.n_bytes))
        split = (size + n > limit) if limit is not None else (i > 0 and i % args.split_max_tensors == 0)
        if split:
            assert shards[-1], "a shard with no tensor"
            shards.append([])
            size = n
        else:
            size += n
        shards[-1].append(t)
    count = len(shards)
    names = []
    for index, shard in enumerate(shards):
        keys = (kv_bytes if index == 0 else b"") + kv("split.no", "<H", 2, index) + kv("split.count", "<H", 2, count) \
            + kv("split.tensors.count", "<i", 5, len(reader.tensors))
        n_kv = (len(fields) if index == 0 else 0) + 3
        infos, offset = b"", 0
        for t in shard:
            name = t.name.encode()
            dims = [int(d) for d in t.shape]
            infos += struct.pack("<Q", len(name)) + name + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            infos += struct.pack("<IQ", int(t.tensor_type), offset)
            offset += pad(int(t.n_bytes))
        header = b"GGUF" + struct.pack("<IQQ", 3, len(shard), n_kv) + keys + infos
        out = header + b"\0" * (pad(len(header)) - len(header))
        for t in shard:
            data = raw[t.data_offset:t.data_offset + int(t.n_bytes)]
            out += data + b"\0" * (pad(len(data)) - len(data))
        name = f"{args.prefix}-{index + 1:05d}-of-{count:05d}.gguf"
        open(name, "wb").write(out)
        names.append(name)
    print(f"{count} shards: " + ", ".join(f"{len(s)} tensors" for s in shards))
    if args.compare:
        ok = True
        for index, name in enumerate(names):
            other = f"{args.compare}-{index + 1:05d}-of-{count:05d}.gguf"
            same = filecmp.cmp(name, other, shallow=False)
            ok &= same
            print(f"{other}: {'identical' if same else 'DIFFERENT'} to gguf-split's layout")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
