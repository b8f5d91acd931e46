"""The subsampling layer (toolbox type 's'): mean pooling, no parameters."""

from __future__ import annotations

import numpy as np

from .. import backend, ops, parallel
from ..._validation import positive_int
from ...errors import ConvpropError
from .base import Layer, Plan


class Subsample(Layer):
    """Mean pooling over non-overlapping ``scale``×``scale`` blocks.

    Parameters
    ----------
    scale : int
        Block size and stride; the input maps' height and width must be
        multiples of it.
    """

    code = "s"

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = positive_int(scale, "Subsample scale")

    def plan(self, in_shape, where):
        h, w, c = in_shape
        s = self.scale
        if h % s or w % s:
            raise ConvpropError(
                f"{where} ({self.spec()}) size must be integer: its input maps are {h}x{w}, "
                f"which gives {h / s:g}x{w / s:g} after subsampling by {s}"
            )
        out = (h // s, w // s, c)
        return Plan(out, 0, out[0] * out[1] * c)

    # a{j} = mean of each scale×scale block of a_prev{j}
    def forward(self, x: np.ndarray) -> np.ndarray:
        kernels = backend.compiled()
        if kernels is None:
            return ops.mean_pool(x, self.scale)  # pools axes 1, 2 of (C, H, W, N)
        out = np.empty((x.shape[0], *self.out_shape[:2], x.shape[-1]), dtype=x.dtype)
        parallel.run_rows(kernels.pool.mean_pool, out.shape[0] * out.shape[1], np.ascontiguousarray(x), self.scale, out,
                          work=x.size)
        return out

    # δ_prev{j} = expand(δ{j}, [scale scale]) / scale²
    def backward(self, delta, need_input_delta=True):
        self._d = delta
        if not need_input_delta:
            return None
        kernels = backend.compiled()
        if kernels is None:
            return ops.mean_pool_backward(delta, self.scale)
        out = np.empty((delta.shape[0], *self.in_shape[:2], delta.shape[-1]), dtype=delta.dtype)
        parallel.run_rows(kernels.pool.mean_pool_backward, delta.shape[0] * delta.shape[1],
                          np.ascontiguousarray(delta), self.scale, out, work=out.size)
        return out

    def spec(self) -> str:
        return f"s{self.scale}"

    def _repr_args(self) -> str:
        return str(self.scale)


class MaxPool(Layer):
    """Max pooling over non-overlapping ``scale``×``scale`` blocks (stride = scale).

    Parameters
    ----------
    scale : int
        Block size and stride.
    crop : bool, default False
        What to do when the input's height or width is not a multiple of
        ``scale``: False raises a :class:`~convprop.errors.ConvpropError`
        when the network is built (as :class:`Subsample`); True drops the
        last H mod scale rows and W mod scale columns (PyTorch's default,
        ``ceil_mode=False``), which then receive a zero delta.

    Notes
    -----
    The delta of each block goes to its maximum only. Ties go to the FIRST
    maximum in row-major order within the block (row by row, left to right),
    :func:`numpy.argmax`'s rule, which PyTorch's CPU max_pool2d also follows.
    """

    code = "m"

    def __init__(self, scale: int, crop: bool = False) -> None:
        super().__init__()
        self.scale = positive_int(scale, "MaxPool scale")
        self.crop = bool(crop)

    def plan(self, in_shape, where):
        h, w, c = in_shape
        s = self.scale
        if (h % s or w % s) and not self.crop:
            raise ConvpropError(
                f"{where} ({self.spec()}) size must be integer: its input maps are {h}x{w}, "
                f"which gives {h / s:g}x{w / s:g} after max pooling by {s} (MaxPool(..., crop=True) drops the rest)"
            )
        if h < s or w < s:
            raise ConvpropError(f"{where} ({self.spec()}): input maps {h}x{w} are smaller than the {s}x{s} block")
        out = (h // s, w // s, c)
        # the windows' copy (the input's size), the output and its argmax indices (int64)
        return Plan(out, 0, h * w * c + 2 * out[0] * out[1] * c)

    # a{j} = max of each scale×scale block of a_prev{j};  arg = position of the first maximum
    def forward(self, x: np.ndarray) -> np.ndarray:
        kernels = backend.compiled()
        if kernels is None:
            a, self._cache["arg"] = ops.max_pool(x, self.scale)
            return a
        shape = (x.shape[0], *self.out_shape[:2], x.shape[-1])
        a = np.empty(shape, dtype=x.dtype)
        arg = np.empty(shape, dtype=np.uint8 if self.scale <= 16 else np.intp)
        parallel.run_rows(kernels.pool.max_pool, a.shape[0] * a.shape[1], np.ascontiguousarray(x), self.scale, a, arg,
                          work=x.size)
        self._cache["arg"] = arg
        return a

    # δ_prev{j} = δ{j} at each block's arg-max, 0 elsewhere (and 0 on cropped rows / columns)
    def backward(self, delta, need_input_delta=True):
        self._d = delta
        if not need_input_delta:
            return None
        kernels = backend.compiled()
        if kernels is None:
            return ops.max_pool_backward(delta, self._cache["arg"], self.scale, self.in_shape[:2])
        out = np.zeros((delta.shape[0], *self.in_shape[:2], delta.shape[-1]), dtype=delta.dtype)
        parallel.run_rows(kernels.pool.max_pool_backward, delta.shape[0] * delta.shape[1],
                          np.ascontiguousarray(delta), self._cache["arg"], self.scale, out, work=out.size)
        return out

    def spec(self) -> str:
        return f"m{self.scale}" + ("c" if self.crop else "")

    def _repr_args(self) -> str:
        return str(self.scale) + (", crop=True" if self.crop else "")
