#!/usr/bin/env python3
"""PyTorch CPU twins of ecobench's three nets, for side-by-side speed and accuracy.

Same layers, same initialisation scheme (PyTorch's default: uniform in ±1/sqrt(fan_in)
for conv and linear weights and biases; batch norm weight 1, bias 0), AdamW with
lr 1e-3 (PyTorch's defaults otherwise, the same as candle-nn's), the same batch size and
thread count, on the same images (the IDX files ecobench reads). Prints what
`worker bench` prints, as one JSON object with --json.

Needs torch in a virtual environment outside the repository (see bench/README.md):
    ~/.venvs/ecobench-bench/bin/python bench/torch_twins.py --model cnn --threads 1 --json
"""

import argparse
import gzip
import json
import os
import resource
import struct
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=["cnn", "densenet", "vgg"])
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "data", "fashion-mnist"))
    p.add_argument("--images", type=int, default=4000, help="training images per epoch (first N of the split)")
    p.add_argument("--test-images", type=int, default=0, help="test images to evaluate on after the last epoch (0: no evaluation)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--warmup-batches", type=int, default=5, help="batches trained before timing starts")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--growth-rate", type=int, default=12)
    p.add_argument("--n-blocks", type=int, default=3)
    p.add_argument("--layers-per-block", type=int, default=4)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--no-batch-norm", action="store_true")
    p.add_argument("--json", action="store_true")
    return p.parse_args()


ARGS = parse_args()
# The thread count must be fixed before torch starts its pools.
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
os.environ["MKL_NUM_THREADS"] = str(ARGS.threads)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(ARGS.threads)
torch.set_num_interop_threads(1)


def read_idx(path):
    """An IDX file (gzipped or not) as (dims, bytes)."""
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return dims, data[4 + 4 * ndim :]


def find(folder, base):
    for name in (base + ".gz", base):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    sys.exit(f"{folder}: no {base}[.gz]: point --data at a folder of IDX files")


def load(folder, split, n):
    dims, pixels = read_idx(find(folder, f"{split}-images-idx3-ubyte"))
    _, labels = read_idx(find(folder, f"{split}-labels-idx1-ubyte"))
    count = dims[0] if n <= 0 else min(n, dims[0])
    x = torch.frombuffer(bytearray(pixels[: count * dims[1] * dims[2]]), dtype=torch.uint8)
    x = x.reshape(count, 1, dims[1], dims[2]).float() / 255.0
    y = torch.frombuffer(bytearray(labels[:count]), dtype=torch.uint8).long()
    return x, y


class Cnn(nn.Module):
    """conv 1→16→32→64 (3×3, pad 1) → ReLU → 2×2 max pool each; linear 576→128 → ReLU → 10."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in [(1, 16), (16, 32), (32, 64)])
        self.fc1 = nn.Linear(64 * 3 * 3, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class DenseLayer(nn.Module):
    def __init__(self, c_in, k):
        super().__init__()
        self.bn = nn.BatchNorm2d(c_in)
        self.conv = nn.Conv2d(c_in, k, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(F.relu(self.bn(x)))], 1)


class Transition(nn.Module):
    def __init__(self, c_in):
        super().__init__()
        self.bn = nn.BatchNorm2d(c_in)
        self.conv = nn.Conv2d(c_in, c_in // 2, 1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(nn.Module):
    """stem conv 3×3 1→2k; blocks of BN→ReLU→conv3×3(k) concatenated; transitions
    BN→ReLU→conv1×1 to half→avg pool 2; BN→ReLU→global average pool→linear."""

    def __init__(self, k, n_blocks, layers_per_block):
        super().__init__()
        c = 2 * k
        layers = [nn.Conv2d(1, c, 3, padding=1, bias=False)]
        for block in range(n_blocks):
            for _ in range(layers_per_block):
                layers.append(DenseLayer(c, k))
                c += k
            if block < n_blocks - 1:
                layers.append(Transition(c))
                c //= 2
        self.features = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.features(x)))
        return self.fc(x.mean((2, 3)))


VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class Vgg(nn.Module):
    """VGG-11 with every width × `width`; conv3×3 pad 1 → BN → ReLU; input zero-padded to
    32×32; one linear layer from the last width to the classes."""

    def __init__(self, width, batch_norm):
        super().__init__()
        layers, c = [], 1
        for v in VGG11:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out = max(1, round(v * width))
            layers.append(nn.Conv2d(c, out, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            c = out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(self.features(F.pad(x, (2, 2, 2, 2))).flatten(1))


def build(args):
    if args.model == "cnn":
        return Cnn()
    if args.model == "densenet":
        return DenseNet(args.growth_rate, args.n_blocks, args.layers_per_block)
    return Vgg(args.width, not args.no_batch_norm)


def accuracy(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(y), 500):
            correct += (model(x[start : start + 500]).argmax(1) == y[start : start + 500]).sum().item()
    model.train()
    return correct / len(y)


def main():
    args = ARGS
    torch.manual_seed(args.seed)
    x, y = load(args.data, "train", args.images)
    model = build(args)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    fwd_s = bwd_s = opt_s = 0.0
    n_seen = 0
    warmup = args.warmup_batches
    losses = []
    for epoch in range(args.epochs):
        order = torch.randperm(len(y), generator=gen)
        loss_sum = 0.0
        for start in range(0, len(y), args.batch):
            idx = order[start : start + args.batch]
            xb, yb = x[idx], y[idx]
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(xb), yb)
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            loss_sum += loss.item() * len(idx)
            if warmup > 0:
                warmup -= 1
                continue
            fwd_s += t1 - t0
            bwd_s += t2 - t1
            opt_s += t3 - t2
            n_seen += len(idx)
        losses.append(loss_sum / len(y))
    train_s = fwd_s + bwd_s + opt_s
    result = {
        "stack": "pytorch",
        "version": torch.__version__,
        "model": args.model,
        "threads": args.threads,
        "batch": args.batch,
        "images": n_seen,
        "images_per_s": n_seen / train_s,
        "forward_s": fwd_s,
        "backward_s": bwd_s,
        "optimizer_s": opt_s,
        "train_s": train_s,
        "loss": losses[-1],
        "n_params": sum(p.numel() for p in model.parameters()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    if args.test_images != 0:
        tx, ty = load(args.data, "t10k", args.test_images)
        result["accuracy"] = accuracy(model, tx, ty)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"pytorch {args.model}: {result['images_per_s']:.0f} images/s "
            f"(forward {fwd_s:.2f} s, backward {bwd_s:.2f} s, optimizer {opt_s:.2f} s), "
            f"peak RSS {result['peak_rss_mb']:.0f} MB"
            + (f", accuracy {result['accuracy']:.4f}" if "accuracy" in result else "")
        )


if __name__ == "__main__":
    main()
