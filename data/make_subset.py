#!/usr/bin/env python3
"""Write a seeded, stratified subset of Fashion-MNIST as gzipped IDX files.

Reads the four standard files (gzipped or not) from --source, keeps --train images of the
training split and --test images of the test split, each class keeping its share (largest
remainder), and writes the four standard file names, gzipped, to --out. Standard library
only; the output is byte-for-byte reproducible for a given seed.
"""

import argparse
import gzip
import os
import random
import struct
import sys

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_maybe_gzipped(path):
    """Return the bytes of `path`, decompressed when it starts with the gzip magic."""
    with open(path, "rb") as f:
        raw = f.read()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def find(source, base):
    """Return the path of `base` or `base.gz` in `source`."""
    for name in (base, base + ".gz"):
        path = os.path.join(source, name)
        if os.path.isfile(path):
            return path
    sys.exit(f"{source} has no {base} (nor {base}.gz)")


def read_split(source, split):
    """Return (rows, cols, list of image bytes, list of labels) of one split."""
    images_path, labels_path = (find(source, base) for base in FILES[split])
    data = read_maybe_gzipped(images_path)
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != IMAGES_MAGIC:
        sys.exit(f"{images_path} is not an IDX image file (magic {magic:#010x})")
    size = rows * cols
    images = [data[16 + i * size : 16 + (i + 1) * size] for i in range(n)]
    data = read_maybe_gzipped(labels_path)
    magic, n_labels = struct.unpack(">II", data[:8])
    if magic != LABELS_MAGIC or n_labels != n:
        sys.exit(f"{labels_path} is not a label file for {images_path}")
    return rows, cols, images, list(data[8 : 8 + n])


def stratified(labels, n, rng):
    """Return sorted indices: n picks keeping each class's share (largest remainder)."""
    by_class = {}
    for idx, label in enumerate(labels):
        by_class.setdefault(label, []).append(idx)
    classes = sorted(by_class)
    exact = {k: n * len(by_class[k]) for k in classes}
    quotas = {k: exact[k] // len(labels) for k in classes}
    missing = n - sum(quotas.values())
    by_remainder = sorted(classes, key=lambda k: (-(exact[k] % len(labels)), k))
    for k in by_remainder[:missing]:
        quotas[k] += 1
    chosen = []
    for k in classes:
        chosen.extend(rng.sample(by_class[k], quotas[k]))
    return sorted(chosen)


def write_gz(path, payload):
    """Write `payload` gzipped with a zero timestamp, so reruns give identical files."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(payload)


def write_split(out, split, rows, cols, images, labels):
    images_base, labels_base = FILES[split]
    header = struct.pack(">IIII", IMAGES_MAGIC, len(images), rows, cols)
    write_gz(os.path.join(out, images_base + ".gz"), header + b"".join(images))
    header = struct.pack(">II", LABELS_MAGIC, len(labels))
    write_gz(os.path.join(out, labels_base + ".gz"), header + bytes(labels))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "fashion-mnist"))
    parser.add_argument("--train", type=int, default=10_000)
    parser.add_argument("--test", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=20_260_101)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    for split, n in (("train", args.train), ("test", args.test)):
        rows, cols, images, labels = read_split(args.source, split)
        chosen = stratified(labels, min(n, len(labels)), rng)
        write_split(args.out, split, rows, cols,
                    [images[i] for i in chosen], [labels[i] for i in chosen])
        print(f"{split}: {len(chosen)} of {len(labels)} images ({rows}x{cols}) -> {args.out}")


if __name__ == "__main__":
    main()
