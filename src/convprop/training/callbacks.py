"""Callbacks: what a training run does besides the loop (Chainer's trainer extensions).

Each callback does one job at one or more points of :class:`~convprop.training.loop.Loop`.
Override the hooks you need; each receives the running loop, whose attributes
(``net``, ``state``, ``epoch``, ``batch``, ``indices``, ``loss`` …) are
documented there.

====================  =====================================================
hook                  called
====================  =====================================================
``on_train_begin``    once, before the first batch
``on_epoch_begin``    at the start of every epoch (after its permutation)
``on_batch_begin``    before a batch's forward pass; may narrow
                      ``loop.indices`` (this process's share of the batch)
``on_gradients``      after backward, before the update: the gradient hook;
                      may transform the gradients in place (clipping, a sum
                      over processes) and ``loop.loss``
``on_batch_end``      after the update and the history
``on_epoch_end``      after the epoch's bookkeeping (state.epoch advanced)
``on_interrupt``      on Ctrl-C, with a state consistent with the weights
``on_train_end``      once, after the last epoch
====================  =====================================================

Example: a callback that stops early when the smoothed loss is low enough::

    class StopAt(Callback):
        def __init__(self, target):
            self.target = target

        def on_epoch_end(self, loop):
            if loop.state.rL[-1] < self.target:
                loop.stop = True
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import Diverged
from ..formats.checkpoint import save_checkpoint
from .evaluate import evaluate

if TYPE_CHECKING:
    from .loop import Loop


class Callback:
    """Base class: every hook does nothing.

    Within an epoch, one-thread training steps run in one set of arrays
    (:meth:`~convprop.engine.network.Network.reusing_step_arrays`): what a hook reads of the
    network (``net.gradients()``, ``net.activations``, ``net.o``) holds the current step's
    numbers until the next step overwrites them. Copy what you keep beyond the hook.
    """

    def on_train_begin(self, loop: "Loop") -> None: ...

    def on_epoch_begin(self, loop: "Loop") -> None: ...

    def on_batch_begin(self, loop: "Loop") -> None: ...

    def on_gradients(self, loop: "Loop") -> None: ...

    def on_batch_end(self, loop: "Loop") -> None: ...

    def on_epoch_end(self, loop: "Loop") -> None: ...

    def on_interrupt(self, loop: "Loop") -> None: ...

    def on_train_end(self, loop: "Loop") -> None: ...


class BatchFunction(Callback):
    """Calls ``fn(epoch, batch, n_batches, L, rL)`` after every batch (0-based epoch and batch)."""

    def __init__(self, fn: Callable[[int, int, int, float, float], None]):
        self.fn = fn

    def on_batch_end(self, loop: "Loop") -> None:
        self.fn(loop.epoch, loop.batch, loop.n_batches, loop.loss, loop.state.rL[-1])


class DivergenceGuard(Callback):
    """Stops with :class:`~convprop.errors.Diverged` on a NaN / inf loss or parameter, or a runaway loss.

    Parameters
    ----------
    explode : float or None
        Also stop when a batch's loss exceeds ``explode`` times the run's first
        loss (None: only NaN / inf stop). The toolbox's sigmoid outputs bound
        ½·Σ(o − y)² by K/2, so this never fires for them; cross-entropy has no
        bound, and a far too large step sends it up by orders of magnitude while
        every number is still finite.
    """

    def __init__(self, explode: float | None = 1e3):
        self.explode = explode

    def on_gradients(self, loop: "Loop") -> None:
        loss, state = loop.loss, loop.state
        if not math.isfinite(loss):
            raise self._diverged(loop, f"the loss = {loss}", "loss")
        first = state.rL[0] if state.rL else loss
        if self.explode is not None and first > 0 and loss > self.explode * first:
            name, peak = _largest(loop.net)
            raise self._diverged(loop, f"the loss grew to {loss:.4g}, more than {self.explode:g}× the first "
                                       f"batch's {first:.4g} (largest weight: {name}, |{peak:.3g}|)", "loss")

    def on_batch_end(self, loop: "Loop") -> None:
        if loop.net.all_finite():
            return
        bad = [name for name, arr in loop.net.parameters().items() if not np.isfinite(arr).all()]
        if bad:
            loop.consistent = False  # never save these weights
            raise self._diverged(loop, f"parameter(s) {', '.join(bad)} hold NaN or inf", ", ".join(bad))

    @staticmethod
    def _diverged(loop: "Loop", what: str, name: str) -> Diverged:
        saved = loop.saved_checkpoint
        keep = f"; last good checkpoint: {saved}" if saved is not None else ""
        return Diverged(f"training diverged at epoch {loop.epoch + 1}, batch {loop.batch + 1}/{loop.n_batches}: "
                        f"{what}{keep}", loop.epoch + 1, loop.batch + 1, name, saved)


def _largest(net) -> tuple[str, float]:
    """The parameter tensor holding the largest absolute value, and that value."""
    peaks = {name: float(np.max(np.abs(arr))) for name, arr in net.parameters().items() if arr.size}
    name = max(peaks, key=peaks.get)
    return name, peaks[name]


class GradientClipping(Callback):
    """Scales the gradients so that their global L2 norm is at most ``max_norm`` (a gradient-hook example)."""

    def __init__(self, max_norm: float):
        self.max_norm = float(max_norm)

    def on_gradients(self, loop: "Loop") -> None:
        grads = loop.net.gradients()
        norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
        if norm > self.max_norm:
            for g in grads.values():
                g *= self.max_norm / norm


class Evaluate(Callback):
    """Measures the test error after every epoch into ``state.test_error``."""

    def __init__(self, x_test: np.ndarray, y_test: np.ndarray):
        self.x_test, self.y_test = x_test, y_test

    def on_epoch_end(self, loop: "Loop") -> None:
        result = evaluate(loop.net, self.x_test, self.y_test, predict=loop.predict)
        loop.state.test_error.append(float(result.error))


class Checkpoint(Callback):
    """Writes a checkpoint atomically after every epoch and on Ctrl-C (mid-epoch: it records the batch).

    Parameters
    ----------
    path : path-like ending in ``.npz``
    extra : dict, optional
        Notes stored with it (dataset, class names …).
    """

    def __init__(self, path: str | Path, extra: dict | None = None):
        self.path, self.extra = Path(path), extra

    def on_train_begin(self, loop: "Loop") -> None:
        # The last good checkpoint of a resumed run is the one it resumed from, until the next.
        if (loop.state.epoch or loop.state.batch) and self.path.exists():
            loop.saved_checkpoint = self.path

    def on_epoch_end(self, loop: "Loop") -> None:
        self._save(loop)

    def on_interrupt(self, loop: "Loop") -> None:
        self._save(loop)

    def _save(self, loop: "Loop") -> None:
        if loop.is_writer:
            loop.saved_checkpoint = save_checkpoint(loop.net, self.path, loop.state, self.extra)


class ProgressBar(Callback):
    """A tqdm bar per epoch on stderr: images, smoothed loss, images/s, ETA."""

    def __init__(self) -> None:
        self.bar = None

    def on_epoch_begin(self, loop: "Loop") -> None:
        from tqdm.auto import tqdm

        if not loop.is_writer:
            return
        self.bar = tqdm(
            mininterval=0.2 if sys.stderr.isatty() else 30.0,  # a log file gets a line every 30 s
            total=loop.n_images, initial=min(loop.state.batch * loop.batch_size, loop.n_images),
            desc=f"epoch {loop.epoch + 1}/{loop.epochs}", unit="img", unit_scale=False, dynamic_ncols=True,
            leave=True,
        )

    def on_batch_end(self, loop: "Loop") -> None:
        if self.bar is not None:
            self.bar.update(loop.batch_images)
            self.bar.set_postfix_str(f"loss={loop.state.rL[-1]:.4f}", refresh=False)

    def on_epoch_end(self, loop: "Loop") -> None:
        self.close()

    def on_interrupt(self, loop: "Loop") -> None:
        self.close()

    def on_train_end(self, loop: "Loop") -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsLog(Callback):
    """Appends one CSV row per epoch: epoch, rL at its end, mean loss, test error, seconds.

    Parameters
    ----------
    path : path-like
        A ``.csv`` file, written anew (header and all rows) after every epoch,
        so that a resumed run's file holds its whole history.
    """

    FIELDS = ("epoch", "rL", "mean_loss", "test_error", "seconds")

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_epoch_end(self, loop: "Loop") -> None:
        from .._files import atomic_write_text

        if not loop.is_writer:
            return
        lines = [",".join(self.FIELDS)] + [",".join(_csv(v) for v in row) for row in metrics_rows(loop.state)]
        atomic_write_text(self.path, "\n".join(lines) + "\n")


def metrics_rows(st) -> list[list]:
    """One row per finished epoch of a TrainingState: :attr:`MetricsLog.FIELDS` ("" where unknown)."""
    rows = []
    per = len(st.L) // st.epoch if st.epoch else 0
    for e in range(st.epoch):
        losses = st.L[e * per:(e + 1) * per]
        test = st.test_error[e] if e < len(st.test_error) else ""
        rows.append([e + 1, st.rL[min((e + 1) * per, len(st.rL) - 1)], float(np.mean(losses)) if losses else "",
                     test, st.epoch_seconds[e] if e < len(st.epoch_seconds) else ""])
    return rows


def _csv(value) -> str:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


__all__ = ["Callback", "BatchFunction", "DivergenceGuard", "GradientClipping", "Evaluate", "Checkpoint",
           "ProgressBar", "MetricsLog", "metrics_rows"]
