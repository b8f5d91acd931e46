"""What every layer provides."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import ops, slices


class Plan(NamedTuple):
    """What a layer would be on a given input, found by arithmetic alone (nothing allocated).

    Attributes
    ----------
    out_shape : tuple of int
        Output shape, (H, W, C) maps or (units,).
    params : int
        Number of parameter values.
    values : int
        Values (per image) of the arrays its forward pass allocates: the output and any padded or
        flattened copy of the input; an estimate of its working memory.
    """

    out_shape: tuple[int, ...]
    params: int
    values: int


class Layer:
    """A layer of a :class:`~convprop.network.Network`.

    A layer is built once the shape of its input is known; it then owns its
    parameters (``params``, name → array) and, after a backward pass, their
    gradients (``grads``, same names and shapes). ``forward`` keeps what
    ``backward`` needs.

    Conventions: between layers, maps travel in the engine's internal
    batch-last layout ``(C, H, W, N)`` (see :mod:`convprop.ops`), so that a
    convolution over a whole batch is one wide matrix product; shapes given
    to :meth:`build` and kept in ``in_shape`` / ``out_shape`` are ``(H, W, C)``.
    ``backward`` receives the per-sample delta dℓₙ/dy of the layer's output
    (the toolbox's ``d``) in the same layout and returns the per-sample delta
    of its input; parameter gradients are means over the batch, as the
    toolbox's ``dk``, ``db``, ``dffW``, ``dffb``. What a layer keeps between
    forward and backward (and reusable work buffers) lives in ``_cache``,
    which copies of the layer do not carry.
    """

    #: Single-letter code of the toolbox ('i', 'c', 's'), or '' for none.
    code: str = ""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.in_shape: tuple[int, ...] = ()
        self.out_shape: tuple[int, ...] = ()
        self._d: np.ndarray | None = None
        self._cache: dict[str, np.ndarray] = {}
        #: After a forward pass in batch slices: this layer's replicas, one per slice, in order
        #: (see :mod:`convprop.engine.slices`); their deltas and pieces are joined on demand.
        self._parts: list[Layer] | None = None

    #: The batch axis of this layer's delta ``_d``: maps (C, H, W, N) and vectors (units, N): last.
    _batch_axis = -1

    #: Attributes that hold one call's arrays besides ``_cache`` and ``_d`` (set in the class body:
    #: :attr:`_call_state` is made from it when the class is).
    _per_call: tuple[str, ...] = ()

    #: The attributes a new pass clears and a copy leaves out: ``_d``, ``_parts`` and
    #: :attr:`_per_call`, all None (one dict per class).
    _call_state: dict[str, None] = dict.fromkeys(("_d", "_parts"))

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls._call_state = dict.fromkeys(("_d", "_parts", *cls._per_call))

    def __getstate__(self) -> dict:
        # Copies (deepcopy, Network.copy, pickles) carry parameters, not one batch's arrays.
        state = self.__dict__.copy()
        state["_cache"] = {}
        for name in self._call_state:
            if name in state:
                state[name] = None
        return state

    def pieces(self) -> list[np.ndarray]:
        """Which piece of a piecewise-smooth function each unit used in the last forward pass.

        The sign of a kinked activation's input (ReLU, leaky ReLU) and max pooling's
        arg-max; empty for smooth layers. A gradient check compares them before and after
        a finite-difference step: when they differ, the step crossed a point where the
        loss has no derivative.
        """
        if getattr(self, "_parts", None):  # the slices' marks, joined along the batch axis
            return [slices.join_batch(m, axis=-1) for m in zip(*(p.pieces() for p in self._parts))]
        marks = []
        if getattr(getattr(self, "activation", None), "kinked", False) and "a" in self._cache:
            marks.append(self._cache["a"] > 0)
        if "arg" in self._cache:
            marks.append(np.array(self._cache["arg"], copy=True))
        return marks

    @property
    def d(self) -> np.ndarray | None:
        """The delta of this layer's output from the last backward, as (N, H, W, C) maps (a view)."""
        d = self._delta()
        return None if d is None else ops.to_nhwc(d)

    def _delta(self) -> np.ndarray | None:
        """The last backward's delta ``_d``, joined from the slices' after a sliced pass."""
        if self._d is None and getattr(self, "_parts", None):
            self._d = slices.join_batch([p._delta() for p in self._parts], axis=self._batch_axis)
        return self._d

    def plan(self, in_shape: tuple[int, ...], where: str) -> Plan:
        """Output shape, parameter count and working values on ``in_shape``, without allocating.

        Raises the ConvpropError :meth:`build` would (``where`` names the layer) when the layer
        does not fit its input. :class:`~convprop.network.Network` and the file loaders' size
        guards both use it, so the two never disagree.
        """
        return Plan(tuple(in_shape), 0, 0)

    def build(self, in_shape: tuple[int, ...], dtype: np.dtype, where: str) -> tuple[int, ...]:
        """Fix the input shape (H, W, C), allocate parameters, return the output shape.

        ``where`` names the layer in error messages.
        """
        self.in_shape = in_shape
        self.out_shape = self.plan(in_shape, where).out_shape
        return self.out_shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, delta: np.ndarray, need_input_delta: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def spec(self) -> str:
        """Short text form, as in ``6c5-s2-12c5-s2``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repr_args()})"

    def _repr_args(self) -> str:
        return ""
