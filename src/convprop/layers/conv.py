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
    #   as one product over the batch:  z = [W | b] · [cols; 1],  a = σ(z) in place
    def forward(self, x: np.ndarray) -> np.ndarray:
        c_in, h, w, n = x.shape
        kh, kw = self.kernelsize
        ho, wo = self.out_shape[:2]
        cols = self._buffer("cols", (c_in * kh * kw + 1, ho * wo * n), x.dtype, ones_row=True)
        ops.im2col_cm(x, kh, kw, out=cols)
        # z (C_out, Ho·Wo·N) = (C_out, Ho, Wo, N), computed as zᵀ = colsᵀ·[W | b]ᵀ: OpenBLAS
        # then gives every column the same summation order whatever N (chunking-invariant).
        z = np.empty((self.outputmaps, ho * wo * n), dtype=x.dtype)
        np.matmul(cols.T, self._weight_matrix().T, out=z.T)
        a = ops.sigmoid(z, out=z).reshape(self.outputmaps, ho, wo, n)
        self._cache.update(cols=cols, a=a)
        return a

    # d = δ·a(1−a);  dk = convn(flipall(a_prev), d, 'valid')/N;  db = Σd/N;
    #   together:  [dW | db] = d · [cols; 1]ᵀ / N
    # δ_prev{i} = Σ_j convn(d{j}, rot180(k{i}{j}), 'full')
    #   as col2im(Wᵀ · d): every patch gives back its share
    def backward(self, delta, need_input_delta=True):
        a, cols = self._cache["a"], self._cache["cols"]
        d = ops.sigmoid_backward(delta, a)
        self._d = d
        n = d.shape[-1]
        d2 = d.reshape(self.outputmaps, -1)
        weight = self.params["weight"]
        grad = d2 @ cols.T
        grad /= n
        self.grads = {"weight": grad[:, :-1].reshape(weight.shape), "bias": grad[:, -1].copy()}
        if not need_input_delta:
            return None
        dcols = weight.reshape(self.outputmaps, -1).T @ d2
        c_in = weight.shape[1]
        return ops.col2im_cm(dcols, (c_in, *self.in_shape[:2], n), *self.kernelsize)

    def _weight_matrix(self) -> np.ndarray:
        """[W | b], shape (C_out, C_in·kh·kw + 1): the bias rides on the ones row of the patches."""
        weight, bias = self.params["weight"], self.params["bias"]
        return np.concatenate([weight.reshape(self.outputmaps, -1), bias[:, None]], axis=1)

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: np.dtype, ones_row: bool = False) -> np.ndarray:
        """A work array kept between calls of the same shape (and its ones row set once)."""
        buf = self._cache.get("buf_" + name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            if ones_row:
                buf[-1] = 1
            self._cache["buf_" + name] = buf
        return buf

    def spec(self) -> str:
        kh, kw = self.kernelsize
        return f"{self.outputmaps}c{kh}" + (f"x{kw}" if kw != kh else "")

    def _repr_args(self) -> str:
        kh, kw = self.kernelsize
        return f"{self.outputmaps}, {kh if kh == kw else (kh, kw)}"
