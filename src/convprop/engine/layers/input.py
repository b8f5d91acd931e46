"""The input layer (toolbox type 'i')."""

from __future__ import annotations

import numpy as np

from ..._validation import positive_int
from .base import Layer


class Input(Layer):
    """Declares the image size: ``Input(28, 28)``, or ``Input(32, 32, 3)`` for colour.

    Parameters
    ----------
    height, width : int
        Image size in pixels.
    channels : int, default 1
        Number of input maps.
    """

    code = "i"

    def __init__(self, height: int, width: int, channels: int = 1) -> None:
        super().__init__()
        self.shape = (
            positive_int(height, "Input height"),
            positive_int(width, "Input width"),
            positive_int(channels, "Input channels"),
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, delta: np.ndarray, need_input_delta: bool = True) -> np.ndarray | None:
        return delta if need_input_delta else None

    def spec(self) -> str:
        h, w, c = self.shape
        return f"{h}x{w}" + (f"x{c}" if c != 1 else "")

    def _repr_args(self) -> str:
        h, w, c = self.shape
        return f"{h}, {w}" + (f", {c}" if c != 1 else "")
