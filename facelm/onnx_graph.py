"""Rewrites of a quantized (QDQ) export that onnxruntime runs faster, with the same arithmetic.

A face crop's pixels are whole numbers in [0, 255], and the model's input normalisation
``(x / 255 - mean) / std`` is one scale and one shift: exactly an int8 dequantization of the uint8
pixels with scale ``1 / (255 std)`` and zero point ``255 mean``. So the int8 file can take the
uint8 crop as it is (:func:`uint8_input`): no float conversion in Python, and no float first
convolution, re-layout and quantization step in the graph.

onnxruntime's int8 convolution is slow with three input channels, so the first convolution (3x3,
stride 2) is then rewritten as a 2x2, stride-1 convolution over the crop's 2x2 pixel blocks
stacked as 12 channels (``SpaceToDepth``; :func:`space_to_depth_stem`): the same products, its
int8 weights moved, not re-rounded.

onnxruntime runs an int8 convolution whose weights' zero point is 0 with its own direct kernels,
and any other as an int8 matrix product, which uses AMX tiles on CPUs that have them: there, the
matrix product is the faster one for convolutions with many inputs per output, so
:func:`gemm_convs` gives those weights a zero point of 1 (every weight moved up by one: the same
values). Timings: docs/speed.md.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

__all__ = ["uint8_input", "space_to_depth_stem", "takes_pixels", "gemm_convs", "GEMM_MIN_INPUTS"]

GEMM_MIN_INPUTS = 432
"""Inputs per output (in channels x kernel area) from which :func:`gemm_convs` moves a convolution to
the matrix-product kernels: a 3x3 convolution over 48 channels. Smaller ones were slower there."""


class _Graph:
    """Name lookups over an ONNX graph: initializers, Constant nodes and each tensor's producer."""

    def __init__(self, proto) -> None:
        from onnx import numpy_helper
        self.proto, self.graph = proto, proto.graph
        self.inits = {i.name: i for i in self.graph.initializer}
        self.consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t)
                       for n in self.graph.node if n.op_type == "Constant"}
        self.producer = {o: n for n in self.graph.node for o in n.output}

    def value(self, name: str) -> np.ndarray:
        from onnx import numpy_helper
        return numpy_helper.to_array(self.inits[name]) if name in self.inits else self.consts[name]

    def put(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper
        tensor = numpy_helper.from_array(array, name)
        if name in self.inits:
            self.inits[name].CopyFrom(tensor)
        else:
            self.graph.initializer.append(tensor)
            self.inits[name] = self.graph.initializer[-1]
        return name

    def first_conv(self):
        return next(n for n in self.graph.node if n.op_type == "Conv")

    def chain(self, node, *ops: str) -> list | None:
        """The producers of ``node``'s first input, then of theirs, if they are ``ops`` in order."""
        out = []
        for op in ops:
            node = self.producer.get(node.input[0])
            if node is None or node.op_type != op:
                return None
            out.append(node)
        return out


def _normalisation(g: _Graph, mul, sub) -> tuple[float, float] | None:
    """(scale, shift) of ``x * scale - shift`` when both are one number for every channel."""
    if mul.input[0] != g.graph.input[0].name:
        return None
    try:
        scale, shift = g.value(mul.input[1]).reshape(-1), g.value(sub.input[1]).reshape(-1)
    except KeyError:
        return None
    if not (np.allclose(scale, scale[0]) and np.allclose(shift, shift[0])):
        return None
    return float(scale[0]), float(shift[0])


def takes_pixels(model_bytes: bytes) -> bool:
    """Whether an export (before quantization) starts ``crops * scale - shift -> Conv`` on three
    channels with one scale and shift for all: the graphs :func:`uint8_input` can rewrite."""
    import onnx
    g = _Graph(onnx.load_from_string(model_bytes))
    dims = g.graph.input[0].type.tensor_type.shape.dim
    conv = g.first_conv()
    found = g.chain(conv, "Sub", "Mul")
    return len(dims) == 4 and dims[1].dim_value == 3 and len(conv.input) == 3 and found is not None and \
        _normalisation(g, found[1], found[0]) is not None


def uint8_input(model_bytes: bytes) -> bytes:
    """A QDQ export whose first convolution is quantized, rewritten to take uint8 crops: the
    normalisation and the input's quantization become the first convolution's dequantization. The
    zero point is ``255 * mean`` rounded (128 for the default mean 0.5); the half step that rounding
    moves every pixel by is added back through the first convolution's bias. That is exact where the
    convolution reads only pixels; on the crop's outer ring of outputs, whose taps read padding (the
    normalised 0 in both graphs), it is also added for those taps: half an input step times their
    weights."""
    import onnx
    from onnx import TensorProto
    g = _Graph(onnx.load_from_string(model_bytes))
    conv = g.first_conv()
    found = g.chain(conv, "DequantizeLinear", "QuantizeLinear", "Sub", "Mul")
    norm = None if found is None else _normalisation(g, found[3], found[2])
    if norm is None:
        raise ValueError("not an export whose quantized first convolution reads the normalised crop")
    dq, q, sub, mul = found
    scale, shift = norm
    zero = int(round(shift / scale))
    if not 0 <= zero <= 255:
        raise ValueError(f"the normalisation's zero ({shift / scale:.1f}) is not a uint8 pixel value")
    moved = zero - shift / scale  # pixels dequantize to (normalised - moved * scale)
    w_dq = g.producer.get(conv.input[1])
    b_dq = g.producer.get(conv.input[2]) if len(conv.input) > 2 else None
    if w_dq is None or b_dq is None or (w_dq.op_type, b_dq.op_type) != ("DequantizeLinear",) * 2:
        raise ValueError("the first convolution's weights and bias are not quantized")
    w_scale = g.value(w_dq.input[1]).astype(np.float64)
    w = (g.value(w_dq.input[0]).astype(np.float64)
         - g.value(w_dq.input[2]).astype(np.float64).reshape(-1, 1, 1, 1)) * w_scale.reshape(-1, 1, 1, 1)
    bias = g.value(b_dq.input[0]).astype(np.float64) * g.value(b_dq.input[1]).astype(np.float64)
    bias = bias + moved * scale * w.sum(axis=(1, 2, 3))
    b_scale = scale * w_scale  # onnxruntime's int8 convolution wants bias scale = input scale x weight scale
    b_dq.input[0] = g.put(b_dq.input[0] + "_pixels", np.round(bias / b_scale).astype(np.int32))
    b_dq.input[1] = g.put(b_dq.input[1] + "_pixels", b_scale.astype(np.float32))
    dq.input[0] = g.graph.input[0].name
    dq.input[1] = g.put("crops_pixel_scale", np.array(scale, np.float32))
    dq.input[2] = g.put("crops_pixel_zero_point", np.array(zero, np.uint8))
    for node in (q, sub, mul):
        g.graph.node.remove(node)
    g.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    _drop_unused(g)
    onnx.checker.check_model(g.proto)
    return g.proto.SerializeToString()


def space_to_depth_stem(model_bytes: bytes) -> bytes:
    """:func:`uint8_input`'s graph with its first convolution (3x3, stride 2, padding 1, even input
    size) over ``SpaceToDepth(crops, 2)`` as a 2x2 convolution padded above and left only. Output
    pixel i reads input rows 2i-1, 2i, 2i+1: block row i-1's odd row, block row i's both rows.
    A graph of another shape is returned unchanged."""
    import onnx
    from onnx import helper
    g = _Graph(onnx.load_from_string(model_bytes))
    conv = g.first_conv()
    attrs = {a.name: list(helper.get_attribute_value(a)) for a in conv.attribute
             if a.name in ("kernel_shape", "strides", "pads", "dilations")}
    dq = g.producer.get(conv.input[0])
    dims = [d.dim_value for d in g.graph.input[0].type.tensor_type.shape.dim]
    if (attrs.get("kernel_shape") != [3, 3] or attrs.get("strides") != [2, 2] or attrs.get("pads") != [1, 1, 1, 1]
            or attrs.get("dilations", [1, 1]) != [1, 1] or dq is None or dq.op_type != "DequantizeLinear"
            or dq.input[0] != g.graph.input[0].name or len(dims) != 4 or min(dims[2:]) <= 0
            or dims[2] % 2 or dims[3] % 2):
        return model_bytes
    w_dq = g.producer[conv.input[1]]
    w = g.value(w_dq.input[0])  # (out, in, 3, 3) int8
    c = w.shape[1]
    w2 = np.zeros((w.shape[0], 4 * c, 2, 2), w.dtype)
    # 3x3 tap -> (2x2 tap, row or column within the 2x2 block); SpaceToDepth's channel of block
    # position (dy, dx) and input channel k is (2 dy + dx) c + k.
    place = {0: (0, 1), 1: (1, 0), 2: (1, 1)}
    for ky, (a, dy) in place.items():
        for kx, (b, dx) in place.items():
            first = (2 * dy + dx) * c
            w2[:, first:first + c, a, b] = w[:, :, ky, kx]
    g.put(w_dq.input[0], w2)
    for a in conv.attribute:
        if a.name in ("kernel_shape", "strides", "pads"):
            a.ints[:] = {"kernel_shape": [2, 2], "strides": [1, 1], "pads": [1, 1, 0, 0]}[a.name]
    blocks = helper.make_node("SpaceToDepth", [g.graph.input[0].name], ["crops_blocks"], blocksize=2,
                              name="crops_SpaceToDepth")
    dq.input[0] = "crops_blocks"
    g.graph.node.insert(list(g.graph.node).index(dq), blocks)
    g.graph.ClearField("value_info")  # shapes after the first convolution are unchanged; before it, stale
    onnx.checker.check_model(g.proto)
    return g.proto.SerializeToString()


def gemm_convs(model_bytes: bytes, min_inputs: int = GEMM_MIN_INPUTS) -> bytes:
    """The QDQ graph with the int8 weights of every convolution with at least ``min_inputs`` inputs per
    output moved off zero point 0 (weights and zero point up by one, or down by one where a weight is
    127): the same dequantized weights, run by onnxruntime's int8 matrix product instead of its
    symmetric convolution kernels. A graph with no such convolution is returned unchanged."""
    import onnx
    g = _Graph(onnx.load_from_string(model_bytes))
    readers = Counter(name for node in g.graph.node for name in node.input)
    moved = 0
    for conv in (n for n in g.graph.node if n.op_type == "Conv"):
        dq = g.producer.get(conv.input[1])
        if (dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3
                or any(name not in g.inits or readers[name] != 1 for name in (dq.input[0], dq.input[2]))):
            continue
        w, zero = g.value(dq.input[0]), g.value(dq.input[2])
        if w.dtype != np.int8 or zero.any() or int(np.prod(w.shape[1:])) < min_inputs:
            continue
        step = 1 if w.max() < 127 else -1
        if w.min() == -128 and step < 0:
            continue
        g.put(dq.input[0], (w.astype(np.int16) + step).astype(np.int8))
        g.put(dq.input[2], (zero.astype(np.int16) + step).astype(np.int8))
        moved += 1
    return g.proto.SerializeToString() if moved else model_bytes


def _drop_unused(g: _Graph) -> None:
    """Remove initializers and Constant nodes that no node reads any more."""
    used = {i for n in g.graph.node for i in n.input} | {o.name for o in g.graph.output}
    for init in [i for i in g.graph.initializer if i.name not in used]:
        g.graph.initializer.remove(init)
    for node in [n for n in g.graph.node if n.op_type == "Constant" and n.output[0] not in used]:
        g.graph.node.remove(node)
