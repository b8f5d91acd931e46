"""Data-parallel training on MPI: K processes train one model, one Allreduce per step.

:class:`DataParallel` is a :class:`~convprop.training.callbacks.Callback` of
the one training loop (:class:`~convprop.training.loop.Loop`); ``fit(...,
comm=MPI.COMM_WORLD)`` puts it first, and ``mpiexec -n K convprop train``
does so by itself. Every process holds the whole data set and the same
network and draws the same permutation from the shared seed; at every step

1. ``on_batch_begin`` keeps this rank's contiguous share of the global batch
   (:func:`convprop.training.mpi.share`; none when the batch has fewer images
   than there are ranks);
2. the loop runs forward and backward on that share: the mean gradient over
   its ``n_k`` images;
3. ``on_gradients`` packs ``n_k`` × every gradient, ``n_k`` × the loss and the
   rank's stop request into ONE flat float64 buffer, sums it over the ranks
   with one ``Allreduce`` (non-blocking, waited for politely: see
   :func:`convprop.training.mpi.wait_politely`) and divides by the global batch size ``N``:
   ``Σ_k n_k·mean_k / N`` is the single-process mean gradient, up to the order
   of the sums and roundings (≈ 1e-16 relative per step). When K divides N, every
   ``n_k`` is N / K, and the buffer holds ``mean_k`` as it is, divided by K after
   the sum: no scaling pass before it.

Every rank then applies the same update to the same weights, so the weights
stay equal (checked, and re-aligned from rank 0 if round-off ever made them
differ, at the end of every epoch). The loss, hence ``rL`` and the
divergence guard, is the reduced one: all ranks agree. A Ctrl-C, SIGTERM or
SIGUSR1 on any rank is summed into the same buffer, so all ranks stop after
the same batch; rank 0 alone writes checkpoints and draws progress
(``loop.is_writer``). At the start, each rank's data, network, settings and
position are compared with rank 0's (a digest of each).
"""

from __future__ import annotations

import hashlib
import signal
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConvpropError
from ..engine import backend
from ..engine.views import runs_of_one_buffer
from .callbacks import Callback
from .mpi import set_threads, share, sharded_predict, wait_politely

if TYPE_CHECKING:
    from .loop import Loop

#: Seconds a rank waits in a collective before the watchdog ends it (see :mod:`convprop.training.watchdog`).
DEFAULT_TIMEOUT = 300.0


class DataParallel(Callback):
    """Shares each global batch over the ranks of ``comm`` and sums their gradients (one Allreduce a step).

    Parameters
    ----------
    comm : mpi4py communicator
        Usually ``MPI.COMM_WORLD``; every rank runs the same ``fit`` call.
    timeout : float or None
        Seconds a rank may wait for the others in a collective before it ends
        itself, naming the ranks that did not answer (None: wait for ever).
    threads : bool
        Give each rank its share of the machine's cores as engine threads
        (``CONVPROP_THREADS``, unless set).

    Attributes
    ----------
    realigned : int
        How many times the weights had drifted apart and were re-sent from rank 0.
    """

    def __init__(self, comm, *, timeout: float | None = DEFAULT_TIMEOUT, threads: bool = True):
        self.comm, self.timeout, self.threads = comm, timeout, threads
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.realigned = 0
        self.watchdog = None
        self._buffer: np.ndarray | None = None
        self._views: list[np.ndarray] = []
        self._shapes: list[tuple[int, ...]] = []

    # ------------------------------------------------------------------ hooks

    def on_train_begin(self, loop: "Loop") -> None:
        from .watchdog import Watchdog

        loop.is_writer = self.rank == 0
        loop.sigint.deferred = True  # the ranks agree on when to stop (on_gradients)
        if loop.sigint.raised:  # a Ctrl-C while the command started: put to the vote like any other
            loop.sigint.raised, loop.sigint.pending = False, True
        loop.sigint.catch(signal.SIGTERM)  # what mpiexec / srun send on Ctrl-C or a cancel
        loop.sigint.catch(signal.SIGUSR1)  # forwarded by mpiexec without killing: a stop with time to save
        if self.threads:
            set_threads(self.comm)
        if self.timeout is not None and self.watchdog is None:
            self.watchdog = Watchdog(self.comm, self.timeout)
        _divide(np.ones(1), self.size)  # loads (or compiles) the hook's kernel now, not in the first step
        with self._waiting("the start-up check"):
            check_agreement(self.comm, loop)
        loop.predict = self._predict(loop.net)

    def on_batch_begin(self, loop: "Loop") -> None:
        start, stop = share(len(loop.batch_indices), self.size, self.rank)
        loop.indices = loop.batch_indices[start:stop]

    def on_gradients(self, loop: "Loop") -> None:
        from mpi4py import MPI

        n_local, n = len(loop.indices), loop.batch_images
        buf, views, grads = self._flat(loop.net, n_local)
        # the shares are equal when K divides N: Σ_k mean_k / K, no scaling before the sum
        weight, divisor = (1, self.size) if n % self.size == 0 else (n_local, n)
        body = buf[:-2]
        if not n_local:  # no images here: contribute zeros (the loop left the gradients as they were)
            body.fill(0.0)
        else:
            if views:  # else the buffer holds the gradients themselves, summed where they are
                np.concatenate([g.reshape(-1) for g in grads], out=body)
            if weight != 1:
                body *= weight
        buf[-2] = loop.loss * weight if n_local else 0.0
        buf[-1] = 1.0 if loop.sigint.pending else 0.0
        watchdog = self.watchdog
        if watchdog is not None:  # the wait's name is only written out if it is reported
            watchdog.begin(lambda e=loop.epoch + 1, b=loop.batch + 1: f"the Allreduce of epoch {e}, batch {b}")
        try:
            wait_politely(self.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM))
        finally:
            if watchdog is not None:
                watchdog.end()
        _divide(buf, divisor)
        for g, view in zip(grads, views):
            g[...] = view
        loop.loss = float(buf[-2])
        if buf[-1] > 0:  # some rank was asked to stop: all stop after this batch
            loop.sigint.raised = True

    def on_epoch_end(self, loop: "Loop") -> None:
        with self._waiting("the end-of-epoch weight check"):
            if realign(self.comm, loop.net):
                self.realigned += 1

    def on_train_end(self, loop: "Loop") -> None:
        self._close()

    # ---------------------------------------------------------------- helpers

    def finisher(self) -> Callback:
        """A callback to put LAST: on Ctrl-C, every rank waits until rank 0 has saved (then all exit)."""
        return _Finish(self)

    def _predict(self, net):
        predict = partial(sharded_predict, net, comm=self.comm)

        def guarded(x):
            with self._waiting("the sharded evaluation"):
                return predict(x)

        return guarded

    def _waiting(self, what: str):
        from contextlib import nullcontext

        return nullcontext() if self.watchdog is None else self.watchdog.waiting(what)

    def _flat(self, net, n_local: int) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """The flat float64 buffer (every gradient, then the loss sum and the stop votes), its runs
        shaped like the gradients (made once for the network's shapes) and the gradients; or, when the
        gradients are float64 runs of one such buffer already (a one-thread step's, in the training
        loop), that buffer and no runs: no copy in, no copy out (the same numbers)."""
        own = net._gradient_buffer() if n_local else None
        if own is not None and own.dtype == np.float64:
            return own, [], []
        grads = _gradients(net)
        shapes = [g.shape for g in grads]
        if self._buffer is None or self._shapes != shapes:
            self._buffer, self._views = runs_of_one_buffer(shapes, np.float64, spare=2)
            self._shapes = shapes
        return self._buffer, self._views, grads

    def _close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.close()
            self.watchdog = None


class _Finish(Callback):
    """The tail of :class:`DataParallel`: a barrier after the other callbacks' ``on_interrupt`` saved."""

    def __init__(self, parallel: DataParallel):
        self.parallel = parallel

    def on_interrupt(self, loop: "Loop") -> None:
        with self.parallel._waiting("the barrier after the interrupt's checkpoint"):
            self.parallel.comm.Barrier()
        self.parallel._close()


def _divide(buf: np.ndarray, divisor: int) -> None:
    """``buf /= divisor`` (1-D), in one compiled call on the compiled engine."""
    kernels = backend.compiled()
    if kernels is None:
        buf /= divisor
    else:
        kernels.arrays.divide(buf, divisor)


def _gradients(net) -> list[np.ndarray]:
    """Every gradient tensor, in the order of ``net.parameters()``; zero first for a layer that has
    run no backward pass yet (an empty first share)."""
    grads = []
    for layer in net._trainable():
        if not layer.grads:
            layer.grads = {p: np.zeros_like(arr) for p, arr in layer.params.items()}
        grads.extend(layer.grads[p] for p in layer.params)
    return grads


def _digest(*parts) -> str:
    """A short hash of arrays and plain values (dicts, lists, numbers, strings), nested."""
    h = hashlib.blake2b(digest_size=12)

    def feed(obj) -> None:
        if isinstance(obj, np.ndarray):
            h.update(f"{obj.dtype.str}{obj.shape}".encode())
            h.update(memoryview(np.ascontiguousarray(obj)).cast("B"))
        elif isinstance(obj, dict):
            for key in sorted(obj, key=str):
                h.update(str(key).encode())
                feed(obj[key])
        elif isinstance(obj, (list, tuple)):
            h.update(f"[{len(obj)}".encode())
            for item in obj:
                feed(item)
        else:
            h.update(repr(obj).encode())

    for part in parts:
        feed(part)
    return h.hexdigest()


def fingerprints(loop: "Loop") -> dict[str, str]:
    """What must be the same on every rank, hashed: data, network, settings, position in the run."""
    st = loop.state
    return {
        "training data": _digest(loop.x, loop.targets),
        "network (layers and weights)": _digest(loop.net.spec, loop.net.dtype.str, loop.net.output_kind,
                                                loop.net.parameters()),
        "settings (epochs, batch size, alpha, optimiser, order)": _digest(
            loop.epochs, loop.batch_size, loop.alpha, repr(loop.optimizer), loop.stop_at,
            loop.order if loop.order is not None else "shuffle"),
        "position (epoch, batch, generator, optimiser state)": _digest(st.epoch, st.batch, st.rng_state,
                                                                        st.optimizer, len(st.L)),
    }


def check_agreement(comm, loop: "Loop") -> None:
    """Raise the same :class:`ConvpropError` on every rank when any rank's fingerprints differ from rank 0's."""
    mine = fingerprints(loop)
    everyone = comm.allgather(mine)
    reference = everyone[0]
    differ = [f"rank {r}: {what}" for r, prints in enumerate(everyone)
              for what in reference if prints.get(what) != reference[what]]
    if differ:
        error = ConvpropError("the ranks of a distributed run must train on the same data with the same network "
                              "and settings; these differ from rank 0's: " + "; ".join(differ))
        error.everywhere = True  # the same error on every rank: one of them says it
        raise error


def realign(comm, net) -> bool:
    """Whether the ranks' weights had drifted apart; if so, rank 0's are sent to all."""
    params = net.parameters()
    digests = comm.allgather(_digest(params))
    if all(d == digests[0] for d in digests):
        return False
    for arr in params.values():
        comm.Bcast(arr, root=0)
    return True


__all__ = ["DataParallel", "DEFAULT_TIMEOUT", "check_agreement", "fingerprints", "realign"]
