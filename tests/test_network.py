"""The Pythonic API: shapes, dtypes, prediction, training loop semantics, bad input."""

import numpy as np
import pytest

from conftest import random_batch
from convprop import Conv, ConvpropError, Input, Network, Subsample
from convprop import evaluate
from convprop import train

# Every test here runs on both engines: the NumPy reference and the compiled kernels.
pytestmark = pytest.mark.usefixtures("engine")


def small(dtype=np.float64, seed=0, **kw):
    return Network([Input(12, 10), Conv(3, 3), Subsample(2), Conv(4, 2)], n_outputs=3, dtype=dtype, seed=seed, **kw)


def test_description():
    net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10)
    assert net.spec == "28x28-6c5-s2-12c5-s2-10o"
    assert net.map_shape == (4, 4, 12) and net.n_features == 192
    assert list(net.parameters()) == [
        "conv1.weight", "conv1.bias", "conv3.weight", "conv3.bias", "output.weight", "output.bias"
    ]
    assert sum(p.size for p in net.parameters().values()) == 6 * 25 + 6 + 12 * 6 * 25 + 12 + 10 * 192 + 10
    assert "Conv(12, 5)" in repr(net)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_end_to_end(dtype):
    net = small(dtype)
    x, y = random_batch(net, 9, labels=True)
    o = net.forward(x)
    assert o.dtype == dtype and o.shape == (9, 3)
    loss = net.backward(y)
    assert isinstance(loss, float)
    assert all(g.dtype == dtype for g in net.gradients().values())
    train(net, x, y, epochs=2, batch_size=4, seed=0)
    assert all(p.dtype == dtype for p in net.parameters().values())
    assert net.predict_proba(x).dtype == dtype


def test_same_seed_same_network_and_float32_close_to_float64():
    a, b = small(seed=4), small(seed=4)
    for k in a.parameters():
        np.testing.assert_array_equal(a.parameters()[k], b.parameters()[k])
    c = small(np.float32, seed=4)
    x, _ = random_batch(a, 5)
    np.testing.assert_allclose(c.forward(x), a.forward(x), rtol=1e-6)


def test_single_image_prediction_and_batches_agree():
    net = small()
    x, _ = random_batch(net, 4)
    proba = net.predict_proba(x)
    one = net.predict_proba(x[2])
    assert one.shape == (3,)
    np.testing.assert_allclose(one, proba[2], rtol=1e-14)
    assert isinstance(net.predict(x[2]), int) and net.predict(x[2]) == int(np.argmax(proba[2]))
    np.testing.assert_array_equal(net.predict(x), proba.argmax(1))
    assert net.forward(x[0]).shape == (3,)


def test_predict_chunks_do_not_change_results(monkeypatch):
    from convprop.engine import network

    net = small()
    x, _ = random_batch(net, 25)
    whole = net.predict_proba(x)
    monkeypatch.setattr(network, "PREDICT_CHUNK", 7)
    # BLAS may block a GEMM differently for 7 columns than for 25, so the sums
    # can round differently in the last bit; anything more would be a bug.
    np.testing.assert_allclose(net.predict_proba(x), whole, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(net.predict(x), whole.argmax(axis=1))


def test_colour_input():
    net = Network([Input(10, 10, 3), Conv(2, 3), Subsample(2)], n_outputs=2, seed=0)
    x = np.random.default_rng(0).random((4, 10, 10, 3))
    assert net.forward(x).shape == (4, 2)
    assert net.forward(x[0]).shape == (2,)
    assert net.parameters()["conv1.weight"].shape == (2, 3, 3, 3)


def test_training_rl_partial_batch_and_explicit_order():
    net = small()
    x, y = random_batch(net, 10, labels=True, seed=1)
    h = train(net, x, y, epochs=3, batch_size=4, alpha=0.5, shuffle=False)
    assert len(h.L) == 3 * 3  # 4 + 4 + 2 per epoch: the last partial batch is used
    assert len(h.rL) == len(h.L) + 1 and h.rL[0] == h.L[0]
    assert len(h.epoch_seconds) == 3
    # shuffle=False is the same as the identity order, and it is reproducible
    a, b = small(), small()
    ha = train(a, x, y, epochs=2, batch_size=4, shuffle=False)
    hb = train(b, x, y, epochs=2, batch_size=4, order=np.arange(10))
    assert ha.L == hb.L
    # drop_last skips the partial batch
    hd = train(small(), x, y, epochs=1, batch_size=4, drop_last=True)
    assert len(hd.L) == 2


def test_seeded_shuffling_is_reproducible_and_differs_by_seed():
    x, y = random_batch(small(), 12, labels=True, seed=2)
    runs = [train(small(), x, y, epochs=2, batch_size=3, seed=s).L for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_a_partial_batch_step_uses_its_own_mean():
    net, ref = small(), small()
    x, y = random_batch(net, 5, labels=True, seed=3)
    train(net, x, y, epochs=1, batch_size=3, shuffle=False, alpha=1.0)
    for sl in (slice(0, 3), slice(3, 5)):
        ref.forward(x[sl])
        ref.backward(y[sl])
        ref.step(1.0)
    for k, v in net.parameters().items():
        np.testing.assert_array_equal(v, ref.parameters()[k])


def test_callback_sees_every_batch():
    seen = []
    net = small()
    x, y = random_batch(net, 8, labels=True)
    train(net, x, y, epochs=2, batch_size=4, callback=lambda *a: seen.append(a))
    assert [(e, b, n) for e, b, n, _, _ in seen] == [(0, 0, 2), (0, 1, 2), (1, 0, 2), (1, 1, 2)]


def test_evaluate_with_labels_or_one_hot():
    net = small()
    x, labels = random_batch(net, 20, labels=True, seed=5)
    r = evaluate(net, x, labels)
    wrong = np.flatnonzero(net.predict(x) != labels)
    np.testing.assert_array_equal(r.wrong, wrong)
    assert r.error == wrong.size / 20
    assert evaluate(net, x, np.eye(3)[labels]).error == r.error


BAD_INPUTS = [
    (lambda net, x, y: net.forward(x[:, :11]), r"images must have shape \(N, H, W\) = \(N, 12, 10\).*\(4, 11, 10\)"),
    (lambda net, x, y: net.forward(x[:0]), "empty"),
    (lambda net, x, y: net.forward(np.where(x > 0.5, np.nan, x)), "NaN or infinite"),
    (lambda net, x, y: net.forward(x.astype(complex)), "real numbers"),
    (lambda net, x, y: net.forward(x.astype(str)), "real numbers"),
    (lambda net, x, y: net.forward([[1, 2], [3]]), "could not be read|real numbers"),
    (lambda net, x, y: (net.forward(x), net.backward(y + 3)), r"lie in \[0, 2\]"),
    (lambda net, x, y: (net.forward(x), net.backward(y * 0 - 1)), r"lie in \[0, 2\]"),
    (lambda net, x, y: (net.forward(x), net.backward(y[:3])), r"shape \(4,\)"),
    (lambda net, x, y: (net.forward(x), net.backward(y + 0.5)), "integer class labels"),
    (lambda net, x, y: (net.forward(x), net.backward(np.ones((4, 5)))), r"\(4, 3\)"),
    (lambda net, x, y: train(net, x, y[:3]), r"shape \(4,\) to match 4 images"),
    (lambda net, x, y: train(net, x, y, batch_size=0), "batch_size must be a positive integer"),
    (lambda net, x, y: train(net, x, y, epochs=1.5), "epochs must be a positive integer"),
    (lambda net, x, y: train(net, x, y, alpha=np.nan), "alpha must be a positive finite"),
    (lambda net, x, y: train(net, x, y, order=[0, 1, 2, 2]), "permutation"),
    (lambda net, x, y: train(net, x, y, batch_size=5, drop_last=True), "no complete batch"),
    (lambda net, x, y: evaluate(net, x[0], y[:1]), "single image"),
    (lambda net, x, y: evaluate(net, x, y[:2]), r"shape \(4,\)"),
]


@pytest.mark.parametrize("call,message", BAD_INPUTS)
def test_bad_input_gets_a_clear_error(call, message):
    net = small()
    x, y = random_batch(net, 4, labels=True)
    with pytest.raises(ConvpropError, match=message):
        call(net, x, y)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: Network([Conv(2, 3)], n_outputs=2), "first layer must be Input"),
        (lambda: Network([Input(8, 8), Input(8, 8)], n_outputs=2), "Input may only be the first"),
        (lambda: Network([Input(8, 8), "c"], n_outputs=2), "must be Input, Conv or Subsample"),
        (lambda: Network([Input(8, 8), Conv(2, 9)], n_outputs=2), r"Layer 1 \(2c9\).*larger than its input maps 8x8"),
        (lambda: Network([Input(10, 8), Conv(2, 3), Subsample(3)], n_outputs=2), r"Layer 2 \(s3\) size must be integer.*8x6"),
        (lambda: Network([Input(8, 8)], n_outputs=0), "n_outputs must be a positive integer"),
        (lambda: Network([Input(8, 8)], n_outputs=2, dtype=np.int32), "float32 or float64"),
        (lambda: Network([Input(8, 8)], n_outputs=2, dtype="nonsense"), "float32 or float64"),
        (lambda: Input(0, 8), "height must be a positive integer"),
        (lambda: Conv(2.5, 3), "outputmaps must be a positive integer"),
        (lambda: Conv(2, (3, 0)), "kernelsize must be a positive integer or a pair"),
        (lambda: Subsample(True), "scale must be a positive integer"),
    ],
)
def test_bad_network_definitions(make, message):
    with pytest.raises(ConvpropError, match=message):
        make()


def test_backward_before_forward():
    with pytest.raises(ConvpropError, match="forward"):
        small().backward([0])
    with pytest.raises(ConvpropError, match="no gradients yet"):
        small().gradients()


def test_one_map_images_may_keep_their_channel_axis():
    net = small()
    x, _ = random_batch(net, 3)
    whole = net.forward(x)
    np.testing.assert_array_equal(net.forward(x[..., None]), whole)
    np.testing.assert_array_equal(net.forward(x[0][..., None]), net.forward(x[0]))
    with pytest.raises(ConvpropError, match="shape"):
        net.forward(x[..., None, None])


def test_copies_and_pickles_do_not_carry_the_last_batch():
    import pickle

    net = small()
    x, y = random_batch(net, 500)
    net.forward(x[:1])
    net.backward(y[:1])
    one = len(pickle.dumps(net))  # parameters and gradients
    net.forward(x)
    net.backward(y)
    assert len(pickle.dumps(net)) < 1.1 * one  # the ~300 kB of a 500-image batch stay behind
    clone = net.copy()
    assert clone.o is None and clone.activations == [] and clone.output._fv is None
    np.testing.assert_array_equal(clone.forward(x), net.o)
