"""Loss functions: value and per-sample delta with respect to the output."""

from __future__ import annotations

import numpy as np


def half_squared_error(o: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The toolbox's loss L = ½·Σ(o − y)² / N and its per-sample delta e = o − y.

    Parameters
    ----------
    o, y : ndarray, shape (N, K)

    Returns
    -------
    L : float
    e : ndarray, shape (N, K)
        dℓₙ/doₙ for each sample, with L = mean over n of ℓₙ.
    """
    e = o - y
    return float(0.5 * np.sum(e * e) / e.shape[0]), e
