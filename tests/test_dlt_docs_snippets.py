"""The .mat snippets of docs/interop.md, executed on a real file: convprop.dlt.load_mat gives a struct
that cnntest takes, convprop.formats.matlab.load_mat a Network. (The README's snippet makes its own
cnn.mat and runs as written in tests/test_readme.py, which checks it prints "dict Network".)"""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from convprop import Network, dlt

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(?P<body>.*?)^```$", re.M | re.S)


def _mat_blocks(path):
    return [m["body"] for m in BLOCK.finditer(path.read_text(encoding="utf-8")) if "_mat" in m["body"]]


@pytest.fixture
def in_folder_with_cnn_mat(tmp_path):
    """A folder holding cnn.mat (a toolbox net of 16×16 images, 3 classes), and data in the toolbox layout."""
    rng = np.random.default_rng(0)
    test_x, test_y = rng.random((16, 16, 9)), np.eye(3)[:, rng.integers(0, 3, 9)]
    cnn = dlt.cnnsetup({"layers": [{"type": "i"}, {"type": "c", "outputmaps": 2, "kernelsize": 5},
                                   {"type": "s", "scale": 2}]}, test_x, test_y, seed=0)
    cnn["rL"] = np.array([0.5, 0.45])
    dlt.save_mat(cnn, tmp_path / "cnn.mat")
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield cnn, test_x, test_y
    finally:
        os.chdir(here)


@pytest.mark.parametrize("page", ["docs/interop.md"])
def test_the_mat_snippets_run_and_speak_structs_in_dlt(page, in_folder_with_cnn_mat):
    original, test_x, test_y = in_folder_with_cnn_mat
    blocks = _mat_blocks(ROOT / page)
    assert len(blocks) == (3 if page == "docs/interop.md" else 1)
    namespace = {"test_x": test_x, "test_y": test_y, "train_x": test_x, "train_y": test_y}
    expected_er, expected_bad = dlt.cnntest(original, test_x, test_y)
    for code in blocks:
        exec(compile(code, page, "exec"), namespace)
    assert isinstance(namespace["cnn"], dict) and isinstance(namespace["net"], Network)
    assert namespace["er"] == expected_er  # cnntest on the struct that convprop.dlt.load_mat gave
    np.testing.assert_array_equal(namespace["bad"], expected_bad)
    np.testing.assert_array_equal(namespace["net"].forward(np.moveaxis(test_x, -1, 0)).T, dlt.cnnff(original, test_x)["o"])
    np.testing.assert_array_equal(namespace["net"].rL, [0.5, 0.45])
    if page == "docs/interop.md":
        assert namespace["result"].error == expected_er
        np.testing.assert_array_equal(namespace["o"], dlt.cnnff(original, test_x)["o"])
    written = "cnn.mat" if page == "docs/interop.md" else "out.mat"
    np.testing.assert_array_equal(dlt.load_mat(written)["ffW"], original["ffW"])
