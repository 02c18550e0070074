#!/usr/bin/env python3
"""The integer-runtime benchmark model: 6 x (Conv 3x3, 64 -> 64 channels, pad 1, ReLU) on a
64 x 56 x 56 input — a ResNet stage's worth of 3x3 convolutions, 694 M MACs.

Writes benches/models/conv-stack/{model.onnx, model.int8.onnx}:
  model.onnx       float32 (He-initialized random weights, seed 11), for tract and onnxruntime fp32
  model.int8.onnx  the same network in ONNX QOperator form as `kestrel compress --int8` writes it:
                   QuantizeLinear -> 6 x QLinearConv (uint8 activations, per-channel symmetric int8
                   weights, int32 bias, ReLU folded into the output range) -> DequantizeLinear;
                   activation ranges from min/max over 8 random inputs (uniform 0..1, as the benches feed)

Venv: onnx onnxruntime numpy. Run from the repo root: python scripts/make_conv_stack.py
"""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = "benches/models/conv-stack"
LAYERS, C, HW = 6, 64, 56


def conv_attrs():
    return dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])


def main():
    rng = np.random.default_rng(11)
    weights = [rng.normal(0, np.sqrt(2 / (C * 9)), (C, C, 3, 3)).astype(np.float32) for _ in range(LAYERS)]
    biases = [rng.normal(0, 0.05, C).astype(np.float32) for _ in range(LAYERS)]

    # float model
    nodes, inits = [], []
    prev = "input"
    for i in range(LAYERS):
        inits += [numpy_helper.from_array(weights[i], f"w{i}"), numpy_helper.from_array(biases[i], f"b{i}")]
        nodes.append(helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", **conv_attrs()))
        out = "output" if i == LAYERS - 1 else f"r{i}"
        nodes.append(helper.make_node("Relu", [f"c{i}"], [out], name=f"relu{i}"))
        prev = out
    graph = helper.make_graph(
        nodes, "conv_stack",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, C, HW, HW])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, C, HW, HW])], inits)
    fp32 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="kestrel")
    fp32.ir_version = 8
    onnx.checker.check_model(fp32)
    onnx.save(fp32, f"{OUT}/model.onnx")

    # activation ranges: every layer's output over 8 random inputs
    probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    probe.ir_version = 8
    for i in range(LAYERS - 1):
        probe.graph.output.append(helper.make_tensor_value_info(f"r{i}", TensorProto.FLOAT, None))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    xs = [rng.uniform(0, 1, (1, C, HW, HW)).astype(np.float32) for _ in range(8)]
    outs = [sess.run(None, {"input": x}) for x in xs]
    # outputs come as [output, r0..r4]; reorder to r0..r4, output
    maxima = [max(float(o[(j + 1) % LAYERS].max()) for o in outs) for j in range(LAYERS)]

    in_scale, in_zp = np.float32(1 / 255), np.uint8(0)
    nodes, inits = [], []
    inits += [numpy_helper.from_array(np.array(in_scale, np.float32), "in_s"),
              numpy_helper.from_array(np.array(in_zp, np.uint8), "in_z")]
    nodes.append(helper.make_node("QuantizeLinear", ["input", "in_s", "in_z"], ["q_in"], name="quantize"))
    prev, prev_s = "q_in", in_scale
    for i in range(LAYERS):
        w = weights[i]
        w_scale = (np.abs(w).reshape(C, -1).max(1) / 127).astype(np.float32)
        wq = np.clip(np.round(w / w_scale[:, None, None, None]), -127, 127).astype(np.int8)
        bq = np.round(biases[i] / (prev_s * w_scale)).astype(np.int32)
        y_s = np.float32(maxima[i] / 255)  # after ReLU: range [0, max], zero point 0
        inits += [
            numpy_helper.from_array(wq, f"w{i}"), numpy_helper.from_array(w_scale, f"ws{i}"),
            numpy_helper.from_array(np.zeros(C, np.int8), f"wz{i}"), numpy_helper.from_array(bq, f"b{i}"),
            numpy_helper.from_array(np.array(y_s, np.float32), f"ys{i}"),
            numpy_helper.from_array(np.array(0, np.uint8), f"yz{i}"),
        ]
        xs_name, xz_name = ("in_s", "in_z") if i == 0 else (f"ys{i - 1}", f"yz{i - 1}")
        nodes.append(helper.make_node(
            "QLinearConv", [prev, xs_name, xz_name, f"w{i}", f"ws{i}", f"wz{i}", f"ys{i}", f"yz{i}", f"b{i}"],
            [f"q{i}"], name=f"conv{i}", **conv_attrs()))
        prev, prev_s = f"q{i}", y_s
    nodes.append(helper.make_node("DequantizeLinear", [prev, f"ys{LAYERS - 1}", f"yz{LAYERS - 1}"], ["output"],
                                  name="dequantize"))
    graph = helper.make_graph(
        nodes, "conv_stack_int8",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, C, HW, HW])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, C, HW, HW])], inits)
    int8 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="kestrel")
    int8.ir_version = 8
    onnx.checker.check_model(int8)
    onnx.save(int8, f"{OUT}/model.int8.onnx")

    x = rng.uniform(0, 1, (1, C, HW, HW)).astype(np.float32)
    a = ort.InferenceSession(f"{OUT}/model.onnx", providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    b = ort.InferenceSession(f"{OUT}/model.int8.onnx", providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    print(f"fp32 vs int8 (onnxruntime): max |d| {np.abs(a - b).max():.4f}, output max {a.max():.3f}")


if __name__ == "__main__":
    main()
