"""Batch slices over threads: one batch cut into k slices that k threads push through the network.

The compiled kernels are fast enough that handing each kernel call's rows to a
second thread (:func:`convprop.engine.parallel.run_rows`) costs about as much as
it gains: a layer of a 50-image batch takes 50–300 µs, a hand-off 10–50 µs. So
the compiled engine shares a batch instead: slice i (images lo_i ≤ n < hi_i)
goes through the whole network on its own thread, on a *replica* of the network
(its layers share the parameters but keep their own maps, deltas and
gradients), with one hand-off per training step (one compiled call per slice
when the network is map layers, dense layers and an output layer: :mod:`convprop.engine.stack`,
bound once per replica by :mod:`convprop.engine.sliced`).

The equations per slice are the network's; the slices' results are joined as
the whole batch's:

* outputs o and errors e: the slices' rows, in order;
* the loss  L = Σ_i (n_i / N) · L_i  (L_i the mean over slice i);
* every gradient  g = Σ_i (n_i / N) · g_i  (g_i the mean over slice i), summed
  in slice order, so that a given thread count gives the same bits every run;
* maps, deltas and a layer's :meth:`~convprop.layers.Layer.pieces`: joined
  along the batch axis only when asked for (:class:`~convprop.network.Network`'s
  ``activations``, a layer's ``d``), never on the training path.

The slice count is the thread count (at most one slice per
:data:`MIN_SLICE` images), so results differ between thread counts by
round-off only (the sums are taken in another order); one thread is the
unsliced computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import FunctionType, MethodType

import numpy as np

from . import parallel

#: Fewest images in a slice: below this the per-slice work (≈ 20–60 µs per image on the
#: toolbox network) no longer pays for a thread hand-off.
MIN_SLICE = 8


def count(n: int) -> int:
    """Number of slices for a batch of ``n`` images: the thread count, at most n // MIN_SLICE."""
    if parallel.inside_task():
        return 1
    return max(1, min(parallel.n_threads(), n // MIN_SLICE))


def bounds(n: int, k: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` of each of ``k`` contiguous slices of ``n`` images (sizes differ by at most 1)."""
    cuts = [n * i // k for i in range(k + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def replica(layer):
    """A layer that shares ``layer``'s parameters (the same arrays) and keeps its own per-call state.

    Functions set on the layer object itself (a wrapper of its ``forward`` for timing, say) are
    not carried over: they would act on ``layer``'s state, not the replica's.
    """
    twin = object.__new__(type(layer))
    twin.__dict__.update(own_state(layer))
    twin.grads = {}
    return twin


def is_replica(twin, layer) -> bool:
    """Whether ``twin`` still holds what :func:`replica` took from ``layer`` that a user may replace on a
    built layer: its parameters (the dict) and its activation. A replica made before
    ``layer.activation`` was replaced would go on computing the old one."""
    return type(twin) is type(layer) and twin.params is layer.params and \
        getattr(twin, "activation", None) is getattr(layer, "activation", None)


def own_state(obj) -> dict:
    """``obj.__getstate__()`` (its parameters, without one batch's arrays) less the functions set on
    the object itself: a user's wrapper of a method acts on ``obj``, not on a replica."""
    return {k: v for k, v in obj.__getstate__().items() if not isinstance(v, (FunctionType, MethodType))}


def weighted_sum(parts: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Σ_i weights[i] · parts[i], in order, in the parts' dtype."""
    total = parts[0] * parts[0].dtype.type(weights[0])
    scaled = np.empty_like(total)
    for part, w in zip(parts[1:], weights[1:]):
        total += np.multiply(part, part.dtype.type(w), out=scaled)
    return total


def join_grads(layer, twins: Sequence, weights: Sequence[float]) -> None:
    """``layer.grads`` = the weighted sum of its replicas' gradients, parameter by parameter."""
    layer.grads = {p: weighted_sum([t.grads[p] for t in twins], weights) for p in twins[0].grads}


def join_all_grads(layers: Sequence, weights: Sequence[float]) -> None:
    """:func:`join_grads` for every layer (from its ``_parts``): on the compiled engine in one call,
    with the same roundings (``kernels.arrays.weighted_join``)."""
    from . import backend

    kernels = backend.compiled()
    names = [(layer, p) for layer in layers for p in layer._parts[0].grads]
    parts = [[layer._parts[s].grads[p] for layer, p in names] for s in range(len(weights))]
    if kernels is None or not all(g.flags.c_contiguous for slice_ in parts for g in slice_):
        for layer in layers:
            join_grads(layer, layer._parts, weights)
        return
    outs = [np.empty_like(g) for g in parts[0]]
    kernels.arrays.weighted_join(tuple(tuple(g.reshape(-1) for g in slice_) for slice_ in parts),
                                 np.asarray(weights, dtype=np.float64), tuple(o.reshape(-1) for o in outs))
    for layer in layers:
        layer.grads = {}
    for (layer, p), out in zip(names, outs):
        layer.grads[p] = out


def join_batch(parts: Sequence[np.ndarray | None], axis: int) -> np.ndarray | None:
    """The slices' arrays joined along the batch ``axis`` (None when a slice has none)."""
    if not parts or any(p is None for p in parts):
        return None
    return np.concatenate(parts, axis=axis)
