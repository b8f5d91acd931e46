"""The leading run of map layers as one compiled call per direction (see :mod:`.kernels.stack`).

On the compiled engine, when a pass runs on one thread (a batch slice's, or
every pass with one thread), the convolution and pooling layers right after
Input go through :func:`forward` and :func:`backward`: the arrays each layer
would allocate are allocated here, the kernels run back to back without the
GIL, and each layer is then left with the state its own ``forward`` /
``backward`` would have left (its maps, deltas, gradients, arg-max), so that
everything that reads them (``activations``, a layer's ``d`` and ``pieces``,
the gradients) sees no difference. The numbers are the layer-by-layer path's,
bit for bit: the same kernels on the same arrays in the same order.

A training step (:meth:`Stack.train`) goes on in the same call through the
dense layers after the run and the output layer, when nothing else follows the
maps (:meth:`Stack.covers`): the toolbox network and the LeNet-style one.

Numba compiles a kernel once for each combination of its arguments' types, and
the length of a tuple is part of its type: a network of another depth took
another compilation of the whole step (the LeNet-style network's after the
toolbox network's: 20 s on a 2-core AMD machine, against 1.6 s now). The
tuples the kernels get are filled up with empty arrays to a multiple of
:data:`ROOM`'s lengths, so that every network of up to 4 map layers, 2
convolutions and 3 fully connected layers (the toolbox's, the LeNet-style one)
shares one compiled step per dtype, and so do those of 5 to 8 map layers, 3 or
4 convolutions and up to 3 fully connected layers, and so on.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from . import parallel, views
from .layers.base import Layer
from .layers.conv import Conv
from .layers.dense import Dense
from .layers.output import SigmoidOutput, SoftmaxOutput
from .layers.pool import MaxPool, Subsample


#: The kernels' tuples hold a multiple of these many entries: map layers, convolutions, fully connected
#: layers. The toolbox network (4, 2, 1) and the LeNet-style one (4, 2, 3) fill no more than that: their
#: compiled step has the switches over tuple entries it had before (each case more is more code).
ROOM = {"maps": 4, "convs": 2, "fc": 3}


def room(count: int, kind: str) -> int:
    """The entries the kernels' tuples of ``kind`` (:data:`ROOM`) hold for ``count`` of them."""
    return max(1, -(-count // ROOM[kind])) * ROOM[kind]


@functools.lru_cache(maxsize=32)
def _empty(ndim: int, dtype: np.dtype, writeable: bool) -> np.ndarray:
    """An empty C-contiguous array of ``ndim`` dimensions: what fills a tuple up (never read or written)."""
    empty = np.empty((0,) * ndim, dtype=dtype)
    empty.flags.writeable = writeable
    return empty


def filled(arrays: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, ...]:
    """``arrays`` as a tuple of ``size`` entries: the arrays, then empty ones of the last one's dtype,
    number of dimensions and writeability (Numba's type: a read-only array is another type, and a
    tuple of mixed types cannot be indexed by a variable)."""
    like = arrays[-1]
    return (*arrays, *(_empty(like.ndim, like.dtype, like.flags.writeable),) * (size - len(arrays)))


def layers(net_layers: Sequence[Layer]) -> list[Layer]:
    """The map layers right after Input that can run as one call (at least one convolution among them).

    A layer whose ``forward`` or ``backward`` was replaced on the object itself (a
    timing wrapper, say) ends the run, so that the replacement is called; so does a
    convolution whose activation the kernels do not compute or whose parameters are
    not C-contiguous arrays (the kernels take them in tuples of one array type).
    """
    run = []
    for layer in net_layers[1:]:
        if vars(layer).keys() & {"forward", "backward"}:
            break
        if not ((type(layer) is Conv and _plain(layer)) or type(layer) is Subsample
                or (type(layer) is MaxPool and layer.scale <= 16)):
            break
        run.append(layer)
    return run if any(type(layer) is Conv for layer in run) else []


def _plain(layer: Layer) -> bool:
    """Whether the kernels can take a convolution or dense ``layer`` as it is now: not wrapped, a
    built-in activation, C-contiguous parameters."""
    return getattr(layer, "activation", None) is not None and layer.activation.has_kernel and \
        not vars(layer).keys() & {"forward", "backward"} and all(p.flags.c_contiguous for p in layer.params.values())


class Stack:
    """A run of map layers (:func:`layers`) and the kernels' description of it.

    Parameters
    ----------
    run : the layers, in order
    reuse : bool
        Keep the arrays of one pass for the next one of the same batch size (the layers' maps,
        deltas and gradients are then overwritten by the next pass). For a batch slice's
        replica, whose arrays the network only ever reads into arrays of its own (the slices'
        gradients summed, maps and deltas joined): allocating them took a tenth of a slice's
        Python time, during which the other slice's thread waits for the GIL.
    """

    def __init__(self, run: Sequence[Layer], reuse: bool = False) -> None:
        from .kernels import stack as kernels  # imports Numba: only when the compiled engine runs

        self.run, self.kernels = list(run), kernels
        self.convs = [layer for layer in run if type(layer) is Conv]
        rows, slopes = [], []
        for layer in run:
            if type(layer) is Conv:
                code, slope = layer.activation.kernel_args
                rows.append((kernels.CONV, code, layer.stride, *layer.pads, 0, self.convs.index(layer)))
                slopes.append(slope)
            else:
                kind = kernels.MEAN if type(layer) is Subsample else kernels.MAX
                rows.append((kind, 0, 1, 0, 0, 0, 0, layer.scale, 0))
                slopes.append(0.0)
        #: (L, 9) int64, see ``kernels.stack.COLUMNS``; the activations' slopes (L,).
        self.rows = np.array(rows, dtype=np.int64).reshape(-1, len(kernels.COLUMNS))
        self.slopes = np.array(slopes, dtype=np.float64)
        self._acts = [c.activation.kernel_args for c in self.convs]  # what rows and slopes were made of
        self._none = _empty(4, np.dtype(np.uint8), True)  # a layer's arg-max array when it has none
        #: the kernels' tuples' lengths for map layers and convolutions (:func:`room`)
        self.rooms = room(len(self.run), "maps"), room(len(self.convs), "convs")
        self.reuse = reuse
        # with reuse: "forward" / "backward" / "train" → (batch size, dtype, arrays); "step" → a Step
        self._kept: dict = {}

    def _forget(self, out: Layer | None = None, head: Sequence[Layer] = ()) -> None:
        """Let go of the last pass's arrays before this one's are made (else both sets are alive at
        once: 7 MiB more at the peak of a float32 epoch, and as much again when predicting)."""
        for layer in (*self.run, *head):
            for name in ("x", "a", "arg"):
                layer._cache.pop(name, None)
            layer._d = None
        for layer in (*self.convs, *head, *([out] if out is not None else [])):
            layer.grads = {}

    def _arrays(self, which: str, n: int, dtype: np.dtype, make):
        """``make()``'s arrays, or with :attr:`reuse` the last ones made for this batch size and dtype."""
        if not self.reuse:
            return make()
        kept = self._kept.get(which)
        if kept is None or kept[0] != n or kept[1] != dtype:
            kept = self._kept[which] = (n, dtype, make())
        return kept[2]

    def fits(self, net_layers: Sequence[Layer]) -> bool:
        """Whether this is still the run of ``net_layers``: the same layer objects, none wrapped since, the
        convolutions' activations (and slopes) those of :attr:`rows`, their parameters still C-contiguous,
        and no longer run now (a layer that ended it, unwrapped or given a built-in activation again)."""
        now = layers(net_layers)  # the run these layers make now: unwrapped layers, plain convolutions
        return len(now) == len(self.run) and all(a is b for a, b in zip(self.run, now)) and \
            all(c.activation.kernel_args == args for c, args in zip(self.convs, self._acts))

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """The maps of every layer on (C, H, W, N) input ``x``: [x, a_1, …, a_L]; each layer keeps its state."""
        n, dtype = x.shape[-1], x.dtype
        self._forget()
        maps, padded, args = self._arrays("forward", n, dtype, lambda: self._forward_arrays(x))
        maps = [x, *maps[1:]]
        padded = [p if p is not None else m for p, m in zip(padded, maps)]
        r = self.rooms[0]
        self.kernels.forward(self.rows, self.slopes, self.conv_params("weight"), self.conv_params("bias"),
                             filled(maps, r + 1), filled(padded, r), filled(args, r))
        leave(self._forward_state(padded, maps, args))
        return maps

    def _forward_state(self, padded: Sequence, maps: Sequence, args: Sequence) -> list[tuple[dict, str, object]]:
        """What each layer's own ``forward`` leaves, as (dict, key, value) (:func:`leave`): a convolution's
        (padded) input and output, a max pooling's arg-max."""
        state: list[tuple[dict, str, object]] = []
        for layer, xp, a, arg in zip(self.run, padded, maps[1:], args):
            if type(layer) is Conv:
                state += [(layer._cache, "x", xp), (layer._cache, "a", a), (layer._cache, "kept_for", None)]
            elif type(layer) is MaxPool:
                state.append((layer._cache, "arg", arg))
        return state

    def _backward_state(self, deltas: Sequence, ds: Sequence, dws: Sequence,
                        dbs: Sequence) -> list[tuple[dict, str, object]]:
        """What each layer's own ``backward`` leaves, as (dict, key, value): its delta ``_d`` (a
        convolution's dℓ/dz, a pooling's output delta) and a convolution's gradients."""
        state = [(vars(layer), "_d", d if type(layer) is Conv else d_out) for layer, d_out, d in zip(self.run, deltas, ds)]
        return state + [(vars(layer), "grads", {"weight": dw, "bias": db}) for layer, dw, db in zip(self.convs, dws, dbs)]

    def conv_params(self, name: str) -> tuple[np.ndarray, ...]:
        """The convolutions' ``name`` parameters ("weight": (C_out, C_in, kh, kw), "bias": (C_out,) each) as the
        kernels take them: a tuple of the stack's room for convolutions (:func:`filled`)."""
        return filled([c.params[name] for c in self.convs], self.rooms[1])

    def _backward_arrays(self, maps: Sequence[np.ndarray]) -> tuple[list, list, list, list]:
        """The output deltas of every layer, a convolution's d (others: empty) and the gradients, for ``maps``."""
        return (*self._delta_arrays(maps), [np.empty_like(c.params["weight"]) for c in self.convs],
                [np.empty_like(c.params["bias"]) for c in self.convs])

    def _delta_arrays(self, maps: Sequence[np.ndarray]) -> tuple[list, list]:
        """The output deltas of every layer and a convolution's d (others: empty), for ``maps``."""
        none = _empty(4, maps[0].dtype, True)
        return ([np.empty_like(a) for a in maps[1:]],
                [np.empty_like(a) if type(layer) is Conv else none for layer, a in zip(self.run, maps[1:])])

    def _forward_arrays(self, x: np.ndarray) -> tuple[list, list, list]:
        """The maps [x, a_1, …], padded inputs (None: the input itself) and arg-max arrays of a pass on x."""
        n, dtype = x.shape[-1], x.dtype
        maps, padded, args = [x], [], []
        for layer in self.run:
            h, w, c = layer.out_shape
            maps.append(np.empty((c, h, w, n), dtype=dtype))
            if type(layer) is Conv and layer.pads != (0, 0, 0, 0):
                top, bottom, left, right = layer.pads
                hi, wi, ci = layer.in_shape
                padded.append(np.zeros((ci, hi + top + bottom, wi + left + right, n), dtype=dtype))
            else:
                padded.append(None)  # the layer's input itself
            args.append(np.empty((c, h, w, n), dtype=np.uint8) if type(layer) is MaxPool else self._none)
        return maps, padded, args

    def backward(self, maps: Sequence[np.ndarray], delta: np.ndarray) -> None:
        """Backpropagate ``delta`` (of the last layer's output) after :meth:`forward` gave ``maps``.

        Leaves each layer's ``_d`` and a convolution's ``grads``, as its ``backward`` does.
        """
        run = self.run
        n, dtype = delta.shape[-1], delta.dtype
        deltas, ds, dws, dbs = self._arrays("backward", n, dtype, lambda: self._backward_arrays(maps))
        deltas = [*deltas[:-1], np.ascontiguousarray(delta)]  # the last one is given
        padded = [layer._cache["x"] if type(layer) is Conv else x for layer, x in zip(run, maps[:-1])]
        args = [layer._cache["arg"] if type(layer) is MaxPool else self._none for layer in run]
        r, k = self.rooms
        self.kernels.backward(self.rows, self.slopes, self.conv_params("weight"),
                              filled(maps, r + 1), filled(padded, r), filled(args, r), filled(deltas, r),
                              filled(ds, r), filled(dws, k), filled(dbs, k))
        leave(self._backward_state(deltas, ds, dws, dbs))

    def train(self, x: np.ndarray, y: np.ndarray, rows: np.ndarray, head: Sequence[Layer],
              out: Layer, keep: bool = False) -> tuple[list[np.ndarray], float, np.ndarray, np.ndarray]:
        """Forward and backward through the run, the dense layers ``head`` and the output layer ``out`` in one call.

        For a network of map layers, dense layers and an output layer only (:meth:`covers`). Each
        layer, the output layer included, is left with the state its own forward / backward leaves.

        Parameters
        ----------
        x : (M, H, W, C) images, C-contiguous;  y : (M, K) targets
        rows : (N,) int, the batch's images: x[rows], y[rows] (taken by the kernel)
        head : the dense layers after the run;  out : the output layer
        keep : bool
            Run in the arrays of the last call that kept them (:meth:`bind`), and keep this one's.

        Returns
        -------
        maps : [x as (C, H, W, N), a_1, …, a_L, then each dense layer's (U, N)];  L : the loss;
        o, e : (N, K) outputs and o − y
        """
        rows = np.asarray(rows, dtype=np.int64)
        step = self.bind(x, len(rows), head, out, keep)
        loss = step.run(x, y, rows)
        return step.maps, loss, step.o, step.e

    def bind(self, x: np.ndarray, n: int, head: Sequence[Layer], out: Layer, keep: bool = False) -> "Step":
        """:meth:`train`'s call for batches of ``n`` images like those of ``x`` with all but the data made
        (:class:`Step`); with :attr:`reuse` or ``keep``, the last one kept while it still :meth:`~Step.fits`
        (its arrays then hold this call's results too), and this one kept."""
        keep = keep or self.reuse
        step = self._kept.get("step") if keep else None
        if step is None or not step.fits(x, n, (*self.run, *head, out)):
            self.drop_step()  # one set of step arrays alive at a time
            self._forget(out, head)
            step = Step(self, x, n, head, out)
            if keep:
                self._kept["step"] = step
        return step

    def drop_step(self) -> None:
        """Let go of the step :meth:`bind` kept (the layers keep what its last run left them)."""
        self._kept.pop("step", None)

    def kept_step(self) -> "Step | None":
        """The step :meth:`bind` kept, if any."""
        return self._kept.get("step")

    def covers(self, net_layers: Sequence[Layer], out: Layer) -> bool:
        """Whether :meth:`train` can run the whole network: this run, then only dense layers the kernels
        can take (:func:`_plain`), and ``out`` a plain sigmoid or softmax output layer (C-contiguous)."""
        return all(type(layer) is Dense and _plain(layer) for layer in net_layers[1 + len(self.run):]) \
            and type(out) in (SigmoidOutput, SoftmaxOutput) and not vars(out).keys() & {"forward", "backward", "loss"} \
            and all(p.flags.c_contiguous for p in out.params.values())

    def _train_arrays(self, n: int, x: np.ndarray, head: Sequence[Layer], out: Layer) -> tuple:
        """Every array :meth:`train` fills, for a batch of ``n`` images like those of ``x``."""
        dtype = x.dtype
        h, w, c = x.shape[1:]
        maps, padded, args = self._forward_arrays(np.empty((c, h, w, n), dtype=dtype))
        deltas, ds = self._delta_arrays(maps)
        weights = [layer.params["weight"] for layer in (*head, out)]  # (U, F) each
        hxs = [np.empty((weights[0].shape[1], n), dtype=dtype), *(np.empty((wt.shape[0], n), dtype=dtype)
                                                                  for wt in weights[:-1])]
        hds = [np.empty((wt.shape[0], n), dtype=dtype) for wt in weights]
        hdxs = [np.empty((wt.shape[1], n), dtype=dtype) for wt in weights]
        ot, log_ot, et = (np.empty((out.params["weight"].shape[0], n), dtype=dtype) for _ in range(3))
        # the gradients as runs of one buffer, in the order of the parameters, and 2 spare elements
        # (the distributed gradient hook sums the buffer as it is: see Step.flat)
        shapes = [p.shape for layer in (*self.convs, *head, out) for p in (layer.params["weight"], layer.params["bias"])]
        flat, grads = views.runs_of_one_buffer(shapes, dtype, spare=2)
        dws, dbs = grads[0:2 * len(self.convs):2], grads[1:2 * len(self.convs):2]
        hdws, hdbs = grads[2 * len(self.convs)::2], grads[2 * len(self.convs) + 1::2]
        return (maps, padded, args, deltas, ds, dws, dbs, hxs, hds, hdxs, hdws, hdbs, ot, log_ot, et, flat)


class Step:
    """A :meth:`Stack.train` call bound to its arrays: every argument but the data and the batch's rows, made once.

    A batch slice's thread then runs a step as one kernel call and a few assignments
    (:meth:`run`): the per-slice checks, allocations and thirty-odd arguments cost 40–80 µs of
    Python per step, held under the GIL while the other slice's thread waited to start.

    Parameters
    ----------
    stack : the run of map layers;  x : (M, H, W, C) images like those the step will train on (their
    shape and dtype; the step keeps no reference to them);  n : the batch size
    head : the dense layers after the run;  out : the output layer
    """

    def __init__(self, stack: Stack, x: np.ndarray, n: int, head: Sequence[Layer], out: Layer) -> None:
        # no reference to the stack itself: it keeps this step (Stack.bind), and a cycle would hold
        # the step's arrays until the cyclic garbage collector's next full pass
        self.kernels, self.depth = stack.kernels, len(stack.run)
        self.n, self.head, self.out = n, list(head), out
        self.like = x.shape[1:], x.dtype
        arrays = stack._arrays("train", n, x.dtype, lambda: stack._train_arrays(n, x, head, out))
        maps, padded, args, deltas, ds, dws, dbs, hxs, hds, hdxs, hdws, hdbs, ot, log_ot, et, flat = arrays
        padded = [p if p is not None else m for p, m in zip(padded, maps)]
        fc, convs = [*head, out], stack.convs
        acts = [layer.activation.kernel_args for layer in head]
        (r, k), h = stack.rooms, room(len(fc), "fc")  # the tuples' lengths
        self.args = (
            stack.rows, stack.slopes, stack.conv_params("weight"), stack.conv_params("bias"), filled(maps, r + 1),
            filled(padded, r), filled(args, r), filled(deltas, r), filled(ds, r), filled(dws, k), filled(dbs, k),
            np.array([c for c, _ in acts], dtype=np.int64), np.array([s for _, s in acts], dtype=np.float64),
            filled([f.params["weight"] for f in fc], h), filled([f.params["bias"] for f in fc], h), filled(hxs, h),
            filled(hds, h), filled(hdxs, h), filled(hdws, h), filled(hdbs, h), type(out) is SoftmaxOutput,
            ot, log_ot, et)
        #: [x as (C, H, W, N), a_1, …, a_L, each dense layer's (U, N)]; o, e : (N, K) (overwritten by each run)
        self.maps, self.o, self.e = [*maps, *hxs[1:]], ot.T, et.T
        #: the gradient arrays a run fills (:meth:`gradients`)
        self._grads = tuple(g for pair in (*zip(dws, dbs), *zip(hdws, hdbs)) for g in pair)
        #: (P + 2,) every gradient a run fills (:meth:`gradients`), one after the other, then 2 spare elements
        self.flat = flat
        #: Each layer's state after a run, as (dict, key, value): what its own forward and backward leave.
        self.state = (stack._forward_state(padded, maps, args) + stack._backward_state(deltas, ds, dws, dbs)
                      + self._head_state(hxs, hds, hdws, hdbs, log_ot))
        #: (layer, its activation's kernel arguments or None, its parameter arrays) of every layer the
        #: step runs, the output layer last: what :meth:`fits` compares
        self._bound = [(layer, _activation_args(layer), tuple(layer.params.values()))
                       for layer in (*stack.run, *head, out)]

    def _head_state(self, hxs: Sequence, hds: Sequence, hdws: Sequence, hdbs: Sequence,
                    log_ot: np.ndarray) -> list[tuple[dict, str, object]]:
        """What the dense layers' and the output layer's own forward and backward leave, as (dict, key, value)."""
        state: list[tuple[dict, str, object]] = []
        for i, layer in enumerate(self.head):
            state += [(layer._cache, "x", hxs[i]), (layer._cache, "a", hxs[i + 1]), (vars(layer), "_d", hds[i]),
                      (vars(layer), "grads", {"weight": hdws[i], "bias": hdbs[i]})]
        out = vars(self.out)
        state += [(out, "_fv", hxs[-1].T), (out, "_o", self.o), (out, "_d", hds[-1].T),
                  (out, "grads", {"weight": hdws[-1], "bias": hdbs[-1]})]
        return state + ([(out, "log_o", log_ot.T)] if type(self.out) is SoftmaxOutput else [])

    def gradients(self) -> tuple[np.ndarray, ...]:
        """The gradient arrays a run fills, in the order of the layers' parameters (weight, bias): the
        convolutions', the dense layers', the output layer's."""
        return self._grads

    def fits(self, x: np.ndarray, n: int, layers: Sequence[Layer]) -> bool:
        """Whether this kept call still is :meth:`Stack.train`'s for ``n`` images like ``x`` through ``layers``
        (the run, the dense layers, the output layer): the same layer objects, none wrapped, the same
        built-in activations with the same slopes, the same parameter arrays."""
        if n != self.n or (x.shape[1:], x.dtype) != self.like or len(layers) != len(self._bound):
            return False
        for layer, (bound, args, params) in zip(layers, self._bound):
            own = vars(layer)
            if layer is not bound or "forward" in own or "backward" in own:
                return False
            if args is not None and not (layer.activation.has_kernel and layer.activation.kernel_args == args):
                return False
            now = layer.params
            if len(now) != len(params) or any(a is not b for a, b in zip(now.values(), params)):
                return False
        return True

    def still(self, layers: Sequence[Layer], out: Layer, x: np.ndarray, y: np.ndarray, n: int) -> bool:
        """Whether this kept step is still the one-thread :meth:`Stack.train` of a network of ``layers``
        (Input first) and ``out`` for ``n`` images like ``x`` and targets ``y``: in one pass over the layers,
        what :meth:`Stack.fits`, :meth:`Stack.covers` and :meth:`fits` check (the output layer's loss not
        wrapped either; the data C-contiguous).

        The network's one-thread training step asks this first within
        :meth:`~convprop.engine.network.Network.reusing_step_arrays`: the full path's checks, made
        again on caches the kernel has just cooled, took 35–45 µs of a step's Python.
        """
        return "loss" not in vars(out) and x.flags.c_contiguous and y.flags.c_contiguous \
            and self.fits(x, n, (*layers[1:], out))

    def run(self, x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> float:
        """Train on images x[rows], targets y[rows] (x : (M, H, W, C), C-contiguous; y : (M, K); rows : (n,)
        int64): the kernel, then each layer left with the state its own forward and backward leave
        (:attr:`state`); returns the loss."""
        loss = self.kernels.train(x, y, rows, 0, *self.args, *parallel.start_signal())
        leave(self.state)
        return float(loss)


def _activation_args(layer: Layer) -> tuple[int, float] | None:
    """A layer's activation's :attr:`~.activations.Activation.kernel_args`, None when it has no activation."""
    activation = getattr(layer, "activation", None)
    return None if activation is None else activation.kernel_args


def leave(state: Sequence[tuple[dict, str, object]]) -> None:
    """Set each (dict, key, value) of ``state``: a layer's ``__dict__`` or ``_cache`` entry; a dict value (a
    layer's ``grads``) as a copy, so that an array a user put in the last one does not stay for this run."""
    for where, key, value in state:
        where[key] = value.copy() if type(value) is dict else value
