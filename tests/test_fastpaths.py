"""The engine's fast paths give the numbers of its general paths (which the oracles check)."""

import numpy as np
import pytest

import convprop.layers.conv as conv_module
from conftest import random_batch
from convprop import Conv, Input, Network, Subsample, ops


def _grads(net, x, y):
    net.forward(x)
    net.backward(y)
    return {k: g.copy() for k, g in net.gradients().items()}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kept_patch_matrix_gives_the_rebuilt_gradients(monkeypatch, dtype):
    net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10,
                  seed=2, dtype=dtype)
    x, y = random_batch(net, 20, seed=3, labels=True)
    kept = _grads(net, x, y)
    assert net.layers[3]._cache.get("kept_for") is not None  # the fast path ran (12c5: 1.5 MiB)
    monkeypatch.setattr(conv_module, "KEEP_COLS_BYTES", 0)
    rebuilt = _grads(net, x, y)
    assert net.layers[3]._cache.get("kept_for") is None
    for k in kept:
        np.testing.assert_array_equal(kept[k], rebuilt[k], err_msg=k)


def test_kept_patch_matrix_follows_the_last_forward(monkeypatch):
    """An inference in between (big chunks: nothing kept) leaves no stale matrix for backward."""
    net = Network([Input(12, 12), Conv(3, 3), Subsample(2)], n_outputs=4, seed=0)
    x, y = random_batch(net, 6, seed=1, labels=True)
    ref = _grads(net.copy(), x, y)
    net.forward(x)
    with monkeypatch.context() as m:
        m.setattr(conv_module, "KEEP_COLS_BYTES", 0)
        net.predict_proba(random_batch(net, 8, seed=5)[0])  # a big chunk: nothing kept
    got = _grads(net, x, y)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_conv_then_pool_backward_fused_gives_the_layer_by_layer_deltas(act):
    """Network.backward fuses a mean pool's adjoint into the conv before it; layer by layer is the reference."""
    net = Network([Input(16, 16), Conv(4, 3, act), Subsample(2), Conv(5, 2, act), Subsample(3)], n_outputs=3, seed=4)
    x, y = random_batch(net, 7, seed=6, labels=True)
    net.forward(x)
    net.backward(y)
    fused = {k: g.copy() for k, g in net.gradients().items()}
    fused_d = [layer.d.copy() for layer in net.layers[1:]]
    delta = net.output.backward(net.e)
    delta = ops.from_nhwc(delta.reshape(x.shape[0], *net.map_shape))
    for i in range(len(net.layers) - 1, 0, -1):
        delta = net.layers[i].backward(delta, need_input_delta=i > 1)
    for k, g in net.gradients().items():
        np.testing.assert_allclose(fused[k], g, rtol=1e-13, atol=1e-16, err_msg=k)
    for got, ref in zip(fused_d, (layer.d for layer in net.layers[1:])):
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-16)


def test_sigmoid_backward_pooled_is_the_two_steps():
    rng = np.random.default_rng(0)
    a, delta = rng.random((3, 6, 4, 5)), rng.standard_normal((3, 3, 2, 5))
    ref = ops.sigmoid_backward(ops.mean_pool_backward(delta, 2), a)
    np.testing.assert_allclose(ops.sigmoid_backward_pooled(delta, a, 2), ref, rtol=1e-15)
