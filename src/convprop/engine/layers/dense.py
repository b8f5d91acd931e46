"""The hidden fully connected layer (beyond the toolbox)."""

from __future__ import annotations

import numpy as np

from .. import activations, backend
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

    # a = f(W·x + b)  (x, a batch-last: (F, N), (units, N); compiled: kernels.dense, the same order)
    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._flatten(x)
        kernels = backend.compiled_for(self.activation)
        if kernels is not None:
            x = np.ascontiguousarray(x)
            a = np.empty((self.units, x.shape[1]), dtype=x.dtype)
            code, slope = self.activation.kernel_args
            kernels.dense.forward(x, self.params["weight"], self.params["bias"], code, slope, a)
        else:
            z = self.params["weight"] @ x
            z += self.params["bias"][:, None]
            a = self.activation.forward(z, out=z)
        self._cache.update(x=x, a=a)
        return a

    # d = δ·f'(z);  dW = d·xᵀ/N;  db = Σ_n d/N;  δ_prev = Wᵀ·d (reshaped back into maps)
    def backward(self, delta, need_input_delta=True):
        x, a = self._cache["x"], self._cache["a"]
        kernels = backend.compiled_for(self.activation)
        if kernels is not None:
            dx = self._backward_compiled(kernels, np.ascontiguousarray(delta), x, a, need_input_delta)
        else:
            d = self.activation.backward(delta, a)
            self._d = d
            n = d.shape[-1]
            self.grads = {"weight": (d @ x.T) / n, "bias": d.sum(axis=1) / n}
            dx = self.params["weight"].T @ d if need_input_delta else None
        if dx is None:
            return None
        if len(self.in_shape) == 3:
            h, w, c = self.in_shape
            dx = np.ascontiguousarray(dx.reshape(h, w, c, -1).transpose(2, 0, 1, 3))
        return dx

    def _backward_compiled(self, kernels, delta, x, a, need_input_delta):
        """:meth:`backward`'s gradients and input delta (F, N) (None when not needed) in one kernel call."""
        weight = self.params["weight"]
        d = np.empty_like(a)
        self.grads = {"weight": np.empty(weight.shape, weight.dtype), "bias": np.empty_like(self.params["bias"])}
        dx = np.empty((weight.shape[1], a.shape[1]) if need_input_delta else (0, 0), dtype=a.dtype)
        code, slope = self.activation.kernel_args
        kernels.dense.backward(delta, a, x, weight, code, slope, d, self.grads["weight"], self.grads["bias"], dx)
        self._d = d
        return dx if need_input_delta else None

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
