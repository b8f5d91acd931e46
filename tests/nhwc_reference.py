"""NHWC reference convolutions, for the tests: the textbook forms of the identities.

z[n, r, c, j] = Σ_i Σ_u Σ_v x[n, r+u, c+v, i] · weight[j, i, u, v] as one matrix product of the
patch matrix, and its two adjoints. The engine computes the same sums in its own layout
(``convprop.engine.ops``, ``convprop.engine.kernels``); these independent forms check it and
the derivation (tests/test_ops.py, tests/test_derivation.py).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def windows(x: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """View of every kh×kw patch of ``x``.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)

    Returns
    -------
    ndarray, shape (N, H − kh + 1, W − kw + 1, C, kh, kw)
        A strided view; no data is copied.
    """
    return sliding_window_view(x, (kh, kw), axis=(1, 2))


def im2col(x: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """Patches of ``x`` as rows of a matrix.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)

    Returns
    -------
    ndarray, shape (N·Ho·Wo, C·kh·kw)
        Row ``(n, r, c)`` holds ``x[n, r:r+kh, c:c+kw, :]`` in (C, kh, kw) order.
    """
    n, h, w, c = x.shape
    return windows(x, kh, kw).reshape(n * (h - kh + 1) * (w - kw + 1), c * kh * kw)


def correlate_valid(x: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multi-channel 'valid' cross-correlation.

    z[n, r, c, j] = Σ_i Σ_u Σ_v x[n, r+u, c+v, i] · weight[j, i, u, v]

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C_in)
    weight : ndarray, shape (C_out, C_in, kh, kw)

    Returns
    -------
    z : ndarray, shape (N, H − kh + 1, W − kw + 1, C_out)
    cols : ndarray, shape (N·Ho·Wo, C_in·kh·kw)
        The patch matrix, kept by the caller for the weight gradient.
    """
    c_out, c_in, kh, kw = weight.shape
    n, h, w, _ = x.shape
    cols = im2col(x, kh, kw)
    z = cols @ weight.reshape(c_out, c_in * kh * kw).T
    return z.reshape(n, h - kh + 1, w - kw + 1, c_out), cols


def correlate_valid_weight_grad(cols: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Adjoint of :func:`correlate_valid` with respect to the weight, summed over the batch.

    dW[j, i, u, v] = Σ_n Σ_r Σ_c dz[n, r, c, j] · x[n, r+u, c+v, i]

    This is the toolbox's ``convn(flipall(a), d, 'valid')``: flipping the
    input in all three dimensions turns the true convolution into this
    correlation, and the 'valid' extent along the batch axis is 1, i.e. a sum.

    Parameters
    ----------
    cols : ndarray, shape (N·Ho·Wo, C_in·kh·kw)
    dz : ndarray, shape (N, Ho, Wo, C_out)

    Returns
    -------
    ndarray, shape (C_out, C_in·kh·kw)  (reshape to (C_out, C_in, kh, kw))
    """
    return dz.reshape(-1, dz.shape[-1]).T @ cols


def correlate_valid_input_grad(dz: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Adjoint of :func:`correlate_valid` with respect to its input.

    dx[n, p, q, i] = Σ_j Σ_u Σ_v dz[n, p−u, q−v, j] · weight[j, i, u, v]

    that is the 'full' cross-correlation of ``dz`` (zero-padded by kh−1, kw−1)
    with the kernel rotated by 180° — the toolbox's
    ``convn(d, rot180(k), 'full')`` written in correlation form.

    Parameters
    ----------
    dz : ndarray, shape (N, Ho, Wo, C_out)
    weight : ndarray, shape (C_out, C_in, kh, kw)

    Returns
    -------
    ndarray, shape (N, Ho + kh − 1, Wo + kw − 1, C_in)
    """
    c_out, c_in, kh, kw = weight.shape
    n, ho, wo, _ = dz.shape
    padded = np.zeros((n, ho + 2 * (kh - 1), wo + 2 * (kw - 1), c_out), dtype=dz.dtype)
    padded[:, kh - 1 : kh - 1 + ho, kw - 1 : kw - 1 + wo, :] = dz
    # Rotated kernel with the roles of the channels swapped: (C_in, C_out, kh, kw).
    rotated = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    dx, _ = correlate_valid(padded, np.ascontiguousarray(rotated))
    return dx
