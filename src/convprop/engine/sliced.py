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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import parallel, stack


class SlicedStep:
    """The bound steps of k replicas for batches cut as ``sizes``, and the sum of their gradients.

    Parameters
    ----------
    twins : the network's replicas (:meth:`Network._replicas`), one per slice
    x : (M, H, W, C) images like those the steps will train on (their shape and dtype)
    sizes : the slices' sizes
    key : :func:`.stack.signature` of the network's trainable layers
    """

    def __init__(self, twins: Sequence, x: np.ndarray, sizes: Sequence[int], key: tuple) -> None:
        from .kernels import arrays  # imports Numba: only when the compiled engine runs

        self.twins, self.like, self.sizes, self.key = list(twins), (x.shape[1:], x.dtype), tuple(sizes), key
        self.steps = []
        for twin, n in zip(twins, sizes):
            run = twin._stack(reuse=True)
            self.steps.append(run.bind(x, n, twin.layers[1 + len(run.run):], twin.output))
        self._grads = [step.gradients() for step in self.steps]
        self._join = arrays.weighted_join
        self._parts = tuple(tuple(g.reshape(-1) for g in grads) for grads in self._grads)

    def fits(self, twins: Sequence, x: np.ndarray, sizes: Sequence[int], key: tuple) -> bool:
        """Whether these are still the replicas, kind of images, slice sizes and layers the steps were bound to."""
        return (len(twins) == len(self.twins) and all(a is b for a, b in zip(twins, self.twins))
                and (x.shape[1:], x.dtype) == self.like and tuple(sizes) == self.sizes and key == self.key)

    def run(self, x: np.ndarray, y: np.ndarray, rows: np.ndarray, spans: Sequence[tuple[int, int]]) -> list[float]:
        """Each slice's step on its own thread: slice i trains on images x[rows[lo_i:hi_i]] and their
        targets y[…] (x : (M, H, W, C), C-contiguous; y : (M, K)); their losses.

        Each replica is left as its ``train_batch`` leaves it (maps, loss, outputs, errors).
        """
        steps, twins = self.steps, self.twins

        def one(i: int) -> float:
            lo, hi = spans[i]
            step, twin = steps[i], twins[i]
            twin.L = loss = step.run(x, y, rows[lo:hi])
            twin._maps, twin.o, twin.e, twin._stacked = step.maps, step.o, step.e, step.depth
            twin._slices, twin._spans = [], []
            return loss

        return parallel.run_tasks(one, len(steps), announced=True)

    def gradients(self, weights: Sequence[float]) -> list[np.ndarray]:
        """Σ_i weights[i] · (slice i's gradients), summed in slice order, in :meth:`.stack.Step.gradients`' order."""
        outs = [np.empty_like(g) for g in self._grads[0]]
        self._join(self._parts, np.asarray(weights, dtype=np.float64), tuple(o.reshape(-1) for o in outs))
        return outs
