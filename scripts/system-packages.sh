#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Kestrel needs, only those missing.
#   scripts/system-packages.sh        GStreamer, for `kestrel watch` (the demo needs it)
#   scripts/system-packages.sh test   and what the tests need: the RTSP server library, Chromium, QEMU,
#                                     the aarch64 cross linker and its C library (a Recommends that
#                                     --no-install-recommends drops), OpenSSH, g++ (libFuzzer's sources),
#                                     python3-venv (the Cyclone DDS peer of the ROS 2 tests), the Mender
#                                     client and artifact tool, OpenSSL (the Mender tests' keys)
set -euo pipefail

packages=(pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
    gstreamer1.0-libav)
if [ "${1:-}" = test ]; then
    packages+=(libgstrtspserver-1.0-dev chromium qemu-system-arm qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross openssh-server openssh-client g++ python3-venv
        mender-client mender-artifact openssl)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
