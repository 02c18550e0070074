#!/usr/bin/env bash
# The other DDS for the ROS 2 interop tests (tests/ros2.rs): Eclipse Cyclone DDS's Python package
# (its C library bundled in the wheel), in a venv under target/. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/cyclonedds-venv
if ! "$venv/bin/python" -c "import cyclonedds" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" || { echo "python3 -m venv failed: install Debian's python3-venv" >&2; exit 1; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "cyclonedds==11.0.1"
fi
"$venv/bin/python" -c "import cyclonedds, importlib.metadata as m; print('cyclonedds', m.version('cyclonedds'))"
