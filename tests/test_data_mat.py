"""The .mat readers: the toolbox fixtures, an mnist_uint8.mat look-alike, and broken files.

No byte-corrupted (as opposed to truncated) .mat files here: scipy.io.loadmat can crash the
interpreter on some of them.
"""

import numpy as np
import pytest
import scipy.io

from convprop.datasets import load_mnist, load_mnist_mat, mnist_mat_images, read_mat
from convprop.errors import ConvpropError


@pytest.fixture(scope="module")
def dlt(shared):
    return shared / "fixtures" / "dlt"


def test_expected_fixture_layout_matches_idx(dlt, shared):
    e = read_mat(dlt / "dlt_cnn_mnist6000_1epoch_expected.mat")
    assert sorted(e) == ["bad", "er", "o", "test_x", "test_y"]  # no __header__ etc.
    x, y = load_mnist("test", path=shared / "data" / "mnist", download=False)
    assert e["test_x"].shape == (28, 28, 200) and e["test_y"].shape == (10, 200)
    # toolbox layout: x(:, :, n) is the transpose of picture n, divided by 255 in double
    np.testing.assert_array_equal(e["test_x"], x[:200].transpose(2, 1, 0) / 255.0)
    np.testing.assert_array_equal(e["test_y"], np.eye(10)[y[:200]].T)
    assert e["er"].item() == 0.93 and e["bad"].shape == (1, 186)
    assert np.mean(e["o"].argmax(0) != y[:200]) == 0.93


def test_net_fixture(dlt):
    cnn = read_mat(dlt / "dlt_cnn_mnist6000_1epoch.mat", simplify_cells=True)["cnn"]
    assert cnn["ffW"].shape == (10, 192) and cnn["ffb"].shape == (10,)
    assert [layer["type"] for layer in cnn["layers"]] == ["i", "c", "s", "c", "s"]
    assert len(cnn["rL"]) == 121  # the toolbox's rL: one entry per batch + its initial zero


def write_mnist_uint8(path, n_train=6, n_test=4, **override):
    rng = np.random.default_rng(1)
    data = {"train_x": rng.integers(0, 256, (n_train, 784), dtype=np.uint8),
            "train_y": np.eye(10, dtype=np.uint8)[np.arange(n_train) % 10],
            "test_x": rng.integers(0, 256, (n_test, 784), dtype=np.uint8),
            "test_y": np.eye(10, dtype=np.uint8)[(np.arange(n_test) + 3) % 10]}
    data.update(override)
    data = {k: v for k, v in data.items() if v is not None}
    scipy.io.savemat(path, data, do_compression=True)
    return data


def test_mnist_uint8_mat(tmp_path):
    written = write_mnist_uint8(tmp_path / "mnist_uint8.mat")
    m = load_mnist_mat(tmp_path / "mnist_uint8.mat")
    assert sorted(m) == ["test_x", "test_y", "train_x", "train_y"]
    for key, value in written.items():
        assert m[key].dtype == np.uint8 and m[key].shape == value.shape
        np.testing.assert_array_equal(m[key], value)
    images = mnist_mat_images(m["train_x"])
    assert images.shape == (6, 28, 28)
    np.testing.assert_array_equal(images[2, 5], written["train_x"][2, 140:168])  # row 5 of image 2
    assert m["test_y"].argmax(1).tolist() == [3, 4, 5, 6]


@pytest.mark.parametrize("override, message", [
    ({"test_y": None}, "not an mnist_uint8.mat file: missing test_y"),
    ({"train_x": np.zeros((6, 783), np.uint8)}, "train_x must be N×784, found 6×783"),
    ({"test_y": np.zeros((4, 9), np.uint8)}, "test_y must be N×10, found 4×9"),
    ({"train_y": np.zeros((5, 10), np.uint8)}, "train_x has 6 rows but train_y has 5"),
])
def test_mnist_uint8_mat_layout_errors(tmp_path, override, message):
    write_mnist_uint8(tmp_path / "m.mat", **override)
    with pytest.raises(ConvpropError, match=message):
        load_mnist_mat(tmp_path / "m.mat")


def test_v4_file_reads(tmp_path):
    scipy.io.savemat(tmp_path / "v4.mat", {"a": np.arange(6.0).reshape(2, 3)}, format="4")
    np.testing.assert_array_equal(read_mat(tmp_path / "v4.mat")["a"], [[0, 1, 2], [3, 4, 5]])


def test_v73_hdf5_names_the_fix(tmp_path):
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2026 HDF5"
    p = tmp_path / "v73.mat"
    p.write_bytes(header.ljust(116) + b"\x00" * 8 + b"\x00\x02IM" + b"\x89HDF\r\n\x1a\n" * 48)
    with pytest.raises(ConvpropError, match=r"v73.mat: MATLAB v7.3 \(HDF5\) .mat files are not "
                                            r"supported: re-save it with save\(file, ..., '-v7'\)"):
        read_mat(p)


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("keep", [0.2, 0.5, 0.95])
def test_truncated_mat(tmp_path, compressed, keep):
    p = tmp_path / "t.mat"
    write_mnist_uint8(p)
    scipy.io.savemat(p, {"a": np.arange(500.0)}, do_compression=compressed)
    blob = p.read_bytes()
    p.write_bytes(blob[: max(140, int(len(blob) * keep))])
    with pytest.raises(ConvpropError, match=r"t.mat: corrupt or truncated .mat file \("):
        read_mat(p)


@pytest.mark.parametrize("content, message", [
    (b"", "not a MATLAB .mat file"),
    (b"MATLAB", "not a MATLAB .mat file"),
    (b"hello, this is a text file and not a mat file at all" * 4, "not a MATLAB .mat file"),
])
def test_not_a_mat_file(tmp_path, content, message):
    p = tmp_path / "x.mat"
    p.write_bytes(content)
    with pytest.raises(ConvpropError, match=message) as info:
        read_mat(p)
    assert str(p) in str(info.value) and "\n" not in str(info.value)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ConvpropError, match="no such file"):
        read_mat(tmp_path / "none.mat")
    with pytest.raises(ConvpropError, match="not a regular file"):
        read_mat(tmp_path)
