"""The one training loop: callbacks and their order, the gradient hook, every option on every entry point."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from convprop import Callback, Conv, ConvpropError, Diverged, Input, Interrupted, Network, Subsample, fit, train
from convprop.engine.optim import SGD
from convprop.training import GradientClipping, MetricsLog

N, BATCH = 40, 7  # 6 batches per epoch, the last one partial


def small_net(dtype=np.float64):
    return Network([Input(12, 12), Conv(2, 3), Subsample(2), Conv(3, 3)], n_outputs=3, seed=0, dtype=dtype)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return rng.random((N, 12, 12)), rng.integers(0, 3, N)


class Recorder(Callback):
    """Writes down every hook call: (hook, epoch, batch, number of samples)."""

    def __init__(self):
        self.calls = []

    def _note(self, hook, loop):
        self.calls.append((hook, loop.epoch, loop.batch, len(loop.indices)))

    def on_train_begin(self, loop): self._note("train_begin", loop)
    def on_epoch_begin(self, loop): self._note("epoch_begin", loop)
    def on_batch_begin(self, loop): self._note("batch_begin", loop)
    def on_gradients(self, loop): self._note("gradients", loop)
    def on_batch_end(self, loop): self._note("batch_end", loop)
    def on_epoch_end(self, loop): self._note("epoch_end", loop)
    def on_train_end(self, loop): self._note("train_end", loop)


def test_hooks_are_called_in_order_with_the_batch_sizes(data):
    rec = Recorder()
    fit(small_net(), *data, epochs=2, batch_size=BATCH, seed=5, callbacks=[rec])
    hooks = [c[0] for c in rec.calls]
    assert hooks[0] == "train_begin" and hooks[-1] == "train_end"
    per_epoch = ["epoch_begin"] + ["batch_begin", "gradients", "batch_end"] * 6 + ["epoch_end"]
    assert hooks[1:-1] == per_epoch * 2
    sizes = [c[3] for c in rec.calls if c[0] == "gradients"]
    assert sizes == [7, 7, 7, 7, 7, 5] * 2  # the last partial batch is trained
    assert [(c[1], c[2]) for c in rec.calls if c[0] == "batch_end"][:3] == [(0, 0), (0, 1), (0, 2)]


def test_drop_last_order_and_shuffle_work_in_fit_and_train(data):
    rec = Recorder()
    fit(small_net(), *data, epochs=1, batch_size=BATCH, drop_last=True, seed=5, callbacks=[rec])
    assert [c[3] for c in rec.calls if c[0] == "gradients"] == [7] * 5
    order = np.arange(N)[::-1]
    a, b = small_net(), small_net()
    sa = fit(a, *data, epochs=2, batch_size=BATCH, order=order)
    sb = train(b, *data, epochs=2, batch_size=BATCH, order=order)
    assert sa.rL == sb.rL
    c = small_net()
    sc = train(c, data[0][::-1], data[1][::-1], epochs=2, batch_size=BATCH, shuffle=False)
    assert sc.rL == sa.rL  # order = reversed indices is the reversed data in its own order
    with pytest.raises(ConvpropError, match="permutation"):
        fit(small_net(), *data, order=np.zeros(N, dtype=int))


def test_the_gradient_hook_sees_the_gradients_before_the_update(data):
    seen = {}

    class Zero(Callback):
        def on_gradients(self, loop):
            grads = loop.net.gradients()
            seen["norm"] = max(float(np.abs(g).max()) for g in grads.values())
            for g in grads.values():
                g[...] = 0  # nothing left to apply

    net = small_net()
    before = {k: v.copy() for k, v in net.parameters().items()}
    fit(net, *data, epochs=1, batch_size=BATCH, seed=5, callbacks=[Zero()])
    assert seen["norm"] > 0
    for name, arr in net.parameters().items():
        np.testing.assert_array_equal(arr, before[name])


def test_gradient_clipping_bounds_each_update(data):
    net = small_net()
    before = {k: v.copy() for k, v in net.parameters().items()}
    train(net, *data, epochs=1, batch_size=N, alpha=1.0, seed=5, callbacks=[GradientClipping(max_norm=1e-3)])
    step = np.sqrt(sum(float(np.sum((arr - before[k]) ** 2)) for k, arr in net.parameters().items()))
    assert step == pytest.approx(1e-3, rel=1e-9)  # one batch: the update is alpha·(clipped gradient)


def test_train_has_the_divergence_guard_too():
    """Issue 11: train(net, x, y, alpha=1e40) in float32 returned NaN weights; evaluate then said 0.915."""
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 12, 12)).astype(np.float32), rng.integers(0, 3, 40)
    with pytest.raises(Diverged, match=r"training diverged at epoch 1, batch \d+/"):
        train(small_net(np.float32), x, y, alpha=1e40, batch_size=8, seed=0)
    assert not issubclass(Diverged, ValueError) and issubclass(Interrupted, KeyboardInterrupt)


def test_a_callback_can_stop_the_run_and_an_interrupt_keeps_a_consistent_state(data):
    class StopAfter(Callback):
        def on_epoch_end(self, loop):
            loop.stop = loop.state.epoch == 2

    state = fit(small_net(), *data, epochs=10, batch_size=BATCH, seed=5, callbacks=[StopAfter()])
    assert state.epoch == 2 and len(state.L) == 12

    class CtrlC(Callback):
        def on_batch_end(self, loop):
            if loop.epoch == 1 and loop.batch == 2:
                raise KeyboardInterrupt

    with pytest.raises(Interrupted) as info:
        fit(small_net(), *data, epochs=3, batch_size=BATCH, seed=5, callbacks=[CtrlC()])
    st = info.value.state
    assert (st.epoch, st.batch, len(st.L)) == (1, 3, 9)


def test_metrics_log_writes_one_row_per_epoch(tmp_path, data):
    path = tmp_path / "metrics.csv"
    state = fit(small_net(), *data, epochs=3, batch_size=BATCH, seed=5, x_test=data[0], y_test=data[1],
                callbacks=[MetricsLog(path)])
    rows = path.read_text().splitlines()
    assert rows[0] == "epoch,rL,mean_loss,test_error,seconds" and len(rows) == 4
    last = rows[-1].split(",")
    assert int(last[0]) == 3 and float(last[1]) == state.rL[-1] and float(last[3]) == state.test_error[-1]
    assert float(last[2]) == pytest.approx(np.mean(state.L[12:18]), rel=1e-15)


def test_every_entry_point_runs_the_same_loop():
    """No second training loop: the batch loop (train_batch, or forward_batch / backward_batch) lives in
    training/loop.py only."""
    src = Path(__file__).resolve().parents[1] / "src" / "convprop"
    callers = sorted(str(p.relative_to(src)) for p in src.rglob("*.py")
                     if re.search(r"\.(backward|train)_batch\(", p.read_text()))
    # explain and gradcheck run single passes; warmup one step of a miniature network (to compile the kernels)
    assert callers == ["engine/network.py", "engine/warmup.py", "training/explain.py", "training/gradcheck.py",
                       "training/loop.py"]


def test_the_readme_callback_example_stops_early():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = text.index("### Callbacks")
    block = re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)
    scope: dict = {}
    exec(compile(block, "README.md (callbacks)", "exec"), scope)
    assert scope["state"].epoch == 23 and scope["state"].rL[-1] < 0.2


def test_optimizer_and_alpha_reach_the_update(data):
    a, b = small_net(), small_net()
    sa = train(a, *data, epochs=1, batch_size=BATCH, alpha=0.3, seed=5)
    sb = train(b, *data, epochs=1, batch_size=BATCH, seed=5, optimizer=SGD(0.3))
    assert sa.rL == sb.rL  # SGD(alpha) is bit for bit the toolbox's step
