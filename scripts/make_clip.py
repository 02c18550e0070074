"""Makes the demo's clips, 640x480 at 15 fps, encoded to H.264 in MP4 by GStreamer's own
encoder (x264enc). The camera part of the demo and the `kestrel watch` tests replay them.

- models/clips/face.mp4: the face of the bundled astronaut photo (models/samples/astronaut.png,
  cropped to head and shoulders) moving across and scaling within the frame, 3 s.
- models/clips/objects.mp4: four of the COCO detector's photos (models/coco-nanodet/photos:
  dog, person, horses, giraffe), 4/3 s each, the camera slowly zooming in, 16/3 s.

    pip install pillow && apt-get install gstreamer1.0-tools gstreamer1.0-plugins-{base,good,ugly}
    python scripts/make_clip.py [face|objects]   (both by default)
"""

import math
import pathlib
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
W, H, FPS = 640, 480, 15


def background():
    """A soft vertical gradient, so the face is the only thing in the frame."""
    bg = Image.new("RGB", (W, H))
    px = bg.load()
    for y in range(H):
        v = 60 + int(80 * y / H)
        for x in range(W):
            px[x, y] = (v, v + 10, v + 25)
    return bg


def face(tmp):
    """The astronaut's face across the frame; returns the frame count."""
    # Head and shoulders: the face (kestrel run: [177, 81, 272, 175]) is half the crop's width.
    face = Image.open(ROOT / "models/samples/astronaut.png").convert("RGB").crop((128, 32, 320, 224))
    bg = background()
    frames = FPS * 3
    for i in range(frames):
        t = i / (frames - 1)
        size = int(280 + 160 * math.sin(math.pi * t))  # 280 -> 440 -> 280 px
        x = int((W - size) * t)  # left edge to right edge
        y = int((H - size) / 2 + 30 * math.sin(2 * math.pi * t))
        frame = bg.copy()
        frame.paste(face.resize((size, size), Image.LANCZOS), (x, y))
        frame.save(f"{tmp}/{i:03d}.png")
    return frames


def objects(tmp):
    """Four photos, each filling the frame (cropped to 4:3) and zoomed from 1 to 1.15 about its
    centre; returns the frame count."""
    i = 0
    for name in ["dog.jpg", "person.jpg", "horses.jpg", "giraffe.jpg"]:
        photo = Image.open(ROOT / "models/coco-nanodet/photos" / name).convert("RGB")
        pw, ph = photo.size
        cw, ch = (pw, pw * H // W) if pw * H <= ph * W else (ph * W // H, ph)
        for k in range(FPS * 4 // 3):
            zoom = 1 + 0.15 * k / (FPS * 4 // 3 - 1)
            w, h = cw / zoom, ch / zoom
            box = ((pw - w) / 2, (ph - h) / 2, (pw + w) / 2, (ph + h) / 2)
            photo.resize((W, H), Image.LANCZOS, box=box).save(f"{tmp}/{i:03d}.png")
            i += 1
    return i


def encode(tmp, out):
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "gst-launch-1.0", "-q",
            "multifilesrc", f"location={tmp}/%03d.png", "index=0", f"caps=image/png,framerate={FPS}/1", "!",
            "pngdec", "!", "videoconvert", "!", "video/x-raw,format=I420", "!",
            "x264enc", "bitrate=1200", "key-int-max=15", "bframes=0", "!", "video/x-h264,profile=main", "!",
            "mp4mux", "!", "filesink", f"location={out}",
        ],
        check=True,
    )


def main():
    clips = {"face": face, "objects": objects}
    for name in sys.argv[1:] or clips:
        out = ROOT / f"models/clips/{name}.mp4"
        with tempfile.TemporaryDirectory() as tmp:
            frames = clips[name](tmp)
            encode(tmp, out)
        print(f"wrote {out} ({out.stat().st_size} bytes, {frames} frames)")


if __name__ == "__main__":
    main()
