"""engine.warmup: the kernels a network needs are compiled (or loaded) on a background thread."""

import numpy as np
import pytest

import convprop
from convprop import Conv, Dense, Input, MaxPool, Network, Subsample
from convprop.engine import backend, warmup
from convprop.engine.spec import parse_layers


@pytest.fixture(autouse=True)
def _restore():
    yield
    convprop.set_engine(None)


@pytest.mark.parametrize("spec, side", [("6c5-s2-12c5-s2", 16), ("6c5", 5), ("4c3ps-m2", 2), ("8c3/2-s2", 5),
                                        ("10f", 1), ("6c5p2-m2-16c5-m2-120fr", 12)])
def test_the_smallest_input_the_layers_accept(spec, side):
    assert warmup.smallest_input(parse_layers(spec)) == side


def test_no_input_fits():
    assert warmup.smallest_input([Conv(1, 600)]) is None
    assert warmup.start([Conv(1, 600)], np.float64) is None


def test_nothing_to_do_on_the_numpy_engine():
    convprop.set_engine("numpy")
    assert warmup.start(parse_layers("6c5-s2"), np.float64) is None


@pytest.mark.skipif(not backend.available(), reason="Numba is not installed")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_after_the_warm_up_training_compiles_nothing(dtype):
    """The miniature calls every kernel with the argument types the real network will use."""
    from convprop.engine.kernels import activation, conv, pool

    convprop.set_engine("numba")
    layers = [Conv(4, 5, "relu", padding="same"), MaxPool(2), Conv(6, 3, stride=2), Subsample(2), Dense(7, "tanh")]
    thread = warmup.start(layers, dtype, "softmax")
    thread.join(timeout=300)
    assert not thread.is_alive()
    kernels = [getattr(m, name) for m in (conv, pool, activation) for name in dir(m)
               if hasattr(getattr(m, name), "signatures") and getattr(m, name).__module__ == m.__name__]
    before = {k.__name__: len(k.signatures) for k in kernels}
    assert before["forward"] and before["max_pool"]
    net = Network([Input(20, 20), *layers], n_outputs=3, output="softmax", dtype=dtype, seed=0)
    x = np.random.default_rng(0).random((20, 20, 20)).astype(dtype)
    net.forward(x)
    net.backward(np.arange(20) % 3)
    assert {k.__name__: len(k.signatures) for k in kernels} == before


def test_a_failure_in_the_warm_up_is_left_to_the_real_network(monkeypatch):
    convprop.set_engine("numba" if backend.available() else "numpy")
    if not backend.available():
        pytest.skip("Numba is not installed")
    monkeypatch.setattr(Network, "train_batch", lambda *a: 1 / 0)
    thread = warmup.start(parse_layers("2c3"), np.float64)
    thread.join(timeout=60)
    assert not thread.is_alive()  # finished quietly
