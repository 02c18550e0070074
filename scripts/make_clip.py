"""Makes models/clips/face.mp4: the face of the bundled astronaut photo (models/samples/astronaut.png,
cropped to head and shoulders) moving across and scaling within a 640x480 frame, 3 s at 15 fps, encoded to H.264 in MP4 by GStreamer's
own encoder (x264enc). The camera part of the demo and the `kestrel watch` tests replay it.

    pip install pillow && apt-get install gstreamer1.0-tools gstreamer1.0-plugins-{base,good,ugly}
    python scripts/make_clip.py
"""

import math
import pathlib
import subprocess
import tempfile

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "models/clips/face.mp4"
W, H, FPS, SECONDS = 640, 480, 15, 3


def background():
    """A soft vertical gradient, so the face is the only thing in the frame."""
    bg = Image.new("RGB", (W, H))
    px = bg.load()
    for y in range(H):
        v = 60 + int(80 * y / H)
        for x in range(W):
            px[x, y] = (v, v + 10, v + 25)
    return bg


def main():
    # Head and shoulders: the face (kestrel run: [177, 81, 272, 175]) is half the crop's width.
    face = Image.open(ROOT / "models/samples/astronaut.png").convert("RGB").crop((128, 32, 320, 224))
    bg = background()
    frames = FPS * SECONDS
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(frames):
            t = i / (frames - 1)
            size = int(280 + 160 * math.sin(math.pi * t))  # 280 -> 440 -> 280 px
            x = int((W - size) * t)  # left edge to right edge
            y = int((H - size) / 2 + 30 * math.sin(2 * math.pi * t))
            frame = bg.copy()
            frame.paste(face.resize((size, size), Image.LANCZOS), (x, y))
            frame.save(f"{tmp}/{i:03d}.png")
        OUT.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "gst-launch-1.0", "-q",
                "multifilesrc", f"location={tmp}/%03d.png", "index=0", f"caps=image/png,framerate={FPS}/1", "!",
                "pngdec", "!", "videoconvert", "!", "video/x-raw,format=I420", "!",
                "x264enc", "bitrate=1200", "key-int-max=15", "bframes=0", "!", "video/x-h264,profile=main", "!",
                "mp4mux", "!", "filesink", f"location={OUT}",
            ],
            check=True,
        )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {frames} frames)")


if __name__ == "__main__":
    main()
