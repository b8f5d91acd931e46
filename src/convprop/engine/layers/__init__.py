"""Layers: each keeps its forward and backward side by side."""

from .base import Layer, Plan
from .conv import Conv
from .dense import Dense
from .input import Input
from .output import SigmoidOutput, SoftmaxOutput
from .pool import MaxPool, Subsample

__all__ = ["Layer", "Plan", "Input", "Conv", "Subsample", "MaxPool", "Dense", "SigmoidOutput", "SoftmaxOutput"]
