"""Layers: each keeps its forward and backward side by side."""

from .base import Layer
from .conv import Conv
from .input import Input
from .output import SigmoidOutput
from .pool import Subsample

__all__ = ["Layer", "Input", "Conv", "Subsample", "SigmoidOutput"]
