"""The hidden fully connected layer (beyond the toolbox)."""

from __future__ import annotations

import numpy as np

from .. import activations
from ..._validation import positive_int
from .base import Layer, Plan


class Dense(Layer):
    """Hidden fully connected layer: ``Dense(units, activation="sigmoid")``.

    a = f(W·x + b), where x is the previous layer's vector or its maps
    flattened in (H, W, C) order, the order of the output layer's feature
    vector.

    Parameters
    ----------
    units : int
        Number of outputs.
    activation : str or convprop.activations.Activation, default "sigmoid"
        ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"`` or ``"identity"``.

    Notes
    -----
    Inside the engine, vectors travel batch-last, (units, N), as maps do, so
    W·x is one product for the whole batch. ``weight`` has shape
    (units, fan_in) and ``bias`` (units,); both are initialised as the
    toolbox's output weights, uniform in ±sqrt(6/(fan_in + units)), bias 0.
    """

    code = "f"

    def __init__(self, units: int, activation: str | activations.Activation = "sigmoid") -> None:
        super().__init__()
        self.units = positive_int(units, "Dense units")
        self.activation = activations.get(activation)

    def plan(self, in_shape, where):
        fan_in = int(np.prod(in_shape, dtype=object))
        flat = fan_in if len(in_shape) == 3 else 0  # maps are flattened into a copy first
        return Plan((self.units,), self.units * (fan_in + 1), flat + self.units)

    def build(self, in_shape, dtype, where):
        self.in_shape = tuple(in_shape)
        self.out_shape = self.plan(in_shape, where).out_shape
        self.params = {
            "weight": np.zeros((self.units, int(np.prod(in_shape))), dtype=dtype),
            "bias": np.zeros(self.units, dtype=dtype),
        }
        return self.out_shape

    @property
    def fan_in(self) -> int:
        return self.params["weight"].shape[1]

    @property
    def fan_out(self) -> int:
        return self.units

    def _flatten(self, x: np.ndarray) -> np.ndarray:
        """(C, H, W, N) maps → (H·W·C, N) in (H, W, C) order; vectors (F, N) unchanged."""
        if x.ndim == 2:
            return x
        return np.ascontiguousarray(x.transpose(1, 2, 0, 3)).reshape(-1, x.shape[-1])

    # a = f(W·x + b)  (x, a batch-last: (F, N), (units, N))
    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._flatten(x)
        z = self.params["weight"] @ x
        z += self.params["bias"][:, None]
        a = self.activation.forward(z, out=z)
        self._cache.update(x=x, a=a)
        return a

    # d = δ·f'(z);  dW = d·xᵀ/N;  db = Σ_n d/N;  δ_prev = Wᵀ·d (reshaped back into maps)
    def backward(self, delta, need_input_delta=True):
        x, a = self._cache["x"], self._cache["a"]
        d = self.activation.backward(delta, a)
        self._d = d
        n = d.shape[-1]
        self.grads = {"weight": (d @ x.T) / n, "bias": d.sum(axis=1) / n}
        if not need_input_delta:
            return None
        dx = self.params["weight"].T @ d
        if len(self.in_shape) == 3:
            h, w, c = self.in_shape
            dx = np.ascontiguousarray(dx.reshape(h, w, c, n).transpose(2, 0, 1, 3))
        return dx

    @property
    def d(self) -> np.ndarray | None:
        """The delta d = dℓ/dz of the last backward, shape (N, units)."""
        d = self._delta()
        return None if d is None else d.T

    def spec(self) -> str:
        return f"{self.units}f" + activations.spec_code(self.activation)

    def _repr_args(self) -> str:
        act = "" if isinstance(self.activation, activations.Sigmoid) else f", {self.activation!r}"
        return f"{self.units}{act}"
