"""The toolbox's test_example_CNN.m, line for line, through convprop.dlt.

Trains the example network (6c5-s2-12c5-s2) on MNIST for one epoch with the
toolbox's settings and prints the test error (the toolbox reports ~11 %).
MNIST comes from ``--data-dir``, ``$CONVPROP_DATA``, the user cache or a
download (see the README's *Data* section).

    python3 examples/test_example_cnn.py [--data-dir ../shared/data/mnist] [--epochs 1]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from convprop.datasets import load_mnist
from convprop.dlt import cnnsetup, cnntest, cnntrain
from convprop.errors import ConvpropError


def one_hot_columns(labels: np.ndarray) -> np.ndarray:
    """Labels (N,) → the toolbox's K×N target matrix."""
    y = np.zeros((10, labels.size))
    y[labels, np.arange(labels.size)] = 1
    return y


def run_test_example_cnn(train_x, train_y, test_x, test_y, epochs: int = 1, seed: int = 0):
    """The body of test_example_CNN.m, line for line, on data already in the toolbox layout.

    Returns the trained struct and cnntest's ``er`` and ``bad``; like the
    toolbox's test, raises AssertionError('Too big error') when er ≥ 0.12.
    """
    # rand('state',0)  →  seed=
    cnn = {"layers": [{"type": "i"},  # input layer
                      {"type": "c", "outputmaps": 6, "kernelsize": 5},  # convolution layer
                      {"type": "s", "scale": 2},  # sub sampling layer
                      {"type": "c", "outputmaps": 12, "kernelsize": 5},  # convolution layer
                      {"type": "s", "scale": 2}]}  # subsampling layer
    opts = {"alpha": 1, "batchsize": 50, "numepochs": epochs}
    cnn = cnnsetup(cnn, train_x, train_y, seed=seed)
    cnn = cnntrain(cnn, train_x, train_y, opts, seed=seed)
    er, bad = cnntest(cnn, test_x, test_y)
    # figure; plot(cnn.rL);  (convprop.plots draws it)
    if epochs == 1:
        assert er < 0.12, "Too big error"
    return cnn, er, bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
    parser.add_argument("--data-dir", type=Path, default=default if default.is_dir() else None)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        # load mnist_uint8;
        images, labels = load_mnist("train", path=args.data_dir)
        test_images, test_labels = load_mnist("test", path=args.data_dir)
    except ConvpropError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # train_x = double(reshape(train_x',28,28,60000))/255; (the toolbox's H×W×N layout)
    train_x = images.transpose(1, 2, 0) / 255.0
    test_x = test_images.transpose(1, 2, 0) / 255.0
    # train_y = double(train_y'); test_y = double(test_y');
    train_y, test_y = one_hot_columns(labels), one_hot_columns(test_labels)
    start = time.perf_counter()
    cnn, er, bad = run_test_example_cnn(train_x, train_y, test_x, test_y, args.epochs, args.seed)
    seconds = time.perf_counter() - start
    print(f"{args.epochs} epoch(s) in {seconds:.1f} s; final rL {cnn['rL'][-1]:.4f}; "
          f"test error {er:.2%} ({len(bad)} of {test_y.shape[1]} wrong)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
