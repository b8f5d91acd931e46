"""The engine's fast paths give the numbers of its general paths (which the oracles check)."""

import numpy as np
import pytest

import convprop.engine.layers.conv as conv_module
from conftest import random_batch
from convprop import Conv, Input, Network, Subsample
from convprop.engine import ops

# Fast paths of the NumPy engine (the compiled engine's kernels are checked against it elsewhere).
pytestmark = pytest.mark.usefixtures("numpy_engine")

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


def test_col2im_offset_major_is_col2im_with_reordered_rows():
    rng = np.random.default_rng(1)
    c, h, w, n, kh, kw = 3, 7, 6, 4, 3, 2
    dcols = rng.standard_normal((c * kh * kw, (h - kh + 1) * (w - kw + 1) * n))
    ho, wo = h - kh + 1, w - kw + 1
    ref = np.zeros((c, h, w, n))  # the scatter-add written out, rows (C, kh, kw)
    for i in range(c):
        for u in range(kh):
            for v in range(kw):
                ref[i, u : u + ho, v : v + wo] += dcols[(i * kh + u) * kw + v].reshape(ho, wo, n)
    kkc = dcols.reshape(c, kh, kw, -1).transpose(1, 2, 0, 3).reshape(c * kh * kw, -1)
    np.testing.assert_array_equal(ops.col2im_cm_offset_major(kkc, (c, h, w, n), kh, kw), ref)
