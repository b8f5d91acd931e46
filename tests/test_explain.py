"""convprop.training.explain: the printed numbers are the network's real activations, deltas and gradients."""

import argparse
import io
import re

import numpy as np
import pytest

from convprop import Conv, ConvpropError, Input, Network, Subsample

from convprop.engine import layout
from convprop.formats.matlab import load_mat, save_mat
from convprop.cli import main as cli_main
from convprop.cli.explain import add_parser as add_explain_command
from convprop.cli.explain import run as run_explain_command
from convprop.training.explain import explain, explanation


def _net():
    net = Network([Input(14, 14), Conv(2, 3), Subsample(2), Conv(3, 3), Subsample(2)], n_outputs=4, seed=1)
    net.layers[1].params["bias"][...] = [0.2, -0.1]
    return net


def _stats(a):
    a = np.asarray(a, dtype=np.float64)
    return a.min(), a.mean(), a.max(), np.sqrt(np.mean(a * a))


def test_rows_are_the_networks_real_numbers():
    net = _net()
    x = np.random.default_rng(0).random((14, 14))
    ex = explanation(net, x, 2, check=False)
    # the same pass, run directly on the engine
    ref = net.copy()
    o = ref.forward(x[None])
    loss = ref.backward(np.array([2]))
    assert ex.loss == pytest.approx(loss, rel=1e-15)
    np.testing.assert_array_equal(ex.output, o[0])
    np.testing.assert_array_equal(ex.target, [0, 0, 1, 0])
    expected = {}
    for i, (layer, a) in enumerate(zip(ref.layers, ref.activations)):
        expected[("forward", i, "a")] = a[0]
    expected[("forward", "output", "o")] = o[0]
    expected[("backward", "output", "od")] = ref.output.d[0]
    expected[("backward", "output", "dffW")] = ref.output.grads["weight"]
    expected[("backward", "output", "dffb")] = ref.output.grads["bias"]
    for i in (1, 2, 3, 4):
        expected[("backward", i, "d")] = ref.layers[i].d[0]
    for i in (1, 3):
        expected[("backward", i, "dk")] = layout.kernels_to_dlt(ref.layers[i].grads["weight"])
        expected[("backward", i, "db")] = ref.layers[i].grads["bias"]
    assert len(ex.rows) == len(expected) == 6 + 3 + 4 + 4
    for row in ex.rows:
        key = row.layer if row.layer == "output" else int(row.layer.split()[0])
        want = expected[(row.phase, key, row.name)]
        assert row.shape == np.shape(want)
        np.testing.assert_allclose([row.min, row.mean, row.max, row.rms], _stats(want), rtol=1e-14, atol=0)
    text = str(ex)
    for row in ex.rows:  # every number is printed as computed
        assert f"{row.min:>12.5e} {row.mean:>12.5e} {row.max:>12.5e} {row.rms:>12.5e}" in text
    assert re.search(r"3 c 3c3 +dk +2x3x3x3 ", text) and re.search(r"2 s s2 +d +6x6x2 ", text)


def test_gradient_check_report_is_part_of_it():
    net = _net()
    x = np.random.default_rng(3).random((14, 14))
    ex = explanation(net, x, np.array([0.1, 0.9, 0.2, 0.0]))
    assert ex.check is not None and ex.check.passed
    assert [t.name for t in ex.check.tensors] == list(net.parameters())
    for t in ex.check.tensors:
        assert t.max_rel_error < 1e-4 and t.max_abs_error < 1e-9
    text = explain(net, x, np.array([0.1, 0.9, 0.2, 0.0]))
    assert "gradient check passed" in text and "conv3.weight" in text and "worst at" in text
    assert "gradient check" not in explain(net, x, 1, check=False)


def test_default_target_is_the_predicted_class_and_net_is_untouched():
    net = _net()
    before = {k: v.copy() for k, v in net.parameters().items()}
    x = np.random.default_rng(4).random((14, 14))
    ex = explanation(net, x, check=False)
    assert ex.target.argmax() == net.predict(x) and ex.target.sum() == 1
    for k, v in net.parameters().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(ConvpropError, match="one input"):
        explanation(net, np.zeros((2, 14, 14)))


def test_prints_to_a_file():
    buf = io.StringIO()
    text = explain(_net(), np.zeros((14, 14)), 0, check=False, file=buf)
    assert buf.getvalue() == text + "\n"


def test_cli_hooks(tmp_path):
    net = _net()
    save_mat(net, tmp_path / "net.mat")
    images = np.random.default_rng(5).random((3, 14, 14))
    np.save(tmp_path / "x.npy", images)
    parser = argparse.ArgumentParser(prog="convprop")
    add_explain_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["explain", str(tmp_path / "net.mat"), "--input", str(tmp_path / "x.npy"),
                              "--index", "2", "--label", "3", "--no-gradcheck"])
    out = io.StringIO()
    assert args.func(args, out) == 0
    assert out.getvalue().strip() == explain(net, images[2], 3, check=False)
    # toolbox-layout .mat input
    import scipy.io

    scipy.io.savemat(tmp_path / "x.mat", {"test_x": layout.images_to_dlt(images)})
    args = parser.parse_args(["explain", str(tmp_path / "net.mat"), "--input", str(tmp_path / "x.mat"),
                              "--index", "1", "--no-gradcheck"])
    out = io.StringIO()
    run_explain_command(args, out)
    assert out.getvalue().strip() == explain(net, images[1], None, check=False)
    args = parser.parse_args(["explain", str(tmp_path / "net.mat"), "--input", str(tmp_path / "x.npy"), "--index", "3"])
    with pytest.raises(ConvpropError, match="out of range"):
        run_explain_command(args, io.StringIO())


def test_module_entry_reports_errors(tmp_path, capsys):
    assert cli_main(["explain", str(tmp_path / "missing.mat")]) == 2
    assert "missing.mat: no such file" in capsys.readouterr().err


def test_defaults_explain_the_toolbox_example_network(capsys):
    assert cli_main(["explain", "--no-gradcheck", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("network 28x28-6c5-s2-12c5-s2-10o, one input")
    assert re.search(r"3 c 12c5 +dk +6x12x5x5 ", text)


def test_fixture_network_explained(shared):
    import scipy.io

    folder = shared / "fixtures" / "dlt"
    net = load_mat(folder / "dlt_cnn_mnist6000_1epoch.mat")
    expected = scipy.io.loadmat(folder / "dlt_cnn_mnist6000_1epoch_expected.mat")
    ex = explanation(net, expected["test_x"][:, :, 3], 0, check=False)
    np.testing.assert_allclose(ex.output, expected["o"][:, 3], rtol=0, atol=1e-12)


def test_convprop_explain_command_on_a_saved_model(tmp_path, capsys):
    from convprop.cli import main as cli_main
    from convprop.formats.model import save_model

    net = Network([Input(12, 10), Conv(2, 3), Subsample(2), Conv(3, (2, 3))], n_outputs=4, seed=3)
    save_model(net, tmp_path / "model.npz")
    image = np.random.default_rng(1).random((12, 10))
    np.save(tmp_path / "x.npy", image)
    assert cli_main(["explain", str(tmp_path), "--input", str(tmp_path / "x.npy"), "--label", "2"]) == 0
    out = capsys.readouterr().out
    target = np.eye(4)[2]
    o = net.forward(image[None])[0]
    loss = 0.5 * np.sum((o - target) ** 2)
    assert f"loss L = ½·Σ(o − y)² = {loss:.10f}" in out
    assert "12x10-2c3-s2-3c2x3-4o" in out
    assert cli_main(["explain", str(tmp_path / "missing.npz")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_equations_follow_the_network_not_the_toolbox():
    """explain prints the equations of the layers it explains (issue 11: it printed σ and means for any net)."""
    from convprop import Dense, MaxPool

    relu = Network([Input(12, 12), Conv(2, 3, "relu", padding="same"), MaxPool(2), Dense(5, "tanh")], 3,
                   output="softmax", seed=0)
    text = explain(relu, np.random.default_rng(0).random((12, 12)), 1, check=False)
    assert "a = relu(Σ_i conv(a_prev{i}, k{i}{j}) + b{j})" in text and "a = max of each 2×2 block" in text
    assert "d = δ·(1 − a²)" in text and "o = softmax(ffW·fv + ffb)" in text and "od = o − y" in text
    assert "loss L = −Σ y·log o = " in text and "σ" not in text and "mean of each" not in text
    toolbox = explain(_net(), np.zeros((14, 14)), 0, check=False)
    assert "a = σ(Σ_i conv(a_prev{i}, k{i}{j}) + b{j})" in toolbox and "d = δ·a(1 − a)" in toolbox
    assert "od = (o − y)·o(1 − o)" in toolbox and "loss L = ½·Σ(o − y)² = " in toolbox
