#!/usr/bin/env python3
"""Writes the committed seeds. fuzz/corpus/ros2_image/: small sensor_msgs/Image and
CompressedImage messages in CDR (little endian, without the 4-byte encapsulation header, as
RustDDS hands them to serde), one per encoding Kestrel reads, each prefixed by the target's
selector byte (0 Image, 1 Compressed). fuzz/corpus/bundle_open/: a small release bundle
(release.json, MANIFEST.sha256, a model file). fuzz/corpus/release_json/: that release.json
(selector 0) and a health.json with a class and a box (selector 1). fuzz/corpus/link_packets/:
kestrel-link packets as a host sends them (a Hello, a 28x28 frame) and as a device answers.
Standard library only: python3 fuzz/make_seeds.py"""

import gzip
import hashlib
import io
import json
import os
import struct
import tarfile
import zlib

OUT = os.path.join(os.path.dirname(__file__), "corpus", "ros2_image")
BUNDLES = os.path.join(os.path.dirname(__file__), "corpus", "bundle_open")
RELEASE_JSON = os.path.join(os.path.dirname(__file__), "corpus", "release_json")
LINK = os.path.join(os.path.dirname(__file__), "corpus", "link_packets")
RELEASE = {"id": "20261201T120000Z-abcdef12", "board": "emulated-orin-nano", "target": "aarch64-unknown-linux-gnu",
           "kestrel_version": "0.1.0", "created": 1796140800, "backend": "auto", "threads": 4,
           "models": ["models/fashion/model.onnx"]}
HEALTH = {"model": "models/blazeface/model.onnx", "image": "health/astronaut.png", "budget_s": 120,
          "expected": {"classes": [{"index": 9, "label": "Ankle boot", "score": 0.99}],
                       "detections": [{"x0": 177.2, "y0": 81.5, "x1": 272.0, "y1": 175.1, "score": 0.92, "class": 0}]}}


class Cdr:
    def __init__(self):
        self.b = bytearray()

    def align(self, n):
        self.b += b"\0" * (-len(self.b) % n)

    def u8(self, v):
        self.b += struct.pack("<B", v)

    def u32(self, v):
        self.align(4)
        self.b += struct.pack("<I", v)

    def i32(self, v):
        self.align(4)
        self.b += struct.pack("<i", v)

    def string(self, s):
        data = s.encode() + b"\0"
        self.u32(len(data))
        self.b += data

    def octets(self, data):
        self.u32(len(data))
        self.b += data

    def header(self, sec, nanosec, frame_id):
        self.i32(sec)
        self.u32(nanosec)
        self.string(frame_id)


def image(width, height, encoding, step, data):
    c = Cdr()
    c.header(1_700_000_000, 5, "camera_optical_frame")
    c.u32(height)
    c.u32(width)
    c.string(encoding)
    c.u8(0)
    c.u32(step)
    c.octets(data)
    return b"\0" + bytes(c.b)


def compressed(fmt, data):
    c = Cdr()
    c.header(1_700_000_000, 5, "camera")
    c.string(fmt)
    c.octets(data)
    return b"\1" + bytes(c.b)


def png(width, height):
    raw = b"".join(b"\0" + bytes((x * 40 + y * 7) % 256 for x in range(width * 3)) for y in range(height))
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def main():
    os.makedirs(OUT, exist_ok=True)
    w, h = 4, 3
    seeds = {
        "rgb8": image(w, h, "rgb8", w * 3, bytes(range(w * h * 3))),
        "bgr8-padded": image(w, h, "bgr8", w * 3 + 4, bytes(range((w * 3 + 4) * h))),
        "rgba8": image(w, h, "rgba8", w * 4, bytes(range(w * h * 4))),
        "bgra8": image(w, h, "bgra8", w * 4, bytes(range(w * h * 4))),
        "mono8": image(w, h, "mono8", w, bytes(range(w * h))),
        "yuv422": image(w, h, "yuv422", w * 2, bytes(range(w * h * 2))),
        "yuv422_yuy2": image(w, h, "yuv422_yuy2", w * 2, bytes(range(w * h * 2))),
        "short-data": image(w, h, "rgb8", w * 3, bytes(5)),
        "compressed-png": compressed("png", png(5, 4)),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    os.makedirs(BUNDLES, exist_ok=True)
    with open(os.path.join(BUNDLES, "small-release.tar.gz"), "wb") as f:
        f.write(bundle())
    os.makedirs(LINK, exist_ok=True)
    frame = bytes((i * 7) % 256 for i in range(784))
    answer = struct.pack("<HI", 9, 405773) + bytes(range(40))
    info = struct.pack("<HHHHI", 28, 28, 1, 40, 0xBEC641CE)
    for name, data in [("hello", b"\x00" + link_packet(1, 1, b"")), ("frame", b"\x00" + link_packet(3, 2, frame)),
                       ("answers", link_packet(2, 1, info) + link_packet(4, 2, answer) + link_packet(5, 3, b"\x01\x07"))]:
        with open(os.path.join(LINK, name), "wb") as f:
            f.write(data)
    os.makedirs(RELEASE_JSON, exist_ok=True)
    for name, selector, value in [("release", 0, RELEASE), ("health", 1, HEALTH)]:
        with open(os.path.join(RELEASE_JSON, name), "wb") as f:
            f.write(bytes([selector]) + json.dumps(value, indent=2).encode())


def cobs(data):
    """COBS as crates/kestrel-link/src/cobs.rs encodes it."""
    out, block = bytearray(), bytearray()
    for b in data:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block = bytearray()
        else:
            block.append(b)
            if len(block) == 254:
                out += b"\xff" + block
                block = bytearray()
    return bytes(out + bytes([len(block) + 1]) + block)


def link_packet(kind, seq, payload):
    """A kestrel-link packet on the wire: header, payload, CRC-32, COBS, 0x00."""
    body = b"KL" + bytes([1, kind]) + struct.pack("<HH", seq, len(payload)) + payload
    return cobs(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


def bundle():
    """A bundle as `kestrel bundle` lays it out, with a tiny model in place of the real files."""
    files = {"release.json": json.dumps(RELEASE).encode(), "models/fashion/model.onnx": b"\x08\x07" * 8,
             "bin/kestrel": b"#!/bin/sh\n"}
    manifest = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(files.items()))
    files["MANIFEST.sha256"] = manifest.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1796140800, 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


if __name__ == "__main__":
    main()
