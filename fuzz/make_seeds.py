#!/usr/bin/env python3
"""Writes fuzz/corpus/ros2_image/: small sensor_msgs/Image and CompressedImage messages in CDR
(little endian, without the 4-byte encapsulation header, as RustDDS hands them to serde), one
per encoding Kestrel reads, each prefixed by the target's selector byte (0 Image, 1 Compressed).
Standard library only: python3 fuzz/make_seeds.py"""

import os
import struct
import zlib

OUT = os.path.join(os.path.dirname(__file__), "corpus", "ros2_image")


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


if __name__ == "__main__":
    main()
