"""engine.warmup: the kernels a network needs are compiled (or loaded) on a background thread."""

import numpy as np
import pytest

import convprop
from convprop import Conv, Dense, Input, MaxPool, Network, Subsample
from convprop.engine import backend, parallel, warmup
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
    """The miniature calls every kernel with the argument types the real network will use (with the
    same thread count: one, see below)."""
    convprop.set_engine("numba")
    layers = [Conv(4, 5, "relu", padding="same"), MaxPool(2), Conv(6, 3, stride=2), Subsample(2), Dense(7, "tanh")]
    convprop.set_num_threads(1)
    try:
        thread = warmup.start(layers, dtype, "softmax")
        thread.join(timeout=300)
    finally:
        convprop.set_num_threads(None)
    assert not thread.is_alive()
    kernels = _kernels()
    before = {name: len(k.signatures) for name, k in kernels.items()}
    # what the real network calls: a training step in one call (map, dense and output layers, the
    # kernels inside it compiled or loaded with it); in evaluation, the map layers' forward pass in
    # one call, the dense and output layers' forward kernels
    for name in ("stack.train", "stack.forward", "dense.forward", "output.forward"):
        assert before[f"convprop.engine.kernels.{name}"], name
    net = Network([Input(20, 20), *layers], n_outputs=3, output="softmax", dtype=dtype, seed=0)
    x = np.random.default_rng(0).random((20, 20, 20)).astype(dtype)
    maps, targets = _inputs(net, x, np.arange(20) % 3)
    # one thread: on more, the first sliced pass also compiles the slices' gradient join
    # (kernels.arrays.weighted_join, 0.3 s), which the one-thread miniature does not reach
    convprop.set_num_threads(1)
    try:
        net.train_batch(maps, targets)  # what the training loop calls
        net.step(0.1)
        assert net.all_finite()
        net.forward(x)  # the evaluation's pass
    finally:
        convprop.set_num_threads(None)
    assert {name: len(k.signatures) for name, k in kernels.items()} == before


def _inputs(net, x, y):
    from convprop._validation import check_images, check_targets

    maps, _ = check_images(x, net.image_shape, net.dtype)
    return maps, check_targets(y, maps.shape[0], net.n_outputs, net.dtype)


def _kernels() -> dict:
    """Every compiled kernel, by name."""
    from convprop.engine.kernels import activation, arrays, conv, dense, output, pool, serve, stack

    modules = (conv, pool, activation, dense, stack, output, arrays, serve)
    return {f"{m.__name__}.{name}": getattr(m, name) for m in modules for name in dir(m)
            if hasattr(getattr(m, name), "signatures") and getattr(m, name).__module__ == m.__name__}


@pytest.mark.skipif(not backend.available(), reason="Numba is not installed")
def test_after_the_warm_up_a_pass_on_two_threads_compiles_nothing():
    """A pass of a few images on two threads goes layer by layer (the evaluation's last batch):
    the warm-up compiles those kernels too, not the end of the first run."""
    convprop.set_engine("numba")
    layers = parse_layers("6c5-s2-12c5-s2")
    convprop.set_num_threads(2)
    try:
        thread = warmup.start(layers, np.float64)
        thread.join(timeout=300)
        assert not thread.is_alive()
        kernels = _kernels()
        before = {name: len(k.signatures) for name, k in kernels.items()}
        net = Network([Input(28, 28), *layers], n_outputs=10, seed=0)
        net.forward(np.random.default_rng(0).random((3, 28, 28)))
        # and a training step in two slices: the crew's hand-over and the slices' gradient join, also
        # as the training loop's epoch runs it (the crew's compiled loop, kernels.serve)
        maps, targets = _inputs(net, np.random.default_rng(1).random((40, 28, 28)), np.arange(40) % 10)
        net.train_batch(maps, targets)
        assert len(net._slices) == 2
        net.step(0.1)
        with net.reusing_step_arrays():
            net.train_batch(maps, targets)
            assert parallel._crews[1].token
        net.step(0.1)
    finally:
        convprop.set_num_threads(None)
    assert {name: len(k.signatures) for name, k in kernels.items()} == before


@pytest.mark.skipif(not backend.available(), reason="Numba is not installed")
def test_the_warm_up_compiles_the_runs_optimiser_and_leaves_it_alone():
    from convprop.engine.optim import Adam

    convprop.set_engine("numba")
    layers = parse_layers("6c5-s2-12c5-s2")
    opt = Adam(1e-3)
    thread = warmup.start(layers, np.float32, optimizer=opt)
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert opt.t == 0 and all(not bufs for bufs in opt.state.values())  # a copy did the step
    kernels = _kernels()
    before = {name: len(k.signatures) for name, k in kernels.items()}
    assert before["convprop.engine.kernels.arrays.adam"]
    net = Network([Input(28, 28), *layers], n_outputs=10, dtype=np.float32, seed=0)
    maps, targets = _inputs(net, np.random.default_rng(0).random((4, 28, 28)).astype(np.float32), np.arange(4) % 10)
    convprop.set_num_threads(1)
    try:
        net.train_batch(maps, targets)  # what the training loop calls (one compiled call)
        opt.step(net)
    finally:
        convprop.set_num_threads(None)
    assert {name: len(k.signatures) for name, k in kernels.items()} == before


def test_a_failure_in_the_warm_up_is_left_to_the_real_network(monkeypatch):
    convprop.set_engine("numba" if backend.available() else "numpy")
    if not backend.available():
        pytest.skip("Numba is not installed")
    monkeypatch.setattr(Network, "train_batch", lambda *a: 1 / 0)
    thread = warmup.start(parse_layers("2c3"), np.float64)
    thread.join(timeout=60)
    assert not thread.is_alive()  # finished quietly
