"""Backprop against central differences, float64, tolerance 1e-8 (the toolbox's check)."""

import numpy as np
import pytest

from conftest import random_batch
from convprop import Conv, Input, Network, Subsample
from convprop import gradcheck

# Every test here runs on both engines: the NumPy reference and the compiled kernels.
pytestmark = pytest.mark.usefixtures("engine")

NETS = {
    # name: (layers, n_outputs)
    "toolbox-test-net": ([Input(28, 28), Conv(2, 5), Subsample(2), Conv(2, 5), Subsample(2)], 10),
    "non-square-input": ([Input(12, 18), Conv(1, 3), Subsample(2), Conv(1, 3)], 3),
    "three-plus-maps": ([Input(12, 12), Conv(4, 3), Subsample(2), Conv(5, 2), Subsample(2)], 4),
    "last-layer-conv": ([Input(9, 11), Conv(3, 2), Subsample(2), Conv(2, 3)], 5),
    "conv-after-conv": ([Input(9, 10), Conv(3, 3), Conv(2, (2, 3)), Subsample(2)], 2),
    "non-square-kernel": ([Input(11, 8), Conv(3, (4, 1)), Subsample(2)], 3),
    "scale-3": ([Input(14, 14), Conv(2, 3), Subsample(3), Conv(3, 2)], 2),
    "only-subsample": ([Input(8, 6), Subsample(2)], 3),
}


@pytest.mark.parametrize("name", NETS)
def test_backprop_matches_central_differences(name):
    layers, n_out = NETS[name]
    net = Network(layers, n_outputs=n_out, seed=1)
    x, y = random_batch(net, 5 if name == "toolbox-test-net" else 4, seed=2)
    report = gradcheck(net, x, y)
    assert report.passed, str(report)
    assert report.max_abs_error < 1e-8
    assert {t.name.split(".")[1] for t in report.tensors} == {"weight", "bias"}
    assert len(report.tensors) == 2 * (1 + sum(isinstance(l, Conv) for l in layers))
    # Relative errors are small too where gradients are not tiny.
    assert max(t.max_rel_error for t in report.tensors) < 1e-5


def test_gradcheck_with_labels_and_float32_network():
    net = Network([Input(8, 8), Conv(2, 3), Subsample(2)], n_outputs=3, dtype="float32", seed=0)
    x, y = random_batch(net, 3, labels=True)
    report = gradcheck(net, x, y)  # runs on a float64 copy
    assert report.passed
    assert net.dtype == np.float32 and net.parameters()["conv1.weight"].dtype == np.float32


def test_gradcheck_catches_a_wrong_gradient(monkeypatch, engine):
    net = Network([Input(8, 8), Conv(2, 3), Subsample(2)], n_outputs=3, seed=0)
    x, y = random_batch(net, 3)
    if engine == "numpy":
        from convprop.engine.layers import pool

        real = pool.ops.mean_pool_backward
        monkeypatch.setattr(pool.ops, "mean_pool_backward", lambda d, s: real(d, s) * 1.01)
    else:
        from convprop.engine.kernels import pool

        real = pool.mean_pool_backward
        monkeypatch.setattr(pool, "mean_pool_backward", lambda d, s, out, lo, hi: real(d * 1.01, s, out, lo, hi))
    report = gradcheck(net, x, y)
    assert not report.passed
    failing = {t.name for t in report.tensors if not t.passed}
    assert failing == {"conv1.weight", "conv1.bias"}  # the output layer is untouched
    assert "FAIL" in str(report)


def test_gradcheck_leaves_network_unchanged():
    net = Network([Input(6, 6), Conv(2, 3), Subsample(2)], n_outputs=2, seed=0)
    before = {k: v.copy() for k, v in net.parameters().items()}
    gradcheck(net, *random_batch(net, 2))
    for k, v in net.parameters().items():
        np.testing.assert_array_equal(v, before[k])


# --- ReLU and max pooling: kinks and ties crossed by the finite difference (issue 14, item 1)

def test_relu_and_max_pool_pass_at_the_default_epsilon_with_kinks_said():
    """`convprop gradcheck --layers 6c5-m2 --images 2` reported FAILED at epsilon 1e-4: the steps crossed
    max-pool ties. Those entries are now measured with a step that crosses none, and counted."""
    from convprop import MaxPool

    net = Network([Input(28, 28), Conv(6, 5), MaxPool(2)], n_outputs=10, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.random((2, 28, 28)), rng.integers(0, 10, 2)
    report = gradcheck(net, x, y, epsilon=1e-4)
    assert report.passed, str(report)
    assert report.max_abs_error < 1e-9
    assert report.refined == 62 and report.kinks == 0  # measured: 62 of 8806 entries crossed a tie at 1e-4
    assert "crossed a ReLU kink or a max-pool tie for 62 entries" in str(report)


def test_a_unit_sitting_on_its_kink_is_left_out_not_failed():
    from convprop import Dense

    net = Network([Input(6, 6), Conv(2, 3, "relu"), Dense(4, "relu")], n_outputs=3, seed=0)
    params = net.parameters()
    params["dense2.weight"][0] = 0.0  # unit 0's input is exactly 0 for every image: ReLU's kink
    params["dense2.bias"][0] = 0.0
    x, y = random_batch(net, 3, seed=1)
    report = gradcheck(net, x, y)
    by_name = {t.name: t for t in report.tensors}
    assert report.passed, str(report)
    net.forward(x)
    live = int(np.any(net.activations[1].reshape(3, -1) != 0, axis=0).sum())  # inputs not 0 for every image
    assert live == 31  # one ReLU map entry is 0 for all three images: its weight moves nothing
    assert by_name["dense2.bias"].kinks == 1 and by_name["dense2.weight"].kinks == live
    assert "are left out" in str(report)


def test_a_wrong_relu_derivative_still_fails(monkeypatch, engine):
    """The kink handling leaves real backprop errors visible."""
    from convprop import MaxPool
    from convprop.engine import activations

    net = Network([Input(10, 10), Conv(3, 3, "relu"), MaxPool(2)], n_outputs=3, seed=0)
    x, y = random_batch(net, 2, seed=0)
    assert gradcheck(net, x, y).passed
    if engine == "numpy":
        monkeypatch.setattr(activations.ReLU, "backward", lambda self, d, a: np.where(a > 0, 1.1 * d, 0))
    else:  # the compiled derivative, δ·[a > 0], on 1.1·δ: alone, and inside a layer's one-call backward
        from convprop.engine.kernels import activation as kernel, conv, stack

        real, real_backward = kernel.derivative, conv.backward
        monkeypatch.setattr(kernel, "derivative", lambda d, a, *rest: real(1.1 * d, a, *rest))
        monkeypatch.setattr(conv, "backward", lambda d, a, *rest: real_backward(1.1 * d, a, *rest))
        real_stack = stack.backward  # and in the map layers' one call: 1.1·δ into the last of them
        monkeypatch.setattr(stack, "backward", lambda *args: real_stack(*args[:6], (*args[6][:-1], 1.1 * args[6][-1]),
                                                                        *args[7:]))
    report = gradcheck(net, x, y)
    assert not report.passed and report.max_abs_error > 1e-4
