"""convprop: classic convolutional neural networks with hand-derived backpropagation.

A faithful, vectorised NumPy port of the CNN of the MATLAB DeepLearnToolbox.
"""

from .errors import ConvpropError
from .training.evaluate import Evaluation, evaluate
from .training.gradcheck import GradcheckReport, gradcheck
from .engine.layers import Conv, Dense, Input, MaxPool, Subsample
from .engine.backend import set_engine
from .engine.network import Network
from .engine.parallel import get_num_threads, set_num_threads
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
    "set_num_threads",
    "get_num_threads",
    "set_engine",
    "__version__",
]
