#!/usr/bin/env bash
# The test command (README, CI): installs what the tests need, then format, lints and tests.
# Safe to re-run: every step is cached or idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Rust components and targets"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add thumbv7em-none-eabihf aarch64-unknown-linux-gnu aarch64-unknown-linux-musl

step "System packages (QEMU for the Cortex-M and aarch64 tests, the aarch64 cross linker, OpenSSH for the deploy tests)"
if ! command -v qemu-system-arm >/dev/null || ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null \
    || [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq qemu-system-arm qemu-user gcc-aarch64-linux-gnu openssh-server openssh-client
fi

step "ONNX conformance data (onnx==1.22.0 wheel, cached in target/)"
bash scripts/fetch-onnx-tests.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --release --workspace --all-targets -- -D warnings
cargo clippy --release -p kestrel-engine --features cuda --all-targets -- -D warnings
(cd boards/mps2-an386 && cargo fmt -- --check && CARGO_TARGET_DIR=../../target/mcu cargo clippy --release -- -D warnings)

step "kestrel-micro builds for a Cortex-M4F (no std can creep in), with every op and with the core only"
cargo build --release -p kestrel-micro --target thumbv7em-none-eabihf
cargo build --release -p kestrel-micro --target thumbv7em-none-eabihf --features defmt
cargo clippy --release -p kestrel-micro --target thumbv7em-none-eabihf --no-default-features --features cortex-m-dsp -- -D warnings
cargo test --release -p kestrel-micro --no-default-features --tests

step "kestrel-micro on aarch64 under qemu (the NEON dot-product kernel against the portable one)"
cargo clippy --release -p kestrel-micro --target aarch64-unknown-linux-gnu --all-targets -- -D warnings
cargo test --release -p kestrel-micro --target aarch64-unknown-linux-gnu --lib

step "cargo test"
cargo test --release --workspace

step "The benches cross-built for aarch64 run once each under qemu (speed there means nothing)"
CARGO_TARGET_DIR=target/cross cargo bench --target aarch64-unknown-linux-gnu \
    --bench micro_conv_stack --bench fashion_cnn_cpu --bench blazeface_cpu -- --test

step "CUDA backend built in, on this GPU-less machine (clean errors, CPU reference of the kernel)"
cargo test --release --features cuda -p kestrel-engine
cargo test --release --features cuda --test cuda_backend
# Put the default (CPU-only) binary back for whoever runs the demo next.
cargo build --release
