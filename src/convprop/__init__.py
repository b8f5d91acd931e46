"""convprop: classic convolutional neural networks with hand-derived backpropagation.

A faithful, vectorised NumPy port of the CNN of the MATLAB DeepLearnToolbox.
The packages, from the bottom up (see docs/architecture.md): ``engine``
(layers, network, optimisers), ``formats`` (files), ``datasets``,
``training`` (the loop and its callbacks), ``dlt`` (the toolbox façade),
``sklearn`` (the estimator), ``cli`` (the command).
"""

import importlib
from typing import TYPE_CHECKING

#: Where each public name lives. They are imported on first use (PEP 562), so that
#: ``convprop``'s command starts at once and a Ctrl-C in its first moments is handled.
_EXPORTS = {
    **dict.fromkeys(("Conv", "Dense", "Input", "MaxPool", "Subsample"), ".engine.layers"),
    "Network": ".engine.network",
    **dict.fromkeys(("get_num_threads", "set_num_threads"), ".engine.parallel"),
    "set_engine": ".engine.backend",
    **dict.fromkeys(("ConvpropError", "Diverged", "Interrupted"), ".errors"),
    **dict.fromkeys(("TrainingState", "load_checkpoint", "save_checkpoint"), ".formats.checkpoint"),
    **dict.fromkeys(("load_model", "save_model"), ".formats.model"),
    "Callback": ".training.callbacks",
    **dict.fromkeys(("Evaluation", "evaluate"), ".training.evaluate"),
    **dict.fromkeys(("GradcheckReport", "gradcheck"), ".training.gradcheck"),
    **dict.fromkeys(("fit", "train"), ".training.loop"),
}

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .engine.layers import Conv, Dense, Input, MaxPool, Subsample
    from .engine.backend import set_engine
    from .engine.network import Network
    from .engine.parallel import get_num_threads, set_num_threads
    from .errors import ConvpropError, Diverged, Interrupted
    from .formats.checkpoint import TrainingState, load_checkpoint, save_checkpoint
    from .formats.model import load_model, save_model
    from .training.callbacks import Callback
    from .training.evaluate import Evaluation, evaluate
    from .training.gradcheck import GradcheckReport, gradcheck
    from .training.loop import fit, train


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):
        try:  # convprop.datasets, convprop.plots … after a bare ``import convprop``
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


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
    "set_num_threads",
    "get_num_threads",
    "set_engine",
    "__version__",
]
