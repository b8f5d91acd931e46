"""Tiny IDX .gz files for CLI tests (the format of the MNIST files)."""

import gzip
import struct
from pathlib import Path

import numpy as np

NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def tiny_dataset(directory: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> Path:
    """A learnable 28×28, 10-class dataset in MNIST's file layout: class k lights up row band k."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 60, (n, 28, 28))
        for i, k in enumerate(labels):
            images[i, 2 + 2 * k : 5 + 2 * k, 4:24] = 255
        img_name, lbl_name = NAMES[split]
        write_idx(directory / img_name, images)
        write_idx(directory / lbl_name, labels)
    return directory
