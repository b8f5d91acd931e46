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
