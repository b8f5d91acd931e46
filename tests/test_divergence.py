"""A too-large learning rate: training stops with a message naming the parameters and the step,
and the last good checkpoint stays as it was."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from convprop import Conv, Input, Network, Subsample

import convprop as session  # fit, Diverged, Interrupted
from convprop.formats.checkpoint import load_checkpoint  # noqa: E402

# Every test here runs on both engines: the NumPy reference and the compiled kernels.
pytestmark = pytest.mark.usefixtures("engine")


def _data():
    rng = np.random.default_rng(0)
    return rng.random((24, 8, 8)).astype(np.float32), rng.integers(0, 3, 24)


def _net():
    return Network([Input(8, 8), Conv(2, 3), Subsample(2)], n_outputs=3, dtype=np.float32, seed=0)


def test_too_large_alpha_after_a_good_epoch(tmp_path):
    x, y = _data()
    ckpt = tmp_path / "run.npz"
    net = _net()
    state = session.fit(net, x, y, epochs=1, batch_size=8, alpha=1.0, seed=1, checkpoint=ckpt)
    good = ckpt.read_bytes()
    before = {k: v.copy() for k, v in net.parameters().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the guard reports; NumPy must not print overflow warnings
        with pytest.raises(session.Diverged) as info:
            session.fit(net, x, y, epochs=3, batch_size=8, alpha=1e39, state=state, checkpoint=ckpt)
    msg = str(info.value)
    assert msg.startswith("training diverged at epoch 2, batch 1/3: parameter(s) ")
    for name in before:  # every parameter overflowed to ±inf in float32
        assert name in msg
    assert msg.endswith(f"hold NaN or inf; last good checkpoint: {ckpt}")
    assert (info.value.epoch, info.value.batch) == (2, 1) and info.value.checkpoint == ckpt
    assert ckpt.read_bytes() == good  # not rewritten
    back, st = load_checkpoint(ckpt)
    assert (st.epoch, st.batch) == (1, 0)
    for name, value in before.items():
        np.testing.assert_array_equal(back.parameters()[name], value)


def test_float64_saturates_instead_of_diverging():
    """Documented limit of the guard: with the toolbox's sigmoids in float64, no finite alpha
    makes a NaN (the weights grow to ~1e306 and the sigmoids saturate); training 'succeeds'."""
    x, y = _data()
    net = Network([Input(8, 8), Conv(2, 3), Subsample(2)], n_outputs=3, seed=0)
    session.fit(net, x.astype(np.float64), y, epochs=2, batch_size=8, alpha=1e300, seed=1)
    assert all(np.isfinite(v).all() for v in net.parameters().values())
    assert max(np.abs(v).max() for v in net.parameters().values()) > 1e290


def test_runaway_loss_of_a_relu_softmax_net_stops_training(tmp_path):
    """float64, everything finite: cross-entropy runs away under a far too large step."""
    from convprop import Dense, MaxPool

    rng = np.random.default_rng(0)
    x, y = rng.random((200, 12, 12)), rng.integers(0, 3, 200)

    def net():
        return Network([Input(12, 12), Conv(4, 3, "relu"), MaxPool(2), Dense(16, "relu")],
                       n_outputs=3, output="softmax", seed=0)

    good = session.fit(net(), x, y, epochs=3, batch_size=10, alpha=0.1, seed=1)
    assert max(good.L) < 10 * good.rL[0]  # a sane step never comes near the bound
    ckpt = tmp_path / "run.npz"
    with pytest.raises(session.Diverged) as info:
        session.fit(net(), x, y, epochs=3, batch_size=10, alpha=1e3, seed=1, checkpoint=ckpt)
    msg = str(info.value)
    assert msg.startswith(f"training diverged at epoch {info.value.epoch}, batch {info.value.batch}/20: the loss grew to ")
    assert "more than 1000× the first batch's" in msg and "largest weight: " in msg
    assert info.value.what == "loss"
    # explode=None restores the NaN/inf-only guard
    session.fit(net(), x, y, epochs=1, batch_size=10, alpha=1e3, seed=1, explode=None)
