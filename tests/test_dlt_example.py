"""tests/test_example_CNN.m of DeepLearnToolbox, as translated in examples/test_example_cnn.py, on full MNIST.

One epoch over the 60,000 training images with the toolbox's settings (alpha 1,
batch 50, 6c5-s2-12c5-s2) and the toolbox's own assertion, er < 0.12 on the
10,000 test images (the toolbox's comment: "around 11% error").
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from convprop.datasets import load_mnist

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "test_example_cnn.py"


def _example():
    spec = importlib.util.spec_from_file_location("test_example_cnn_port", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_CNN(shared):
    folder = shared / "data" / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST is not in ../shared/data/mnist")
    example = _example()
    images, labels = load_mnist("train", path=folder, download=False, progress=False)
    test_images, test_labels = load_mnist("test", path=folder, download=False, progress=False)
    train_x = images.transpose(1, 2, 0) / 255.0  # double(reshape(train_x',28,28,60000))/255
    test_x = test_images.transpose(1, 2, 0) / 255.0
    train_y, test_y = example.one_hot_columns(labels), example.one_hot_columns(test_labels)
    assert train_x.shape == (28, 28, 60000) and train_y.shape == (10, 60000) and test_y.shape == (10, 10000)
    cnn, er, bad = example.run_test_example_cnn(train_x, train_y, test_x, test_y)  # asserts er < 0.12 itself
    assert er < 0.12, "Too big error"
    assert len(bad) == round(er * 10000) and np.all(np.diff(bad) > 0)
    assert cnn["rL"].shape == (1201,) and cnn["rL"][-1] < 0.5 * cnn["rL"][0]
