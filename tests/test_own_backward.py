"""docs/own-backward.md, executed: its code blocks run in order, print what the page shows, and
the wrong derivations on it are caught (by cnnnumgradcheck on the struct, by gradcheck on a Network)."""

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

from convprop import ConvpropError, Conv, Input, Network, gradcheck
from convprop.dlt import cnnbp, cnnff, cnnnumgradcheck, cnnsetup

PAGE = Path(__file__).resolve().parents[1] / "docs" / "own-backward.md"
BLOCK = re.compile(r"^```(?P<lang>\w+)\n(?P<body>.*?)^```$", re.M | re.S)
NUMBER = re.compile(r"-?\d+\.\d+e[-+]\d+")
#: A row of gradcheck's table that passed: name, shape, max |num-bp|, max rel, the index of the worst entry.
ROW = re.compile(r"^(?P<row>\S+ +\((?P<shape>[\d, ]*)\) +\S+ +\S+ +)\((?P<at>[\d, ]*)\)$", re.M)


def blocks(lang):
    """The page's fenced code blocks in language ``lang``, in order."""
    return [m["body"] for m in BLOCK.finditer(PAGE.read_text(encoding="utf-8")) if m["lang"] == lang]


@pytest.fixture(scope="module")
def page():
    """The namespace after running every python block of the page in order, and what they printed.

    On the NumPy engine, which printed the page: the compiled engine's round-off differs in
    the last digits, enough to name another entry as the worst of errors ~1e-10.
    """
    import convprop

    namespace = {"__name__": "own_backward_page"}
    printed = io.StringIO()
    convprop.set_engine("numpy")
    try:
        with contextlib.redirect_stdout(printed):
            for number, code in enumerate(blocks("python")):
                exec(compile(code, f"{PAGE.name} python block {number + 1}", "exec"), namespace)
    finally:
        convprop.set_engine(None)
    return namespace, printed.getvalue()


def _worst_entries_checked(table: str) -> str:
    """``table`` with the worst-entry index of each gradcheck row that passed checked (one in range for
    the row's shape) and then written as ``(worst)``: where every error is round-off (~1e-12), which
    entry is the largest follows the BLAS library's last digits (an AMD Zen 3 machine's OpenBLAS
    named other entries). A failing row (``FAIL`` after the index) keeps its index as printed."""
    def check(row):
        shape = [int(s) for s in row["shape"].split(",") if s.strip()]
        at = [int(s) for s in row["at"].split(",") if s.strip()]
        assert len(at) == len(shape) and all(0 <= i < n for i, n in zip(at, shape)), row.group(0)
        return row["row"] + "(worst)"

    return ROW.sub(check, table)


def test_the_page_prints_what_it_shows(page):
    _, printed = page
    shown = "".join(blocks("text"))
    assert len(blocks("python")) == 7 and len(blocks("text")) == 4
    assert len(ROW.findall(shown)) == len(ROW.findall(printed)) == 8  # the rows of both tables
    # The same lines, the same entries and verdicts; the numbers up to the BLAS library's last digits.
    assert NUMBER.sub("#", _worst_entries_checked(printed)) == NUMBER.sub("#", _worst_entries_checked(shown))
    for ours, theirs in zip(NUMBER.findall(printed), NUMBER.findall(shown)):
        assert float(ours) == pytest.approx(float(theirs), rel=0.05, abs=1e-10), (ours, theirs)


def test_the_correct_delta_passes_and_the_forgotten_rot180_is_caught(page):
    ns, _ = page
    assert ns["result"].checked == 484 and ns["result"].max_abs_error < 1e-8
    message = str(ns["caught"])
    assert isinstance(ns["caught"], ConvpropError)
    assert message.startswith("numerical gradient checking failed\n  at net.layers{2}.db{1} (Python: net['layers'][1]['db'][0])")
    numerical, stored = (float(v) for v in re.findall(r":\s+(-?\d\.\d+e[-+]\d+)\n", message + "\n")[:2])
    assert abs(numerical - stored) > 1e-7


def test_the_learners_delta_is_cnnbps_and_the_wrong_one_is_not(page):
    ns, _ = page
    after = cnnbp(ns["cnn"], ns["y"])
    mine, wrong = ns["subsampling_delta"](after, 2), ns["subsampling_delta_no_rot180"](after, 2)
    for i in range(2):
        assert mine[i].shape == after["layers"][2]["d"][i].shape == (12, 12, 5)
        np.testing.assert_allclose(mine[i], after["layers"][2]["d"][i], rtol=1e-12, atol=1e-16)
        assert np.abs(wrong[i] - after["layers"][2]["d"][i]).max() > 1e-4
    # my_cnnbp with the correct delta stores cnnbp's own gradients
    ours = ns["my_cnnbp"](ns["cnn"], ns["y"])
    for i, j in np.ndindex(1, 2):
        np.testing.assert_allclose(ours["layers"][1]["dk"][i][j], after["layers"][1]["dk"][i][j], rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(ours["layers"][1]["db"], after["layers"][1]["db"], rtol=1e-10, atol=1e-16)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_pages_backward_passes_on_other_draws(page, seed):
    """The page's functions, correct and wrong, on fresh random batches and networks."""
    ns, _ = page
    rng = np.random.default_rng(seed)
    x, y = rng.random((28, 28, 5)), rng.random((10, 5))
    layers = [{"type": "i"}, {"type": "c", "outputmaps": 2, "kernelsize": 5}, {"type": "s", "scale": 2},
              {"type": "c", "outputmaps": 2, "kernelsize": 5}, {"type": "s", "scale": 2}]
    cnn = cnnff(cnnsetup({"layers": layers}, x, y, seed=rng), x)
    assert cnnnumgradcheck(ns["my_cnnbp"](cnn, y), x, y).checked == 484
    with pytest.raises(ConvpropError, match=r"numerical gradient checking failed\n  at net\.layers\{2\}\."):
        cnnnumgradcheck(ns["my_cnnbp"](cnn, y, ns["subsampling_delta_no_rot180"]), x, y)
    images, targets = np.moveaxis(x, -1, 0), y.T
    good = Network([Input(28, 28), Conv(2, 5), ns["MySubsample"](2), Conv(2, 5), ns["MySubsample"](2)],
                   n_outputs=10, seed=seed)
    assert gradcheck(good, images, targets).max_abs_error < 1e-8
    bad = Network([Input(28, 28), Conv(2, 5), ns["MySubsampleNoScale"](2), Conv(2, 5), ns["MySubsampleNoScale"](2)],
                  n_outputs=10, seed=seed)
    report = gradcheck(bad, images, targets)
    failed = {t.name for t in report.tensors if not t.passed}
    assert not report.passed and failed == {"conv1.weight", "conv1.bias", "conv3.weight", "conv3.bias"}
    rel = {t.name: t.max_rel_error for t in report.tensors}
    assert rel["conv3.bias"] == pytest.approx(3 / 5, rel=1e-6) and rel["conv1.bias"] == pytest.approx(15 / 17, rel=1e-6)
