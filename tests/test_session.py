import os
import signal

import numpy as np
import pytest

from convprop import Conv, ConvpropError, Input, Network, Subsample

from convprop import train
from convprop.formats.checkpoint import load_checkpoint
from convprop.engine.optim import SGD, Adam, StepLR
from convprop import Diverged, Interrupted, fit
from convprop.training import BatchFunction

N, BATCH = 40, 7  # 6 batches per epoch, the last one partial


def small_net():
    return Network([Input(12, 12), Conv(2, 3), Subsample(2), Conv(3, 3)], n_outputs=3, seed=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return rng.random((N, 12, 12)), rng.integers(0, 3, N)


@pytest.fixture(scope="module")
def reference(data):
    """An uninterrupted 3-epoch run."""
    net = small_net()
    state = fit(net, *data, epochs=3, batch_size=BATCH, seed=5)
    return net, state


def assert_same_run(net, state, ref_net, ref_state):
    for name, arr in ref_net.parameters().items():
        assert np.array_equal(net.parameters()[name], arr), name  # bit for bit
    assert state.rL == ref_state.rL
    assert state.L == ref_state.L
    assert state.epoch == ref_state.epoch and state.batch == 0


def test_fit_is_the_same_sgd_as_train(data, reference):
    net = small_net()
    history = train(net, *data, epochs=3, batch_size=BATCH, seed=5)
    ref_net, ref_state = reference
    assert history.rL == ref_state.rL and history.L == ref_state.L
    assert len(ref_state.rL) == 3 * 6 + 1
    for name, arr in ref_net.parameters().items():
        assert np.array_equal(net.parameters()[name], arr), name


def test_resume_after_one_epoch_is_bit_identical(tmp_path, data, reference):
    ckpt = tmp_path / "checkpoint.npz"
    fit(small_net(), *data, epochs=1, batch_size=BATCH, seed=5, checkpoint=ckpt)
    net, state = load_checkpoint(ckpt)
    assert (state.epoch, state.batch, len(state.rL)) == (1, 0, 7)
    state = fit(net, *data, epochs=3, batch_size=BATCH, state=state, checkpoint=ckpt)
    assert_same_run(net, state, *reference)
    # and the checkpoint on disk holds the final run too
    net2, state2 = load_checkpoint(ckpt)
    assert_same_run(net2, state2, *reference)


def test_keyboard_interrupt_mid_epoch_saves_and_resumes_bit_identically(tmp_path, data, reference):
    ckpt = tmp_path / "checkpoint.npz"

    def hook(epoch, batch, n_batches, loss, rl):
        if (epoch, batch) == (1, 2):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as info:
        fit(small_net(), *data, epochs=3, batch_size=BATCH, seed=5, checkpoint=ckpt, callbacks=[BatchFunction(hook)])
    assert info.value.checkpoint == ckpt
    net, state = load_checkpoint(ckpt)
    assert (state.epoch, state.batch) == (1, 3)  # epoch 2 (0-based 1), 3 batches done
    assert len(state.rL) == 1 + 6 + 3
    state = fit(net, *data, epochs=3, batch_size=BATCH, state=state)
    assert_same_run(net, state, *reference)


def test_real_sigint_finishes_the_batch_then_saves(tmp_path, data, reference, monkeypatch):
    ckpt = tmp_path / "checkpoint.npz"
    calls = []
    step = Network.step

    def step_and_ctrl_c(self, alpha):
        calls.append(1)
        if len(calls) == 9:  # Ctrl-C arrives while the 9th update is running
            os.kill(os.getpid(), signal.SIGINT)
        step(self, alpha)

    monkeypatch.setattr(Network, "step", step_and_ctrl_c)
    with pytest.raises(Interrupted):
        fit(small_net(), *data, epochs=3, batch_size=BATCH, seed=5, checkpoint=ckpt)
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    net, state = load_checkpoint(ckpt)
    assert (state.epoch, state.batch) == (1, 3)  # the 9th batch completed
    state = fit(net, *data, epochs=3, batch_size=BATCH, state=state)
    assert_same_run(net, state, *reference)


@pytest.mark.parametrize("at", [1, 3])
def test_a_ctrl_c_at_an_epochs_end_stops_there(tmp_path, data, reference, at):
    """Ctrl-C while an epoch ends (its test error, its checkpoint): the run stops at that epoch's end,
    the last one's included (there it used to go unnoticed), and resumes bit for bit."""
    from convprop.training import Callback

    ckpt = tmp_path / "checkpoint.npz"

    class CtrlC(Callback):
        def on_epoch_end(self, loop):
            if loop.epoch + 1 == at:
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted) as info:
        fit(small_net(), *data, epochs=3, batch_size=BATCH, seed=5, checkpoint=ckpt, callbacks=[CtrlC()])
    assert (info.value.state.epoch, info.value.state.batch) == (at, 0)
    net, state = load_checkpoint(ckpt)
    assert (state.epoch, state.batch) == (at, 0) and len(state.rL) == 1 + 6 * at
    state = fit(net, *data, epochs=3, batch_size=BATCH, state=state)
    assert_same_run(net, state, *reference)


def test_divergence_names_parameter_and_step_and_keeps_last_good_checkpoint(tmp_path, data):
    ckpt = tmp_path / "checkpoint.npz"

    def inject(epoch, batch, n_batches, loss, rl):
        if (epoch, batch) == (1, 3):
            net.layers[3].params["weight"][1, 0, 2, 2] = np.inf

    net = small_net()
    with pytest.raises(Diverged) as info:
        fit(net, *data, epochs=3, batch_size=BATCH, seed=5, checkpoint=ckpt, callbacks=[BatchFunction(inject)])
    # the inf is found right after the next update (epoch 2, batch 5)
    msg = str(info.value)
    assert msg.startswith("training diverged at epoch 2, batch 5/6: parameter(s) ")
    assert "conv3.weight" in msg and msg.endswith(f"hold NaN or inf; last good checkpoint: {ckpt}")
    assert (info.value.epoch, info.value.batch) == (2, 5) and "conv3.weight" in info.value.what
    _, state = load_checkpoint(ckpt)  # the epoch-1 checkpoint, untouched
    assert (state.epoch, state.batch, len(state.rL)) == (1, 0, 7)


def test_divergence_of_the_loss_is_caught_before_the_update(data):
    x, y = data
    x = x.copy()
    net = small_net()
    net.output.params["bias"][0] = np.nan
    with pytest.raises(Diverged, match=r"epoch 1, batch 1/6: the loss = nan") as info:
        fit(net, x, y, epochs=1, batch_size=BATCH, seed=5)
    assert info.value.checkpoint is None
    assert not isinstance(info.value, ValueError)  # a divergence is not bad input (issue 11)


def test_test_error_per_epoch_and_bad_arguments(data):
    x, y = data
    state = fit(small_net(), x, y, epochs=2, batch_size=BATCH, seed=5, x_test=x[:10], y_test=y[:10])
    assert len(state.test_error) == 2 and all(0 <= e <= 1 for e in state.test_error)
    assert len(state.epoch_seconds) == 2
    with pytest.raises(ConvpropError, match="alpha"):
        fit(small_net(), x, y, epochs=1, alpha=-1)
    with pytest.raises(ConvpropError, match="already done 2 epochs"):
        fit(small_net(), x, y, epochs=1, state=state)


@pytest.mark.parametrize("make", [lambda: Adam(0.01, weight_decay=1e-3),
                                  lambda: SGD(StepLR(0.5, step_size=1, gamma=0.5), momentum=0.9, nesterov=True)],
                         ids=["adam", "sgd-nesterov-steplr"])
def test_optimizer_state_is_checkpointed_and_resumes_bit_identically(tmp_path, data, make):
    straight = small_net()
    ref = fit(straight, *data, epochs=3, batch_size=BATCH, seed=5, optimizer=make())
    ckpt = tmp_path / "checkpoint.npz"

    def hook(epoch, batch, n_batches, loss, rl):
        if (epoch, batch) == (1, 2):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        fit(small_net(), *data, epochs=3, batch_size=BATCH, seed=5, checkpoint=ckpt, callbacks=[BatchFunction(hook)],
            optimizer=make())
    net, state = load_checkpoint(ckpt)
    assert state.optimizer["t"] == 6 + 3 and state.optimizer["epoch"] == 1
    assert all(a.shape == net.parameters()[n].shape
               for bufs in state.optimizer["state"].values() for n, a in bufs.items())
    with pytest.raises(ConvpropError, match="optimiser the run was trained with"):
        fit(net.copy(), *data, epochs=3, batch_size=BATCH, state=load_checkpoint(ckpt)[1])
    state = fit(net, *data, epochs=3, batch_size=BATCH, state=state, optimizer=make())
    assert_same_run(net, state, straight, ref)
    assert ref.rL != fit(small_net(), *data, epochs=3, batch_size=BATCH, seed=5).rL  # not plain SGD


def test_a_checkpoint_with_a_damaged_optimizer_state_is_refused(tmp_path, data):
    ckpt = tmp_path / "checkpoint.npz"
    fit(small_net(), *data, epochs=1, batch_size=BATCH, seed=5, checkpoint=ckpt, optimizer=Adam(0.01))
    with np.load(ckpt, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["optim/exp_avg/conv1.weight"] = arrays["optim/exp_avg/conv1.weight"][:1]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ConvpropError, match=r"optimizer state exp_avg\['conv1.weight'\]"):
        load_checkpoint(tmp_path / "bad.npz")


@pytest.mark.parametrize("x_test, y_test, words", [
    (np.zeros((5, 11, 12)), np.zeros(5, int), "test images must have shape"),
    (np.zeros((5, 12, 12)), np.zeros(4, int), "test labels must have shape (5,)"),
    (np.zeros((5, 12, 12)), 5, "test labels must have shape (5,)"),
])
def test_a_bad_test_set_is_refused_before_any_training(tmp_path, data, x_test, y_test, words):
    net = small_net()
    before = {k: v.copy() for k, v in net.parameters().items()}
    with pytest.raises(ConvpropError) as info:
        fit(net, *data, epochs=1, batch_size=BATCH, seed=5, x_test=x_test, y_test=y_test,
            checkpoint=tmp_path / "c.npz")
    assert words in str(info.value)
    assert all(np.array_equal(net.parameters()[k], v) for k, v in before.items())  # not trained
