"""convprop: classic convolutional neural networks with hand-derived backpropagation.

A faithful, vectorised NumPy port of the CNN of the MATLAB DeepLearnToolbox.
The packages, from the bottom up (see docs/architecture.md): ``engine``
(layers, network, optimisers), ``formats`` (files), ``datasets``,
``training`` (the loop and its callbacks), ``dlt`` (the toolbox façade),
``sklearn`` (the estimator), ``cli`` (the command).
"""

from .engine.layers import Conv, Dense, Input, MaxPool, Subsample
from .engine.network import Network
from .errors import ConvpropError, Diverged, Interrupted
from .formats.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from .formats.model import load_model, save_model
from .training.callbacks import Callback
from .training.evaluate import Evaluation, evaluate
from .training.gradcheck import GradcheckReport, gradcheck
from .training.loop import fit, train

__version__ = "0.1.0"

__all__ = [
    "ConvpropError",
    "Diverged",
    "Interrupted",
    "Network",
    "Input",
    "Conv",
    "Subsample",
    "MaxPool",
    "Dense",
    "train",
    "fit",
    "Callback",
    "TrainingState",
    "evaluate",
    "Evaluation",
    "gradcheck",
    "GradcheckReport",
    "save_model",
    "load_model",
    "save_checkpoint",
    "load_checkpoint",
    "__version__",
]
