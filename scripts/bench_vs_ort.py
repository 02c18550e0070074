#!/usr/bin/env python3
"""Latency of the bundled models, fp32 and int8: Kestrel (tract, or the integer runtime) vs
onnxruntime at 1 and 2 threads, side by side in one run (alternating rounds, median of N timed
runs after warm-up).

Then the integer runtime's benchmark (scripts/make_conv_stack.py): `cargo bench --bench micro_conv_stack`
(criterion: tract fp32/int8, micro int8 with and without its fast paths, tract fp32 and micro int8 at
2 threads) and onnxruntime fp32/int8 at 1 and 2 threads on the same files and input, in the same run of
this script, with the scaling efficiency (time at 1 thread / (2 x time at 2)).

Venv: onnxruntime numpy pillow. Build first: cargo build --release
Run from the repo root: python scripts/bench_vs_ort.py [--runs 300] [--rounds 3] [--threads 1,2] [--skip-models]
[--only NAME]
"""
import re
import argparse
import json
import os
import statistics
import subprocess
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

from make_blazeface import letterbox

# The COCO detector compressed integer-only (made by `kestrel compress` when missing).
NANODET_INT8 = "target/bench/coco-nanodet.integer.int8.onnx"

MODELS = [
    ("blazeface", "models/blazeface/model.onnx", "models/samples/astronaut.png"),
    ("blazeface int8", "models/blazeface/model.int8.onnx", "models/samples/astronaut.png"),
    ("fashion-cnn", "models/fashion-cnn/model.onnx", "models/fashion-cnn/samples/00-ankle-boot.png"),
    ("fashion int8", "models/fashion-cnn/model.int8.onnx", "models/fashion-cnn/samples/00-ankle-boot.png"),
    ("fashion int8 micro", "models/fashion-cnn/model.int8.onnx", "models/fashion-cnn/samples/00-ankle-boot.png"),
    ("blazeface integer int8", "models/blazeface/model.integer.int8.onnx", "models/samples/astronaut.png"),
    ("blazeface integer int8 micro", "models/blazeface/model.integer.int8.onnx", "models/samples/astronaut.png"),
    ("coco-nanodet", "models/coco-nanodet/model.onnx", "models/coco-nanodet/photos/dog.jpg"),
    ("coco-nanodet integer int8 micro", NANODET_INT8, "models/coco-nanodet/photos/dog.jpg"),
]


def ort_input(name, image):
    img = Image.open(image)
    if name.startswith("blazeface"):
        return letterbox(img.convert("RGB"))
    if name.startswith("coco-nanodet"):
        # Latency only: NanoDet's normalized BGR input, stretched (Kestrel letterboxes; the
        # amount of work is the same).
        x = np.asarray(img.convert("RGB").resize((416, 416)), np.float32)[:, :, ::-1]
        x = (x - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None], np.float32)
    return (np.asarray(img.convert("L"), np.float32) / 255.0)[None, :, :, None]


def ort_median_ms(path, x, runs, threads=1):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(min(runs, 20)):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def kestrel_median_ms(path, image, runs, backend="cpu", threads=1):
    out = subprocess.check_output(["target/release/kestrel", "run", path, image, "--json", "--backend", backend,
                                   "--threads", str(threads), "--repeat", str(runs)])
    return json.loads(out)["latency_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-models", action="store_true", help="only the conv stack")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--only", default="", help="only the models whose name contains this")
    args = ap.parse_args()
    if not args.skip_models:
        bundled_models(args)
    conv_stack(args)


def conv_stack(args):
    """criterion's medians for our runtimes, onnxruntime's for the same two files, side by side."""
    out = subprocess.run(["cargo", "bench", "--bench", "micro_conv_stack", "--", "--noplot"],
                         capture_output=True, text=True, check=True).stdout
    ours = {}
    for label, median, unit in re.findall(r"micro_conv_stack/(.+?)\s+time:\s+\[\S+ \S+ (\S+) (\S+)", out):
        ours[label] = float(median) * {"ms": 1.0, "µs": 1e-3, "s": 1e3}[unit]
    n = 64 * 56 * 56
    x = (np.arange(n, dtype=np.int64) * 7919 % 1009).astype(np.float32).reshape(1, 64, 56, 56) / 1008.0
    base = "benches/models/conv-stack/"
    theirs = {f"onnxruntime {kind}" + ("" if t == 1 else " 2 threads"):
              min(ort_median_ms(base + f, x, max(args.runs // 10, 20), t) for _ in range(args.rounds))
              for t in (1, 2) for kind, f in [("fp32", "model.onnx"), ("int8", "model.int8.onnx")]}
    print("\nconv stack (6 x Conv3x3 64ch 56x56 + ReLU), ms:")
    both = {**ours, **theirs}
    for label, ms in both.items():
        print(f"  {label:<28} {ms:>8.3f}")
    for ours_label, theirs_label in [("micro int8", "onnxruntime int8"), ("tract fp32", "onnxruntime fp32")]:
        for suffix in ("", " 2 threads"):
            if ours_label + suffix in both:
                print(f"  {ours_label}{suffix} / {theirs_label}{suffix} = "
                      f"{both[ours_label + suffix] / both[theirs_label + suffix]:.2f}x")
        if ours_label + " 2 threads" in both:
            print(f"  {ours_label} scaling efficiency at 2 threads: "
                  f"{both[ours_label] / (2 * both[ours_label + ' 2 threads']):.0%}")


def bundled_models(args):
    if not os.path.exists(NANODET_INT8):
        os.makedirs(os.path.dirname(NANODET_INT8), exist_ok=True)
        subprocess.run(["target/release/kestrel", "compress", "models/coco-nanodet/model.onnx", "--int8",
                        "--integer-only", "--calib", "models/coco-nanodet/calib", "--out", NANODET_INT8],
                       check=True, capture_output=True)
    print(f"onnxruntime {ort.__version__}; median of {args.runs} runs per round, best of {args.rounds} rounds")
    print(f"{'model':<30} {'threads':>7} {'kestrel (ms)':>13} {'onnxruntime (ms)':>17} {'kestrel / ort':>14}")
    for name, path, image in MODELS:
        if args.only not in name:
            continue
        x = ort_input(name, image)
        for threads in (int(t) for t in args.threads.split(",")):
            ours, theirs = [], []
            for _ in range(args.rounds):
                backend = "micro" if name.endswith("micro") else "cpu"
                ours.append(kestrel_median_ms(path, image, args.runs, backend, threads))
                theirs.append(ort_median_ms(path, x, args.runs, threads))
            k, o = min(ours), min(theirs)
            print(f"{name:<30} {threads:>7} {k:>13.3f} {o:>17.3f} {k / o:>13.2f}x")


if __name__ == "__main__":
    main()
