"""docs/toolbox-fields.md, checked: each convprop.dlt function reads and writes the struct fields
that the page says, and the toolbox's columns are what the literal port of the .m files does."""

import copy
import re
from pathlib import Path

import numpy as np
import pytest

import dlt_fields as F
import dlt_reference as ref
from convprop import dlt

PAGE = Path(__file__).resolve().parents[1] / "docs" / "toolbox-fields.md"
FUNCTIONS = ["cnnsetup", "cnnff", "cnnbp", "cnnapplygrads", "cnntrain", "cnntest", "cnnnumgradcheck"]

rng = np.random.default_rng(0)
X, Y = rng.random((14, 14, 2)), rng.random((3, 2))
LAYERS = [{"type": "i"}, {"type": "c", "outputmaps": 2, "kernelsize": 3}, {"type": "s", "scale": 2},
          {"type": "c", "outputmaps": 2, "kernelsize": 3}, {"type": "s", "scale": 2}]
OPTS = {"alpha": 0.5, "batchsize": 2, "numepochs": 1}
PORT_ERRORS = (KeyError, IndexError, TypeError, ValueError)  # how the port fails on a missing field


def _full_struct():
    """Every field the toolbox's functions ever write: after cnnsetup, cnnff, cnnbp, with an rL."""
    net = dlt.cnnbp(dlt.cnnff(dlt.cnnsetup({"layers": copy.deepcopy(LAYERS)}, X, Y, seed=0), X), Y)
    net["rL"] = np.array([0.3, 0.29])
    return net


def _rand(m, n, stream=np.random.default_rng(1)):
    return stream.random(m * n).reshape(m, n, order="F")  # MATLAB's rand(m, n), column-major


OURS = {
    "cnnsetup": lambda n: dlt.cnnsetup(n, X, Y, seed=0),
    "cnnff": lambda n: dlt.cnnff(n, X),
    "cnnbp": lambda n: dlt.cnnbp(n, Y),
    "cnnapplygrads": lambda n: dlt.cnnapplygrads(n, OPTS),
    "cnntrain": lambda n: dlt.cnntrain(n, X, Y, OPTS, seed=0),
    "cnntest": lambda n: dlt.cnntest(n, X, Y),
    "cnnnumgradcheck": lambda n: dlt.cnnnumgradcheck(n, X, Y),
}
TOOLBOX = {
    "cnnsetup": lambda n: ref.cnnsetup(n, X, Y, _rand),
    "cnnff": lambda n: ref.cnnff(n, X),
    "cnnbp": lambda n: ref.cnnbp(n, Y),
    "cnnapplygrads": lambda n: ref.cnnapplygrads(n, OPTS),
    "cnntrain": lambda n: ref.cnntrain(n, X, Y, OPTS, np.random.default_rng(2).permutation),
    "cnntest": lambda n: ref.cnntest(n, X, Y),
    "cnnnumgradcheck": lambda n: ref.cnnnumgradcheck(n, X, Y),
}


def _table():
    """{function: {column: set of fields}} from the page's table ('same' = the toolbox's column)."""
    rows = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`cnn\w+`", cells[0]):
            sets = [set(re.findall(r"`([\w.]+)`", c)) if c not in ("—", "same") else (set() if c == "—" else None)
                    for c in cells[1:]]
            toolbox_reads, toolbox_writes, reads, writes = sets
            rows[cells[0].strip("`")] = {
                "toolbox reads": toolbox_reads, "toolbox writes": toolbox_writes,
                "convprop reads": toolbox_reads if reads is None else reads,
                "convprop writes": toolbox_writes if writes is None else writes,
            }
    return rows


def test_the_page_has_a_row_per_function():
    assert sorted(_table()) == sorted(FUNCTIONS)


def _writes(run):
    net = _full_struct()
    before = F.snapshot(net)
    out = run(net)
    return F.written(before, out if isinstance(out, dict) else net), F.written(before, net)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_toolbox_columns_are_what_the_literal_port_does(name):
    row = _table()[name]
    assert _writes(TOOLBOX[name])[0] == row["toolbox writes"]
    assert F.reads(TOOLBOX[name], _full_struct(), PORT_ERRORS) == row["toolbox reads"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_convprop_reads_and_writes_what_the_page_says(name):
    row = _table()[name]
    written, changed_in_argument = _writes(OURS[name])
    assert written == row["convprop writes"]
    assert changed_in_argument == set()  # MATLAB's value semantics: the argument is left as it was
    assert F.reads(OURS[name], _full_struct()) == row["convprop reads"]


def _same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if hasattr(a, "checked"):  # cnnnumgradcheck's result
        return (a.checked, a.max_abs_error, a.worst) == (b.checked, b.max_abs_error, b.worst)
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_field_convprop_does_not_read_changes_nothing_it_returns(name):
    full = _full_struct()
    argument = copy.deepcopy(full)
    before = F.snapshot(argument)
    reference = OURS[name](argument)
    unread = sorted(F.fields(full) - _table()[name]["convprop reads"])
    assert len(unread) >= 10
    for field in unread:
        out = OURS[name](F.without(full, field))
        if isinstance(reference, dict):  # compare what the function wrote
            written = F.written(before, reference)
            assert written == _table()[name]["convprop writes"]
            for f in written:
                assert _same(F._values(out, f), F._values(reference, f)), (field, f)
        else:
            assert _same(out, reference), field
