"""The training loop (cnntrain), the only one: every entry point runs it.

:func:`fit` (and :func:`train`, ``convprop train``, :func:`convprop.dlt.cnntrain`,
:class:`convprop.sklearn.CNNClassifier`) run :class:`Loop`: per epoch a
permutation, per mini-batch forward, backward, the gradient hook, the update
(the toolbox's ``p -= alpha·grad`` or an optimiser) and the smoothed loss
``rL ← 0.99·rL + 0.01·L``. Everything else is a callback
(:mod:`convprop.training.callbacks`): the progress bar, checkpoints, the
divergence guard, evaluation, a metrics log, and yours.

Ctrl-C during training finishes the current batch, lets the callbacks save
(the checkpoint callback writes a mid-epoch checkpoint) and raises
:class:`~convprop.errors.Interrupted`; a second Ctrl-C stops at once. A run
continues from a :class:`TrainingState` bit for bit: the permutation
generator's state is kept at the start of each epoch.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .._validation import check_images, check_targets, labels_array, positive_int, positive_float
from ..engine.network import Network
from ..engine.optim import Optimizer
from ..engine.parallel import blas_limit
from ..errors import ConvpropError, Interrupted
from ..formats.checkpoint import TrainingState, rng_from_state
from .callbacks import BatchFunction, Callback, Checkpoint, DivergenceGuard, Evaluate, ProgressBar

Seed = int | np.random.Generator | None


class _SigintFlag:
    """While active (main thread only), the first Ctrl-C only sets ``raised``.

    A distributed run sets ``deferred``: a signal then only sets ``pending``,
    and the processes agree at the gradient hook on when to stop (they set
    ``raised`` together). :meth:`catch` adds a signal (SIGTERM) while active.
    A Ctrl-C pressed while the ``convprop`` command started that did not stop it
    (lost or swallowed on its way up: see :class:`convprop.cli.LostInterrupt`)
    counts as one pressed when training starts.
    """

    def __init__(self) -> None:
        self.raised = self.pending = self.deferred = False
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        if self.raised or self.pending:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        if self.deferred:
            self.pending = True
        else:
            self.raised = True

    def catch(self, signum: int) -> None:
        """Handle ``signum`` like Ctrl-C until the ``active`` block ends (main thread only)."""
        if threading.current_thread() is threading.main_thread() and signum not in self._previous:
            self._previous[signum] = signal.signal(signum, self._handler)

    @contextmanager
    def active(self) -> Iterator["_SigintFlag"]:
        self.catch(signal.SIGINT)
        try:
            command = self._previous.get(signal.SIGINT)
            if getattr(command, "ctrl_c_pending", False) is True:  # the CLI's (convprop.cli.LostInterrupt):
                command.ctrl_c_pending = False  # a Ctrl-C before training that did not stop it: as if pressed now
                self._handler(signal.SIGINT, None)
            yield self
        finally:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
            self._previous.clear()


class Loop:
    """One training run over checked data; :meth:`run` trains ``net`` in place.

    Callbacks read (and some change) these attributes:

    Attributes
    ----------
    net : Network
    state : TrainingState
        Epochs and batches done, the history (rL, L, epoch_seconds, test_error).
    epoch, batch : int
        The epoch and batch in progress (0-based); ``n_batches`` per epoch.
    indices : ndarray of int
        The samples of the batch in progress that this process computes
        (``on_batch_begin`` may narrow it); ``batch_indices`` the whole batch.
    loss : float
        The batch's loss (set after backward; the gradient hook may change it).
    stop : bool
        Set by a callback to end the run after the current epoch.
    consistent : bool
        Whether the weights agree with ``state`` (what Ctrl-C may save).
    is_writer : bool
        Whether this process writes files and draws progress (False on all
        but one process of a distributed run).
    predict : callable
        ``predict(x)`` → classes, how callbacks classify images (``net.predict``;
        a distributed run shares the images out over its processes).
    sigint : _SigintFlag
        Ctrl-C's flag (``raised``: stop after this batch).
    saved_checkpoint : Path or None
        The run's last good checkpoint.
    """

    def __init__(self, net: Network, x: np.ndarray, targets: np.ndarray, *, epochs: int, batch_size: int,
                 alpha: float, optimizer: Optimizer | None, state: TrainingState, rng: np.random.Generator,
                 order: np.ndarray | None, drop_last: bool, callbacks: Sequence[Callback]):
        self.net, self.x, self.targets = net, x, targets
        self.epochs, self.batch_size, self.alpha, self.optimizer = epochs, batch_size, alpha, optimizer
        self.state, self.rng, self.order = state, rng, order
        self.callbacks = list(callbacks)
        self.n_images = x.shape[0]
        self.stop_at = self.n_images - self.n_images % batch_size if drop_last else self.n_images
        if self.stop_at == 0:
            raise ConvpropError(f"no complete batch of {batch_size} in {self.n_images} images (drop_last=True)")
        self.n_batches = -(-self.stop_at // batch_size)
        if state.batch > self.n_batches:
            raise ConvpropError(f"checkpoint batch {state.batch} is past the {self.n_batches} batches of an epoch")
        self.epoch = self.batch = 0
        self.indices = self.batch_indices = np.empty(0, dtype=np.intp)
        self.loss = float("nan")
        self.stop = False
        self.consistent = True
        self.is_writer = True
        self.predict = net.predict
        self.sigint = _SigintFlag()
        self.saved_checkpoint: Path | None = None
        self._epoch_rng_state = state.rng_state
        self._started = time.perf_counter()

    @property
    def batch_images(self) -> int:
        """Number of images in the batch in progress (all processes together)."""
        return len(self.batch_indices)

    def _emit(self, hook: str) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self)

    def _permutation(self) -> np.ndarray:
        if self.order is not None:
            return self.order[self.epoch]
        return self.rng.permutation(self.n_images)

    def _step(self, perm: np.ndarray) -> None:
        """One mini-batch: forward, backward, gradient hook, update, history."""
        start = self.batch * self.batch_size
        self.batch_indices = self.indices = perm[start:min(start + self.batch_size, self.stop_at)]
        self._emit("on_batch_begin")
        with np.errstate(over="ignore", invalid="ignore"):  # the divergence guard reports
            if len(self.indices):
                self.loss = float(self.net.train_batch(self.x, self.targets, rows=self.indices))
            else:  # an empty share of a distributed batch: the gradient hook brings the gradients
                self.loss = 0.0
            self._emit("on_gradients")  # the gradient hook: between backward and update
            self.consistent = False
            if self.optimizer is None:
                self.net.step(self.alpha)
            else:
                self.optimizer.step(self.net)
        st = self.state
        if not st.rL:  # rL as cnntrain keeps it: first loss, then smoothed
            st.rL.append(self.loss)
        st.rL.append(0.99 * st.rL[-1] + 0.01 * self.loss)
        st.L.append(self.loss)
        st.batch = self.batch + 1
        self.consistent = True
        self._emit("on_batch_end")

    def _epoch(self) -> None:
        st = self.state
        self.epoch = st.epoch
        self._epoch_rng_state = self.rng.bit_generator.state
        perm = self._permutation()
        self._started = time.perf_counter()
        self._emit("on_epoch_begin")
        with self.net.reusing_step_arrays():  # a step's arrays are read within the step only
            for self.batch in range(st.batch, self.n_batches):
                self._step(perm)
                self._stop_if_asked()
        self.consistent = False
        st.epoch_seconds.append(st.epoch_elapsed + time.perf_counter() - self._started)
        st.epoch_elapsed = 0.0
        st.epoch, st.batch = self.epoch + 1, 0
        if self.optimizer is not None:
            self.optimizer.end_epoch()
            st.optimizer = self.optimizer.state_dict()
        st.rng_state = self.rng.bit_generator.state
        self.consistent = True
        self._emit("on_epoch_end")

    def run(self) -> TrainingState:
        """Train up to ``epochs`` epochs in all; returns the final state."""
        try:
            with self.sigint.active(), blas_limit():
                self._emit("on_train_begin")
                while self.state.epoch < self.epochs and not self.stop:
                    self._epoch()
                    self._stop_if_asked()  # a Ctrl-C while the epoch ended (its test error, its checkpoint)
                self._emit("on_train_end")
        except KeyboardInterrupt:
            self._interrupted()
        return self.state

    def _stop_if_asked(self) -> None:
        """KeyboardInterrupt (see :meth:`_interrupted`) once a Ctrl-C was pressed."""
        if self.sigint.raised:
            raise KeyboardInterrupt

    def _interrupted(self) -> None:
        st = self.state
        if self.consistent:
            if st.batch:  # mid-epoch: the epoch's generator state + the batches done
                st.rng_state = self._epoch_rng_state
                st.epoch_elapsed += time.perf_counter() - self._started
            if self.optimizer is not None:
                st.optimizer = self.optimizer.state_dict()
            self._emit("on_interrupt")
        raise Interrupted(self.saved_checkpoint, st) from None


def _orders(order, n: int, epochs: int) -> np.ndarray | None:
    """The explicit sample order of every epoch, shape (epochs, n), checked; None when not given."""
    if order is None:
        return None
    orders = np.asarray(order)
    if orders.ndim == 1:
        orders = np.broadcast_to(orders, (epochs, orders.shape[0]))
    if orders.shape != (epochs, n) or orders.dtype.kind not in "iu":
        raise ConvpropError(f"order must be a permutation of 0..{n - 1}, shape ({n},) or ({epochs}, {n}); "
                            f"got shape {np.shape(order)} of dtype {np.asarray(order).dtype}")
    if not all(np.array_equal(np.sort(row), np.arange(n)) for row in orders):
        raise ConvpropError(f"order must be a permutation of 0..{n - 1}")
    return orders


def _start(state: TrainingState | None, seed: Seed, optimizer: Optimizer | None,
           epochs: int) -> tuple[TrainingState, np.random.Generator]:
    """The run's state and permutation generator, new (from ``seed``) or resumed (from ``state``)."""
    if state is None:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        state = TrainingState(epoch=0, batch=0, rng_state=rng.bit_generator.state)
    else:
        rng = rng_from_state(state.rng_state)
    if optimizer is not None and state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
    elif (optimizer is None) != (state.optimizer is None) and (state.epoch or state.batch):
        raise ConvpropError("resume with the optimiser the run was trained with (the checkpoint "
                            + ("has none: plain SGD)" if state.optimizer is None else f"has {state.optimizer['type']})"))
    if state.epoch > epochs or (state.epoch == epochs and state.batch):
        raise ConvpropError(f"the run has already done {state.epoch} epochs; ask for more than that")
    return state, rng


def fit(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 1,
    batch_size: int = 50,
    alpha: float = 1.0,
    optimizer: Optimizer | None = None,
    shuffle: bool = True,
    seed: Seed = None,
    order: np.ndarray | None = None,
    drop_last: bool = False,
    state: TrainingState | None = None,
    checkpoint: str | Path | None = None,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    extra: dict | None = None,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
    explode: float | None = 1e3,
    comm=None,
) -> TrainingState:
    """Train ``net`` in place up to ``epochs`` epochs in all (mini-batch SGD as cnntrain, or an optimiser).

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
        SGD step (the toolbox's update ``p -= alpha·grad``), used when no ``optimizer`` is given.
    optimizer : convprop.engine.optim.Optimizer, optional
        Another update rule (momentum, Adam …); its state is saved in checkpoints.
    shuffle : bool
        A fresh random permutation per epoch (default), else 0..N−1.
    seed : int, Generator or None
        Source of the permutations of a fresh run (a Generator is advanced).
    order : array_like of int, shape (N,) or (epochs, N), optional
        Explicit sample order(s); overrides ``shuffle`` and ``seed``.
    drop_last : bool
        Skip a last partial batch instead of training on it.
    state : TrainingState, optional
        Where to continue from (see :func:`convprop.formats.checkpoint.load_checkpoint`).
    checkpoint : path, optional
        Adds a :class:`~convprop.training.callbacks.Checkpoint` there (after every epoch and on Ctrl-C).
    x_test, y_test : array_like, optional
        Adds an :class:`~convprop.training.callbacks.Evaluate`: the test error after every epoch.
    extra : dict, optional
        Notes stored in the checkpoints (dataset, class names …).
    progress : bool
        Adds a :class:`~convprop.training.callbacks.ProgressBar`.
    callbacks : sequence of Callback
        Yours, run after the built-in ones at every hook.
    explode : float or None
        The :class:`~convprop.training.callbacks.DivergenceGuard`'s runaway factor
        (it is always on: NaN / inf stop any run).
    comm : mpi4py communicator or DataParallel, optional
        Train one model over the ranks of ``comm`` (every rank calls ``fit``
        alike): each computes its share of every batch, one Allreduce sums the
        gradients (:class:`~convprop.training.distributed.DataParallel`).

    Returns
    -------
    TrainingState
        The final state (history; epoch = ``epochs``).

    Raises
    ------
    convprop.errors.Diverged
        When the loss or a parameter becomes NaN or infinite, or the loss runs away.
    convprop.errors.Interrupted
        On Ctrl-C (or a KeyboardInterrupt from a callback), after the callbacks saved.
    """
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    alpha = positive_float(alpha, "alpha")
    images, _ = check_images(x, net.image_shape, net.dtype, "training images")  # (N, H, W, C)
    targets = check_targets(y, images.shape[0], net.n_outputs, net.dtype, "training targets")
    if (x_test is None) != (y_test is None):
        raise ConvpropError("give both x_test and y_test, or neither")
    built: list[Callback] = [DivergenceGuard(explode)]
    if x_test is not None:  # checked now, not after a whole epoch of training
        x_test, _ = check_images(x_test, net.image_shape, net.dtype, "test images")
        built.append(Evaluate(x_test, labels_array(y_test, x_test.shape[0], net.n_outputs, "test labels")))
    if checkpoint is not None:
        built.append(Checkpoint(checkpoint, extra))
    if progress:
        built.insert(0, ProgressBar())
    tail: list[Callback] = []
    if comm is not None:  # first, so that every other callback sees the whole batch's gradients and loss
        from .distributed import DataParallel

        parallel = comm if isinstance(comm, DataParallel) else DataParallel(comm)
        built.insert(0, parallel)
        tail.append(parallel.finisher())
    orders = _orders(order, images.shape[0], epochs)
    if orders is None and not shuffle:
        orders = np.broadcast_to(np.arange(images.shape[0]), (epochs, images.shape[0]))
    state, rng = _start(state, seed, optimizer, epochs)
    loop = Loop(net, images, targets, epochs=epochs, batch_size=batch_size, alpha=alpha, optimizer=optimizer,
                state=state, rng=rng, order=orders, drop_last=drop_last, callbacks=[*built, *callbacks, *tail])
    return loop.run()


def train(net: Network, x: np.ndarray, y: np.ndarray, *, epochs: int = 1, batch_size: int = 50,
          alpha: float = 1.0, shuffle: bool = True, seed: Seed = None, order: np.ndarray | None = None,
          drop_last: bool = False, callback=None, optimizer: Optimizer | None = None,
          callbacks: Sequence[Callback] = ()) -> TrainingState:
    """Train ``net`` in place with mini-batch SGD, as cnntrain does: :func:`fit` without files.

    ``callback(epoch, batch, n_batches, L, rL)``, if given, is called after every
    batch; the other parameters are :func:`fit`'s. Returns the
    :class:`TrainingState` (``rL``, ``L``, ``epoch_seconds``).
    """
    extra = [BatchFunction(callback)] if callback is not None else []
    return fit(net, x, y, epochs=epochs, batch_size=batch_size, alpha=alpha, optimizer=optimizer, shuffle=shuffle,
               seed=seed, order=order, drop_last=drop_last, callbacks=[*extra, *callbacks])
