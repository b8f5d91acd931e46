"""Property tests of the public API: any layer parameters, any bad input → a clear ConvpropError.

The contract: a call either works (and then its result has the documented shape and range) or
raises ConvpropError with a one-line message naming the problem; never an IndexError, a
broadcasting error or a NaN from deep inside.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from convprop import Conv, ConvpropError, Input, Network, Subsample

from convprop import evaluate

from convprop import gradcheck

from convprop import train

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values that are not positive integers, of many kinds.
NOT_POSITIVE_INT = st.one_of(
    st.integers(max_value=0), st.floats(allow_nan=True), st.booleans(), st.none(), st.text(max_size=3),
    st.just([]), st.just(object()), st.just(np.float64(2.0)), st.just(2.5), st.just(1j),
)
SMALL = st.integers(1, 7)


@st.composite
def layer_stacks(draw):
    h, w, c = draw(SMALL), draw(SMALL), draw(st.integers(1, 3))
    layers = [Input(h, w, c)]
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            layers.append(Conv(draw(st.integers(1, 3)),
                               draw(st.one_of(SMALL, st.tuples(SMALL, SMALL)))))
        else:
            layers.append(Subsample(draw(st.integers(1, 4))))
    return layers


@FAST
@given(layers=layer_stacks(), n_outputs=st.integers(1, 4),
       dtype=st.sampled_from([np.float32, np.float64]), n=st.integers(1, 3))
def test_any_layer_stack_builds_and_runs_or_says_why(layers, n_outputs, dtype, n):
    try:
        net = Network(layers, n_outputs, dtype=dtype, seed=0)
    except ConvpropError as exc:
        text = str(exc)
        assert "\n" not in text
        assert "larger than its input maps" in text or "size must be integer" in text
        return
    h, w, c = net.image_shape
    x = np.random.default_rng(0).random((n, h, w, c))
    o = net.forward(x if c > 1 else x[..., 0])
    assert o.shape == (n, n_outputs) and o.dtype == dtype
    assert np.all((o > 0) & (o < 1))
    loss = net.backward(np.arange(n) % n_outputs)
    assert np.isfinite(loss)
    for name, g in net.gradients().items():
        assert g.shape == net.parameters()[name].shape and np.isfinite(g).all()


@FAST
@given(bad=NOT_POSITIVE_INT, which=st.sampled_from(["height", "width", "channels", "outputmaps",
                                                      "kernelsize", "scale", "n_outputs"]))
def test_bad_layer_parameters(bad, which):
    assume(not (isinstance(bad, (int, np.integer)) and not isinstance(bad, bool) and bad > 0))
    build = {
        "height": lambda: Input(bad, 5),
        "width": lambda: Input(5, bad),
        "channels": lambda: Input(5, 5, bad),
        "outputmaps": lambda: Conv(bad, 3),
        "kernelsize": lambda: Conv(2, bad),
        "scale": lambda: Subsample(bad),
        "n_outputs": lambda: Network([Input(4, 4)], bad),
    }[which]
    label = {"outputmaps": "Conv outputmaps", "kernelsize": "Conv kernelsize",
             "scale": "Subsample scale", "n_outputs": "n_outputs"}.get(which, f"Input {which}")
    with pytest.raises(ConvpropError, match=f"{label} must be a positive integer"):
        build()


@pytest.mark.parametrize("layers, message", [
    ([Input(28, 28), Conv(6, 5), Subsample(3)],
     r"Layer 2 \(s3\) size must be integer: its input maps are 24x24, which gives 8x8"),
    ([Input(28, 28), Conv(6, 5), Subsample(5)],
     r"Layer 2 \(s5\) size must be integer: its input maps are 24x24, which gives 4.8x4.8 after "
     "subsampling by 5"),
    ([Input(5, 5), Conv(2, 6)], r"Layer 1 \(2c6\): kernel 6x6 is larger than its input maps 5x5"),
    ([Conv(2, 3)], r"the first layer must be Input"),
    ([Input(5, 5), Input(5, 5)], "layer 1: Input may only be the first layer"),
    ([Input(5, 5), "c"], "layer 1 must be Input, Conv or Subsample"),
])
def test_bad_stacks(layers, message):
    if "8x8" in message:  # 24/3 is an integer: this one builds
        Network(layers, 10)
        return
    with pytest.raises(ConvpropError, match=message):
        Network(layers, 10)


def test_bad_network_dtype():
    for dtype in ("int32", np.float16, "nonsense", complex):
        with pytest.raises(ConvpropError, match="dtype must be float32 or float64"):
            Network([Input(4, 4)], 2, dtype=dtype)


# ------------------------------------------------------------ data given to a network

NET = Network([Input(8, 8), Conv(2, 3), Subsample(2)], n_outputs=4, seed=0)
GOOD_X = np.random.default_rng(0).random((6, 8, 8))
GOOD_Y = np.array([0, 1, 2, 3, 0, 1])

BAD_DATA = [
    # (case, x, y, message in every entry point)
    ("wrong image size", np.zeros((6, 8, 9)), GOOD_Y, r"images must have shape \(N, H, W\) = \(N, 8, 8\)"),
    ("colour given to a grey net", np.zeros((6, 8, 8, 3)), GOOD_Y, r"got \(6, 8, 8, 3\)"),
    ("flat vectors", np.zeros((6, 64)), GOOD_Y, r"got \(6, 64\)"),
    ("strings", np.full((6, 8, 8), "a"), GOOD_Y, "must hold real numbers, got dtype <U1"),
    ("complex", np.zeros((6, 8, 8), complex), GOOD_Y, "must hold real numbers, got dtype complex128"),
    ("objects", np.full((6, 8, 8), None), GOOD_Y, "must hold real numbers, got dtype object"),
    ("ragged lists", [[[0.0] * 8] * 8, [[0.0] * 7] * 8], GOOD_Y[:2], "could not be read as an array"),
    ("NaN pixel", np.where(np.eye(8, dtype=bool), np.nan, GOOD_X), GOOD_Y, r"contains 48 NaN or infinite"),
    ("inf pixel", np.where(GOOD_X > 0.99, np.inf, GOOD_X), GOOD_Y, "NaN or infinite value"),
    ("empty dataset", np.zeros((0, 8, 8)), np.zeros(0, int), r"is empty \(0 images\)"),
    ("label too large", GOOD_X, np.array([0, 1, 2, 4, 0, 1]), r"must lie in \[0, 3\] for 4 outputs; got values from 0 to 4"),
    ("negative label", GOOD_X, np.array([0, -1, 2, 3, 0, 1]), r"must lie in \[0, 3\].*from -1 to 3"),
    ("fractional label", GOOD_X, np.array([0, 1.5, 2, 3, 0, 1]), "must be integer class labels; got non-integer values"),
    ("NaN label", GOOD_X, np.array([0, np.nan, 2, 3, 0, 1]), "must be integer class labels; got non-integer"),
    ("string labels", GOOD_X, np.array(list("abcdef")), "must be integer class labels; got dtype <U1"),
    ("fewer labels than images", GOOD_X, GOOD_Y[:5], r"must have shape \(6,\) to match 6 images; got \(5,\)"),
    ("more labels than images", GOOD_X, np.r_[GOOD_Y, 0], r"must have shape \(6,\) to match 6 images; got \(7,\)"),
    ("targets of the wrong width", GOOD_X, np.eye(5)[GOOD_Y], r"target vectors of shape \(6, 4\); got shape \(6, 5\)"),
    ("targets for fewer images", GOOD_X, np.eye(4)[GOOD_Y[:5]], r"got shape \(5, 4\)"),
]


def _entry_points():
    def fit(x, y):
        train(NET.copy(), x, y, epochs=1, batch_size=3, seed=0)

    def score(x, y):
        evaluate(NET, x, y)

    def check(x, y):
        gradcheck(NET.copy(), x, y)

    def backward(x, y):
        net = NET.copy()
        net.forward(x)
        net.backward(y)

    return {"train": fit, "evaluate": score, "gradcheck": check, "forward+backward": backward}


@pytest.mark.parametrize("case, x, y, message", BAD_DATA, ids=[c[0] for c in BAD_DATA])
@pytest.mark.parametrize("entry", list(_entry_points()))
def test_bad_data_named_in_every_entry_point(case, x, y, message, entry):
    if entry == "evaluate" and "targets" in case and "width" not in case:
        message = r"targets must have shape \(6, 4\); got \(5, 4\)"
    elif entry == "evaluate" and "width" in case:
        message = r"targets must have shape \(6, 4\); got \(6, 5\)"
    with pytest.raises(ConvpropError, match=message) as info:
        _entry_points()[entry](x, y)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ({"epochs": 1.5}, "epochs must be a positive integer, got 1.5"),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"batch_size": True}, "batch_size must be a positive integer, got True"),
    ({"alpha": 0}, "alpha must be a positive finite number, got 0"),
    ({"alpha": float("nan")}, "alpha must be a positive finite number, got nan"),
    ({"alpha": -1}, "alpha must be a positive finite number, got -1"),
    ({"batch_size": 7, "drop_last": True}, "no complete batch of 7 in 6 images"),
    ({"order": [0, 1, 2]}, r"order must be a permutation of 0..5"),
    ({"order": [0, 0, 1, 2, 3, 4]}, r"order must be a permutation of 0..5"),
])
def test_bad_training_settings(kwargs, message):
    with pytest.raises(ConvpropError, match=message):
        train(NET.copy(), GOOD_X, GOOD_Y, **kwargs)


ANY_ARRAY = hnp.arrays(
    st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.bool_, np.complex64, "U2", "M8[s]"]),
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=9),
)


@FAST
@given(x=ANY_ARRAY)
def test_forward_on_any_array(x):
    """Any array into forward: outputs of the right shape, or a ConvpropError."""
    try:
        o = NET.forward(x)
    except ConvpropError as exc:
        assert "\n" not in str(exc)
        return
    assert o.shape in ((4,), (x.shape[0], 4)) and np.isfinite(o).all()


@FAST
@given(y=ANY_ARRAY)
def test_backward_on_any_targets(y):
    net = NET.copy()
    net.forward(GOOD_X)
    try:
        loss = net.backward(y)
    except ConvpropError as exc:
        assert "\n" not in str(exc)
        return
    assert np.isfinite(loss)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_a_loss_within_the_float_range_does_not_overflow_on_the_way(engine, monkeypatch):
    """Hypothesis's find: targets of 2.7e153 give L = ½·Σ(o − y)²/N ≈ 1.5e307, but Σ(o − y)² alone
    is 1.8e308, just past the largest float: the sum overflowed to inf before the division."""
    from convprop.engine import backend

    if engine == "numba" and not backend.available():
        pytest.skip("Numba is not installed")
    monkeypatch.setenv("CONVPROP_ENGINE", engine)
    net = NET.copy()
    net.forward(GOOD_X)
    y = np.full((6, 4), 2.737e153)  # Σ(o − y)² = 24 · 7.49e306 > 1.797e308
    assert net.backward(y) == pytest.approx(0.5 * 24 * 2.737e153 ** 2 / 6, rel=1e-12)


@FAST
@given(y=ANY_ARRAY)
def test_evaluate_on_any_labels(y):
    try:
        result = evaluate(NET, GOOD_X, y)
    except ConvpropError as exc:
        assert "\n" not in str(exc)
        return
    assert 0 <= result.error <= 1 and result.predicted.shape == (6,)


# ------------------------------------------------------------ the toolbox façade

def _dlt_struct():
    return {"layers": [{"type": "i"}, {"type": "c", "outputmaps": 2, "kernelsize": 3},
                       {"type": "s", "scale": 2}]}


DLT_X = np.random.default_rng(1).random((8, 8, 6))  # H×W×N
DLT_Y = np.eye(3)[:, np.arange(6) % 3]               # K×N


@pytest.mark.parametrize("x, y, opts, message", [
    (DLT_X[..., :5], DLT_Y, None, r"y must be K×N with N = 5"),
    (DLT_X[None], DLT_Y, None, r"x must be H×W×N \(toolbox layout\)"),
    (np.where(DLT_X > 0.5, np.nan, DLT_X), DLT_Y, None, "NaN or infinite"),
    (DLT_X.astype(complex), DLT_Y, None, "must hold real numbers"),
    (DLT_X, DLT_Y, {"alpha": 1, "batchsize": 0, "numepochs": 1}, "batch"),
    (DLT_X, DLT_Y, {"alpha": -1, "batchsize": 2, "numepochs": 1}, "alpha"),
    (DLT_X, DLT_Y, {"alpha": 1, "batchsize": 2, "numepochs": 0.5}, "numepochs|epochs"),
])
def test_toolbox_facade_bad_input(x, y, opts, message):
    from convprop import dlt

    with pytest.raises(ConvpropError, match=message):
        cnn = dlt.cnnsetup(_dlt_struct(), x, y, seed=0)
        dlt.cnntrain(cnn, x, y, opts or {"alpha": 1, "batchsize": 2, "numepochs": 1})


@pytest.mark.parametrize("layers, message", [
    ([{"type": "i"}, {"type": "c", "outputmaps": 2, "kernelsize": 2.5}], r"\['kernelsize'\] must be an integer"),
    ([{"type": "i"}, {"type": "c", "outputmaps": 2, "kernelsize": 3}, {"type": "s", "scale": 4}],
     "size must be integer"),
    ([{"type": "i"}, {"type": "q"}], "has type 'q'"),
    ([{"type": "c"}], r"must be \{'type': 'i'\}"),
    ([{"type": "i"}, {"type": "c", "kernelsize": 3}], "needs 'outputmaps'"),
])
def test_toolbox_facade_bad_layers(layers, message):
    from convprop import dlt

    with pytest.raises(ConvpropError, match=message):
        dlt.cnnsetup({"layers": layers}, DLT_X, DLT_Y, seed=0)


def test_huge_float_label_is_named_not_wrapped():
    """Found by a long Hypothesis run: 1e20 is an 'integer' float, and casting it to int64
    first gave a RuntimeWarning and a message about -9223372036854775808."""
    import warnings

    y = np.array([0, 1, 2, 1e20, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConvpropError, match=r"must lie in \[0, 3\] for 4 outputs; got values from 0 to 1e\+20"):
            evaluate(NET, GOOD_X, y)
