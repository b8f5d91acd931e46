"""What every layer provides."""

from __future__ import annotations

import numpy as np


class Layer:
    """A layer of a :class:`~convprop.network.Network`.

    A layer is built once the shape of its input is known; it then owns its
    parameters (``params``, name → array) and, after a backward pass, their
    gradients (``grads``, same names and shapes). ``forward`` keeps what
    ``backward`` needs.

    Conventions: maps are ``(N, H, W, C)`` arrays. ``backward`` receives the
    per-sample delta dℓₙ/dy of the layer's output (the toolbox's ``d``) and
    returns the per-sample delta of its input; parameter gradients are means
    over the batch, as the toolbox's ``dk``, ``db``, ``dffW``, ``dffb``.
    """

    #: Single-letter code of the toolbox ('i', 'c', 's'), or '' for none.
    code: str = ""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.in_shape: tuple[int, ...] = ()
        self.out_shape: tuple[int, ...] = ()

    def build(self, in_shape: tuple[int, ...], dtype: np.dtype, where: str) -> tuple[int, ...]:
        """Fix the input shape (H, W, C), allocate parameters, return the output shape.

        ``where`` names the layer in error messages.
        """
        self.in_shape = in_shape
        self.out_shape = in_shape
        return in_shape

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
