"""MNIST from ../shared and Fashion-MNIST from the Debian package, read through the public API."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from convprop.datasets import (images_to_float, load_dataset, load_fashion_mnist, load_mnist,
                           write_idx)
from convprop.errors import ConvpropError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def mnist_dir(shared):
    return shared / "data" / "mnist"


@pytest.fixture(scope="module")
def mnist_train(mnist_dir):
    return load_mnist("train", path=mnist_dir, download=False)


def test_mnist_train(mnist_train, mnist_dir):
    x, y = mnist_train
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60000,) and y.dtype == np.uint8
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert [int(x[i].sum()) for i in range(3)] == [27525, 31095, 19443]
    assert int(x.sum(dtype=np.int64)) == 1567298545  # mean 33.32 = 0.1307 · 255
    # independent decoding of the first image: skip the 16-byte header, row-major 28×28
    raw = gzip.decompress((mnist_dir / "train-images-idx3-ubyte.gz").read_bytes())
    np.testing.assert_array_equal(x[0], np.frombuffer(raw[16:16 + 784], np.uint8).reshape(28, 28))


def test_mnist_test(mnist_dir):
    x, y = load_dataset("MNIST", "test", path=mnist_dir, download=False)
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert [int(x[i].sum()) for i in range(3)] == [18454, 28850, 9871]
    assert int(x.sum(dtype=np.int64)) == 264923200


def test_uncompressed_and_dotted_names(tmp_path, mnist_dir):
    # the files as unpacked by hand, with the names yann.lecun.com's archives unzip to on some OSes
    for stem, name in [("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
                       ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte")]:
        (tmp_path / name).write_bytes(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes()))
    x, y = load_mnist("test", path=tmp_path, download=False)
    assert x.shape == (10000, 28, 28) and y[:5].tolist() == [7, 2, 1, 0, 4]


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist absent")
@pytest.mark.parametrize("name", ["fashion-mnist", "fashion_mnist", "Fashion-MNIST"])
def test_fashion_mnist_from_debian(name, monkeypatch, tmp_path):
    monkeypatch.delenv("CONVPROP_DATA", raising=False)
    monkeypatch.setenv("CONVPROP_CACHE", str(tmp_path))  # an empty cache: Debian's copy is next
    monkeypatch.setenv("CONVPROP_MIRRORS", "http://127.0.0.1:9/")  # must not be needed
    x, y = load_dataset(name, "test", progress=False)
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert np.bincount(y).tolist() == [1000] * 10
    assert [int(x[i].sum()) for i in range(3)] == [33456, 100994, 51520]
    assert int(x.sum(dtype=np.int64)) == 573469082


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist absent")
def test_fashion_mnist_train_from_debian(monkeypatch, tmp_path):
    monkeypatch.delenv("CONVPROP_DATA", raising=False)
    monkeypatch.setenv("CONVPROP_CACHE", str(tmp_path))
    x, y = load_fashion_mnist("train", download=False)
    assert x.shape == (60000, 28, 28)
    assert y[:5].tolist() == [9, 0, 0, 3, 0] and np.bincount(y).tolist() == [6000] * 10
    assert [int(x[i].sum()) for i in range(3)] == [76247, 84598, 28662]


def test_images_to_float(mnist_train):
    x = mnist_train[0][:2]
    f64 = images_to_float(x)
    assert f64.dtype == np.float64 and f64.shape == (2, 28, 28)
    np.testing.assert_array_equal(f64, x / 255.0)
    f32 = images_to_float(x, np.float32)
    assert f32.dtype == np.float32
    np.testing.assert_array_equal(f32, x.astype(np.float32) / np.float32(255))
    assert f64.max() == 1.0 and f64.min() == 0.0
    assert float(f64[0].sum()) == pytest.approx(27525 / 255)
    with pytest.raises(ConvpropError, match="float type"):
        images_to_float(x, np.int32)
    with pytest.raises(ConvpropError, match="uint8"):
        images_to_float(f64)


@pytest.mark.parametrize("name, split, message", [
    ("cifar10", "train", "unknown dataset 'cifar10': valid names are fashion-mnist, mnist"),
    ("mnist", "validation", "unknown split 'validation': valid splits are train, test"),
])
def test_unknown_names_and_splits(name, split, message):
    with pytest.raises(ConvpropError) as info:
        load_dataset(name, split, download=False)
    assert str(info.value) == message


def small_set(directory, n_images, n_labels, prefix="t10k", shape=(28, 28), label_max=9):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_idx(directory / f"{prefix}-images-idx3-ubyte.gz",
              rng.integers(0, 256, (n_images, *shape), dtype=np.uint8))
    write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz",
              (np.arange(n_labels) % (label_max + 1)).astype(np.uint8))


def test_count_mismatch(tmp_path):
    small_set(tmp_path, 5, 4)
    with pytest.raises(ConvpropError, match="holds 5 images but .* holds 4 labels"):
        load_mnist("test", path=tmp_path)


def test_wrong_image_size_and_label_range(tmp_path):
    small_set(tmp_path / "a", 3, 3, shape=(32, 32))
    with pytest.raises(ConvpropError, match=r"uint8 images of shape \(N, 28, 28\), found uint8"):
        load_mnist("test", path=tmp_path / "a")
    small_set(tmp_path / "b", 12, 12, label_max=11)
    with pytest.raises(ConvpropError, match="label 11 is outside 0..9"):
        load_mnist("test", path=tmp_path / "b")
