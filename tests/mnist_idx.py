"""Read MNIST's IDX .gz files from ../shared/data/mnist (test helper; the library never reads ../shared)."""

import gzip
from pathlib import Path

import numpy as np

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(shared: Path, split: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of ``split`` as floats in [0, 1], (n, 28, 28), and int labels (n,)."""
    images, labels = (shared / "data" / "mnist" / name for name in FILES[split])
    x = _idx(images)[:n].astype(np.float64) / 255
    y = _idx(labels)[:n].astype(np.int64)
    return x, y
