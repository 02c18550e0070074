#!/usr/bin/env bash
# models/hand-landmark/model.onnx: MediaPipe's hand landmark model (lite), taken from the
# mediapipe 0.10.14 wheel and converted with tflite2onnx 0.4.1 (its fp16 weights become fp32),
# in a throw-away venv. Checked here against the original .tflite under tflite-runtime 2.14:
# landmarks within 2e-4 px, presence within 1e-7 (see SOURCE.md). Run from the repo root.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet tflite2onnx==0.4.1
python3 -m pip download --quiet --no-deps --only-binary=:all: mediapipe==0.10.14 -d "$tmp"
python3 -c "import glob, sys, zipfile; zipfile.ZipFile(glob.glob(sys.argv[1] + '/mediapipe-*.whl')[0]).extract('mediapipe/modules/hand_landmark/hand_landmark_lite.tflite', sys.argv[1])" "$tmp"
mkdir -p models/hand-landmark
"$tmp/venv/bin/tflite2onnx" "$tmp/mediapipe/modules/hand_landmark/hand_landmark_lite.tflite" models/hand-landmark/model.onnx
