"""Pure array operations and their adjoints: the NumPy engine's maths.

Every function here is stateless. Inside the engine maps travel channels-first
and batch-last, ``(C, H, W, N)`` ("CHWN"): a convolution builds the patch
matrix of a block of output rows (:func:`patches_cm`, :func:`im2col_cm`) and
multiplies it by the weights, ``(C_out, C_in·kh·kw)``; its adjoint scatters
the patch gradients back (:func:`col2im_cm_offset_major`). :func:`to_nhwc` /
:func:`from_nhwc` convert at the network's edges. The compiled engine
(:mod:`convprop.engine.kernels`) replaces these functions and is checked
against them.

Each forward operation is followed by its backward (the adjoint of its
linear part, or the derivative of the activation).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

# ---------------------------------------------------------------- activations


def sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """σ(z) = 1 / (1 + exp(−z)), elementwise; the dtype of ``z`` is kept.

    In place when ``out`` is ``z``. float64: computed literally (NumPy's
    vectorised exp is several times faster than scipy.special.expit); for
    z < −709, exp(−z) overflows to inf and σ correctly becomes 0. float32:
    as σ(z) = ½·tanh(z/2) + ½, the same function, because NumPy's SIMD
    float32 tanh is about 1.5× faster than exp + reciprocal; it differs from
    the literal form by a few units in the last place (absolute error
    < 1e-7), and σ(z) rounds to 0 below z ≈ −17 instead of ≈ −88.
    """
    if z.dtype == np.float32:
        half = np.float32(0.5)
        out = np.multiply(z, half, out=out)
        np.tanh(out, out=out)
        out *= half
        out += half
        return out
    out = np.negative(z, out=out)
    with np.errstate(over="ignore", under="ignore"):
        np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def sigmoid_backward(delta: np.ndarray, a: np.ndarray) -> np.ndarray:
    """dL/dz = dL/da · a(1 − a), where a = σ(z)."""
    d = 1 - a  # one temporary, then in place
    d *= a
    d *= delta
    return d


# ---------------------------------------------------------------- convolution


# -------------------------------------------------------------------- pooling


def mean_pool(a: np.ndarray, scale: int) -> np.ndarray:
    """Mean over non-overlapping scale×scale blocks.

    Parameters
    ----------
    a : ndarray, shape (N, H, W, C), H and W multiples of ``scale``

    Returns
    -------
    ndarray, shape (N, H/scale, W/scale, C)

    Only axes 1 and 2 are pooled, so the same function serves the engine's
    internal (C, H, W, N) maps.
    """
    n, h, w, c = a.shape
    blocks = a.reshape(n, h // scale, scale, w // scale, scale, c)
    # Sum of the scale² phases (strided slices), then one scaling: no pixel loops.
    out = blocks[:, :, 0, :, 0, :].copy()
    for u in range(scale):
        for v in range(scale):
            if u or v:
                out += blocks[:, :, u, :, v, :]
    out *= a.dtype.type(1.0 / (scale * scale))
    return out


def mean_pool_backward(delta: np.ndarray, scale: int) -> np.ndarray:
    """Adjoint of :func:`mean_pool`: expand(δ, [scale scale]) / scale².

    Parameters
    ----------
    delta : ndarray, shape (N, Hp, Wp, C)

    Returns
    -------
    ndarray, shape (N, Hp·scale, Wp·scale, C)
    """
    n, hp, wp, c = delta.shape
    out = np.empty((n, hp, scale, wp, scale, c), dtype=delta.dtype)
    # Divide the small array, then one broadcast copy (the same numbers, 1.6× faster).
    np.copyto(out, (delta / delta.dtype.type(scale * scale))[:, :, None, :, None, :])
    return out.reshape(n, hp * scale, wp * scale, c)


def max_pool(a: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Maximum over non-overlapping scale×scale blocks, and where it was.

    Parameters
    ----------
    a : ndarray, shape (N, H, W, C) (or the engine's (C, H, W, N): axes 1, 2 are pooled)
        Rows and columns past the last whole block are ignored.

    Returns
    -------
    out : ndarray, shape (N, H//scale, W//scale, C)
    arg : ndarray of uint8/intp, shape (N, H//scale, W//scale, C)
        Index u·scale + v of the maximum within its block: the first in
        row-major order when several are equal (numpy.argmax's rule).
    """
    n, h, w, c = a.shape
    hp, wp = h // scale, w // scale
    blocks = a[:, : hp * scale, : wp * scale].reshape(n, hp, scale, wp, scale, c)
    # One copy into window-last order, then a vectorised argmax: no loops over pixels.
    windows = np.ascontiguousarray(blocks.transpose(0, 1, 3, 5, 2, 4)).reshape(n, hp, wp, c, scale * scale)
    arg = np.argmax(windows, axis=-1)
    out = np.take_along_axis(windows, arg[..., None], axis=-1)[..., 0]
    return out, arg


def max_pool_backward(delta: np.ndarray, arg: np.ndarray, scale: int, size: tuple[int, int]) -> np.ndarray:
    """Adjoint of :func:`max_pool`: each δ goes to its block's arg-max, zeros elsewhere.

    Parameters
    ----------
    delta, arg : ndarray, shape (N, Hp, Wp, C)
    size : (H, W) of the pooled input (may exceed Hp·scale, Wp·scale: those get 0)

    Returns
    -------
    ndarray, shape (N, H, W, C)
    """
    n, hp, wp, c = delta.shape
    windows = np.zeros((n, hp, wp, c, scale * scale), dtype=delta.dtype)
    np.put_along_axis(windows, arg[..., None], delta[..., None], axis=-1)
    blocks = windows.reshape(n, hp, wp, c, scale, scale).transpose(0, 1, 4, 2, 5, 3)
    h, w = size
    if (h, w) == (hp * scale, wp * scale):
        return np.ascontiguousarray(blocks).reshape(n, h, w, c)
    out = np.zeros((n, h, w, c), dtype=delta.dtype)
    out[:, : hp * scale, : wp * scale] = blocks.reshape(n, hp * scale, wp * scale, c)
    return out


# ------------------------------------------- the engine's internal layout: (C, H, W, N)
#
# Between layers the engine keeps maps "batch-last", shape (C, H, W, N). A
# patch matrix then has one row per (input map, kernel row, kernel column)
# and one column per (output row, output column, sample): a convolution over
# the whole batch is ONE wide product  weight (C_out, C_in·kh·kw) @ cols,
# whose result already is the (C_out, Ho, Wo, N) output, and every window
# copy moves contiguous runs of Wo·N numbers. The functions above (NHWC)
# stay the reference form of the same operations.


def to_nhwc(a: np.ndarray) -> np.ndarray:
    """(C, H, W, N) maps → (N, H, W, C), a view."""
    return a.transpose(3, 1, 2, 0)


def from_nhwc(a: np.ndarray) -> np.ndarray:
    """(N, H, W, C) maps → contiguous (C, H, W, N)."""
    return np.ascontiguousarray(a.transpose(3, 1, 2, 0))


def patches_cm(x: np.ndarray, kh: int, kw: int, stride: int = 1) -> np.ndarray:
    """View of every kh×kw patch of batch-last maps, in patch-matrix order.

    Parameters
    ----------
    x : ndarray, shape (C, H, W, N), C-contiguous
    stride : int
        Step between patches: only the patches a strided convolution keeps.

    Returns
    -------
    ndarray, shape (C, kh, kw, Ho, Wo, N), Ho = (H − kh)//stride + 1 (likewise Wo)
        ``view[i, u, v, r, c, n] = x[i, r·stride + u, c·stride + v, n]``; no data is copied.
    """
    c, h, w, n = x.shape
    s = x.strides
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    shape, strides = (c, kh, kw, ho, wo, n), (s[0], s[1], s[2], s[1] * stride, s[2] * stride, s[3])
    if x.flags.c_contiguous:  # the cheap constructor (as_strided costs tens of µs a call)
        view = np.ndarray(shape, x.dtype, buffer=x, strides=strides)
        view.flags.writeable = False
        return view
    return as_strided(x, shape, strides, writeable=False)


def im2col_cm(patches: np.ndarray, r0: int, r1: int, out: np.ndarray) -> np.ndarray:
    """Patch matrix of output rows r0 ≤ r < r1, with a trailing row of ones for the bias.

    cols[(i·kh + u)·kw + v, ((r−r0)·Wo + c)·N + n] = x[i, r+u, c+v, n];  cols[−1, :] = 1

    Parameters
    ----------
    patches : ndarray, shape (C, kh, kw, Ho, Wo, N), from :func:`patches_cm`
    out : ndarray, shape (C·kh·kw + 1, ≥ (r1−r0)·Wo·N)
        Work buffer whose last row already holds ones.

    Returns
    -------
    ndarray, shape (C·kh·kw + 1, (r1−r0)·Wo·N), a view of ``out``
    """
    c, kh, kw, _, wo, n = patches.shape
    cols = out[:, : (r1 - r0) * wo * n]
    # One strided copy; its innermost runs are contiguous Wo·N numbers.
    np.copyto(cols[:-1].reshape(c, kh, kw, r1 - r0, wo, n), patches[:, :, :, r0:r1])
    return cols


@functools.lru_cache(maxsize=256)
def row_blocks(rows: int, row_size: int, itemsize: int, target_bytes: int = 1 << 19) -> tuple[tuple[int, int], ...]:
    """Split ``rows`` output rows into ranges whose patch matrices take about ``target_bytes``.

    A block's patch matrix is built and consumed while it is still in the
    CPU cache, instead of writing the whole batch's matrix to memory. The
    default (512 KiB, about a quarter of a 2 MiB L2) was the best of 256 KiB
    to whole-batch matrices for both conv layers of the DLT example network.
    """
    step = max(1, target_bytes // max(1, row_size * itemsize))
    return tuple((r, min(r + step, rows)) for r in range(0, rows, step))


def col2im_cm_offset_major(
    dcols: np.ndarray, shape: tuple[int, int, int, int], kh: int, kw: int, stride: int = 1
) -> np.ndarray:
    """Adjoint of patch extraction with rows in (kh, kw, C) order: scatter-add patches back onto maps.

    dx[i, r·s+u, c·s+v, n] += dcols[(u·kw + v)·C + i, (r·Wo + c)·N + n]   (s = stride)

    Each kernel offset's C rows are one contiguous block, so its scatter-add
    reads contiguous memory (about 1.5× faster than rows in (C, kh, kw) order
    for the DLT network's second conv layer).

    Parameters
    ----------
    dcols : ndarray, shape (kh·kw·C, Ho·Wo·N)
    shape : (C, H, W, N) of the maps

    Returns
    -------
    ndarray, shape (C, H, W, N)
    """
    c, h, w, n = shape
    s = stride
    ho, wo = (h - kh) // s + 1, (w - kw) // s + 1
    patches = dcols.reshape(kh, kw, c, ho, wo, n)
    dx = np.zeros(shape, dtype=dcols.dtype)
    for u in range(kh):
        for v in range(kw):
            target = dx[:, u : u + s * (ho - 1) + 1 : s, v : v + s * (wo - 1) + 1 : s, :]
            np.add(target, patches[u, v], out=target)
    return dx

