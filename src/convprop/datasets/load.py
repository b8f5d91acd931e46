"""MNIST and Fashion-MNIST as (N, 28, 28) uint8 images and (N,) uint8 labels."""

from __future__ import annotations

import os

import numpy as np

from ..errors import ConvpropError
from .catalog import check_split, dataset_spec
from .download import fetch_split
from ..formats.idx import read_idx
from .locate import dataset_cache_dir, locate

__all__ = ["load_dataset", "load_mnist", "load_fashion_mnist", "images_to_float"]


def _check_pair(images: np.ndarray, labels: np.ndarray, images_path, labels_path) -> None:
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ConvpropError(f"{images_path}: expected uint8 images of shape (N, 28, 28),"
                            f" found {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ConvpropError(f"{labels_path}: expected uint8 labels of shape (N,),"
                            f" found {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ConvpropError(f"{images_path} holds {len(images)} images but {labels_path}"
                            f" holds {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ConvpropError(f"{labels_path}: label {int(labels.max())} is outside 0..9")


def _package_hint(spec) -> str:
    if not spec.package:
        return ""
    return f"; on Debian / Ubuntu, sudo apt-get install {spec.package} puts it in {spec.system_dirs[0]}"


def load_dataset(name: str, split: str = "train", path: str | os.PathLike | None = None,
                 download: bool = True, progress: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Load a split of MNIST or Fashion-MNIST.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        ``"fashion_mnist"`` is accepted too.
    split : {"train", "test"}
    path : str or path-like, optional
        A directory holding the dataset's IDX files (``.gz`` or not), directly or in a
        sub-directory named after the dataset. When given, nothing else is searched.
    download : bool
        Download into the user cache when the files are found nowhere.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    images : ndarray of uint8, shape (N, 28, 28)
    labels : ndarray of uint8, shape (N,)
        N = 60 000 (train) or 10 000 (test).

    Notes
    -----
    Look-up order without ``path``: ``$CONVPROP_DATA``; the user cache (``$CONVPROP_CACHE``,
    ``$XDG_CACHE_HOME/convprop`` or ``~/.cache/convprop``); Debian's
    ``/usr/share/datasets/fashion-mnist`` (Fashion-MNIST only); then a download from the
    mirrors (``$CONVPROP_MIRRORS`` overrides them), verified by SHA-256.
    """
    spec = dataset_spec(name)
    check_split(split)
    paths, searched = locate(spec, split, path)
    if paths is None:
        if not download:
            raise ConvpropError(
                f"{spec.name} {split} files not found (searched: {', '.join(searched)}) and"
                " download=False: name their directory (--data-dir on the command line, path= in Python),"
                f" set CONVPROP_DATA, or allow the download{_package_hint(spec)}"
            )
        try:
            paths = fetch_split(spec, split, dataset_cache_dir(spec), progress=progress)
        except ConvpropError as exc:
            raise ConvpropError(f"{spec.name} {split} files not found locally (searched:"
                                f" {', '.join(searched)}) and {exc}{_package_hint(spec)}") from None
    images_path, labels_path = paths
    # No bigger than the catalogued files: a forged header cannot make a 10 GB "MNIST".
    images_spec, labels_spec = spec.files[split]
    images = read_idx(images_path, max_bytes=images_spec.size)
    labels = read_idx(labels_path, max_bytes=labels_spec.size)
    _check_pair(images, labels, images_path, labels_path)
    return images, labels


def load_mnist(split: str = "train", path: str | os.PathLike | None = None,
               download: bool = True, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits: ``load_dataset("mnist", ...)``; images (N, 28, 28) uint8, labels (N,)."""
    return load_dataset("mnist", split, path, download, progress)


def load_fashion_mnist(split: str = "train", path: str | os.PathLike | None = None,
                       download: bool = True, progress: bool = True
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST: ``load_dataset("fashion-mnist", ...)``; images (N, 28, 28) uint8,
    labels (N,)."""
    return load_dataset("fashion-mnist", split, path, download, progress)


def images_to_float(images: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Pixels / 255 in ``dtype`` (computed in that dtype, as MATLAB's ``double(x)/255``).

    Parameters
    ----------
    images : ndarray of uint8, any shape
    dtype : floating dtype, default float64

    Returns
    -------
    ndarray of ``dtype``, same shape, values in [0, 1].
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ConvpropError(f"images_to_float: dtype must be a float type, got {dtype}")
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ConvpropError(f"images_to_float: expected uint8 pixels, got {images.dtype}")
    out = images.astype(dtype)
    out /= dtype.type(255)
    return out


