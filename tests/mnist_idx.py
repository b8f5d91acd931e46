"""MNIST from ../shared/data/mnist for tests (the library itself never reads ../shared)."""

from pathlib import Path

import numpy as np

from convprop.datasets import load_mnist as _load


def load_mnist(shared: Path, split: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of ``split`` as floats in [0, 1], (n, 28, 28), and int labels (n,)."""
    images, labels = _load(split, path=shared / "data" / "mnist", download=False, progress=False)
    return images[:n].astype(np.float64) / 255, labels[:n].astype(np.int64)
