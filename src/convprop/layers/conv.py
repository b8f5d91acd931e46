"""The convolution layer (toolbox type 'c')."""

from __future__ import annotations

import numpy as np

from .. import ops
from .._checks import positive_int
from ..errors import ConvpropError
from .base import Layer


def _pair(value: int | tuple[int, int], what: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(np.atleast_1d(value))
    if len(pair) != 2:
        raise ConvpropError(f"{what} must be a positive integer or a pair of them, got {value!r}")
    try:
        return positive_int(pair[0], what), positive_int(pair[1], what)
    except ConvpropError:
        raise ConvpropError(f"{what} must be a positive integer or a pair of them, got {value!r}") from None


class Conv(Layer):
    """Convolution with a sigmoid: ``Conv(outputmaps, kernelsize)``.

    Every output map j sums the 'valid' convolutions of all input maps i with
    its own kernel k{i}{j}, adds a scalar bias b{j}, then applies the sigmoid.

    Parameters
    ----------
    outputmaps : int
        Number of output maps.
    kernelsize : int or (int, int)
        Kernel height and width.

    Notes
    -----
    The parameter ``weight`` has shape (outputmaps, inputmaps, kh, kw) and
    holds *correlation* kernels: ``weight[j, i]`` is the toolbox's
    true-convolution kernel k{i}{j} rotated by 180°. :attr:`kernels` gives
    them back in the toolbox's form; :mod:`convprop.layout` converts exactly.
    """

    code = "c"

    def __init__(self, outputmaps: int, kernelsize: int | tuple[int, int]) -> None:
        super().__init__()
        self.outputmaps = positive_int(outputmaps, "Conv outputmaps")
        self.kernelsize = _pair(kernelsize, "Conv kernelsize")

    def build(self, in_shape, dtype, where):
        h, w, c = in_shape
        kh, kw = self.kernelsize
        if kh > h or kw > w:
            raise ConvpropError(
                f"{where} ({self.spec()}): kernel {kh}x{kw} is larger than its input maps {h}x{w}"
            )
        self.in_shape = in_shape
        self.out_shape = (h - kh + 1, w - kw + 1, self.outputmaps)
        self.params = {
            "weight": np.zeros((self.outputmaps, c, kh, kw), dtype=dtype),
            "bias": np.zeros(self.outputmaps, dtype=dtype),
        }
        return self.out_shape

    @property
    def fan_in(self) -> int:
        return self.in_shape[2] * self.kernelsize[0] * self.kernelsize[1]

    @property
    def fan_out(self) -> int:
        return self.outputmaps * self.kernelsize[0] * self.kernelsize[1]

    @property
    def kernels(self) -> np.ndarray:
        """True-convolution kernels, shape (inputmaps, outputmaps, kh, kw): ``kernels[i, j]`` is k{i}{j}."""
        return self.params["weight"][:, :, ::-1, ::-1].transpose(1, 0, 2, 3)

    # a = σ(Σ_i convn(a_prev{i}, k{i}{j}, 'valid') + b{j})
    def forward(self, x: np.ndarray) -> np.ndarray:
        z, self._cols = ops.correlate_valid(x, self.params["weight"])
        z += self.params["bias"]
        self._a = ops.sigmoid(z, out=z)
        return self._a

    # d = δ·a(1−a);  dk = convn(flipall(a_prev), d, 'valid')/N;  db = Σd/N;
    # δ_prev{i} = Σ_j convn(d{j}, rot180(k{i}{j}), 'full')
    def backward(self, delta, need_input_delta=True):
        d = ops.sigmoid_backward(delta, self._a)
        n = d.shape[0]
        weight = self.params["weight"]
        self.d = d
        self.grads = {
            "weight": (ops.correlate_valid_weight_grad(self._cols, d) / n).reshape(weight.shape),
            "bias": d.sum(axis=(0, 1, 2)) / n,
        }
        return ops.correlate_valid_input_grad(d, weight) if need_input_delta else None

    def spec(self) -> str:
        kh, kw = self.kernelsize
        return f"{self.outputmaps}c{kh}" + (f"x{kw}" if kw != kh else "")

    def _repr_args(self) -> str:
        kh, kw = self.kernelsize
        return f"{self.outputmaps}, {kh if kh == kw else (kh, kw)}"
