#!/usr/bin/env python3
"""ecobench's nets against their PyTorch twins (bench/torch_twins.py), side by side.

Speed: for each model, batch size and thread count, `worker bench --json` and the twin
run alternately (ecobench, PyTorch, ecobench, ...) on the same images with the same
settings; the table gives the median train images/s of each, their ratio, and the
peak resident memory. Accuracy (--accuracy): both train 3 epochs on the whole shipped
subset (10,000 images) and are tested on its 2,000 test images.

    ~/.venvs/ecobench-bench/bin/python bench/compare_nets.py            # speed, ~5 minutes
    ~/.venvs/ecobench-bench/bin/python bench/compare_nets.py --accuracy # ~10 minutes
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGETS = {"cnn": 1.2, "densenet": 1.0, "vgg": 1.0}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", default=os.path.join(ROOT, "target", "release", "worker"))
    p.add_argument("--python", default=sys.executable, help="the Python that has torch")
    p.add_argument("--models", nargs="+", default=["cnn", "densenet", "vgg"])
    p.add_argument("--batches", nargs="+", type=int, default=[32, 64])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--pairs", type=int, default=3, help="alternated pairs per case (medians)")
    p.add_argument("--images", type=int, default=0, help="training images per run (default: per model)")
    p.add_argument("--accuracy", action="store_true", help="compare accuracy after 3 epochs instead")
    p.add_argument("--seeds", nargs="+", type=int, default=[1], help="seeds of the accuracy runs")
    p.add_argument("--data", default=os.path.join(ROOT, "data", "fashion-mnist"))
    return p.parse_args()


# Enough images for a few seconds of training per run at the speeds measured here.
DEFAULT_IMAGES = {"cnn": 6400, "densenet": 960, "vgg": 2560}


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ours(args, model, batch, threads, images, extra=()):
    return run_json([args.worker, "bench", "--model", model, "--batch", str(batch),
                     "--threads", str(threads), "--images", str(images), "--data", args.data,
                     "--json", *extra])


def theirs(args, model, batch, threads, images, extra=()):
    return run_json([args.python, os.path.join(HERE, "torch_twins.py"), "--model", model,
                     "--batch", str(batch), "--threads", str(threads), "--images", str(images),
                     "--data", args.data, "--json", *extra])


def speed(args):
    print("| model | batch | threads | ecobench images/s | PyTorch images/s | ratio | target | "
          "ecobench peak RSS MB | PyTorch peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in args.models:
        images = args.images or DEFAULT_IMAGES[model]
        for batch in args.batches:
            for threads in args.threads:
                a, b = [], []
                for _ in range(args.pairs):
                    a.append(ours(args, model, batch, threads, images))
                    b.append(theirs(args, model, batch, threads, images))
                ips_a = statistics.median(r["images_per_s"] for r in a)
                ips_b = statistics.median(r["images_per_s"] for r in b)
                rss_a = max(r["peak_rss_mb"] for r in a)
                rss_b = max(r["peak_rss_mb"] for r in b)
                ratio = ips_a / ips_b
                verdict = "met" if ratio >= TARGETS[model] else "NOT met"
                print(f"| {model} | {batch} | {threads} | {ips_a:.0f} | {ips_b:.0f} | {ratio:.2f} | "
                      f"≥ {TARGETS[model]} {verdict} | {rss_a:.0f} | {rss_b:.0f} |", flush=True)


def accuracy(args):
    print("| model | seed | ecobench accuracy | PyTorch accuracy | difference |")
    print("|---|---|---|---|---|")
    for model in args.models:
        for seed in args.seeds:
            extra = ("--epochs", "3", "--test-images", "2000", "--seed", str(seed), "--warmup-batches", "0")
            a = ours(args, model, 32, 2, 10000, extra)["accuracy"]
            b = theirs(args, model, 32, 2, 10000, extra)["accuracy"]
            print(f"| {model} | {seed} | {a:.4f} | {b:.4f} | {a - b:+.4f} |", flush=True)


def main():
    args = parse_args()
    if not os.path.exists(args.worker):
        sys.exit(f"{args.worker} is missing: run `cargo build --release -p ecobench-worker` first")
    if args.accuracy:
        accuracy(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
