"""The subsampling layer (toolbox type 's'): mean pooling, no parameters."""

from __future__ import annotations

import numpy as np

from .. import ops
from .._checks import positive_int
from ..errors import ConvpropError
from .base import Layer


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

    def build(self, in_shape, dtype, where):
        h, w, c = in_shape
        s = self.scale
        if h % s or w % s:
            raise ConvpropError(
                f"{where} ({self.spec()}) size must be integer: its input maps are {h}x{w}, "
                f"which gives {h / s:g}x{w / s:g} after subsampling by {s}"
            )
        self.in_shape = in_shape
        self.out_shape = (h // s, w // s, c)
        return self.out_shape

    # a{j} = mean of each scale×scale block of a_prev{j}
    def forward(self, x: np.ndarray) -> np.ndarray:
        return ops.mean_pool(x, self.scale)  # pools axes 1, 2 of (C, H, W, N)

    # δ_prev{j} = expand(δ{j}, [scale scale]) / scale²
    def backward(self, delta, need_input_delta=True):
        self._d = delta
        return ops.mean_pool_backward(delta, self.scale) if need_input_delta else None

    def spec(self) -> str:
        return f"s{self.scale}"

    def _repr_args(self) -> str:
        return str(self.scale)
