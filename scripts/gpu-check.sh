#!/usr/bin/env bash
# One prepared check for a lent GPU machine (x86-64, NVIDIA GPU, CUDA 13 driver, no internet, no
# cargo registry, no GStreamer). Build the binary here, without the camera, and carry it:
#     cargo build --release --no-default-features --features cuda --target-dir target/cuda
# then, on the GPU machine, from the repo root (under 5 minutes):
#     bash scripts/gpu-check.sh [target/cuda/release/kestrel]
# It lists the device, compares the CUDA preprocessing kernel with its CPU reference
# (`gpu-selftest`), runs both bundled models on CUDA and on the CPU and compares their results
# (scripts/gpu_compare.py: boxes within 0.5 px, scores and probabilities within 1e-3), with a
# latency table (median of 50 runs after warm-up). `kestrel watch --backend cuda` (frames
# prepared by the same kernel) needs GStreamer as well: `cargo test --features cuda --test
# cuda_backend` checks it against the CPU path on a CUDA machine that has both (a Jetson).
# Exit status: 0 when everything matched; 1 when anything failed on a machine with a GPU (a
# self-test failure, a CUDA/CPU mismatch, a model that does not run); 0 with a SKIP line when
# this machine has no GPU device at all (then only the CPU half runs).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/cuda/release/kestrel}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "gpu-check: no kestrel binary at $BIN (build it with --features cuda)"; exit 1; }

# cuDNN/cuBLAS/NVRTC may be installed only as Python wheels (nvidia/*/lib).
extra=$(python3 - <<'PY' 2>/dev/null
import glob, site
dirs = []
for p in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += glob.glob(p + "/nvidia/*/lib")
print(":".join(dirs))
PY
)
[ -n "$extra" ] && export LD_LIBRARY_PATH="$extra:${LD_LIBRARY_PATH:-}"

echo "== device"
GPU=0
if nvidia-smi -L 2>/dev/null | grep -q '^GPU ' || [ -e /dev/nvidiactl ] || [ -e /dev/nvhost-ctrl-gpu ]; then
    GPU=1
    nvidia-smi -L 2>/dev/null || echo "(a GPU device node exists, but nvidia-smi does not run)"
else
    echo "SKIP: no GPU device on this machine: only the CPU half runs"
fi
if [ "$GPU" = 1 ] && ! "$BIN" gpu-selftest; then
    echo "gpu-check: FAILED: this machine has a GPU, and gpu-selftest failed (above)"
    exit 1
fi

run() { # backend model image out
    "$BIN" run "$2" "$3" --json --repeat 50 --backend "$1" > "$4" 2> "$4.err" || { cat "$4.err"; return 1; }
}
echo "== models"
for pair in "blazeface models/samples/astronaut.png" "fashion-cnn models/fashion-cnn/samples/00-ankle-boot.png"; do
    set -- $pair
    run cpu "models/$1/model.onnx" "$2" "$OUT/$1.cpu.json" || { echo "gpu-check: FAILED: $1 on the CPU"; exit 1; }
    if [ "$GPU" = 1 ]; then
        run cuda "models/$1/model.onnx" "$2" "$OUT/$1.cuda.json" || { echo "gpu-check: FAILED: $1 on CUDA"; exit 1; }
    fi
done
if [ "$GPU" = 0 ]; then
    echo "gpu-check: CPU half passed; the GPU half was SKIPPED (no GPU device)"
    exit 0
fi
python3 scripts/gpu_compare.py "$OUT" || { echo "gpu-check: FAILED: CUDA and CPU results differ (above)"; exit 1; }
echo "gpu-check: passed"
