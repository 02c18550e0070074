#!/usr/bin/env bash
# models/pose-detection/model.onnx: MediaPipe's pose detector (an SSD over 2,254 anchors), taken
# from the mediapipe 0.10.14 wheel and converted by scripts/tflite_to_onnx.py (its pruned fp16
# weights become dense fp32), which checks the result against tflite-runtime before writing it.
# Throw-away venv; run from the repo root.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet tflite==2.18.0 onnx==1.16.2 "numpy<2" tflite-runtime==2.14.0 onnxruntime==1.19.2
python3 -m pip download --quiet --no-deps --only-binary=:all: mediapipe==0.10.14 -d "$tmp"
python3 -c "import glob, sys, zipfile; zipfile.ZipFile(glob.glob(sys.argv[1] + '/mediapipe-*.whl')[0]).extract('mediapipe/modules/pose_detection/pose_detection.tflite', sys.argv[1])" "$tmp"
mkdir -p models/pose-detection
"$tmp/venv/bin/python" scripts/tflite_to_onnx.py "$tmp/mediapipe/modules/pose_detection/pose_detection.tflite" models/pose-detection/model.onnx
