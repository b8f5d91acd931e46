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
    s = e * np.sqrt(0.5 / e.shape[0])  # Σ (c·e)², c = √(½/N): no partial sum exceeds L, so no overflow short of L's
    return float(np.sum(s * s)), e


def cross_entropy(o: np.ndarray, y: np.ndarray, log_o: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Cross-entropy of softmax outputs, L = −Σ y·log o / N, and the combined delta o − y.

    Parameters
    ----------
    o, y : ndarray, shape (N, K)
        Softmax outputs and targets (one-hot rows, or any rows summing to 1).
    log_o : ndarray, shape (N, K), optional
        log o computed stably by the output layer; else log(max(o, tiny)).

    Returns
    -------
    L : float
    e : ndarray, shape (N, K)
        dℓₙ/dzₙ, the delta of the softmax's *input* z (not of o).

    Notes
    -----
    With oₖ = exp(zₖ)/Σⱼ exp(zⱼ), the Jacobian is ∂oₖ/∂zⱼ = oₖ(δₖⱼ − oⱼ),
    and ∂ℓ/∂oₖ = −yₖ/oₖ. Their product, summed over k:
    ∂ℓ/∂zⱼ = −Σₖ yₖ(δₖⱼ − oⱼ) = oⱼ·Σₖ yₖ − yⱼ = oⱼ − yⱼ when Σₖ yₖ = 1.
    The 1/oₖ cancels the oₖ of the Jacobian, so the delta is the plain
    error o − y: no Jacobian to form, and nothing to overflow when o → 0.
    """
    if log_o is None:
        log_o = np.log(np.maximum(o, np.finfo(o.dtype).tiny))
    return float(-np.sum(y * log_o) / o.shape[0]), o - y
