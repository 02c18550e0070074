#!/usr/bin/env bash
# The static musl aarch64 build (JetPack 4/5 boards) against the host under qemu. Outside CI: its
# cold cross-build of tract takes about 14 minutes on 2 cores. Needs what scripts/test.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add aarch64-unknown-linux-musl
KESTREL_CROSS_MUSL=1 cargo test --release --test aarch64_qemu static_musl -- --nocapture
