"""The new layers through the text spec, model files, the CLI and the plots."""

import json

import numpy as np
import pytest

from convprop import ConvpropError, Network

from convprop.engine import activations
from convprop.engine.layers import Conv, Dense, Input, MaxPool
from convprop.engine.spec import format_layers, output_kind, parse_layers, parse_network_spec

LENET = "6c5rps-m2-16c5r-m2-120fr-84fr"


@pytest.mark.parametrize("spec", [LENET, "8cc3x2t/2-m2c-10fl0.2-5fi", "6c5lp2-4f", "3c2x4ip1/3-s2", "4c3-6c3r-m3c"])
def test_spec_round_trip(spec):
    assert format_layers(parse_layers(spec)) == spec


def test_spec_meaning():
    conv, pool, dense = parse_layers("8CC3x2t/2-m2c-10fl0.2")  # upper case and spaces are fine
    assert (conv.outputmaps, conv.kernelsize, conv.stride, conv.mode) == (8, (3, 2), 2, "correlation")
    assert isinstance(conv.activation, activations.Tanh)
    assert isinstance(pool, MaxPool) and pool.crop and pool.scale == 2
    assert isinstance(dense, Dense) and dense.activation == activations.LeakyReLU(0.2)
    (same,) = parse_layers("6c5rps")
    assert same.padding == "same" and isinstance(same.activation, activations.ReLU)


@pytest.mark.parametrize("spec,words", [
    ("6c5/0", "the stride"),
    ("0f", "number of units"),
    ("m0", "the scale"),
    ("6c5l1.5", "slope must lie in [0, 1)"),
    ("6c5q", "'6c5q'"),
    ("6c5rr", "'6c5rr'"),
])
def test_spec_errors_name_the_token(spec, words):
    with pytest.raises(ConvpropError, match="layer spec") as info:
        parse_layers(spec)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_network_spec_with_softmax_outputs():
    net = Network([Input(28, 28), *parse_layers(LENET)], 10, output="softmax", seed=0)
    assert net.spec == f"28x28-{LENET}-10sm"
    shape, layers, n_out = parse_network_spec(net.spec)
    assert shape == (28, 28, 1) and n_out == 10 and format_layers(layers) == LENET
    assert output_kind(net.spec) == "softmax" and output_kind("28x28-6c5-s2-10o") == "sigmoid"


def test_model_file_keeps_new_layers_and_the_softmax(tmp_path):
    from convprop.formats.model import load_model, save_model

    net = Network([Input(12, 10, 3), Conv(4, (3, 2), "relu", padding="same", stride=2), MaxPool(2, crop=True),
                   Dense(6, activations.LeakyReLU(0.25))], 5, output="softmax", dtype=np.float32, seed=1)
    save_model(net, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.spec == net.spec and loaded.output_kind == "softmax" and loaded.dtype == np.float32
    x = np.random.default_rng(0).random((4, 12, 10, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))


def test_cli_trains_a_relu_maxpool_softmax_network(tmp_path):
    from convprop.cli import main
    from convprop.formats.model import load_model
    from idx_helpers import tiny_dataset

    data = tiny_dataset(tmp_path / "tiny")
    out = tmp_path / "run"
    argv = ["train", "--data-dir", str(data), "--out", str(out), "--epochs", "1", "--layers", "3c5rps-m4-3c3r-8fr",
            "--output", "softmax", "--batch-size", "10", "--alpha", "0.1", "--seed", "0", "--quiet"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["network"] == "28x28-3c5rps-m4-3c3r-8fr-10sm"
    net = load_model(out / "model.npz")
    assert net.output_kind == "softmax"
    assert (out / "plots" / "feature_maps.png").is_file()  # drawn with the Dense layer left out
    assert (out / "plots" / "kernels_conv1.png").is_file()
