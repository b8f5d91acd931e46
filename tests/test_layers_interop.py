"""The new layers outside the engine: ONNX export run in onnxruntime, the spec grammar, scikit-learn, .mat refusal."""

import numpy as np
import pytest

from convprop import ConvpropError, Network

from convprop.engine import activations
from convprop.engine.layers import Conv, Dense, Input, MaxPool, Subsample

# Every test here runs on both engines: the NumPy reference and the compiled kernels.
pytestmark = pytest.mark.usefixtures("engine")

NETS = {
    "lenet-relu-maxpool-softmax": (
        [Input(28, 28), Conv(6, 5, "relu", padding="same"), MaxPool(2), Conv(16, 5, "relu"), MaxPool(2),
         Dense(120, "relu"), Dense(84, "relu")], 10, "softmax"),
    "colour-stride-pad-tanh-leaky": (
        [Input(13, 11, 3), Conv(4, (3, 2), "tanh", padding=1, stride=2), Conv(3, 2, activations.LeakyReLU(0.25)),
         MaxPool(2, crop=True), Dense(5, "identity")], 4, "sigmoid"),
    "correlation-same-even-kernel": (
        [Input(9, 12, 2), Conv(3, (4, 2), "sigmoid", padding="same", mode="correlation"), Subsample(3),
         Dense(6, "sigmoid")], 3, "softmax"),
    "dense-on-pixels": ([Input(6, 5), Dense(7, "relu"), Dense(4, "tanh")], 3, "sigmoid"),
}


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("name", NETS)
def test_onnxruntime_runs_every_new_layer(name, layout):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from convprop.formats.onnx import to_onnx

    layers, k, output = NETS[name]
    net = Network(layers, k, output=output, dtype=np.float32, seed=1)
    h, w, c = net.image_shape
    x = np.random.default_rng(2).uniform(-1, 1, (5, h, w, c)).astype(np.float32)
    ours = net.forward(x if c > 1 else x[..., 0])
    model = to_onnx(net, layout=layout)
    ops = {node.op_type for node in model.graph.node}
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = x if layout == "nhwc" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    theirs = sess.run(None, {"input": feed})[0]
    assert np.abs(theirs - ours).max() <= 1e-5
    if output == "softmax":
        assert "Softmax" in ops



def test_onnx_node_types_cover_the_new_layers():
    pytest.importorskip("onnx")
    from convprop.formats.onnx import to_onnx

    seen = set()
    for layers, k, output in NETS.values():
        seen |= {node.op_type for node in to_onnx(Network(layers, k, output=output, seed=0), dtype=np.float32).graph.node}
    assert {"Relu", "Tanh", "LeakyRelu", "Sigmoid", "MaxPool", "AveragePool", "Conv", "Gemm", "Softmax"} <= seen
    model = to_onnx(Network(*NETS["colour-stride-pad-tanh-leaky"][:2], seed=0))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    attrs = {a.name: list(a.ints) for a in conv.attribute}
    assert attrs["pads"] == [1, 1, 1, 1] and attrs["strides"] == [2, 2]
    leaky = next(n for n in model.graph.node if n.op_type == "LeakyRelu")
    assert leaky.attribute[0].f == 0.25


def test_float64_graph_in_the_onnx_reference_runtime():
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    from convprop.formats.onnx import to_onnx

    layers, k, output = NETS["colour-stride-pad-tanh-leaky"]  # slope 0.25: ONNX keeps LeakyRelu's alpha in float32
    net = Network(layers, k, output=output, seed=3)
    x = np.random.default_rng(4).uniform(-1, 1, (3, 13, 11, 3))
    theirs = ReferenceEvaluator(to_onnx(net)).run(None, {"input": x})[0]
    assert np.abs(theirs - net.forward(x)).max() <= 1e-12


SPECS = ["6c5-s2-12c5-s2", "32c3rps-m2-64c3r-m2-128fr", "8cc3x2t/2-m2c-10fl0.2-5fi", "6c5lp2-4f", "3c2x4ip1/3-s2", ""]


@pytest.mark.parametrize("spec", SPECS)
def test_spec_grammar_round_trips(spec):
    from convprop.engine.spec import parse_layers

    layers = parse_layers(spec, allow_empty=True)
    assert "-".join(layer.spec() for layer in layers) == spec


def test_spec_grammar_meaning_and_errors():
    from convprop.engine.spec import parse_layers

    conv, pool, dense = parse_layers("8cc3x2t/2-m2c-10fl0.2")
    assert conv.outputmaps == 8 and conv.kernelsize == (3, 2) and isinstance(conv.activation, activations.Tanh)
    assert conv.stride == 2 and conv.mode == "correlation" and conv.padding == "valid"
    assert isinstance(pool, MaxPool) and pool.scale == 2 and pool.crop
    assert isinstance(dense, Dense) and dense.units == 10 and dense.activation == activations.LeakyReLU(0.2)
    (c,) = parse_layers("6c5rps")
    assert c.padding == "same" and isinstance(c.activation, activations.ReLU)
    for bad in ["6c5q", "m", "12fx", "6c5p", "6c5/0"]:
        with pytest.raises(ConvpropError):
            parse_layers(bad)
    net = Network([Input(28, 28), *parse_layers("6c5rps-m2-16c5r-m2-120fr-84fr")], 10, output="softmax")
    assert net.spec == "28x28-6c5rps-m2-16c5r-m2-120fr-84fr-10sm"


def test_sklearn_classifier_with_new_layers_and_softmax():
    pytest.importorskip("sklearn")
    from convprop.sklearn import CNNClassifier

    rng = np.random.default_rng(0)
    X = rng.random((60, 8, 8))
    y = (X[:, :4].mean(axis=(1, 2)) > X[:, 4:].mean(axis=(1, 2))).astype(int)
    clf = CNNClassifier("4c3rps-m2-8fr", output="softmax", solver="adam", learning_rate_init=1e-2, max_iter=15,
                        batch_size=10, random_state=0)
    clf.fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba, clf.network_.predict_proba(X), rtol=0, atol=0)  # the softmax itself
    assert clf.network_.output_kind == "softmax"
    assert clf.score(X, y) > 0.85
    with pytest.raises(ValueError, match="output must be one of sigmoid, softmax"):
        CNNClassifier(output="tanh").fit(X, y)


@pytest.mark.parametrize("layers,output,reason", [
    ([Input(8, 8), Conv(2, 3, "relu")], "sigmoid", r"layer 1 \(2c3r\) is not the toolbox's convolution"),
    ([Input(8, 8), Conv(2, 3, padding="same")], "sigmoid", "not the toolbox's convolution"),
    ([Input(8, 8), Conv(2, 3, stride=2)], "sigmoid", "not the toolbox's convolution"),
    ([Input(8, 8), Conv(2, 3, mode="correlation")], "sigmoid", "not the toolbox's convolution"),
    ([Input(8, 8), Conv(2, 3), MaxPool(2)], "sigmoid", r"layer 2 \(MaxPool, m2\) has no DeepLearnToolbox equivalent"),
    ([Input(8, 8), Dense(4)], "sigmoid", r"layer 1 \(Dense, 4f\) has no DeepLearnToolbox equivalent"),
    ([Input(8, 8), Conv(2, 3)], "softmax", "its softmax output has no DeepLearnToolbox equivalent"),
])
def test_mat_save_of_a_non_toolbox_network_is_a_clear_error(tmp_path, layers, output, reason):
    from convprop.formats.matlab import save_mat

    net = Network(layers, 3, output=output, seed=0)
    with pytest.raises(ConvpropError, match="the toolbox cannot represent network .*" + reason):
        save_mat(net, tmp_path / "net.mat")
    assert not list(tmp_path.iterdir())
    assert Network([Input(8, 8), Conv(2, 3), Subsample(2)], 3).toolbox_mismatch() is None


def test_explain_runs_on_a_network_with_new_layers():
    from convprop.training.explain import explain

    net = Network([Input(6, 6), Conv(2, 3, "relu", padding="same"), MaxPool(2), Dense(4, "tanh")], 3,
                  output="softmax", seed=0)
    text = explain(net, np.random.default_rng(0).random((6, 6)), 1)
    assert "gradient check passed" in text


def test_layers_page_cites_existing_tests():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cited = set(re.findall(r"`(test_\w+)`", (root / "docs" / "layers.md").read_text()))
    defined = set()
    for path in (root / "tests").glob("test_layers_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)\(", path.read_text(), flags=re.M))
    assert cited and cited <= defined, cited - defined
