"""The fully connected sigmoid output layer fed by the feature vector."""

from __future__ import annotations

import numpy as np

from .. import ops
from .base import Layer


class SigmoidOutput(Layer):
    """o = σ(ffW·fv + ffb), fully connected.

    Built by :class:`~convprop.network.Network` on the flattened last maps.
    The feature vector is flattened in NHWC order, fv[n, (r·W + c)·C + j];
    ``weight`` (n_outputs, F) is laid out to match. The toolbox orders it
    column-major, map after map; :mod:`convprop.layout` converts exactly.
    """

    def __init__(self, n_outputs: int) -> None:
        super().__init__()
        self.n_outputs = n_outputs

    def build(self, in_shape, dtype, where):
        (n_features,) = in_shape
        self.in_shape = in_shape
        self.out_shape = (self.n_outputs,)
        self.params = {
            "weight": np.zeros((self.n_outputs, n_features), dtype=dtype),
            "bias": np.zeros(self.n_outputs, dtype=dtype),
        }
        return self.out_shape

    # o = σ(ffW·fv + ffb)
    def forward(self, fv: np.ndarray) -> np.ndarray:
        self._fv = fv
        z = fv @ self.params["weight"].T
        z += self.params["bias"]
        self._o = ops.sigmoid(z, out=z)
        return self._o

    # od = δ·o(1−o);  dffW = od·fvᵀ/N;  dffb = mean(od);  fvd = ffWᵀ·od
    def backward(self, delta, need_input_delta=True):
        od = ops.sigmoid_backward(delta, self._o)
        self._d = od
        n = od.shape[0]
        self.grads = {
            "weight": (od.T @ self._fv) / n,
            "bias": od.sum(axis=0) / n,
        }
        return od @ self.params["weight"] if need_input_delta else None

    @property
    def d(self) -> np.ndarray | None:
        """The output delta od of the last backward, shape (N, n_outputs)."""
        return self._d

    def spec(self) -> str:
        return f"{self.n_outputs}o"

    def _repr_args(self) -> str:
        return str(self.n_outputs)
