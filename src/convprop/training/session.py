"""A training session: the fit loop with checkpoints, resume, Ctrl-C and a divergence guard.

:func:`fit` runs the same SGD as :func:`convprop.train.train` (same
permutations from the same seed, same batches, same rL), and in addition

* writes a checkpoint (:mod:`convprop.io`) at the end of every epoch;
* continues a run from a checkpoint bit for bit: the permutation generator's
  state is saved at the start of each epoch and restored exactly, so
  1 epoch + resume for 2 gives the same weights and rL as 3 epochs at once;
* on Ctrl-C finishes the current batch, saves a checkpoint (mid-epoch: it
  records the batch) and raises :class:`Interrupted`; a second Ctrl-C stops
  at once (and then only the last epoch's checkpoint is kept);
* stops with :class:`Diverged` as soon as the loss or a parameter is NaN or
  infinite, naming the parameter and the step, without overwriting the last
  good checkpoint.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .._validation import check_images, check_targets, labels_array, positive_int
from ..errors import ConvpropError
from .evaluate import evaluate
from ..formats.npz import TrainingState, rng_from_state, save_checkpoint
from ..engine.network import Network
from ..engine.parallel import blas_limit
from ..engine.optim import Optimizer


class Diverged(ConvpropError):
    """Training produced a NaN or infinite loss or parameter, or a runaway loss.

    Attributes: ``epoch`` and ``batch`` (1-based), ``what`` (``"loss"`` or the
    names of the non-finite parameters, comma-separated), ``checkpoint`` (the last good one, or None).
    """

    def __init__(self, message: str, epoch: int, batch: int, what: str, checkpoint: Path | None):
        super().__init__(message)
        self.epoch, self.batch, self.what, self.checkpoint = epoch, batch, what, checkpoint


class Interrupted(KeyboardInterrupt):
    """Training was stopped by Ctrl-C; ``checkpoint`` is where it can resume from (or None)."""

    def __init__(self, checkpoint: Path | None, state: TrainingState):
        super().__init__(f"training interrupted at epoch {state.epoch + 1}, batch {state.batch}")
        self.checkpoint = checkpoint
        self.state = state


#: ``on_batch(epoch, batch, n_batches, L, rL)`` after each batch (0-based epoch and batch).
BatchHook = Callable[[int, int, int, float, float], None]
#: ``on_epoch_end(epoch, state)`` after each epoch's checkpoint (0-based epoch).
EpochHook = Callable[[int, TrainingState], None]


class _SigintFlag:
    """While active (main thread only), the first Ctrl-C only sets ``raised``."""

    def __init__(self) -> None:
        self.raised = False

    def _handler(self, signum, frame) -> None:
        if self.raised:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.raised = True

    @contextmanager
    def active(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


def new_state(seed: int | None, config: dict | None = None) -> TrainingState:
    """The state of a run that has not started: epoch 0, the seed's generator."""
    rng = np.random.default_rng(seed)
    return TrainingState(epoch=0, batch=0, rng_state=rng.bit_generator.state, config=dict(config or {}))


def _nonfinite(net: Network) -> str | None:
    """The names of the parameters holding NaN or inf, joined by ', ' (None if all finite)."""
    bad = [name for name, arr in net.parameters().items() if not np.isfinite(arr).all()]
    return ", ".join(bad) or None


def fit(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int = 50,
    alpha: float = 1.0,
    optimizer: Optimizer | None = None,
    state: TrainingState | None = None,
    seed: int | None = None,
    checkpoint: str | Path | None = None,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    extra: dict | None = None,
    progress: bool = False,
    on_batch: BatchHook | None = None,
    on_epoch_end: EpochHook | None = None,
    explode: float | None = 1e3,
) -> TrainingState:
    """Train ``net`` in place up to ``epochs`` epochs in total, with checkpoints.

    Parameters
    ----------
    net : Network
    x : array_like, shape (N, H, W) or (N, H, W, C)
        Training images (e.g. pixels / 255).
    y : array_like, shape (N,) labels or (N, n_outputs) targets
    epochs : int
        Total number of epochs of the run (a resumed run counts those done).
    batch_size : int
    alpha : float
        SGD step (the toolbox's update ``p -= alpha·grad``), used when no
        ``optimizer`` is given.
    optimizer : convprop.optim.Optimizer, optional
        Another update rule (momentum, Adam …); its state is saved in the
        checkpoints and restored from ``state``, so resuming stays bit for bit.
    state : TrainingState, optional
        Where to continue from (see :func:`convprop.io.load_checkpoint`);
        default: a fresh run seeded by ``seed``.
    seed : int, optional
        Seed of the permutations of a fresh run (ignored with ``state``).
    checkpoint : path, optional
        Checkpoint file, rewritten atomically after every epoch and on Ctrl-C.
    x_test, y_test : array_like, optional
        Test set: its error is measured after every epoch (``state.test_error``).
    extra : dict, optional
        Notes stored in the checkpoint (dataset, class names …).
    progress : bool
        Show a tqdm bar per epoch (smoothed loss, images/s, ETA) on stderr.
    on_batch, on_epoch_end : callable, optional
        Hooks, see :data:`BatchHook` and :data:`EpochHook`.

    explode : float or None
        Also stop, as diverged, when a batch's loss exceeds ``explode`` times
        the run's first loss (None: only NaN / inf stop). The toolbox's sigmoid
        outputs bound ½·Σ(o − y)² by K/2, so this never fires for them;
        cross-entropy has no bound and a far too large step sends it up by
        orders of magnitude while every number is still finite.

    Returns
    -------
    TrainingState
        The final state (history, epoch = ``epochs``).

    Raises
    ------
    Diverged
        When the loss or a parameter becomes NaN or infinite.
    Interrupted
        On Ctrl-C (or a KeyboardInterrupt from a hook), after saving a checkpoint.
    """
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    alpha = float(alpha)
    if not np.isfinite(alpha) or alpha <= 0:
        raise ConvpropError(f"alpha must be a positive finite number, got {alpha}")
    images, _ = check_images(x, net.image_shape, net.dtype, "training images")  # (N, H, W, C)
    n = images.shape[0]
    targets = check_targets(y, n, net.n_outputs, net.dtype, "training targets")
    if (x_test is None) != (y_test is None):
        raise ConvpropError("give both x_test and y_test, or neither")
    if x_test is not None:  # checked now, not after a whole epoch of training
        x_test, _ = check_images(x_test, net.image_shape, net.dtype, "test images")
        y_test = labels_array(y_test, x_test.shape[0], net.n_outputs, "test labels")
    if state is None:
        state = new_state(seed)
    if optimizer is not None and state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
    elif (optimizer is None) != (state.optimizer is None) and (state.epoch or state.batch):
        raise ConvpropError("resume with the optimiser the run was trained with (the checkpoint "
                            + ("has none: plain SGD)" if state.optimizer is None else f"has {state.optimizer['type']})"))
    if state.epoch > epochs or (state.epoch == epochs and state.batch):
        raise ConvpropError(f"the run has already done {state.epoch} epochs; ask for more than that")
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    n_batches = -(-n // batch_size)
    if state.batch > n_batches:
        raise ConvpropError(f"checkpoint batch {state.batch} is past the {n_batches} batches of an epoch")
    # The last good checkpoint of this run: the one resumed from, until the next one is written.
    resumed = state.epoch > 0 or state.batch > 0
    saved: Path | None = checkpoint if resumed and checkpoint is not None and checkpoint.exists() else None
    rng = rng_from_state(state.rng_state)
    flag = _SigintFlag()
    consistent = True  # parameters and history agree with (state.epoch, state.batch)
    epoch_rng_state = state.rng_state
    started = time.perf_counter()
    try:
        with flag.active(), blas_limit():
            while state.epoch < epochs:
                epoch = state.epoch
                epoch_rng_state = rng.bit_generator.state
                perm = rng.permutation(n)
                first = state.batch
                started = time.perf_counter()
                bar = _progress_bar(progress, n, epoch, epochs, first * batch_size)
                try:
                    for b in range(first, n_batches):
                        idx = perm[b * batch_size : (b + 1) * batch_size]
                        with np.errstate(over="ignore", invalid="ignore"):  # the guard below reports
                            net.forward_batch(images[idx])  # checked above, once for the whole set
                            loss = float(net.backward_batch(targets[idx]))
                        if not np.isfinite(loss):
                            raise Diverged(
                                _diverged_msg("the loss", loss, epoch, b, n_batches, saved),
                                epoch + 1, b + 1, "loss", saved,
                            )
                        first_loss = state.rL[0] if state.rL else loss
                        if explode is not None and first_loss > 0 and loss > explode * first_loss:
                            # Finite but runaway: a ReLU/softmax net under a far too large step
                            # grows its loss by orders of magnitude long before anything overflows.
                            name, peak = _largest(net)
                            raise Diverged(
                                _diverged_msg(f"the loss grew to {loss:.4g}, more than {explode:g}× the "
                                              f"first batch's {first_loss:.4g} (largest weight: {name}, "
                                              f"|{peak:.3g}|)", None, epoch, b, n_batches, saved, shown=""),
                                epoch + 1, b + 1, "loss", saved,
                            )
                        consistent = False
                        with np.errstate(over="ignore", invalid="ignore"):  # the guard below reports
                            if optimizer is None:
                                net.step(alpha)
                            else:
                                optimizer.step(net)
                        if not state.rL:  # rL as cnntrain keeps it: first loss, then smoothed
                            state.rL.append(loss)
                        state.rL.append(0.99 * state.rL[-1] + 0.01 * loss)
                        state.L.append(loss)
                        state.batch = b + 1
                        consistent = True
                        bad = _nonfinite(net)
                        if bad is not None:
                            consistent = False  # never save these weights
                            raise Diverged(
                                _diverged_msg(f"parameter(s) {bad}", None, epoch, b, n_batches, saved),
                                epoch + 1, b + 1, bad, saved,
                            )
                        if bar is not None:
                            bar.update(len(idx))
                            bar.set_postfix_str(f"loss={state.rL[-1]:.4f}", refresh=False)
                        if on_batch is not None:
                            on_batch(epoch, b, n_batches, loss, state.rL[-1])
                        if flag.raised:
                            raise KeyboardInterrupt
                finally:
                    if bar is not None:
                        bar.close()
                consistent = False
                state.epoch_seconds.append(state.epoch_elapsed + time.perf_counter() - started)
                state.epoch_elapsed = 0.0
                state.epoch, state.batch = epoch + 1, 0
                if optimizer is not None:
                    optimizer.end_epoch()
                state.rng_state = rng.bit_generator.state
                consistent = True
                if x_test is not None:
                    state.test_error.append(float(evaluate(net, x_test, y_test).error))
                if optimizer is not None:
                    state.optimizer = optimizer.state_dict()
                if checkpoint is not None:
                    saved = save_checkpoint(checkpoint, net, state, extra)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, state)
    except KeyboardInterrupt:
        if consistent:
            if state.batch:  # mid-epoch: the epoch's generator state + the batches done
                state.rng_state = epoch_rng_state
                state.epoch_elapsed += time.perf_counter() - started
            if optimizer is not None:
                state.optimizer = optimizer.state_dict()
            if checkpoint is not None:
                saved = save_checkpoint(checkpoint, net, state, extra)
        raise Interrupted(saved, state) from None
    return state


def _largest(net: Network) -> tuple[str, float]:
    """The parameter tensor holding the largest absolute value, and that value."""
    peaks = {name: float(np.max(np.abs(arr))) for name, arr in net.parameters().items() if arr.size}
    name = max(peaks, key=peaks.get)
    return name, peaks[name]


def _diverged_msg(
    what: str, value, epoch: int, b: int, n_batches: int, saved: Path | None, shown: str | None = None
) -> str:
    if shown is None:
        shown = f" = {value}" if value is not None else " hold NaN or inf"
    keep = f"; last good checkpoint: {saved}" if saved is not None else ""
    return f"training diverged at epoch {epoch + 1}, batch {b + 1}/{n_batches}: {what}{shown}{keep}"


def _progress_bar(enabled: bool, n: int, epoch: int, epochs: int, done: int):
    if not enabled:
        return None
    import sys

    from tqdm.auto import tqdm

    return tqdm(
        mininterval=0.2 if sys.stderr.isatty() else 30.0,  # a log file gets a line every 30 s
        total=n,
        initial=done,
        desc=f"epoch {epoch + 1}/{epochs}",
        unit="img",
        unit_scale=False,
        dynamic_ncols=True,
        leave=True,
    )
