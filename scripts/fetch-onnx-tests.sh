#!/usr/bin/env bash
# Fetch the ONNX backend node tests (1,765 cases: model.onnx + input_*.pb/output_*.pb) that ship
# inside the onnx==1.22.0 wheel, into target/onnx-node-tests/. Cached: does nothing when present.
# Needs only pip and unzip (or python3's zipfile); no Python packages are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/onnx-node-tests
if [ -f "$dest/.complete" ]; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: onnx==1.22.0 -d "$tmp"
wheel=$(ls "$tmp"/onnx-1.22.0-*.whl)
rm -rf "$dest"
mkdir -p "$dest"
python3 - "$wheel" "$dest" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "onnx/backend/test/data/node/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = os.path.join(dest, name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, "wb") as dst:
                dst.write(src.read())
PY
touch "$dest/.complete"
echo "ONNX node tests: $(ls "$dest" | wc -l) cases in $dest"
