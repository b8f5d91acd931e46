"""Reading MATLAB .mat files safely, and DeepLearnToolbox's ``mnist_uint8.mat``.

``mnist_uint8.mat`` (shipped with the toolbox) holds ``train_x`` (60000×784 uint8), ``train_y``
(60000×10 uint8, one-hot), ``test_x`` (10000×784) and ``test_y`` (10000×10). Row ``n`` of
``train_x`` is image ``n`` flattened row-major, so ``train_x.reshape(-1, 28, 28)`` gives the
pictures; the toolbox's ``reshape(train_x', 28, 28, N)`` gives their transposes.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import scipy.io
from scipy.io import matlab

from .._files import file_errors, open_regular
from ..errors import ConvpropError
from ._matcheck import check_mat_bytes

__all__ = ["read_mat", "load_mnist_mat", "mnist_mat_images"]

_MNIST_KEYS = ("train_x", "train_y", "test_x", "test_y")


def read_mat(path: str | os.PathLike, **loadmat_kwargs) -> dict:
    """``scipy.io.loadmat`` with every failure turned into a one-line ConvpropError.

    Parameters
    ----------
    path : str or path-like
        A MATLAB v4, v5 or v7 (``-v7``, compressed) .mat file.
    **loadmat_kwargs
        Passed to :func:`scipy.io.loadmat` (e.g. ``squeeze_me=True``, ``simplify_cells=True``).

    Returns
    -------
    dict
        Variable name → value, without loadmat's ``__header__``/``__version__``/``__globals__``.

    Raises
    ------
    ConvpropError
        Missing file, empty or non-.mat file, truncated or corrupt data, or a v7.3 (HDF5)
        file (the message says how to re-save it).
    """
    name = str(path)
    with open_regular(path, ".mat") as f, file_errors(name, ".mat"):
        buf = f.read()
    try:
        major, _ = matlab.matfile_version(io.BytesIO(buf))
    except (matlab.MatReadError, ValueError, OSError, EOFError, struct.error, IndexError) as exc:
        raise ConvpropError(f"{name}: not a MATLAB .mat file ({exc})") from None
    if major == 2:
        raise ConvpropError(
            f"{name}: MATLAB v7.3 (HDF5) .mat files are not supported: re-save it with"
            " save(file, ..., '-v7') in MATLAB or Octave"
        )
    # scipy's compiled reader trusts the sizes in the file (a bad one can crash the interpreter):
    # check the whole structure first, then decode the very bytes that were checked.
    check_mat_bytes(buf, major, name)
    try:
        data = scipy.io.loadmat(io.BytesIO(buf), **loadmat_kwargs)
    except (ValueError, TypeError, OSError, EOFError, NotImplementedError, zlib.error,
            struct.error, IndexError, KeyError, AttributeError, UnicodeDecodeError,
            OverflowError, MemoryError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConvpropError(f"{name}: corrupt or truncated .mat file ({message})") from None
    return {k: v for k, v in data.items() if not (k.startswith("__") and k.endswith("__"))}


def _dims(a: np.ndarray) -> str:
    return "×".join(map(str, a.shape)) or "a scalar"


def load_mnist_mat(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the toolbox's ``mnist_uint8.mat``, checking its layout.

    Returns
    -------
    dict
        ``train_x`` (N, 784), ``train_y`` (N, 10), ``test_x`` (M, 784), ``test_y`` (M, 10),
        exactly as stored (uint8 in the toolbox's file).
    """
    data = read_mat(path)
    missing = [k for k in _MNIST_KEYS if k not in data]
    if missing:
        raise ConvpropError(f"{path}: not an mnist_uint8.mat file: missing {', '.join(missing)}"
                            f" (has {', '.join(sorted(data)) or 'no variables'})")
    out = {}
    for part in ("train", "test"):
        x, y = np.asarray(data[f"{part}_x"]), np.asarray(data[f"{part}_y"])
        if x.ndim != 2 or x.shape[1] != 784:
            raise ConvpropError(f"{path}: {part}_x must be N×784, found {_dims(x)}")
        if y.ndim != 2 or y.shape[1] != 10:
            raise ConvpropError(f"{path}: {part}_y must be N×10, found {_dims(y)}")
        if len(x) != len(y):
            raise ConvpropError(f"{path}: {part}_x has {len(x)} rows but {part}_y has {len(y)}")
        out[f"{part}_x"], out[f"{part}_y"] = x, y
    return out


def mnist_mat_images(x: np.ndarray) -> np.ndarray:
    """mnist_uint8.mat rows (N, 784) → images (N, 28, 28), the pictures the right way up."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 784:
        raise ConvpropError(f"mnist_mat_images: expected N×784 rows, got shape {x.shape}")
    return x.reshape(-1, 28, 28)
