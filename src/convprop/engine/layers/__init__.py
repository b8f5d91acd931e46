"""Layers: each keeps its forward and backward side by side."""

from .base import Layer
from .conv import Conv
from .dense import Dense
from .input import Input
from .output import SigmoidOutput, SoftmaxOutput
from .pool import MaxPool, Subsample

__all__ = ["Layer", "Input", "Conv", "Subsample", "MaxPool", "Dense", "SigmoidOutput", "SoftmaxOutput"]
