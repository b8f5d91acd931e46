"""convprop: classic convolutional neural networks with hand-derived backpropagation.

A faithful, vectorised NumPy port of the CNN of the MATLAB DeepLearnToolbox.
"""

from .errors import ConvpropError
from .training.evaluate import Evaluation, evaluate
from .training.gradcheck import GradcheckReport, gradcheck
from .engine.layers import Conv, Dense, Input, MaxPool, Subsample
from .engine.network import Network
from .training.train import History, train

__version__ = "0.1.0"

__all__ = [
    "ConvpropError",
    "Network",
    "Input",
    "Conv",
    "Subsample",
    "MaxPool",
    "Dense",
    "train",
    "History",
    "evaluate",
    "Evaluation",
    "gradcheck",
    "GradcheckReport",
    "__version__",
]
