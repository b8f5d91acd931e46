"""Export a trained :class:`~convprop.network.Network` to ONNX (needs the ``onnx`` package).

The graph's input is ``input``, images of shape (N, H, W, C) in NHWC order,
convprop's layout (``layout="nchw"`` gives (N, C, H, W) instead); for grey
images C = 1, so add the axis: ``x[..., None]``. The batch size N is dynamic.
The output ``output`` (N, n_outputs) is the network's outputs (sigmoid or
softmax), the same numbers as :meth:`Network.forward`.

Inside, maps travel in NCHW (ONNX's layout): ``Conv`` (ONNX's Conv is a
cross-correlation, which is exactly what convprop's ``weight`` holds) then
the layer's activation (``Sigmoid``, ``Tanh``, ``Relu``, ``LeakyRelu``, or
none for identity), with ``pads`` and ``strides`` for padding and stride;
``AveragePool`` for subsampling, ``MaxPool`` for max pooling; ``Gemm`` then
the activation for a ``Dense`` layer (maps are flattened in NHWC order
first); ``Softmax`` after the output ``Gemm`` of a softmax network. Before
the output layer the
maps go back to NHWC and are flattened, so the feature vector has
convprop's order and the output ``weight`` is used unchanged in ``Gemm``.

New layer types plug in with :func:`register_exporter`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .._validation import check_dtype
from .._files import atomic_write
from ..errors import ConvpropError
from ..engine import activations
from ..engine.layers import Conv, Dense, Input, Layer, MaxPool, SigmoidOutput, SoftmaxOutput, Subsample

#: Default opset: 17 is read by every onnxruntime since 1.13.
DEFAULT_OPSET = 17


class GraphBuilder:
    """Collects nodes and initialisers; handed to every layer exporter.

    Attributes
    ----------
    dtype : numpy dtype of the network (float32 or float64)
    """

    def __init__(self, dtype: np.dtype) -> None:
        from onnx import helper, numpy_helper

        self._helper = helper
        self._numpy_helper = numpy_helper
        self.dtype = np.dtype(dtype)
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def name(self, stem: str) -> str:
        """A fresh tensor name."""
        self._count += 1
        return f"{stem}_{self._count}"

    def constant(self, stem: str, value: np.ndarray) -> str:
        """Add an initialiser (a copy of ``value``) and return its name."""
        name = self.name(stem)
        self.initializers.append(self._numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attributes) -> str:
        """Add a node with one output and return the output's name."""
        out = self.name(stem)
        self.nodes.append(self._helper.make_node(op, inputs, [out], name=out, **attributes))
        return out


#: layer type → exporter(layer, builder, x) → name of the layer's output.
#: Maps enter and leave exporters in NCHW; the output layer's exporter gets
#: the NHWC-flattened feature vector (N, F).
Exporter = Callable[[Layer, GraphBuilder, str], str]
EXPORTERS: dict[type, Exporter] = {}


def register_exporter(layer_type: type) -> Callable[[Exporter], Exporter]:
    """Decorator: ``@register_exporter(MyLayer)`` on ``def f(layer, builder, x) -> str``."""

    def decorate(fn: Exporter) -> Exporter:
        EXPORTERS[layer_type] = fn
        return fn

    return decorate


def _exporter_for(layer: Layer, where: str) -> Exporter:
    for cls in type(layer).__mro__:
        if cls in EXPORTERS:
            return EXPORTERS[cls]
    raise ConvpropError(f"{where}: no ONNX exporter for layer type {type(layer).__name__} ({layer!r})")


@register_exporter(Input)
def _export_input(layer: Input, g: GraphBuilder, x: str) -> str:
    return x


def export_activation(act: activations.Activation, g: GraphBuilder, z: str, stem: str) -> str:
    """The node(s) of an activation: Sigmoid, Tanh, Relu, LeakyRelu (alpha = slope), or none for identity.

    ONNX stores LeakyRelu's alpha as a float32 attribute, so a float64 graph
    matches the network exactly only for slopes that float32 holds exactly (0.25, 0.125, …).
    """
    if isinstance(act, activations.Sigmoid):
        return g.node("Sigmoid", [z], f"{stem}_sigmoid")
    if isinstance(act, activations.Tanh):
        return g.node("Tanh", [z], f"{stem}_tanh")
    if isinstance(act, activations.ReLU):
        return g.node("Relu", [z], f"{stem}_relu")
    if isinstance(act, activations.LeakyReLU):
        return g.node("LeakyRelu", [z], f"{stem}_leaky_relu", alpha=act.slope)
    if isinstance(act, activations.Identity):
        return z
    raise ConvpropError(f"no ONNX exporter for activation {act!r}")


def _weights(g: GraphBuilder, layer: Layer, stem: str) -> tuple[str, str]:
    """The layer's weight and bias as graph constants."""
    return g.constant(f"{stem}_weight", layer.params["weight"]), g.constant(f"{stem}_bias", layer.params["bias"])


# a = f(correlate(pad(a_prev), weight, stride) + bias); ONNX pads are [top, left, bottom, right]
@register_exporter(Conv)
def _export_conv(layer: Conv, g: GraphBuilder, x: str) -> str:
    w, b = _weights(g, layer, "conv")
    top, bottom, left, right = layer.pads
    s = layer.stride
    z = g.node("Conv", [x, w, b], "conv", kernel_shape=list(layer.kernelsize), pads=[top, left, bottom, right],
               strides=[s, s])
    return export_activation(layer.activation, g, z, "conv")


# a = f(W·x + b); maps are flattened in convprop's (H, W, C) order first
@register_exporter(Dense)
def _export_dense(layer: Dense, g: GraphBuilder, x: str) -> str:
    if len(layer.in_shape) == 3:
        x = g.node("Transpose", [x], "dense_to_nhwc", perm=[0, 2, 3, 1])
        x = g.node("Flatten", [x], "dense_flatten", axis=1)
    z = g.node("Gemm", [x, *_weights(g, layer, "dense")], "dense_linear", transB=1)
    return export_activation(layer.activation, g, z, "dense")


# max (MaxPool) or mean (Subsample) of each scale×scale block; ONNX's floor mode drops what a
# cropping MaxPool drops
@register_exporter(MaxPool)
@register_exporter(Subsample)
def _export_pool(layer: MaxPool | Subsample, g: GraphBuilder, x: str) -> str:
    op, stem = ("MaxPool", "maxpool") if isinstance(layer, MaxPool) else ("AveragePool", "subsample")
    return g.node(op, [x], stem, kernel_shape=[layer.scale] * 2, strides=[layer.scale] * 2)


# o = σ(fv·Wᵀ + b), or softmax(fv·Wᵀ + b) over the classes
@register_exporter(SigmoidOutput)
@register_exporter(SoftmaxOutput)
def _export_output(layer: SigmoidOutput, g: GraphBuilder, fv: str) -> str:
    z = g.node("Gemm", [fv, *_weights(g, layer, "output")], "output_linear", transB=1)
    if isinstance(layer, SoftmaxOutput):
        return g.node("Softmax", [z], "output_softmax", axis=1)
    return g.node("Sigmoid", [z], "output_sigmoid")


def to_onnx(net, *, opset: int = DEFAULT_OPSET, layout: str = "nhwc", dtype=None, name: str = "convprop"):
    """The network as an ``onnx.ModelProto`` (checked with ``onnx.checker``).

    Parameters
    ----------
    net : Network
    opset : int
        ONNX opset version of the default domain (≥ 11).
    layout : {"nhwc", "nchw"}
        Layout of the graph's input.
    dtype : float32, float64 or None
        Type of the graph (None: the network's). onnxruntime runs ``Conv``
        in float32 only, so export float64 networks with ``dtype=np.float32``
        for it; float64 graphs run in ``onnx.reference``.
    name : str
        Graph name.
    """
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConvpropError("ONNX export needs the onnx package: pip install 'convprop[onnx]'") from None
    if layout not in ("nhwc", "nchw"):
        raise ConvpropError(f"layout must be 'nhwc' or 'nchw', got {layout!r}")
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or opset < 11:
        raise ConvpropError(f"opset must be an integer >= 11, got {opset!r}")
    if dtype is not None and check_dtype(dtype) != net.dtype:
        net = net.copy(dtype=dtype)
    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}[np.dtype(net.dtype)]
    exporters = [(layer, _exporter_for(layer, f"layer {i}")) for i, layer in enumerate(net.layers)]
    out_exporter = _exporter_for(net.output, "output layer")

    g = GraphBuilder(net.dtype)
    h, w, c = net.image_shape
    if layout == "nhwc":
        shape = ["N", h, w, c]
        x = g.node("Transpose", ["input"], "to_nchw", perm=[0, 3, 1, 2])
    else:
        shape = ["N", c, h, w]
        x = "input"
    for layer, export in exporters:
        x = export(layer, g, x)
    if len(net.map_shape) == 3:
        x = g.node("Transpose", [x], "to_nhwc", perm=[0, 2, 3, 1])  # convprop's feature-vector order
        fv = g.node("Flatten", [x], "feature_vector", axis=1)
    else:  # a Dense layer's (N, units)
        fv = x
    o = out_exporter(net.output, g, fv)
    g.nodes.append(helper.make_node("Identity", [o], ["output"], name="output"))

    graph = helper.make_graph(
        g.nodes,
        name,
        [helper.make_tensor_value_info("input", elem, shape)],
        [helper.make_tensor_value_info("output", elem, ["N", net.n_outputs])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", int(opset))],
        producer_name="convprop",
        doc_string=f"convprop network {net.spec}; input layout {layout.upper()}",
    )
    model.ir_version = min(model.ir_version, _max_ir_version(int(opset)))
    onnx.checker.check_model(model, full_check=True)
    return model


def _max_ir_version(opset: int) -> int:
    """The lowest IR version that carries ``opset`` (so older runtimes accept the file)."""
    from onnx import helper

    return helper.find_min_ir_version_for([helper.make_opsetid("", opset)])


def export_onnx(
    net, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET, layout: str = "nhwc", dtype=None
) -> Path:
    """Write the network to an ``.onnx`` file, atomically (temporary file, then rename).

    Parameters
    ----------
    net : Network
    path : str or path
    opset : int, default 17
    layout : {"nhwc", "nchw"}, default "nhwc"
        Layout of the input images: (N, H, W, C) or (N, C, H, W).
    dtype : float32, float64 or None (the network's)
        Type of the graph; onnxruntime needs float32.

    Returns
    -------
    pathlib.Path
        The file written.

    Examples
    --------
    >>> export_onnx(net, "lenet.onnx")                          # doctest: +SKIP
    >>> import onnxruntime as ort                               # doctest: +SKIP
    >>> sess = ort.InferenceSession("lenet.onnx")               # doctest: +SKIP
    >>> o = sess.run(None, {"input": x[..., None].astype(np.float32)})[0]  # doctest: +SKIP
    """
    model = to_onnx(net, opset=opset, layout=layout, dtype=dtype)
    path = Path(path)
    if not path.parent.is_dir():
        raise ConvpropError(f"cannot write {path}: folder {path.parent} does not exist")
    data = model.SerializeToString()
    with atomic_write(path) as f:
        f.write(data)
    return path


__all__ = ["export_onnx", "to_onnx", "register_exporter", "GraphBuilder", "EXPORTERS", "DEFAULT_OPSET"]
