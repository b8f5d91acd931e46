"""The convolution layer (toolbox type 'c')."""

from __future__ import annotations

import numpy as np

from .. import ops, parallel
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
    #   as products over the batch:  z = [W | b] · [cols; 1],  a = σ(z) in place;
    #   z is filled in blocks of output rows so that each block's cols stays in cache
    def forward(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[-1]
        ho, wo = self.out_shape[:2]
        wb = self._weight_matrix()
        z = np.empty((self.outputmaps, ho * wo * n), dtype=x.dtype)
        patches = ops.patches_cm(x, *self.kernelsize)

        def work(slot, blocks):
            buf = self._buffer(wb.shape[1], wo * n, x.dtype, slot)
            for r0, r1 in blocks:
                cols = ops.im2col_cm(patches, r0, r1, buf)
                zb = z[:, r0 * wo * n : r1 * wo * n]
                # zᵀ = colsᵀ·[W | b]ᵀ: OpenBLAS then sums every column in the same order
                # whatever N, so results do not depend on how a batch is chunked.
                np.matmul(cols.T, wb.T, out=zb.T)

        parallel.map_blocks(work, ops.row_blocks(ho, wb.shape[1] * wo * n, x.dtype.itemsize))
        a = ops.sigmoid(z, out=z).reshape(self.outputmaps, ho, wo, n)  # contiguous: NumPy's SIMD loops
        self._cache.update(x=x, a=a)
        return a

    # d = δ·a(1−a);  dk = convn(flipall(a_prev), d, 'valid')/N;  db = Σd/N;
    #   together:  [dW | db] = d · [cols; 1]ᵀ / N  (cols rebuilt block by block)
    # δ_prev{i} = Σ_j convn(d{j}, rot180(k{i}{j}), 'full')
    #   as col2im(Wᵀ · d): every patch gives back its share
    def backward(self, delta, need_input_delta=True):
        x, a = self._cache["x"], self._cache["a"]
        d = ops.sigmoid_backward(delta, a)
        self._d = d
        n = d.shape[-1]
        wo = self.out_shape[1]
        weight = self.params["weight"]
        d2 = d.reshape(self.outputmaps, -1)
        k1 = weight[0].size + 1
        patches = ops.patches_cm(x, *self.kernelsize)

        def work(slot, blocks):
            buf = self._buffer(k1, wo * n, d.dtype, slot)
            part = np.zeros((self.outputmaps, k1), dtype=d.dtype)
            for r0, r1 in blocks:
                cols = ops.im2col_cm(patches, r0, r1, buf)
                part += d2[:, r0 * wo * n : r1 * wo * n] @ cols.T
            return part

        parts = parallel.map_blocks(work, ops.row_blocks(self.out_shape[0], k1 * wo * n, d.dtype.itemsize))
        grad = parts[0]
        for part in parts[1:]:
            grad += part
        grad /= n
        self.grads = {"weight": grad[:, :-1].reshape(weight.shape), "bias": grad[:, -1].copy()}
        if not need_input_delta:
            return None
        dcols = weight.reshape(self.outputmaps, -1).T @ d2
        return ops.col2im_cm(dcols, x.shape, *self.kernelsize)

    def _weight_matrix(self) -> np.ndarray:
        """[W | b], shape (C_out, C_in·kh·kw + 1): the bias rides on the ones row of the patches."""
        weight, bias = self.params["weight"], self.params["bias"]
        return np.concatenate([weight.reshape(self.outputmaps, -1), bias[:, None]], axis=1)

    def _buffer(self, k1: int, row_size: int, dtype: np.dtype, slot: int = 0) -> np.ndarray:
        """Thread slot's patch-matrix buffer for one row block, kept between calls; ones row set once."""
        rows = ops.row_blocks(self.out_shape[0], k1 * row_size, dtype.itemsize)[0][1]
        shape = (k1, rows * row_size)
        buf = self._cache.get(f"cols{slot}")
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            buf[-1] = 1
            self._cache[f"cols{slot}"] = buf
        return buf

    def spec(self) -> str:
        kh, kw = self.kernelsize
        return f"{self.outputmaps}c{kh}" + (f"x{kw}" if kw != kh else "")

    def _repr_args(self) -> str:
        kh, kw = self.kernelsize
        return f"{self.outputmaps}, {kh if kh == kw else (kh, kw)}"
