"""Testing (cnntest): argmax predictions, error rate, the wrong indices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._validation import labels_array
from ..errors import ConvpropError
from ..engine.network import Network


@dataclass
class Evaluation:
    """Result of :func:`evaluate`.

    Attributes
    ----------
    error : float
        Fraction of wrongly classified images (the toolbox's ``er``).
    wrong : ndarray of int, shape (n_wrong,)
        0-based indices of the wrong images (the toolbox's ``bad``, minus 1).
    predicted : ndarray of int, shape (N,)
        Predicted classes.
    """

    error: float
    wrong: np.ndarray
    predicted: np.ndarray


def evaluate(net: Network, x: np.ndarray, y: np.ndarray, *,
             predict: Callable[[np.ndarray], np.ndarray] | None = None) -> Evaluation:
    """Classify ``x`` and compare with the true classes.

    Parameters
    ----------
    net : Network
    x : array_like, shape (N, H, W) or (N, H, W, C)
    y : array_like, shape (N,) integer labels or (N, n_outputs) targets
        For targets, the true class is their argmax (as in cnntest).
    predict : callable, optional
        ``predict(x)`` → classes instead of ``net.predict`` (e.g.
        :func:`convprop.training.distributed.sharded_predict`'s, shared over processes).

    Returns
    -------
    Evaluation
    """
    predicted = np.asarray((net.predict if predict is None else predict)(x))
    if predicted.ndim == 0:
        raise ConvpropError("evaluate needs a batch of images, shape (N, H, W[, C]), not a single image")
    n = predicted.shape[0]
    y = np.asarray(y)
    if y.ndim == 2:
        if y.shape != (n, net.n_outputs):
            raise ConvpropError(f"targets must have shape ({n}, {net.n_outputs}); got {y.shape}")
        true = np.argmax(y, axis=1)
    else:
        true = labels_array(y, n, net.n_outputs)
    wrong = np.flatnonzero(predicted != true)
    return Evaluation(error=wrong.size / n, wrong=wrong, predicted=predicted)
