"""The fully connected sigmoid output layer fed by the feature vector."""

from __future__ import annotations

import numpy as np

from .. import backend, losses, ops
from .base import Layer, Plan


class SigmoidOutput(Layer):
    """o = σ(ffW·fv + ffb), fully connected.

    Built by :class:`~convprop.network.Network` on the flattened last maps.
    The feature vector is flattened in NHWC order, fv[n, (r·W + c)·C + j];
    ``weight`` (n_outputs, F) is laid out to match. The toolbox orders it
    column-major, map after map; :mod:`convprop.layout` converts exactly.
    """

    _per_call = ("_fv", "_o", "log_o")
    _batch_axis = 0  # od is (N, n_outputs)

    def __init__(self, n_outputs: int) -> None:
        super().__init__()
        self.n_outputs = n_outputs

    def plan(self, in_shape, where):
        (n_features,) = in_shape
        # the outputs, and the feature vector's contiguous copy made by the network
        return Plan((self.n_outputs,), self.n_outputs * (n_features + 1), 2 * self.n_outputs + n_features)

    def build(self, in_shape, dtype, where):
        (n_features,) = in_shape
        self.in_shape = in_shape
        self.out_shape = (self.n_outputs,)
        self.params = {
            "weight": np.zeros((self.n_outputs, n_features), dtype=dtype),
            "bias": np.zeros(self.n_outputs, dtype=dtype),
        }
        return self.out_shape

    # o = σ(ffW·fv + ffb)   (compiled: kernels.output, batch-last, as for every output kind)
    def forward(self, fv: np.ndarray) -> np.ndarray:
        self._fv = fv
        kernels = backend.compiled()
        if kernels is not None:
            return self._forward_compiled(kernels, fv)
        z = fv @ self.params["weight"].T
        z += self.params["bias"]
        self._o = ops.sigmoid(z, out=z)
        return self._o

    def _forward_compiled(self, kernels, fv: np.ndarray) -> np.ndarray:
        """:meth:`forward` in one kernel call on fvᵀ (F, N); keeps log o for a softmax's loss."""
        softmax = isinstance(self, SoftmaxOutput)
        ot = np.empty((self.n_outputs, fv.shape[0]), dtype=fv.dtype)
        log_ot = np.empty_like(ot) if softmax else ot
        kernels.output.forward(np.ascontiguousarray(fv.T), self.params["weight"], self.params["bias"], softmax, ot,
                               log_ot)
        self._o = ot.T
        if softmax:
            self.log_o = log_ot.T
        return self._o

    # od = δ·o(1−o);  dffW = od·fvᵀ/N;  dffb = mean(od);  fvd = ffWᵀ·od
    def backward(self, delta, need_input_delta=True):
        kernels = backend.compiled()
        if kernels is not None:
            return self._backward_compiled(kernels, delta, need_input_delta)
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
        return self._delta()

    def _backward_compiled(self, kernels, delta, need_input_delta):
        """:meth:`backward` in one kernel call, batch-last."""
        et, ot, fv = np.ascontiguousarray(delta.T), np.ascontiguousarray(self._o.T), self._fv
        odt = np.empty_like(et)
        weight = self.params["weight"]
        self.grads = {"weight": np.empty_like(weight), "bias": np.empty_like(self.params["bias"])}
        fvdt = np.empty((weight.shape[1], et.shape[1]) if need_input_delta else (0, 0), dtype=et.dtype)
        kernels.output.backward(et, ot, np.ascontiguousarray(fv.T), weight, isinstance(self, SoftmaxOutput), odt,
                                self.grads["weight"], self.grads["bias"], fvdt)
        self._d = odt.T
        return fvdt.T if need_input_delta else None

    def loss(self, o: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """The loss of outputs ``o`` against targets ``y`` and the delta that :meth:`backward` takes."""
        kernels = backend.compiled()
        if kernels is not None and o is getattr(self, "_o", None):
            return self._loss_compiled(kernels, o, y)
        return losses.half_squared_error(o, y)

    def _loss_compiled(self, kernels, o: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """:meth:`loss` of this layer's last outputs in one kernel call."""
        softmax = isinstance(self, SoftmaxOutput)
        ot = np.ascontiguousarray(o.T)
        et = np.empty_like(ot)
        log_ot = np.ascontiguousarray(self.log_o.T) if softmax else ot
        loss = kernels.output.loss(ot, np.ascontiguousarray(y.T, dtype=ot.dtype), log_ot, softmax, et)
        return float(loss), et.T

    def spec(self) -> str:
        return f"{self.n_outputs}o"

    def _repr_args(self) -> str:
        return str(self.n_outputs)


class SoftmaxOutput(SigmoidOutput):
    """o = softmax(W·fv + b), fully connected, trained on the cross-entropy.

    Its loss L = −Σ y·log o / N (see :func:`convprop.losses.cross_entropy`)
    hands :meth:`backward` the delta o − y of the pre-activation z directly:
    the softmax Jacobian is already folded in (see there why).
    """

    # o = softmax(W·fv + b) = exp(z − max z) / Σ exp(z − max z)  (the shift avoids overflow)
    def forward(self, fv: np.ndarray) -> np.ndarray:
        self._fv = fv
        kernels = backend.compiled()
        if kernels is not None:
            return self._forward_compiled(kernels, fv)
        z = fv @ self.params["weight"].T
        z += self.params["bias"]
        z -= z.max(axis=1, keepdims=True)
        #: log o, kept for the loss (log of an underflowed o would be −inf).
        self.log_o = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        self._o = np.exp(self.log_o)
        return self._o

    # od = δ = o − y (already dℓ/dz);  dW = od·fvᵀ/N;  db = mean(od);  fvd = Wᵀ·od
    def backward(self, delta, need_input_delta=True):
        kernels = backend.compiled()
        if kernels is not None:
            return self._backward_compiled(kernels, delta, need_input_delta)
        od = delta
        self._d = od
        n = od.shape[0]
        self.grads = {"weight": (od.T @ self._fv) / n, "bias": od.sum(axis=0) / n}
        return od @ self.params["weight"] if need_input_delta else None

    def loss(self, o: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        kernels = backend.compiled()
        if kernels is not None and o is getattr(self, "_o", None):
            return self._loss_compiled(kernels, o, y)
        return losses.cross_entropy(o, y, log_o=self.log_o if o is getattr(self, "_o", None) else None)

    def spec(self) -> str:
        return f"{self.n_outputs}sm"
