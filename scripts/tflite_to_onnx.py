#!/usr/bin/env python3
"""A small TFLite → ONNX converter for MediaPipe's float detectors. Never needed at test time.

tflite2onnx 0.4.1 (used for the hand landmark model) stops at the ops MediaPipe's newer
detectors use: DENSIFY (pruned weights stored as CSR), DEPTH_TO_SPACE, and 3-D heads whose
layout it cannot propagate. This converter covers exactly the op set of those models and
refuses anything else by name: PAD, CONV_2D, DEPTHWISE_CONV_2D, ADD, DEPTH_TO_SPACE,
RESIZE_BILINEAR, RESHAPE, CONCATENATION, with constants behind DEQUANTIZE (fp16) and DENSIFY.

4-D activations become NCHW (the ONNX input too); a RESHAPE of a 4-D tensor first transposes
it back to NHWC so the flattened order is TFLite's. Only nodes the outputs depend on are kept.
The result is checked against tflite-runtime on random inputs before it is written.

Venv: tflite==2.18.0 onnx numpy tflite-runtime==2.14.0 onnxruntime.
    python scripts/tflite_to_onnx.py MODEL.tflite OUT.onnx
"""
import sys

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

OPS = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
NP = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
      tflite.TensorType.INT32: np.int32}
NHWC_TO_NCHW = [0, 3, 1, 2]


def options(op, cls):
    o = cls()
    t = op.BuiltinOptions()
    o.Init(t.Bytes, t.Pos)
    return o


def index_vector(kind, table):
    cls = {tflite.SparseIndexVector.Int32Vector: tflite.Int32Vector,
           tflite.SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
           tflite.SparseIndexVector.Uint8Vector: tflite.Uint8Vector}[kind]
    v = cls()
    v.Init(table.Bytes, table.Pos)
    return v.ValuesAsNumpy().astype(np.int64)


def densify(tensor, values):
    """TFLite's sparse format as MediaPipe writes it: identity traversal, no blocks, leading
    dims dense and the last one CSR (segments per row, column indices per value)."""
    s = tensor.Sparsity()
    shape = list(tensor.ShapeAsNumpy())
    dims = [s.DimMetadata(d) for d in range(s.DimMetadataLength())]
    order = list(s.TraversalOrderAsNumpy())
    if order != list(range(len(shape))) or s.BlockMapLength() or len(dims) != len(shape):
        sys.exit(f"{tensor.Name().decode()}: sparse layout other than row-wise CSR")
    if any(d.Format() != tflite.DimensionType.DENSE for d in dims[:-1]) or dims[-1].Format() != tflite.DimensionType.SPARSE_CSR:
        sys.exit(f"{tensor.Name().decode()}: only the last dimension may be sparse")
    last = dims[-1]
    segments = index_vector(last.ArraySegmentsType(), last.ArraySegments())
    columns = index_vector(last.ArrayIndicesType(), last.ArrayIndices())
    rows = int(np.prod(shape[:-1]))
    if len(segments) != rows + 1 or segments[-1] != len(values) or len(columns) != len(values):
        sys.exit(f"{tensor.Name().decode()}: CSR arrays do not match the values")
    dense = np.zeros((rows, shape[-1]), values.dtype)
    for r in range(rows):
        a, b = segments[r], segments[r + 1]
        dense[r, columns[a:b]] = values[a:b]
    return dense.reshape(shape)


class Converter:
    def __init__(self, path):
        buf = open(path, "rb").read()
        self.model = tflite.Model.GetRootAsModel(buf, 0)
        self.g = self.model.Subgraphs(0)
        self.consts = {}  # tensor index -> numpy (TFLite layout)
        self.nodes, self.inits, self.nchw = [], [], set()
        self.counter = 0

    def name(self, i):
        return self.g.Tensors(i).Name().decode()

    def buffer(self, i):
        t = self.g.Tensors(i)
        data = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int) or len(data) == 0:
            return None
        values = np.frombuffer(data.tobytes(), NP[t.Type()])
        if t.Sparsity() is not None:
            return values  # DENSIFY's input: the nonzero values only
        return values.reshape(list(t.ShapeAsNumpy()))

    def const(self, i):
        if i not in self.consts:
            b = self.buffer(i)
            if b is None:
                sys.exit(f"tensor {self.name(i)} is not a constant")
            self.consts[i] = b
        return self.consts[i]

    def init(self, array, hint):
        self.counter += 1
        name = f"{hint}_{self.counter}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op_type, inputs, outputs, **attrs):
        """A node named after its output (tools match nodes by name)."""
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=outputs[0], **attrs))

    def fused(self, fused, op_type, inputs, out, **attrs):
        """`op_type` writing `out`, through its fused activation (Relu or Clip to [0, 6])."""
        if fused == tflite.ActivationFunctionType.NONE:
            self.node(op_type, inputs, [out], **attrs)
            return
        self.node(op_type, inputs, [out + "_pre"], **attrs)
        if fused == tflite.ActivationFunctionType.RELU:
            self.node("Relu", [out + "_pre"], [out])
        elif fused == tflite.ActivationFunctionType.RELU6:
            self.node("Clip", [out + "_pre", self.init(np.float32(0), "zero"), self.init(np.float32(6), "six")], [out])
        else:
            sys.exit(f"fused activation {fused} of {out} not supported")

    def same_pads(self, x, kh, kw, sh, sw, dh, dw, padding):
        if padding == tflite.Padding.VALID:
            return [0, 0, 0, 0]
        _, h, w, _ = self.g.Tensors(x).ShapeAsNumpy()
        pads = []
        for size, k, s, d in [(h, kh, sh, dh), (w, kw, sw, dw)]:
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        return [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]

    def convert_op(self, op, kind):
        ins, outs = list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())
        out = self.name(outs[0])
        if kind == "DEQUANTIZE":
            self.consts[outs[0]] = self.const(ins[0]).astype(np.float32)
        elif kind == "DENSIFY":
            self.consts[outs[0]] = densify(self.g.Tensors(ins[0]), self.const(ins[0]))
        elif kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = kind == "DEPTHWISE_CONV_2D"
            o = options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
            w = self.const(ins[1]).astype(np.float32)  # [O, KH, KW, I] or [1, KH, KW, C*M]
            kh, kw = w.shape[1], w.shape[2]
            if depthwise:
                w = w.transpose(3, 0, 1, 2)  # [C*M, 1, KH, KW]
                group = int(self.g.Tensors(ins[0]).ShapeAsNumpy()[3])
            else:
                w = w.transpose(0, 3, 1, 2)
                group = 1
            dh, dw = o.DilationHFactor(), o.DilationWFactor()
            pads = self.same_pads(ins[0], kh, kw, o.StrideH(), o.StrideW(), dh, dw, o.Padding())
            inputs = [self.name(ins[0]), self.init(w, "weight")]
            if len(ins) > 2 and ins[2] >= 0:
                inputs.append(self.init(self.const(ins[2]).astype(np.float32), "bias"))
            self.fused(o.FusedActivationFunction(), "Conv", inputs, out, kernel_shape=[kh, kw],
                       strides=[o.StrideH(), o.StrideW()], dilations=[dh, dw], pads=pads, group=group)
            self.nchw.add(outs[0])
        elif kind == "PAD":
            p = self.const(ins[1]).astype(np.int64)[NHWC_TO_NCHW]  # [4, 2] rows in NCHW order
            self.node("Pad", [self.name(ins[0]), self.init(np.concatenate([p[:, 0], p[:, 1]]), "pads")], [out])
            self.nchw.add(outs[0])
        elif kind == "ADD":
            o = options(op, tflite.AddOptions)
            if any(i in self.consts or self.buffer(i) is not None for i in ins):
                sys.exit(f"ADD {out}: constant operands not supported")
            self.fused(o.FusedActivationFunction(), "Add", [self.name(ins[0]), self.name(ins[1])], out)
            if ins[0] in self.nchw:
                self.nchw.add(outs[0])
        elif kind == "DEPTH_TO_SPACE":
            # TF's NHWC DepthToSpace is ONNX's DCR mode on NCHW.
            self.node("DepthToSpace", [self.name(ins[0])], [out], blocksize=options(op, tflite.DepthToSpaceOptions).BlockSize(), mode="DCR")
            self.nchw.add(outs[0])
        elif kind == "RESIZE_BILINEAR":
            o = options(op, tflite.ResizeBilinearOptions)
            mode = "align_corners" if o.AlignCorners() else "half_pixel" if o.HalfPixelCenters() else "asymmetric"
            n, _, _, c = self.g.Tensors(ins[0]).ShapeAsNumpy()
            h, w = self.const(ins[1])
            sizes = self.init(np.array([n, c, h, w], np.int64), "sizes")
            self.node("Resize", [self.name(ins[0]), "", "", sizes], [out], mode="linear", coordinate_transformation_mode=mode)
            self.nchw.add(outs[0])
        elif kind == "RESHAPE":
            src = self.name(ins[0])
            if ins[0] in self.nchw:
                self.node("Transpose", [src], [out + "_nhwc"], perm=[0, 2, 3, 1])
                src = out + "_nhwc"
            shape = np.array(self.g.Tensors(outs[0]).ShapeAsNumpy(), np.int64)
            self.node("Reshape", [src, self.init(shape, "shape")], [out])
            if len(shape) == 4:
                sys.exit(f"RESHAPE {out}: a 4-D result would need its layout tracked")
        elif kind == "CONCATENATION":
            o = options(op, tflite.ConcatenationOptions)
            axis = o.Axis()
            rank = len(self.g.Tensors(outs[0]).ShapeAsNumpy())
            if axis < 0:
                axis += rank
            if ins[0] in self.nchw:
                axis = NHWC_TO_NCHW.index(axis)
                self.nchw.add(outs[0])
            self.fused(o.FusedActivationFunction(), "Concat", [self.name(i) for i in ins], out, axis=axis)
        else:
            sys.exit(f"TFLite op {kind} (output {out}) not supported")

    def convert(self):
        (inp,) = self.g.InputsAsNumpy()
        self.nchw.add(inp)
        for k in range(self.g.OperatorsLength()):
            op = self.g.Operators(k)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            self.convert_op(op, OPS[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
        n, h, w, c = (int(d) for d in self.g.Tensors(inp).ShapeAsNumpy())
        inputs = [helper.make_tensor_value_info(self.name(inp), TensorProto.FLOAT, [n, c, h, w])]
        outputs = [helper.make_tensor_value_info(self.name(o), TensorProto.FLOAT, [int(d) for d in self.g.Tensors(o).ShapeAsNumpy()])
                   for o in self.g.OutputsAsNumpy()]
        if any(o in self.nchw for o in self.g.OutputsAsNumpy()):
            sys.exit("4-D outputs not supported")
        return self.prune(inputs, outputs)

    def prune(self, inputs, outputs):
        """Keep the nodes the outputs need (MediaPipe's graphs carry dead branches), in order."""
        needed = {o.name for o in outputs}
        kept = []
        for n in reversed(self.nodes):
            if any(o in needed for o in n.output):
                kept.append(n)
                needed.update(i for i in n.input if i)
        kept.reverse()
        inits = [t for t in self.inits if t.name in needed]
        graph = helper.make_graph(kept, "converted", inputs, outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="kestrel tflite_to_onnx")
        onnx.checker.check_model(model)
        return model


def check(tflite_path, model):
    """Outputs against tflite-runtime on two random inputs; exits on a mismatch."""
    import onnxruntime as ort
    from tflite_runtime.interpreter import Interpreter

    interp = Interpreter(tflite_path)
    interp.allocate_tensors()
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    detail = interp.get_input_details()[0]
    for _ in range(2):
        x = rng.uniform(-1, 1, detail["shape"]).astype(np.float32)
        interp.set_tensor(detail["index"], x)
        interp.invoke()
        want = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
        got = sess.run(None, {sess.get_inputs()[0].name: x.transpose(0, 3, 1, 2)})
        for o, (g, w) in enumerate(zip(got, want)):
            err = float(np.abs(g - w).max())
            scale = float(np.abs(w).max())
            print(f"output {o} {list(g.shape)}: max |onnx - tflite| {err:.2e} (max |tflite| {scale:.2e})")
            if err > 1e-4 * max(1.0, scale):
                sys.exit("conversion does not match tflite-runtime")


if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    m = Converter(src).convert()
    check(src, m)
    onnx.save(m, dst)
