"""The network: a list of layers, a sigmoid output, forward / backward / step."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from .._validation import check_dtype, check_images, check_targets, positive_int
from ..errors import ConvpropError
from .initialization import INITS, toolbox_init
from .layers import Conv, Dense, Input, Layer, SigmoidOutput, SoftmaxOutput, Subsample
from . import backend, memory, parallel, sliced, slices, stack, views
from .ops import from_nhwc, to_nhwc
from .parallel import blas_limit

#: Output layers by the name given to :class:`Network`'s ``output``.
OUTPUTS = {"sigmoid": SigmoidOutput, "softmax": SoftmaxOutput}

#: Largest number of images pushed through the network at once by
#: :meth:`Network.predict_proba` (bounds the memory of the patch matrices).
PREDICT_CHUNK = 500
#: Working memory (bytes) of one chunk of :meth:`Network.predict_proba`, as :func:`plan_network`
#: estimates it: big images go through in smaller chunks (at least one image at a time).
PREDICT_BYTES = 64 << 20


class NetworkPlan(NamedTuple):
    """A network's shapes and sizes, found by arithmetic alone (see :func:`plan_network`).

    Attributes
    ----------
    map_shape : tuple of int
        Shape of the last layer's output.
    params : int
        Number of parameter values, the output layer's included.
    values : int
        Per image: values of the arrays one forward pass allocates (input, every layer's
        outputs and copies), the basis of the working-memory estimates of prediction and training.
    """

    map_shape: tuple[int, ...]
    params: int
    values: int


def plan_network(layers: Sequence[Layer], n_outputs: int) -> NetworkPlan:
    """Check ``layers`` as :class:`Network` would and size the network, without allocating anything.

    Loaders call it on the sizes a file claims before building the network, so that a few-byte
    file cannot make a terabyte-sized one.

    Raises
    ------
    ConvpropError
        Whatever :class:`Network` would say: Input not first, maps after a Dense layer, a layer
        that does not fit its input.
    """
    layers = list(layers)
    if not layers or not isinstance(layers[0], Input):
        raise ConvpropError("the first layer must be Input(height, width[, channels])")
    n_outputs = positive_int(n_outputs, "n_outputs")
    shape = layers[0].shape
    params, values = 0, int(np.prod(shape, dtype=object))
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer) or isinstance(layer, SigmoidOutput):
            raise ConvpropError(
                f"layer {i} must be Input, Conv or Subsample (the toolbox's), MaxPool or Dense, got {layer!r}"
            )
        if i and isinstance(layer, Input):
            raise ConvpropError(f"layer {i}: Input may only be the first layer")
        if len(shape) != 3 and not isinstance(layer, Dense):
            raise ConvpropError(
                f"Layer {i} ({layer.spec()}) needs maps as input, but layer {i - 1} gives a vector of "
                f"{shape[0]}: only Dense layers may follow a Dense layer"
            )
        shape, p, v = layer.plan(shape, where=f"Layer {i}")
        params, values = params + p, values + v
    _, p, v = SigmoidOutput(n_outputs).plan((int(np.prod(shape, dtype=object)),), where="output")
    return NetworkPlan(tuple(shape), params + p, values + v)


class Network:
    """A classic CNN: an input layer, convolution / subsampling layers, a sigmoid output.

    Parameters
    ----------
    layers : sequence of Layer
        Starts with :class:`~convprop.layers.Input`; then any mix of
        :class:`~convprop.layers.Conv` and :class:`~convprop.layers.Subsample`
        (the toolbox's layers), :class:`~convprop.layers.MaxPool` and
        :class:`~convprop.layers.Dense` (a Dense layer flattens maps; only
        Dense layers may follow it). The last maps (or vector) are flattened
        into the feature vector.
    n_outputs : int
        Number of outputs (classes).
    dtype : float64 (default) or float32
        Type of parameters, activations and gradients.
    seed : int, numpy Generator or None
        Source of the toolbox's initialisation (kernels uniform in
        ±sqrt(6/(fan_in + fan_out)), output weights likewise, biases 0).
    output : {"sigmoid", "softmax"}, default "sigmoid"
        "sigmoid": the toolbox's sigmoid units on the loss ½·Σ(o − y)²/N;
        "softmax": softmax outputs on the cross-entropy −Σ y·log o / N.
    init : {"toolbox", "he"}, default "toolbox"
        "toolbox": every weight uniform in ±sqrt(6/(fan_in + fan_out)), biases 0;
        "he": hidden Conv and Dense weights uniform in ±sqrt(6/fan_in) (for ReLU).

    Examples
    --------
    >>> from convprop import Network, Input, Conv, Subsample
    >>> net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)],
    ...               n_outputs=10, seed=0)
    >>> net.spec
    '28x28-6c5-s2-12c5-s2-10o'
    >>> net.n_features
    192
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        n_outputs: int,
        *,
        dtype: type | np.dtype | str = np.float64,
        seed: int | np.random.Generator | None = None,
        output: str = "sigmoid",
        init: str = "toolbox",
    ) -> None:
        layers = list(layers)
        if output not in OUTPUTS:
            raise ConvpropError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if init not in INITS:
            raise ConvpropError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        #: Sizes by arithmetic (see :func:`plan_network`): every check before any allocation.
        self.plan = plan_network(layers, n_outputs)
        # The network owns copies: one list of layers may build several networks.
        layers = [copy.deepcopy(layer) for layer in layers]
        self.dtype = check_dtype(dtype)
        self.n_outputs = positive_int(n_outputs, "n_outputs")
        self.layers = layers
        shape = layers[0].shape
        for i, layer in enumerate(layers):
            shape = layer.build(shape, self.dtype, where=f"Layer {i}")
        #: Shape of the last layer's output: maps (H, W, C), or (units,) after a Dense layer.
        self.map_shape: tuple[int, ...] = shape
        self.output = OUTPUTS[output](self.n_outputs)
        self.output.build((int(np.prod(shape)),), self.dtype, where="output")
        toolbox_init(self, np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed, init)
        #: After forward: the outputs (N, n_outputs); see also :attr:`activations`.
        self.o: np.ndarray | None = None
        self._maps: list[np.ndarray] = []  # every layer's maps, internal (C, H, W, N) layout
        #: After a forward pass in batch slices (:mod:`convprop.engine.slices`): the replicas
        #: that ran them, and each one's [lo, hi) of the batch; empty otherwise.
        self._slices: list[Network] = []
        self._spans: list[tuple[int, int]] = []
        #: After a forward pass: how many layers after Input ran as one call (:mod:`convprop.engine.stack`).
        self._stacked = 0
        #: Work state kept from step to step: the replicas (``_twins``), the one-call run of map layers
        #: (``_kept_stack``), the replicas' bound training steps (:mod:`.sliced`).
        self._twins: list[Network] = []
        self._kept_stack: stack.Stack | None = None
        self._sliced: sliced.SlicedStep | None = None
        #: Within :meth:`reusing_step_arrays`: a one-thread training step runs in the last one's arrays.
        self._reuse_step = False
        #: The parameters and gradients as 1-D views, by use (:meth:`_flat`).
        self._flats: dict[str, tuple] = {}
        #: After backward: the loss and the error o − y.
        self.L: float | None = None
        self.e: np.ndarray | None = None
        #: The toolbox's smoothed loss ``rL`` (1-D) when loaded from a .mat file, else None.
        self.rL: np.ndarray | None = None
        #: Notes kept with the network in its file (dataset, class names …), JSON values.
        self.extra: dict = {}

    # ------------------------------------------------------------ description

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the input."""
        return self.layers[0].shape

    @property
    def n_features(self) -> int:
        """Length of the feature vector fed to the output layer."""
        return int(np.prod(self.map_shape))

    @property
    def output_kind(self) -> str:
        """"sigmoid" (the toolbox's) or "softmax"."""
        return "softmax" if isinstance(self.output, SoftmaxOutput) else "sigmoid"

    def toolbox_mismatch(self) -> str | None:
        """Why the toolbox's cnnff could not run this network, or None when it could."""
        if self.image_shape[2] != 1:
            return f"the toolbox's cnnff takes one input map; this network has {self.image_shape[2]} input channels"
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Conv) and not layer.is_toolbox:
                return (f"layer {i} ({layer.spec()}) is not the toolbox's convolution "
                        "(sigmoid, 'valid', stride 1, mode 'convolution')")
            if not isinstance(layer, (Input, Conv, Subsample)):
                return f"layer {i} ({type(layer).__name__}, {layer.spec()}) has no DeepLearnToolbox equivalent"
        if self.output_kind != "sigmoid":
            return "its softmax output has no DeepLearnToolbox equivalent (the toolbox has sigmoid outputs)"
        return None

    @property
    def spec(self) -> str:
        """Compact description, e.g. ``28x28-6c5-s2-12c5-s2-10o``."""
        return "-".join([layer.spec() for layer in self.layers] + [self.output.spec()])

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        out = "" if self.output_kind == "sigmoid" else f", output={self.output_kind!r}"
        return f"Network([{inner}], n_outputs={self.n_outputs}, dtype={self.dtype.name}{out})"

    def named_layers(self) -> Iterator[tuple[str, Layer]]:
        """(name, layer) for every layer with parameters: ``conv1``, ``conv3``, ``output``."""
        for i, layer in enumerate(self.layers):
            if layer.params:
                yield f"{type(layer).__name__.lower()}{i}", layer
        yield "output", self.output

    def _trainable(self) -> list[Layer]:
        """The layers of :meth:`named_layers`, in order, without their names (the training step's)."""
        return [layer for layer in self.layers if layer.params] + [self.output]

    def parameters(self) -> dict[str, np.ndarray]:
        """Every parameter tensor by name (``conv1.weight``, …, ``output.bias``); live arrays."""
        return {f"{name}.{p}": arr for name, layer in self.named_layers() for p, arr in layer.params.items()}

    def gradients(self) -> dict[str, np.ndarray]:
        """The gradients of the last :meth:`backward`, named as :meth:`parameters`."""
        grads = {}
        for name, layer in self.named_layers():
            if not layer.grads:
                raise ConvpropError("no gradients yet: call forward(x) then backward(y) first")
            grads.update({f"{name}.{p}": g for p, g in layer.grads.items()})
        return grads

    def _gradient_buffer(self) -> np.ndarray | None:
        """The array whose runs are the layers' gradients now, in the order of :meth:`parameters`, then 2
        spare elements (:attr:`.stack.Step.flat`: a one-thread step's kept arrays); None when they are
        elsewhere (another path, an array replaced in ``grads``)."""
        run = self.__dict__.get("_kept_stack")
        step = run.kept_step() if run is not None else None
        if step is None:
            return None
        own, i = step.gradients(), 0
        for layer in (*self.layers, self.output):
            params = layer.params
            if params:
                grads = layer.grads
                for p in params:
                    if i == len(own) or grads.get(p) is not own[i]:
                        return None
                    i += 1
        return step.flat if i == len(own) else None

    def __getstate__(self) -> dict:
        # Copies and pickles carry the parameters, not the last batch's maps and outputs.
        state = self.__dict__.copy()
        state.update(o=None, _maps=[], e=None, _slices=[], _spans=[], _twins=[], _kept_stack=None, _sliced=None,
                     _reuse_step=False, _flats={})
        return state

    def copy(self, dtype: type | np.dtype | str | None = None) -> "Network":
        """A deep copy, optionally converted to another dtype."""
        clone = copy.deepcopy(self)
        if dtype is not None:
            clone.dtype = check_dtype(dtype)
            for layer in [*clone.layers, clone.output]:
                layer.params = {k: v.astype(clone.dtype) for k, v in layer.params.items()}
                layer.grads = {k: v.astype(clone.dtype) for k, v in layer.grads.items()}
        return clone

    @property
    def activations(self) -> list[np.ndarray]:
        """After forward: every layer's maps as (N, H, W, C) arrays (views of the engine's own).

        A Dense layer's output is an (N, units) array.
        """
        maps = self._maps
        if self._slices:  # the batch went through in slices: their maps, joined
            maps = [slices.join_batch(parts, axis=-1) for parts in zip(*(t._maps for t in self._slices))]
        return [a.T if a.ndim == 2 else to_nhwc(a) for a in maps]

    # ------------------------------------------------------- forward/backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Run the network on a batch of images.

        Parameters
        ----------
        x : array_like, shape (N, H, W) or (N, H, W, C)
            Images (one image without the N axis is accepted too).

        Returns
        -------
        o : ndarray, shape (N, n_outputs) (or (n_outputs,) for one image)
            The sigmoid outputs, also kept as ``self.o`` for :meth:`backward`.
        """
        maps, single = check_images(x, self.image_shape, self.dtype)
        o = self.forward_batch(maps)
        return o[0] if single else o

    def forward_batch(self, maps: np.ndarray) -> np.ndarray:
        """Forward pass on a batch already validated by :func:`convprop._validation.check_images`.

        For callers that check a whole data set once and then feed it batch by
        batch (the training loop, gradcheck, explain): no per-batch checks.

        Parameters
        ----------
        maps : ndarray, shape (N, H, W, C), of the network's dtype

        Returns
        -------
        o : ndarray, shape (N, n_outputs)

        Inside, maps travel batch-last, (C, H, W, N); the feature vector is
        flattened (H, W, C) per sample, as the output weights expect. With the
        compiled engine and k > 1 threads, the batch goes through as k slices
        on k threads (:mod:`convprop.engine.slices`).
        """
        k = self._new_pass(maps.shape[0])
        return self._forward_slices(maps, k) if k > 1 else self._forward_whole(maps)

    def _forward_whole(self, maps: np.ndarray) -> np.ndarray:
        """:meth:`forward_batch` of the whole batch on this network's own layers.

        On the compiled engine and one thread, the convolution and pooling layers after Input
        run as one call (:mod:`convprop.engine.stack`); :meth:`backward_batch` then does the same.
        """
        self._maps = self.o = None  # the last pass's arrays go before this one's come
        maps = from_nhwc(maps)
        self._maps = [maps]
        run = self._stack() if backend.compiled() is not None and parallel.n_threads() == 1 else None
        if run is not None:
            self._maps = run.forward(maps)
            maps = self._maps[-1]
        self._stacked = len(run.run) if run is not None else 0
        for layer in self.layers[1 + self._stacked:]:
            maps = layer.forward(maps)
            self._maps.append(maps)
        # fvᵀ (F, N), contiguous, so that fv = fvᵀᵀ meets the output weights as colsᵀ meets
        # the kernels in Conv (each sample's outputs then do not depend on the batch size).
        if maps.ndim == 2:  # a Dense layer's (units, N)
            fv = maps.T
        else:
            fv = np.ascontiguousarray(maps.transpose(1, 2, 0, 3)).reshape(-1, maps.shape[-1]).T
        self.o = self.output.forward(fv)
        return self.o

    def _stack(self, reuse: bool | None = None) -> stack.Stack | None:
        """The layers after Input that run as one compiled call (kept while they stay the same), or None.

        ``reuse`` (made anew only): see :class:`.stack.Stack`; None: when inside a batch slice's task
        (a replica, whose arrays are only read into the network's own).
        """
        kept = self.__dict__.get("_kept_stack")
        if kept is None or not kept.fits(self.layers):
            run = stack.layers(self.layers)
            reuse = parallel.inside_task() if reuse is None else reuse
            kept = self._kept_stack = stack.Stack(run, reuse=reuse) if run else None
        return kept

    def _new_pass(self, n: int) -> int:
        """Forget the last pass's slices and deltas; the number of slices for ``n`` images (1: none)."""
        memory.keep_freed_arrays()
        self._forget_pass()
        return slices.count(n) if backend.compiled() is not None else 1

    def _forget_pass(self) -> None:
        """Forget the last pass's slices and each layer's per-call state: nothing of it may pass for this one's."""
        self._slices, self._spans, self._stacked = [], [], 0
        for layer in [*self.layers, self.output]:
            layer.__dict__.update(layer._call_state)

    def _forward_slices(self, maps: np.ndarray, k: int, targets: np.ndarray | None = None,
                        rows: np.ndarray | None = None) -> np.ndarray:
        """:meth:`forward_batch` as k slices of the batch, each through a replica on its own thread.

        With ``targets``, each slice's backward pass follows its forward pass in the same task
        (:meth:`train_batch` of a network that no one call trains: one hand-off per step; ``rows``
        as there).
        """
        n = maps.shape[0] if rows is None else len(rows)
        spans = slices.bounds(n, k)
        twins = self._replicas(k)

        def one(i: int):
            lo, hi = spans[i]
            if targets is None:
                return twins[i].forward_batch(maps[lo:hi])
            if rows is None:
                return twins[i].train_batch(maps[lo:hi], targets[lo:hi])
            return twins[i].train_batch(maps, targets, rows[lo:hi])

        results = parallel.run_tasks(one, k)
        self._took_slices(twins, spans)
        if targets is not None:
            self._join_backward(results, n)
        return self.o

    def _took_slices(self, twins: Sequence["Network"], spans: Sequence[tuple[int, int]]) -> None:
        """After a pass in slices: the replicas that ran it and their spans, each layer's parts (the
        replicas' layers, read on demand), and the outputs joined."""
        self._slices, self._spans, self._maps = list(twins), list(spans), []
        for layer, parts in zip([*self.layers, self.output], zip(*([*t.layers, t.output] for t in twins))):
            layer._parts = list(parts)
        self.o = np.concatenate([t.o for t in twins])

    def _train_slices(self, maps: np.ndarray, targets: np.ndarray, rows: np.ndarray | None, k: int,
                      plan: sliced.SlicedStep | None = None) -> float:
        """:meth:`train_batch` as k slices, each trained in one bound compiled call (:mod:`.sliced`) on its
        own thread: the numbers of :meth:`_forward_slices` with ``targets``, bit for bit. ``plan``: the
        kept one, known to fit (:meth:`_train_kept`)."""
        n = maps.shape[0] if rows is None else len(rows)
        spans = slices.bounds(n, k)
        if plan is None:
            twins = self._replicas(k)
            sizes = [hi - lo for lo, hi in spans]
            plan = self.__dict__.get("_sliced")
            if plan is None or not plan.fits(twins, maps, sizes):
                plan = self._sliced = sliced.SlicedStep(twins, maps, sizes)
        twins = plan.twins
        rows = np.arange(n, dtype=np.int64) if rows is None else rows
        reuse = self.__dict__.get("_reuse_step", False)
        losses = plan.run(maps, targets, rows, spans, bound=reuse)
        self._took_slices(twins, spans)
        weights = self._join_loss(losses, n)
        grads = iter(plan.gradients(weights, keep=reuse))
        for layer in self._trainable():
            layer.grads = {"weight": next(grads), "bias": next(grads)}
        return self.L

    def _replicas(self, k: int) -> list["Network"]:
        """``k`` replicas (:meth:`_replica`), kept from the last sliced pass while they still share
        this network's layers' parameters and activations (:func:`.slices.is_replica`; making them anew
        took 35 µs of a 1.4 ms step)."""
        twins = self.__dict__.get("_twins") or []
        # all made at once from the same layers: the first one's check stands for all
        if len(twins) != k or len(twins[0].layers) != len(self.layers) or not all(
            slices.is_replica(tl, l) for tl, l in zip([*twins[0].layers, twins[0].output], [*self.layers, self.output])
        ):
            twins = self._twins = [self._replica() for _ in range(k)]
        return twins

    def _replica(self) -> "Network":
        """A network on the same parameter arrays, with layers of its own for one batch slice."""
        twin = object.__new__(Network)
        twin.__dict__.update(slices.own_state(self))
        twin.layers = [slices.replica(layer) for layer in self.layers]
        twin.output = slices.replica(self.output)
        return twin

    def backward(self, y: np.ndarray) -> float:
        """Backpropagate the loss of the last :meth:`forward` against targets ``y``.

        Parameters
        ----------
        y : array_like, shape (N,) integer labels or (N, n_outputs) targets

        Returns
        -------
        L : float
            The loss ½·Σ(o − y)²/N (sigmoid output) or −Σ y·log o / N
            (softmax output); the gradients are left in each layer's
            ``grads`` (see :meth:`gradients`).
        """
        if self.o is None:
            raise ConvpropError("backward(y) needs a forward(x) first")
        return self.backward_batch(check_targets(y, self.o.shape[0], self.n_outputs, self.dtype))

    def backward_batch(self, targets: np.ndarray) -> float:
        """Backward pass after :meth:`forward_batch`, on already validated targets.

        Parameters
        ----------
        targets : ndarray, shape (N, n_outputs), of the network's dtype

        Returns
        -------
        L : float
            The batch's loss; the gradients are left in each layer's ``grads``.
        """
        if self._slices:
            return self._backward_slices(targets)
        self.L, self.e = self.output.loss(self.o, targets)  # sigmoid: ½·Σ(o−y)²/N, e = o − y
        delta = self.output.backward(self.e)
        delta = delta.T if len(self.map_shape) == 1 else from_nhwc(delta.reshape(self.o.shape[0], *self.map_shape))
        # The first layer that needs no input delta is the one right after Input.
        stacked = self._stacked
        for i in range(len(self.layers) - 1, stacked, -1):
            delta = self.layers[i].backward(delta, need_input_delta=i > 1)
        if stacked:
            self._stack().backward(self._maps[: stacked + 1], delta)
        return self.L

    def _backward_slices(self, targets: np.ndarray) -> float:
        """:meth:`backward_batch` after :meth:`_forward_slices`: each slice's on its own thread."""
        twins, spans = self._slices, self._spans
        losses = parallel.run_tasks(lambda i: twins[i].backward_batch(targets[spans[i][0]:spans[i][1]]), len(twins))
        return self._join_backward(losses, targets.shape[0])

    def _join_backward(self, losses: Sequence[float], n: int) -> float:
        """The slices' losses and gradients weighted by their sizes: L = Σ (n_i/N)·L_i, g likewise."""
        weights = self._join_loss(losses, n)
        slices.join_all_grads([*self.layers, self.output], weights)  # in slice order: same bits every run
        return self.L

    def _join_loss(self, losses: Sequence[float], n: int) -> list[float]:
        """L = Σ (n_i/N)·L_i and e (the slices' rows) after a sliced backward pass; the weights n_i/N."""
        weights = self._slice_weights(n)
        self.L = float(sum(w * loss for w, loss in zip(weights, losses)))
        self.e = np.concatenate([t.e for t in self._slices])
        return weights

    def _slice_weights(self, n: int) -> list[float]:
        """n_i / N of each slice of the last sliced pass: the weights of its means in the batch's."""
        return [(hi - lo) / n for lo, hi in self._spans]

    def train_batch(self, maps: np.ndarray, targets: np.ndarray, rows: np.ndarray | None = None) -> float:
        """:meth:`forward_batch` then :meth:`backward_batch`: the training loop's step.

        The same numbers; with batch slices (compiled engine, k > 1 threads) each slice's
        forward and backward run in one task, so the threads meet once per step, not twice.

        Parameters
        ----------
        maps : ndarray, shape (N, H, W, C), of the network's dtype (validated)
        targets : ndarray, shape (N, n_outputs), of the network's dtype (validated)
        rows : ndarray of int, shape (B,), optional
            The batch is ``maps[rows]``, ``targets[rows]`` (maps and targets then hold a whole
            data set): each slice takes its own images, in its own thread.

        Returns
        -------
        L : float
            The batch's loss; the gradients are left in each layer's ``grads``.
        """
        if not (maps.flags.writeable and targets.flags.writeable):
            # a read-only data set (np.load's mmap_mode, np.frombuffer): the batch's copy, else the kernels
            # need a second compiled version, for read-only arrays (15–25 s to compile, 2 MiB loaded)
            maps, targets = (maps.copy(), targets.copy()) if rows is None else (maps[rows], targets[rows])
            rows = None
        elif rows is not None and not (type(rows) is np.ndarray and rows.dtype == np.int64
                                       and rows.flags.c_contiguous and rows.flags.writeable):
            # the rows the kernels were compiled for (int64, contiguous, writeable): a view (reversed,
            # strided) or a read-only array (fit's order of every epoch is a read-only broadcast) is another
            # array type to Numba, and the whole step would compile again for it (15-40 s)
            rows = np.array(rows, dtype=np.int64, order="C")
        n = maps.shape[0] if rows is None else len(rows)
        loss = self._train_kept(maps, targets, rows, n)
        if loss is not None:
            return loss
        k = self._new_pass(n)
        run = self._stack() if backend.compiled() is not None else None
        whole = (run is not None and run.covers(self.layers, self.output) and maps.flags.c_contiguous
                 and targets.flags.c_contiguous)
        if k > 1 and whole:  # each slice's whole step in one call
            return self._train_slices(maps, targets, rows, k)
        if k > 1:
            self._forward_slices(maps, k, targets, rows)
            return self.L
        if whole and parallel.n_threads() == 1:  # the whole step in one call
            rows = np.arange(n) if rows is None else rows
            self._maps = self.o = self.e = None  # the last pass's arrays go before this one's come
            self._maps, self.L, self.o, self.e = run.train(maps, targets, rows, self.layers[1 + len(run.run):],
                                                           self.output, self.__dict__.get("_reuse_step", False))
            self._stacked = len(run.run)
            return self.L
        if rows is not None:
            maps, targets = maps[rows], targets[rows]
        self._forward_whole(maps)
        return self.backward_batch(targets)

    def _train_kept(self, maps: np.ndarray, targets: np.ndarray, rows: np.ndarray | None, n: int) -> float | None:
        """:meth:`train_batch` within :meth:`reusing_step_arrays` on the step it kept, when that still fits:
        one thread's :class:`.stack.Step` (:meth:`~.stack.Step.still`) or k slices'
        :class:`.sliced.SlicedStep` (:meth:`~.sliced.SlicedStep.still`), after one pass of checks
        instead of the full path's; returns the loss, or None (nothing done: the full path decides)."""
        if rows is None or not self.__dict__.get("_reuse_step") or backend.compiled() is None:
            return None
        k = slices.count(n)
        if k > 1:
            plan, twins = self.__dict__.get("_sliced"), self.__dict__.get("_twins") or [None]
            # the replicas _replicas keeps (a pass of another slice count makes new ones: the full path then
            # makes its own again, and so a new plan)
            if plan is None or twins[0] is not plan.twins[0] or len(twins) != k \
                    or not plan.still(self.layers, self.output, maps, targets, n, k):
                return None
            self._forget_pass()
            return self._train_slices(maps, targets, rows, k, plan)
        run = self.__dict__.get("_kept_stack")
        step = run.kept_step() if run is not None else None
        if step is None or parallel.n_threads() != 1 or not step.still(self.layers, self.output, maps, targets, n):
            return None
        self._forget_pass()
        loss = step.run(maps, targets, rows)
        self._maps, self.L, self.o, self.e, self._stacked = step.maps, loss, step.o, step.e, step.depth
        return loss

    @contextlib.contextmanager
    def reusing_step_arrays(self) -> Iterator[None]:
        """Within: each :meth:`train_batch` on one thread runs in the arrays of the last one instead of new
        ones (maps, deltas, gradients, outputs: a few MiB for the toolbox's 50-image batch).

        That spares a step's allocations and bookkeeping (2–5 % of a one-thread step); the
        numbers are the same, bit for bit. What a step leaves (:attr:`activations`,
        :meth:`gradients`, :attr:`o`) is then overwritten by the next step: copy what you keep.
        The training loop runs each epoch's batches so. On leaving, the kept arrays are let go.
        (Batch slices on k > 1 threads always run in arrays of their own, kept from step to step;
        within, the other threads run their slices of the steps on the same data in a compiled
        loop, with no Python between steps: :meth:`.parallel.Crew.run_bound`, which ends on leaving.)
        """
        before = self.__dict__.get("_reuse_step", False)
        self._reuse_step = True
        try:
            yield
        finally:
            self._reuse_step = before
            if not before:  # the outermost block: let go of what it kept
                run, plan = self.__dict__.get("_kept_stack"), self.__dict__.get("_sliced")
                if run is not None and not run.reuse:
                    run.drop_step()
                if plan is not None:
                    plan.drop_kept()  # the joined gradients: a step after the block must not overwrite them
                parallel.unbind()

    def step(self, alpha: float) -> None:
        """Plain SGD: every parameter −= alpha · its gradient (the toolbox's cnnapplygrads)."""
        self._sgd(alpha)

    def _sgd(self, alpha: float) -> None:
        """:meth:`step`'s work (the warm-up calls it too, not a user's wrapper of :meth:`step`)."""
        kernels = backend.compiled()
        pairs = [(arr, layer.grads[p]) for layer in self._trainable() for p, arr in layer.params.items()]
        flat = self._flat("sgd", [a for pair in pairs for a in pair]) if kernels is not None else None
        if flat is not None:  # one call for all of them, rounded as NumPy rounds: the same bits
            kernels.arrays.sgd(flat[0::2], flat[1::2], alpha)
            return
        for arr, grad in pairs:
            arr -= alpha * grad

    def _flat(self, use: str, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...] | None:
        """Each array as 1-D for a kernel that takes them in one tuple, kept while the same
        (:func:`.views.kept_flat`); None when one is not C-contiguous."""
        return views.kept_flat(self.__dict__.setdefault("_flats", {}), use, arrays)

    def all_finite(self) -> bool:
        """Whether every parameter is finite (no NaN, no ±inf)."""
        kernels = backend.compiled()
        params = [arr for layer in self._trainable() for arr in layer.params.values()]
        flat = self._flat("finite", params) if kernels is not None else None
        if flat is not None:
            return bool(kernels.arrays.all_finite(flat))
        return all(np.isfinite(a).all() for a in params)

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """The loss on a batch, ½·Σ(o − y)²/N or −Σ y·log o / N (no gradients are kept)."""
        self.forward(x)
        o = self.o
        targets = check_targets(y, o.shape[0], self.n_outputs, self.dtype)
        if self._slices:  # each slice's output layer kept what its loss needs (softmax: log o)
            return float(sum(w * t.output.loss(t.o, targets[lo:hi])[0]
                             for w, t, (lo, hi) in zip(self._slice_weights(o.shape[0]), self._slices, self._spans)))
        return self.output.loss(o, targets)[0]

    # -------------------------------------------------------------- inference

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Output activations for images, computed in chunks.

        Chunks hold at most :data:`PREDICT_CHUNK` images and about :data:`PREDICT_BYTES` of
        working memory (estimated from the layer shapes, :attr:`plan`); nothing of the last
        chunk stays referenced afterwards, so memory beyond ``x`` and the result is bounded
        whatever N.

        Parameters
        ----------
        x : array_like, shape (N, H, W[, C]) or one image (H, W[, C])

        Returns
        -------
        ndarray, shape (N, n_outputs), or (n_outputs,) for one image
        """
        maps, single = check_images(x, self.image_shape, self.dtype)
        out = np.empty((maps.shape[0], self.n_outputs), dtype=self.dtype)
        step = self.chunk_size()
        try:
            with blas_limit():
                for start in range(0, maps.shape[0], step):
                    out[start : start + step] = self.forward_batch(maps[start : start + step])
        finally:
            self.release()
        return out[0] if single else out

    def chunk_size(self, max_bytes: int = PREDICT_BYTES) -> int:
        """Images per inference chunk: at most :data:`PREDICT_CHUNK`, about ``max_bytes`` of work, at least 1."""
        per_image = max(1, self.plan.values * self.dtype.itemsize)
        return int(max(1, min(PREDICT_CHUNK, max_bytes // per_image)))

    def release(self) -> None:
        """Drop the last batch's maps, outputs and work buffers (what forward and backward keep, the batch
        slices' replicas and their bound steps included)."""
        self._maps, self.o, self.e, self._slices, self._spans = [], None, None, [], []
        self._twins, self._kept_stack, self._sliced, self._flats = [], None, None, {}
        for layer in [*self.layers, self.output]:
            layer.__dict__.update(layer.__getstate__())

    def predict(self, x: np.ndarray) -> np.ndarray | int:
        """Predicted class (argmax of the outputs) for images; an int for one image."""
        proba = self.predict_proba(x)
        pred = np.argmax(proba, axis=-1)
        return int(pred) if proba.ndim == 1 else pred
