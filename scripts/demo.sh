#!/usr/bin/env bash
# The main job on the bundled defaults: installs GStreamer if it is missing (`kestrel watch`
# links it), then `cargo run --release -- demo` (extra arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-packages.sh
exec cargo run --release -- demo "$@"
