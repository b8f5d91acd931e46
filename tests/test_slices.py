"""Batch slices over threads (convprop.engine.slices): the same numbers as one pass, to round-off.

With the compiled engine and k > 1 threads a batch of N ≥ 2·MIN_SLICE images goes through the
network as k slices, one per thread, on replicas that share the parameters. The forward pass of
each image is the same computation whatever batch it is in (the compiled convolutions and pooling
give the same bits; a Dense layer's or the output's BLAS product may round differently for another
column count), so outputs, maps and deltas agree to ≤ 1e-13; gradients and the loss are sums in
another order: equal to ≤ 1e-12 relative (float64), and the same bits run after run for a given k.
"""

import numpy as np
import pytest

import convprop
from conftest import random_batch
from convprop import Conv, Dense, Input, MaxPool, Network, Subsample, fit
from convprop.engine import backend, parallel, slices

pytestmark = [pytest.mark.skipif(not backend.available(), reason="Numba is not installed"),
              pytest.mark.usefixtures("compiled_engine")]


def _nets(dtype="float64"):
    yield Network([Input(20, 20), Conv(4, 5, "relu", padding="same"), MaxPool(2), Conv(6, 3, "leaky_relu", stride=2),
                   Subsample(2), Dense(7, "tanh")], n_outputs=3, output="softmax", dtype=dtype, seed=4)
    yield Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10, dtype=dtype,
                  seed=0)


def _pass(net, x, y, threads):
    convprop.set_num_threads(threads)
    o = net.forward(x).copy()
    loss = net.backward(y)
    maps = [a.copy() for a in net.activations]
    deltas = [layer.d.copy() for layer in net.layers[1:]] + [net.output.d.copy()]
    pieces = [p.copy() for layer in net.layers for p in layer.pieces()]
    grads = {k: g.copy() for k, g in net.gradients().items()}
    return o, loss, maps, deltas, pieces, grads, len(net._slices)


@pytest.mark.parametrize("net", list(_nets()), ids=["lenet-like", "toolbox"])
def test_slices_give_the_unsliced_numbers(net):
    x, y = random_batch(net, 45, seed=3, labels=True)
    one = _pass(net, x, y, 1)
    assert one[-1] == 0  # one thread: no slices
    for threads in (2, 3, 5):
        got = _pass(net, x, y, threads)
        assert got[-1] == min(threads, 45 // slices.MIN_SLICE)
        np.testing.assert_allclose(got[0], one[0], rtol=1e-13, atol=0)
        for a, b in zip(got[2] + got[3], one[2] + one[3]):  # maps, deltas
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * np.abs(b).max())
        for a, b in zip(got[4], one[4]):  # which piece of ReLU / max pooling each unit used
            np.testing.assert_array_equal(a, b)
        assert got[1] == pytest.approx(one[1], rel=1e-14)
        for k, g in got[5].items():
            scale = np.abs(one[5][k]).max()
            assert np.abs(g - one[5][k]).max() <= 1e-12 * scale, k


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_fixed_thread_count_gives_the_same_bits(dtype):
    runs = []
    for _ in range(2):
        net = next(_nets(dtype))
        x, y = random_batch(net, 40, seed=1, labels=True)
        runs.append(_pass(net, x, y, 2))
    assert runs[0][-1] == 2
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for k in runs[0][5]:
        np.testing.assert_array_equal(runs[0][5][k], runs[1][5][k], err_msg=k)


def test_training_with_slices_follows_one_thread_and_repeats_bit_for_bit():
    """Three epochs of SGD, batch 24 (3 slices of 8 with 3 threads): the weights agree to round-off."""
    weights = {}
    for threads in (1, 3, 3):
        convprop.set_num_threads(threads)
        net = next(_nets())
        x, y = random_batch(net, 96, seed=5, labels=True)
        fit(net, x, y, epochs=3, batch_size=24, alpha=0.5, seed=2)
        weights.setdefault(threads, []).append({k: v.copy() for k, v in net.parameters().items()})
    for k, w in weights[1][0].items():
        assert np.abs(weights[3][0][k] - w).max() <= 1e-11 * np.abs(w).max(), k
        np.testing.assert_array_equal(weights[3][0][k], weights[3][1][k])


@pytest.mark.parametrize("net", list(_nets()), ids=["lenet-like", "toolbox"])
def test_the_loss_of_a_sliced_batch(net):
    """Network.loss after a sliced forward: each slice's loss (softmax: from its log o), weighted."""
    x, y = random_batch(net, 40, seed=2, labels=True)
    convprop.set_num_threads(1)
    one = net.loss(x, y)
    convprop.set_num_threads(3)
    assert net.loss(x, y) == pytest.approx(one, rel=1e-14) and len(net._slices) == 3


def test_small_batches_and_the_numpy_engine_are_not_sliced():
    net = next(_nets())
    convprop.set_num_threads(4)
    x, y = random_batch(net, 2 * slices.MIN_SLICE - 1, seed=0, labels=True)
    net.forward(x)
    assert net._slices == []
    convprop.set_engine("numpy")
    x, y = random_batch(net, 64, seed=0, labels=True)
    net.forward(x)
    assert net._slices == []


def test_replicas_share_the_parameters_and_keep_their_own_state():
    net = next(_nets())
    convprop.set_num_threads(2)
    x, y = random_batch(net, 32, seed=0, labels=True)
    net.forward(x)
    net.backward(y)
    twin = net._slices[0]
    for (name, p), (_, q) in zip(net.parameters().items(), twin.parameters().items()):
        assert p is q, name  # the same arrays: an update reaches every slice
    assert twin.layers[1]._cache and not net.layers[1]._cache
    assert twin.layers[1].grads["weight"] is not net.layers[1].grads["weight"]
    net.release()
    assert net._slices == [] and all(layer._parts is None for layer in net.layers)


def test_a_users_wrapper_of_a_networks_method_is_called_once_per_batch():
    """A timing wrapper set on the network object (net.train_batch = …) is the network's, not its
    replicas': training on two threads calls it once per batch (the replicas used to inherit it and
    call back into the network, ending in a ValueError)."""
    net = next(_nets())
    convprop.set_num_threads(2)
    calls = []
    inner = net.train_batch

    def timed(*args, **kwargs):
        calls.append(1)
        return inner(*args, **kwargs)

    net.train_batch = timed
    x, y = random_batch(net, 64, seed=0, labels=True)
    fit(net, x, y, epochs=1, batch_size=32, alpha=1.0)
    assert len(calls) == 2 and len(net._slices) == 2
    assert all("train_batch" not in vars(t) for t in net._slices)


def test_an_error_in_a_slice_reaches_the_caller(monkeypatch):
    net = next(_nets())
    convprop.set_num_threads(2)
    x, y = random_batch(net, 32, seed=0, labels=True)
    calls = []

    def failing(self, maps):
        calls.append(maps.shape[0])
        if len(calls) == 2:
            raise FloatingPointError("slice 2")
        return original(self, maps)

    net.forward(x)
    assert len(net._slices) == 2
    original = Network.forward_batch
    monkeypatch.setattr(Network, "forward_batch", failing)
    with pytest.raises(FloatingPointError, match="slice 2"):
        net.forward(x)
    assert net._slices == [] and all(layer._parts is None for layer in net.layers)  # nothing stale


def test_inside_a_slice_the_layers_use_one_thread():
    convprop.set_num_threads(3)
    assert parallel.run_tasks(lambda i: (i, parallel.n_threads(), parallel.inside_task()), 3) == [
        (0, 1, True), (1, 1, True), (2, 1, True)]
    assert parallel.n_threads() == 3 and not parallel.inside_task()


def test_deltas_are_this_passs_not_an_earlier_ones():
    """layer.d after a sliced pass is joined from this pass's slices (found by review: an earlier
    pass's joined or unsliced delta was returned)."""
    net = next(_nets())
    convprop.set_num_threads(2)
    small, y_small = random_batch(net, 8, seed=0, labels=True)
    net.forward(small)
    net.backward(y_small)  # unsliced: 8 images
    deltas = []
    for seed in (1, 2):
        x, y = random_batch(net, 32, seed=seed, labels=True)
        net.forward(x)
        net.backward(y)
        deltas.append([layer.d.copy() for layer in net.layers[1:]] + [net.output.d.copy()])
        convprop.set_num_threads(1)
        net.forward(x)
        net.backward(y)
        truth = [layer.d.copy() for layer in net.layers[1:]] + [net.output.d.copy()]
        convprop.set_num_threads(2)
        for got, want in zip(deltas[-1], truth):
            assert got.shape == want.shape and got.shape[0] == 32
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13 * np.abs(want).max())
    assert not np.array_equal(deltas[0][-1], deltas[1][-1])


def test_numpys_error_settings_reach_every_thread():
    """np.errstate is per thread; the tasks (and the NumPy engine's row blocks) run under the caller's."""
    convprop.set_num_threads(2)
    for _ in range(5):
        with np.errstate(over="ignore", invalid="raise"):
            seen = parallel.run_tasks(lambda i: (np.geterr()["over"], np.geterr()["invalid"]), 2)
            blocks = parallel.map_blocks(lambda slot, b: np.geterr()["over"], [(0, 1), (1, 2)])
        assert seen == [("ignore", "raise")] * 2 and blocks == ["ignore"] * 2


def test_divergence_is_reported_from_sliced_steps_too():
    """Overflow inside a slice on a pool thread is left to the divergence guard, as on one thread
    (found by review: the loop's np.errstate did not reach the pool thread)."""
    import warnings

    from convprop import Diverged

    for threads in (1, 2):
        convprop.set_num_threads(threads)
        net = next(_nets())
        net.output.params["weight"][...] = 1e308  # the output layer: z overflows, the loss is NaN
        x, y = random_batch(net, 64, seed=0, labels=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(Diverged):
                fit(net, x, y, epochs=1, batch_size=32, alpha=0.1, seed=0)
