"""ONNX export: the exported graph, run by onnxruntime on real MNIST images, gives net.forward's outputs."""

import os

import numpy as np
import pytest

from convprop import Conv, ConvpropError, Input, Network, Subsample

from convprop import train
from convprop.engine.layers import Layer
from mnist_idx import load_mnist

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from convprop.formats.onnx import EXPORTERS, export_onnx, register_exporter, to_onnx  # noqa: E402

LENET = [Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)]


@pytest.fixture(scope="module")
def mnist(shared):
    x, y = load_mnist(shared, "train", 1000)
    xt, _ = load_mnist(shared, "test", 200)
    return x, y, xt


@pytest.fixture(scope="module")
def trained(mnist):
    """The toolbox's example net, trained in float32 on 1000 MNIST images."""
    x, y, _ = mnist
    net = Network(LENET, n_outputs=10, dtype=np.float32, seed=0)
    train(net, x, y, epochs=1, batch_size=50, alpha=1.0, seed=0)
    return net


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnxruntime_matches_forward_on_200_mnist_test_images_float32(trained, mnist, tmp_path):
    xt = mnist[2].astype(np.float32)
    path = export_onnx(trained, tmp_path / "lenet.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    ours = trained.forward(xt)
    theirs = _session(path).run(None, {"input": xt[..., None]})[0]
    assert theirs.dtype == np.float32 and theirs.shape == (200, 10)
    assert np.abs(theirs - ours).max() <= 1e-5
    assert np.array_equal(theirs.argmax(1), ours.argmax(1))
    # The batch dimension is dynamic.
    one = _session(path).run(None, {"input": xt[:1, ..., None]})[0]
    assert np.abs(one - ours[:1]).max() <= 1e-5


def test_nchw_layout_and_colour_non_square_net(tmp_path):
    net = Network([Input(13, 20, 3), Conv(4, (2, 5)), Conv(3, 3), Subsample(2)], n_outputs=4, dtype=np.float32, seed=2)
    x = np.random.default_rng(3).random((9, 13, 20, 3)).astype(np.float32)
    path = export_onnx(net, tmp_path / "colour.onnx", layout="nchw")
    theirs = _session(path).run(None, {"input": x.transpose(0, 3, 1, 2).copy()})[0]
    assert np.abs(theirs - net.forward(x)).max() <= 1e-5


def test_float64_graph_matches_in_the_onnx_reference_runtime(trained, mnist):
    from onnx.reference import ReferenceEvaluator

    net = trained.copy(dtype=np.float64)
    x = mnist[2][:20]
    model = to_onnx(net)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    theirs = ReferenceEvaluator(model).run(None, {"input": x[..., None]})[0]
    assert theirs.dtype == np.float64
    assert np.abs(theirs - net.forward(x)).max() <= 1e-12
    # and exported as float32 for onnxruntime, which has no float64 Conv
    model32 = to_onnx(net, dtype=np.float32)
    sess = ort.InferenceSession(model32.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": x[..., None].astype(np.float32)})[0]
    assert np.abs(out - net.forward(x)).max() <= 1e-5


class Doubler(Layer):
    """A toy parameter-free layer: y = 2x."""

    def forward(self, x):
        return 2 * x

    def backward(self, delta, need_input_delta=True):
        return 2 * delta

    def spec(self):
        return "d"


def test_unsupported_layer_raises_and_registry_extends(tmp_path):
    net = Network([Input(8, 8), Conv(2, 3), Doubler()], n_outputs=3, dtype=np.float32, seed=0)
    with pytest.raises(ConvpropError, match="no ONNX exporter for layer type Doubler"):
        export_onnx(net, tmp_path / "x.onnx")
    assert not os.listdir(tmp_path)  # nothing half-written

    @register_exporter(Doubler)
    def _export(layer, g, x):
        two = g.constant("two", np.array(2, dtype=g.dtype))
        return g.node("Mul", [x, two], "double")

    try:
        path = export_onnx(net, tmp_path / "x.onnx")
        x = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
        out = _session(path).run(None, {"input": x[..., None]})[0]
        assert np.abs(out - net.forward(x)).max() <= 1e-6
    finally:
        del EXPORTERS[Doubler]
    assert os.listdir(tmp_path) == ["x.onnx"]


def test_bad_arguments(tmp_path, trained):
    with pytest.raises(ConvpropError, match="layout"):
        to_onnx(trained, layout="hwc")
    with pytest.raises(ConvpropError, match="opset"):
        to_onnx(trained, opset=7)
    with pytest.raises(ConvpropError, match="dtype"):
        to_onnx(trained, dtype=np.int32)
    with pytest.raises(ConvpropError, match="does not exist"):
        export_onnx(trained, tmp_path / "missing" / "x.onnx")
