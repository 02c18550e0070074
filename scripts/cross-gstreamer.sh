#!/usr/bin/env bash
# GStreamer to cross-link `kestrel watch` for aarch64 Linux (the `camera` feature the Orin boards
# turn on) on a Debian x86-64 host: installs the arm64 GStreamer runtime libraries (Debian
# multiarch; they also let qemu-aarch64 run the binary here) and writes pkg-config files naming
# them to target/gstreamer-aarch64/, where .cargo/config.toml points aarch64-gnu builds.
# Why not the arm64 -dev packages: Debian's cannot be installed beside the amd64 ones (they
# conflict), and the Rust bindings need no C headers, only the libraries' names and versions.
# To link against the board's own libraries instead, point pkg-config at a copy of its root:
#   PKG_CONFIG_SYSROOT_DIR_aarch64_unknown_linux_gnu=/rootfs \
#   PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=/rootfs/usr/lib/aarch64-linux-gnu/pkgconfig
set -euo pipefail
cd "$(dirname "$0")/.."

lib=/usr/lib/aarch64-linux-gnu
packages=(libgstreamer1.0-0:arm64 libgstreamer-plugins-base1.0-0:arm64 gstreamer1.0-plugins-base:arm64)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

out=target/gstreamer-aarch64
rm -rf "$out"
mkdir -p "$out/pkgconfig" "$out/lib"
# One .pc file per library the bindings link: NAME LIBRARY REQUIRES. The version comes from the
# installed file (libgstreamer-1.0.so.0.2200.0 is 1.22.0), whatever the Debian package is called.
pc() {
    local real version
    real=$(readlink -f "$lib/lib$2.so.0") || { echo "missing $lib/lib$2.so.0" >&2; exit 1; }
    version=$(basename "$real" | sed -E 's/.*\.so\.0\.([0-9]+)\.([0-9]+)$/\1 \2/' |
        awk -v major="${1//[^0-9.]/}" '{ printf "%d.%d.%d", int(major), $1 / 100, $2 }')
    ln -s "$real" "$out/lib/lib$2.so"
    printf 'Name: %s\nDescription: arm64 %s (Debian multiarch), for linking only\nVersion: %s\nRequires: %s\nLibs: -L%s -l%s\nCflags:\n' \
        "$1" "$1" "$version" "$3" "$PWD/$out/lib" "$2" > "$out/pkgconfig/$1.pc"
}
pc glib-2.0 glib-2.0 ""
pc gobject-2.0 gobject-2.0 glib-2.0
pc gio-2.0 gio-2.0 gobject-2.0
pc gstreamer-1.0 gstreamer-1.0 gobject-2.0
pc gstreamer-base-1.0 gstbase-1.0 gstreamer-1.0
pc gstreamer-app-1.0 gstapp-1.0 gstreamer-base-1.0
pc gstreamer-video-1.0 gstvideo-1.0 gstreamer-base-1.0
echo "arm64 GStreamer for cross-linking: $out/pkgconfig ($(PKG_CONFIG_LIBDIR=$out/pkgconfig pkg-config --modversion gstreamer-1.0))"
