"""CONVPROP_THREADS: the convolutions' row blocks over threads give the same numbers."""

import numpy as np
import pytest

from conftest import random_batch
from convprop import Conv, ConvpropError, Input, Network, Subsample


def _run(monkeypatch, threads):
    monkeypatch.setenv("CONVPROP_THREADS", str(threads))
    net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10, seed=2)
    x, y = random_batch(net, 20, seed=3, labels=True)
    o = net.forward(x).copy()
    net.backward(y)
    return o, {k: g.copy() for k, g in net.gradients().items()}


def test_threads_give_the_same_outputs_and_gradients(monkeypatch):
    o1, g1 = _run(monkeypatch, 1)
    o3, g3 = _run(monkeypatch, 3)
    np.testing.assert_array_equal(o3, o1)  # forward blocks are disjoint: bit-identical
    for k in g1:  # partial weight gradients are summed in another order
        np.testing.assert_allclose(g3[k], g1[k], rtol=1e-12, atol=1e-15, err_msg=k)


@pytest.mark.parametrize("value", ["0", "two"])
def test_bad_thread_count(monkeypatch, value):
    monkeypatch.setenv("CONVPROP_THREADS", value)
    net = Network([Input(8, 8), Conv(2, 3)], n_outputs=2, seed=0)
    with pytest.raises(ConvpropError, match="CONVPROP_THREADS must be a positive integer"):
        net.forward(np.zeros((2, 8, 8)))
