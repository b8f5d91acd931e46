"""Training: the one loop, its callbacks, evaluation, the gradient check and explain."""

from .callbacks import (BatchFunction, Callback, Checkpoint, DivergenceGuard, Evaluate, GradientClipping,
                        MetricsLog, ProgressBar)
from .evaluate import Evaluation, evaluate
from .gradcheck import GradcheckReport, gradcheck
from .loop import Loop, fit, train

__all__ = ["Loop", "fit", "train", "Callback", "BatchFunction", "Checkpoint", "DivergenceGuard", "Evaluate",
           "GradientClipping", "MetricsLog", "ProgressBar", "evaluate", "Evaluation", "gradcheck",
           "GradcheckReport"]
