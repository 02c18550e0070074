#!/usr/bin/env python3
"""The brought models (third-party detectors and landmark models) side by side: size, latency at
one thread or --threads N (tract fp32, the integer runtime on the integer-only int8 graph,
onnxruntime on the fp32 model and on that same int8 graph), box agreement with the fp32 model
(mixed and integer-only int8), and whether the integer runtime computes what onnxruntime
computes on the int8 graph. Numbers for notes and README, never a test.

For each model: `kestrel compress --int8` (mixed) and `--int8 --integer-only`; `kestrel bench`
of the three (5 rounds, models taking turns; quality = the fp32 model's boxes found at IoU 0.5, same class, and
apart those the fp32 model scores >= 0.5);
onnxruntime timed in this process between the rounds of nothing else (run it on a quiet
machine); then one real photo, preprocessed here in numpy, as a float32 .npy fed to both
onnxruntime (graph optimizations off: the graph as written, see scripts/make_fixtures.py) and
`kestrel run --backend micro` (.npy inputs skip preprocessing), outputs compared in steps of
each output's quantization scale (LSB).

Venv: onnx onnxruntime numpy pillow. After `cargo build --release` and scripts/fetch-models.sh:
    python scripts/brought_models.py [--runs 50] [--only NAME] [--calibration minmax] [--threads N]
Writes target/brought-models/table-{N}t.md (and prints it).
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from PIL import Image

from bench_vs_ort import ort_median_ms

KESTREL = "target/release/kestrel"
WORK = "target/brought-models"
CALIB_PHOTOS = "models/blazeface/calib"

# Quality is measured on photos the calibration (models/blazeface/calib) does not hold: the
# bundled samples, two more of scikit-image's (from its wheel; not its rocket, which the
# calibration holds, downscaled) and eight of OpenCV's sample photos (Debian's opencv-doc),
# people among them (fetched by extra_photos()).
EXTRA = ["camera.png", "motorcycle_left.png"]
OPENCV = ["basketball1.png", "messi5.jpg", "left06.jpg", "chicky_512.png", "apple.jpg", "squirrel_cls.jpg",
          "aero1.jpg", "home.jpg"]
OPENCV_DIR = "usr/share/doc/opencv-doc/examples/data"
PHOTOS = ["models/samples/astronaut.png", "models/samples/person.jpg", "models/samples/chelsea.png"] + \
    [f"{WORK}/skimage/{name}" for name in EXTRA] + [f"{WORK}/opencv/{name}" for name in OPENCV]
PAGE = ["models/samples/page.png"]

# name, fp32 model, config (None: the one beside the model or the model's own metadata),
# calibration folder (None: the photos), photos (quality over all; the first one for exactness).
MODELS = [
    ("pose detection (MediaPipe SSD)", "models/pose-detection/model.onnx", None, CALIB_PHOTOS, PHOTOS),
    # No bundled photo shows a bare hand: the presence threshold at 0, so boxes can be compared.
    ("hand landmarks (MediaPipe)", "models/hand-landmark/model.onnx",
     open("models/hand-landmark/kestrel.toml").read().replace("presence_threshold = 0.5", "presence_threshold = 0.0"),
     CALIB_PHOTOS, PHOTOS),
    ("YOLOv8n 320 (Ultralytics)", "target/models/yolov8n-320/320n.onnx", None, CALIB_PHOTOS, PHOTOS),
    ("PicoDet layout (PaddleDetection)", "target/models/picodet-layout/layout_cdla.onnx",
     "[preprocess]\nwidth = 608\nheight = 800\nlayout = \"nchw\"\ncolor = \"rgb\"\nresize = \"stretch\"\n"
     "range = [0.0, 1.0]\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n\n"
     "[decoder]\nkind = \"gfl\"\nlabels = [\"text\", \"title\", \"figure\", \"figure_caption\", \"table\", "
     "\"table_caption\", \"header\", \"footer\", \"reference\", \"equation\"]\nstrides = [8, 16, 32, 64]\n",
     None, PAGE),
    ("COCO NanoDet-g (bundled)", "models/coco-nanodet/model.onnx", None, "models/coco-nanodet/calib",
     sorted(glob.glob("models/coco-nanodet/photos/*"))),
    ("PP-OCRv4 det 768x384 (PaddleOCR)", "target/models/ppocr-det/ch_PP-OCRv4_det_infer.onnx",
     "[preprocess]\nwidth = 768\nheight = 384\nlayout = \"nchw\"\ncolor = \"bgr\"\nresize = \"stretch\"\n"
     "range = [0.0, 1.0]\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n\n"
     "[decoder]\nkind = \"segmentation\"\n", None, PAGE),
]


def extra_photos():
    """scikit-image's photos named in EXTRA, from its wheel, and OpenCV's named in OPENCV, from
    Debian's opencv-doc package (cached under WORK)."""
    d = f"{WORK}/skimage"
    if not all(os.path.exists(f"{d}/{name}") for name in EXTRA):
        os.makedirs(d, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "scikit-image==0.22.0", "-d", d], check=True)
        wheel = zipfile.ZipFile(glob.glob(f"{d}/scikit_image-*.whl")[0])
        for name in EXTRA:
            open(f"{d}/{name}", "wb").write(wheel.read(f"skimage/data/{name}"))
    d = f"{WORK}/opencv"
    if not all(os.path.exists(f"{d}/{name}") for name in OPENCV):
        os.makedirs(d, exist_ok=True)
        subprocess.run(["apt-get", "download", "opencv-doc"], cwd=d, check=True, capture_output=True)
        deb = glob.glob(f"{d}/opencv-doc_*.deb")[0]
        tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", d, "--strip-components=7"] + [f"./{OPENCV_DIR}/{n}" for n in OPENCV],
                       input=tar, check=True)
        os.remove(deb)


def kestrel(*args):
    return subprocess.run([KESTREL, *args], check=True, capture_output=True, text=True).stdout


def toml_preprocess(text):
    """The [preprocess] table of a kestrel.toml, read with the few rules our configs use."""
    import tomllib
    return tomllib.loads(text)["preprocess"]


def model_input(photo, p):
    """The photo as kestrel's config says (stretch or letterbox, range, mean/std, channel order,
    layout), with PIL's resampling: float32, batch of one."""
    img = Image.open(photo).convert("RGB")
    w, h = p["width"], p["height"]
    if p.get("resize", "stretch") == "letterbox":
        s = min(w / img.size[0], h / img.size[1])
        nw, nh = min(max(round(img.size[0] * s), 1), w), min(max(round(img.size[1] * s), 1), h)
        pad = p.get("pad_value", 0)
        canvas = Image.new("RGB", (w, h), (pad, pad, pad))
        canvas.paste(img.resize((nw, nh), Image.BILINEAR), ((w - nw) // 2, (h - nh) // 2))
        img = canvas
    else:
        img = img.resize((w, h), Image.BILINEAR)
    x = np.asarray(img, np.float32) / 255.0
    if p.get("color", "rgb") == "bgr":
        x = x[:, :, ::-1]
    lo, hi = p.get("range", [0.0, 1.0])
    x = lo + x * (hi - lo)
    x = (x - np.array(p.get("mean", [0.0]), np.float32)) / np.array(p.get("std", [1.0]), np.float32)
    if p.get("layout", "nchw") == "nchw":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None], np.float32)


def ort_session(path):
    """One thread, graph optimizations off: the int8 graph as written."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def output_scales(path):
    """Per graph output, the scale of the DequantizeLinear it comes from (through layout-only
    ops), or None where float arithmetic follows."""
    g = onnx.load(path).graph
    producer = {o: n for n in g.node for o in n.output}
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    scales = []
    for out in g.output:
        name, scale = out.name, None
        while name in producer:
            n = producer[name]
            if n.op_type == "DequantizeLinear":
                s = consts.get(n.input[1])
                scale = float(s) if s is not None and s.size == 1 else None
                break
            if n.op_type not in ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Concat"):
                break
            name = n.input[0]
        scales.append(scale)
    return scales


def exactness(name, integer, config_text, x):
    """Largest |micro - onnxruntime| per output, in LSB of its scale (or absolute)."""
    d = os.path.join(WORK, name)
    np.save(f"{d}/input.npy", x)
    raw = f"{d}/raw.toml"
    text = config_text.split("[decoder]")[0] + "[decoder]\nkind = \"raw\"\n"
    open(raw, "w").write(text)
    saved = f"{d}/micro-outputs"
    shutil.rmtree(saved, ignore_errors=True)
    kestrel("run", integer, f"{d}/input.npy", "--backend", "micro", "--config", raw, "--save-outputs", saved, "--json")
    sess = ort_session(integer)
    theirs = sess.run(None, {sess.get_inputs()[0].name: x})
    results = []
    for o, want, scale in zip(sess.get_outputs(), theirs, output_scales(integer)):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in o.name)
        ours = np.load(f"{saved}/input.{safe}.npy")
        diff = float(np.abs(ours.astype(np.float64) - want.astype(np.float64)).max())
        results.append((o.name, diff / scale if scale else None, diff, int(want.size)))
    return results


def write_config(model, config, d):
    """d/kestrel.toml: the given config, else the one beside the model, else `kestrel init`'s
    (for YOLO, from the model's metadata); returns its text."""
    path = f"{d}/kestrel.toml"
    beside = os.path.join(os.path.dirname(model), "kestrel.toml")
    if config is None and os.path.exists(beside):
        config = open(beside).read()
    if config is None:
        kestrel("init", f"{d}/model.onnx", "--force")
    else:
        open(path, "w").write(config)
    return open(path).read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--only")
    ap.add_argument("--threads", type=int, default=1, help="threads for kestrel and onnxruntime")
    ap.add_argument("--calibration", default="auto", help="kestrel compress --calibration (auto, minmax, percentile)")
    args = ap.parse_args()
    extra_photos()
    rows, notes = [], []
    for name, model, config, calib, photo_list in MODELS:
        if args.only and args.only.lower() not in name.lower():
            continue
        tag = name.split(" (")[0].replace(" ", "-").lower()
        d = os.path.join(WORK, tag)
        os.makedirs(d, exist_ok=True)
        full = f"{d}/model.onnx"  # beside its kestrel.toml, for bench
        shutil.copy(model, full)
        config_text = write_config(model, config, d)
        photos = f"{d}/photos"
        shutil.rmtree(photos, ignore_errors=True)
        os.makedirs(photos)
        for p in photo_list:
            shutil.copy(p, photos)
        calib = calib or photos
        photo = photo_list[0]
        mixed, integer = f"{d}/mixed.int8.onnx", f"{d}/integer.int8.onnx"
        for out, extra in [(mixed, []), (integer, ["--integer-only"])]:
            kestrel("compress", full, "--int8", *extra, "--calib", calib, "--calibration", args.calibration, "--out", out,
                    "--json")
        kmodel = f"{d}/integer.kmodel"
        kestrel("export", integer, "-o", kmodel)
        bench = f"{d}/bench.json"
        kestrel("bench", full, mixed, kmodel, "--images", photos, "--runs", str(args.runs), "--threads",
                str(args.threads), "--json", bench)
        r = json.load(open(bench))["models"]
        lines = kestrel("run", full, *sorted(glob.glob(f"{photos}/*")), "--json").splitlines()
        boxes = sum(len(json.loads(l).get("detections", [])) for l in lines)
        x = model_input(photo, toml_preprocess(config_text))
        ort_fp32, ort_int8 = (ort_median_ms(m, x, args.runs, args.threads) for m in (full, integer))
        exact = exactness(tag, integer, config_text, x)
        lsb = [e[1] for e in exact if e[1] is not None]
        rows.append({
            "model": name, "fp32 MB": os.path.getsize(full) / 2**20, "kmodel MB": os.path.getsize(kmodel) / 2**20,
            "tract fp32": r[0]["p50_ms"], "mixed int8": r[1]["p50_ms"], "micro int8": r[2]["p50_ms"],
            "ort fp32": ort_fp32, "ort int8": ort_int8,
            "mixed": (r[1]["quality"], r[1].get("mean_iou"), r[1]["backend"], r[1].get("sure_boxes")),
            "integer": (r[2]["quality"], r[2].get("mean_iou"), None, r[2].get("sure_boxes")),
            "max LSB": max(lsb) if lsb else None, "boxes": boxes,
        })
        for o, steps, diff, n in exact:
            notes.append(f"{name}: output `{o}` ({n} values): max |micro - onnxruntime| {diff:.3g}"
                         + (f" = {steps:.2f} LSB" if steps is not None else " (float output)"))
        print(json.dumps(rows[-1]), flush=True)
    lines = ["| model | fp32 MB | .kmodel MB | tract fp32 ms | mixed int8 ms | integer-only micro ms | ort fp32 ms "
             "| ort int8 ms | fp32 boxes | mixed int8: found, IoU | integer-only: found, IoU | micro vs ort int8 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    def agree(q):
        if q[0] is None:
            return "-"
        text = f"{q[0] * 100:.0f}%" + ("" if q[1] is None else f", {q[1]:.3f}")
        sure = q[3]
        if sure:  # the boxes the fp32 model scores >= 0.5
            text += f" (≥ 0.5: {round(sure['found'] * sure['boxes'])}/{sure['boxes']}" + (
                "" if sure["mean_iou"] is None else f", {sure['mean_iou']:.3f}") + ")"
        return text
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['fp32 MB']:.1f} | {row['kmodel MB']:.2f} | {row['tract fp32']:.1f} | "
            f"{row['mixed int8']:.1f} ({row['mixed'][2]}) | {row['micro int8']:.1f} | {row['ort fp32']:.1f} | "
            f"{row['ort int8']:.1f} | {row['boxes']} | {agree(row['mixed'])} | {agree(row['integer'])} | "
            + ("-" if row["max LSB"] is None else f"≤ {row['max LSB']:.2f} LSB") + " |")
    text = "\n".join(lines + [""] + notes) + "\n"
    open(f"{WORK}/table-{args.threads}t.md", "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
