"""Exact conversions between convprop's layouts and DeepLearnToolbox's.

========================  =================================  ===============================
quantity                  convprop                           toolbox (MATLAB)
========================  =================================  ===============================
images                    x[n, r, c] (N, H, W)               x(r, c, n)  (H×W×N)
targets                   y[n, k] (N, K) or labels (N,)      y(k, n)  (K×N)
maps                      a[n, r, c, j] (N, H, W, C)         a{j}(r, c, n)
kernels                   weight[j, i, u, v], correlation    k{i}{j}(u, v), true convolution:
                                                             k{i}{j} = rot180(weight[j, i])
feature vector            fv[n, (r·W + c)·C + j]             fv((j−1)·H·W + (c−1)·H + r, n)
output weights            ffW[:, (r·W + c)·C + j]            ffW(:, same index as fv)
========================  =================================  ===============================

Every conversion is a transpose, a flip or a permutation: no arithmetic, so
round trips are bit-exact.
"""

from __future__ import annotations

import numpy as np


def kernels_from_dlt(k: np.ndarray) -> np.ndarray:
    """Toolbox kernels (inputmaps, outputmaps, kh, kw), k[i, j] = k{i}{j} → weight (out, in, kh, kw)."""
    return np.ascontiguousarray(np.asarray(k)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def kernels_to_dlt(weight: np.ndarray) -> np.ndarray:
    """weight (out, in, kh, kw) → toolbox kernels (in, out, kh, kw), k[i, j] = k{i}{j}."""
    return np.ascontiguousarray(np.asarray(weight)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def fv_permutation(height: int, width: int, maps: int) -> np.ndarray:
    """Index array ``p`` with ``fv_convprop = fv_dlt[p]`` for maps of size height×width×maps.

    Returns
    -------
    ndarray of int, shape (height·width·maps,)
        ``p[(r·W + c)·C + j] = j·H·W + c·H + r``.
    """
    dlt_index = np.arange(height * width * maps).reshape(maps, width, height)
    return dlt_index.transpose(2, 1, 0).ravel()


def ffw_from_dlt(ffw: np.ndarray, map_shape: tuple[int, int, int]) -> np.ndarray:
    """Toolbox ffW (K, F) → convprop output weight (K, F)."""
    return np.ascontiguousarray(np.asarray(ffw)[:, fv_permutation(*map_shape)])


def ffw_to_dlt(weight: np.ndarray, map_shape: tuple[int, int, int]) -> np.ndarray:
    """convprop output weight (K, F) → toolbox ffW (K, F)."""
    out = np.empty_like(weight)
    out[:, fv_permutation(*map_shape)] = weight
    return out


def fv_to_dlt(fv: np.ndarray, map_shape: tuple[int, int, int]) -> np.ndarray:
    """convprop feature vectors (N, F) → toolbox fv (F, N)."""
    out = np.empty_like(fv.T)
    out[fv_permutation(*map_shape)] = fv.T
    return out


def images_from_dlt(x: np.ndarray) -> np.ndarray:
    """Toolbox images (H, W, N) → (N, H, W) (a view)."""
    return np.moveaxis(np.asarray(x), -1, 0)


def images_to_dlt(x: np.ndarray) -> np.ndarray:
    """(N, H, W) images → toolbox layout (H, W, N) (a view)."""
    return np.moveaxis(np.asarray(x), 0, -1)


def maps_to_dlt(a: np.ndarray) -> list[np.ndarray]:
    """Maps (N, H, W, C) → the toolbox's cell a{j}, a list of C arrays (H, W, N)."""
    return [np.moveaxis(a[..., j], 0, -1) for j in range(a.shape[-1])]
