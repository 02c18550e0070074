#!/usr/bin/env bash
# One prepared check for a lent GPU machine (x86-64, NVIDIA GPU, CUDA 13 driver, no internet, no
# cargo registry). Build the binary here and carry it:
#     cargo build --release --features cuda --target-dir target/cuda
# then, on the GPU machine, from the repo root (under 5 minutes):
#     bash scripts/gpu-check.sh [target/cuda/release/kestrel]
# It lists the device, compares the CUDA preprocessing kernel with its CPU reference, runs both
# bundled models on CUDA and on the CPU, compares their results (boxes within 0.5 px, scores and
# probabilities within 1e-3) and prints a latency table (median of 50 runs after warm-up).
# Without a GPU it says so and still runs its CPU half.
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
nvidia-smi -L 2>/dev/null || echo "nvidia-smi not found"
GPU=1
if ! "$BIN" gpu-selftest; then
    GPU=0
    echo "gpu-check: no usable GPU: running the CPU half only"
fi

run() { # backend model image out
    "$BIN" run "$2" "$3" --json --repeat 50 --backend "$1" > "$4" 2> "$4.err" || { cat "$4.err"; return 1; }
}
echo "== models"
for pair in "blazeface models/samples/astronaut.png" "fashion-cnn models/fashion-cnn/samples/00-ankle-boot.png"; do
    set -- $pair
    run cpu "models/$1/model.onnx" "$2" "$OUT/$1.cpu.json" || exit 1
    if [ "$GPU" = 1 ]; then
        run cuda "models/$1/model.onnx" "$2" "$OUT/$1.cuda.json" || exit 1
    fi
done

python3 - "$OUT" "$GPU" <<'PY'
import json, os, sys
out, gpu = sys.argv[1], sys.argv[2] == "1"
print(f"{'model':<12} {'cpu ms':>8} {'cuda ms':>8} {'speedup':>8} {'max |Δ|':>9}  result")
ok = True
for name in ["blazeface", "fashion-cnn"]:
    cpu = json.load(open(f"{out}/{name}.cpu.json"))
    if not gpu:
        print(f"{name:<12} {cpu['latency_ms']:>8.3f} {'-':>8} {'-':>8} {'-':>9}  cpu only")
        continue
    cuda = json.load(open(f"{out}/{name}.cuda.json"))
    diffs = []
    if "classes" in cpu:
        want = {c["index"]: c["score"] for c in cpu["classes"]}
        for c in cuda["classes"]:
            diffs.append(abs(c["score"] - want.get(c["index"], -1)))
        good = max(diffs) <= 1e-3
    else:
        good = len(cpu["detections"]) == len(cuda["detections"])
        for a, b in zip(cpu["detections"], cuda["detections"]):
            box = max(abs(a[k] - b[k]) for k in ["x_min", "y_min", "x_max", "y_max"])
            diffs.append(abs(a["score"] - b["score"]))
            good = good and box <= 0.5 and abs(a["score"] - b["score"]) <= 1e-3
    ok = ok and good
    m = max(diffs) if diffs else 0.0
    print(f"{name:<12} {cpu['latency_ms']:>8.3f} {cuda['latency_ms']:>8.3f} {cpu['latency_ms'] / cuda['latency_ms']:>7.2f}x {m:>9.2e}  {'ok' if good else 'MISMATCH'}")
sys.exit(0 if ok else 1)
PY
