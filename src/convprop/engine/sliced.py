"""A training step as k batch slices, each one bound compiled call on its own thread.

When the compiled engine shares a batch over k > 1 threads and one call trains
the whole network (:meth:`.stack.Stack.covers`), each slice's replica runs a
:class:`.stack.Step` bound once: its thread enters the kernel after a few µs
of Python instead of the ~80 µs that a replica's ``train_batch`` spent on checks,
bookkeeping and the kernel's arguments, held under the GIL while the other
slices' threads waited to start (a quarter of a two-thread float32 step). The
slices' gradients are then summed in one call on tuples made once as well.
The numbers are those of the replicas' ``train_batch``, bit for bit: the same
kernels on the same arrays, the gradients summed in slice order
(:func:`.slices.weighted_sum`'s roundings).

Inside the training loop's epoch (:meth:`.network.Network.reusing_step_arrays`) the
crew threads do not come back to Python between steps at all: each stays in a
compiled loop (:func:`.kernels.serve.serve`) that runs its slice of every step on
the same data as soon as it is posted (about 1 µs, against 25 µs through Python),
and the calling thread enters its own slice at once instead of waiting for theirs
to start (:meth:`.parallel.Crew.run_bound`). Epochs of the toolbox network on two
threads took 0.90 (float32) and 0.955 (float64) of the time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import parallel, slices, stack


class SlicedStep:
    """The bound steps of k replicas for batches cut as ``sizes``, and the sum of their gradients.

    Parameters
    ----------
    twins : the network's replicas (:meth:`Network._replicas`), one per slice
    x : (M, H, W, C) images like those the steps will train on (their shape and dtype)
    sizes : the slices' sizes
    """

    def __init__(self, twins: Sequence, x: np.ndarray, sizes: Sequence[int]) -> None:
        from .kernels import arrays  # imports Numba: only when the compiled engine runs

        self.twins, self.sizes = list(twins), tuple(sizes)
        self.steps = []
        for twin, n in zip(twins, sizes):
            run = twin._stack(reuse=True)
            self.steps.append(run.bind(x, n, twin.layers[1 + len(run.run):], twin.output))
        self._grads = [step.gradients() for step in self.steps]
        self._join = arrays.weighted_join
        self._parts = tuple(tuple(g.reshape(-1) for g in grads) for grads in self._grads)
        #: the batch's rows, which the crew's compiled loop reads its slices from (:meth:`_run_bound`),
        #: its slices' losses, and (id(x), id(y), token) of the images the loop was bound to last
        self._rows, self._losses = np.empty(sum(sizes), dtype=np.int64), np.zeros(len(sizes))
        self._bound: tuple[int, int, int] = (0, 0, 0)

    def fits(self, twins: Sequence, x: np.ndarray, sizes: Sequence[int]) -> bool:
        """Whether these are still the replicas, kind of images, slice sizes and layers the steps were bound to
        (the replicas share the network's parameters and activations: the first step's
        :meth:`.stack.Step.fits` stands for all)."""
        first = self.twins[0]
        return (len(twins) == len(self.twins) and all(a is b for a, b in zip(twins, self.twins))
                and tuple(sizes) == self.sizes and self.steps[0].fits(x, sizes[0], (*first.layers[1:], first.output)))

    def still(self, layers: Sequence, out, x: np.ndarray, y: np.ndarray, n: int, k: int) -> bool:
        """Whether these bound steps are still a k-slice training step of a network of ``layers`` (Input
        first) and ``out`` for ``n`` images like ``x`` and targets ``y``, in one pass: the network's
        layers none wrapped and each still the one its replicas were made from (the same parameter
        dict and activation, :func:`.slices.is_replica`; the first replica's check stands for all, as
        in :meth:`.network.Network._replicas`), and that replica's step still bound to the same
        parameter arrays and activations (:meth:`.stack.Step.still`).

        What the full path's ``_new_pass``, ``_stack``, ``covers``, ``_replicas`` and :meth:`fits`
        check, on caches the kernels have just cooled: 34 µs of a two-thread float32 step before its
        slices could start.
        """
        if k != len(self.steps) or n != sum(self.sizes):
            return False
        twin = self.twins[0]
        if len(layers) != len(twin.layers) or "loss" in vars(out):
            return False
        for layer, copy in zip((*layers, out), (*twin.layers, twin.output)):
            own = vars(layer)
            if "forward" in own or "backward" in own or not slices.is_replica(copy, layer):
                return False
        return self.steps[0].still(twin.layers, twin.output, x, y, self.sizes[0])

    def run(self, x: np.ndarray, y: np.ndarray, rows: np.ndarray, spans: Sequence[tuple[int, int]],
            bound: bool = False) -> list[float]:
        """Each slice's step on its own thread: slice i trains on images x[rows[lo_i:hi_i]] and their
        targets y[…] (x : (M, H, W, C), C-contiguous; y : (M, K)); their losses.

        Each replica is left as its ``train_batch`` leaves it (maps, loss, outputs, errors).
        ``bound``: the crew threads run their slices of this and the next steps on these arrays in
        a compiled loop (:meth:`_run_bound`), until :func:`.parallel.unbind`.
        """
        if bound:
            ran, losses = self._run_bound(x, y, rows, spans)
            if ran:
                return losses
        steps, twins = self.steps, self.twins

        def one(i: int) -> float:
            lo, hi = spans[i]
            return _left(twins[i], steps[i], steps[i].run(x, y, rows[lo:hi]))

        return parallel.run_tasks(one, len(steps), announced=True)

    def _run_bound(self, x: np.ndarray, y: np.ndarray, rows: np.ndarray,
                   spans: Sequence[tuple[int, int]]) -> tuple[bool, list[float]]:
        """:meth:`run` with slice 0 on this thread and slice s on crew thread s, which runs its slices of
        the steps bound to these arrays in a compiled loop (:func:`.parallel.run_bound`); (False, [])
        when there is no crew to take them."""
        from .kernels.serve import serve as kernel

        steps, twins, losses, bound = self.steps, self.twins, self._losses, self._bound
        if bound[:2] != (id(x), id(y)):  # while a crew thread serves a token, its x and y are alive
            bound = self._bound = (id(x), id(y), parallel.new_token())
        self._rows[:] = rows  # before the post: the crew's slices are read from here
        batch = self._rows

        def serve(flags: np.ndarray, slot: int, gen: int) -> int:
            lo, hi = spans[slot]
            return kernel(flags, slot, bound[2], gen, lo, hi, losses, parallel.SPIN_POLLS, x, y, batch, *steps[slot].args)

        def own() -> float:
            lo, hi = spans[0]
            return steps[0].run(x, y, batch[lo:hi])

        ran, first = parallel.run_bound(serve, own, len(steps), bound[2])
        if not ran:
            return False, []
        for step in steps[1:]:  # the crew's steps ran in compiled code only (steps[0].run left its own)
            stack.leave(step.state)
        return True, [_left(twin, step, loss) for twin, step, loss in zip(twins, steps, [first, *map(float, losses[1:])])]

    def drop_kept(self) -> None:
        """Let go of the joined gradients :meth:`gradients` kept (the layers keep what they were given)."""
        self.__dict__.pop("_outs", None)

    def gradients(self, weights: Sequence[float], keep: bool = False) -> list[np.ndarray]:
        """Σ_i weights[i] · (slice i's gradients), summed in slice order, in :meth:`.stack.Step.gradients`' order.

        ``keep``: in the arrays of the last call that kept them (overwritten: the training loop's
        epoch, see :meth:`.network.Network.reusing_step_arrays`), and keep these.
        """
        kept = self.__dict__.get("_outs") if keep else None
        if kept is None:
            outs = [np.empty_like(g) for g in self._grads[0]]
            kept = (outs, tuple(o.reshape(-1) for o in outs))
            if keep:
                self._outs = kept
        self._join(self._parts, np.asarray(weights, dtype=np.float64), kept[1])
        return kept[0]


def _left(twin, step: stack.Step, loss: float) -> float:
    """Leave replica ``twin`` as its ``train_batch`` does after ``step`` ran (its maps, outputs, errors, the
    loss, no slices of its own); the loss."""
    twin.L = loss
    twin._maps, twin.o, twin.e, twin._stacked = step.maps, step.o, step.e, step.depth
    twin._slices, twin._spans = [], []
    return loss
