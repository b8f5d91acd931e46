"""The toolbox's own CNN tests, translated line by line, and the negative twin of its gradient test.

DeepLearnToolbox's tests/test_cnn_gradients_are_numerically_correct.m builds a
2-map/2-map network on a random 28×28×5 batch with random (not one-hot)
10×5 targets, runs cnnff and cnnbp, and lets cnnnumgradcheck check the
gradients cnnbp stored. Its twin here plants an error in one stored gradient,
which the check must reject, naming the entry, as the toolbox rejects it.
(tests/test_example_CNN.m is ported as examples/test_example_cnn.py and
run by tests/test_dlt_example.py.)
"""

import copy
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.io

import dlt_reference as ref
from convprop import ConvpropError
from convprop.dlt import cnnbp, cnnff, cnnnumgradcheck, cnnsetup

#: Entries of the toolbox test's network: ffb 10, ffW 10×32, layer 4: 2 b + 2·2 5×5 k, layer 2: 2 b + 1·2 5×5 k.
ENTRIES = 10 + 10 * 32 + (2 + 2 * 2 * 25) + (2 + 1 * 2 * 25)


def toolbox_test(seed):
    """test_cnn_gradients_are_numerically_correct.m up to its last line; MATLAB's rand is one stream."""
    rand = np.random.default_rng(seed)
    batch_x = rand.random((28, 28, 5))  # batch_x = rand(28,28,5);
    batch_y = rand.random((10, 5))  # batch_y = rand(10,5);
    cnn = {"layers": [
        {"type": "i"},  # input layer
        {"type": "c", "outputmaps": 2, "kernelsize": 5},  # convolution layer
        {"type": "s", "scale": 2},  # sub sampling layer
        {"type": "c", "outputmaps": 2, "kernelsize": 5},  # convolution layer
        {"type": "s", "scale": 2},  # subsampling layer
    ]}
    cnn = cnnsetup(cnn, batch_x, batch_y, seed=rand)  # cnn = cnnsetup(cnn, batch_x, batch_y);
    cnn = cnnff(cnn, batch_x)  # cnn = cnnff(cnn, batch_x);
    cnn = cnnbp(cnn, batch_y)  # cnn = cnnbp(cnn, batch_y);
    return cnn, batch_x, batch_y  # cnnnumgradcheck(cnn, batch_x, batch_y); is the test's last line


@pytest.mark.parametrize("seed", range(5))
def test_cnn_gradients_are_numerically_correct(seed):
    cnn, batch_x, batch_y = toolbox_test(seed)
    result = cnnnumgradcheck(cnn, batch_x, batch_y)
    assert result.checked == ENTRIES == 484
    assert 0 < result.max_abs_error < 1e-8
    assert re.fullmatch(r"dffb\(\d+\)|dffW\(\d+,\d+\)|layers\{[24]\}\.d[bk].*", result.worst)


def test_the_literal_port_of_cnnnumgradcheck_passes_the_same_struct():
    cnn, batch_x, batch_y = toolbox_test(0)
    assert ref.cnnnumgradcheck(copy.deepcopy(cnn), batch_x, batch_y) == ENTRIES


# ------------------------------------------------------------ the negative twin


def plant(cnn, path, index, delta=1e-6):
    """A copy of the struct with ``delta`` added to one stored gradient entry; the entry's old value."""
    planted = copy.deepcopy(cnn)
    container = planted
    for key in path[:-1]:
        container = container[key]
    value = np.array(container[path[-1]], dtype=np.float64)
    old = float(value[index])
    value[index] += delta
    container[path[-1]] = value
    return planted, old


#: (path in the dict, index, the entry as the message names it, MATLAB then Python).
PLANTED = [
    (["dffb"], (2, 0), "dffb(3)", "net['dffb'][2, 0]"),
    (["dffW"], (3, 16), "dffW(4,17)", "net['dffW'][3, 16]"),
    (["layers", 3, "db", 1], (), "layers{4}.db{2}", "net['layers'][3]['db'][1]"),
    (["layers", 3, "dk", 1, 0], (4, 0), "layers{4}.dk{2}{1}(5,1)", "net['layers'][3]['dk'][1][0][4, 0]"),
    (["layers", 1, "db", 0], (), "layers{2}.db{1}", "net['layers'][1]['db'][0]"),
    (["layers", 1, "dk", 0, 1], (2, 3), "layers{2}.dk{1}{2}(3,4)", "net['layers'][1]['dk'][0][1][2, 3]"),
]

FAILURE = re.compile(
    r"numerical gradient checking failed\n"
    r"  at net\.(?P<at>\S+) \(Python: (?P<python>[^)]+)\), the derivative of L with respect to net\.(?P<param>\S+)\n"
    r"  numerical, \(L\(\+e\) - L\(-e\)\) / 2e with e = 0\.0001: (?P<numerical>\S+)\n"
    r"  stored in the struct \(by cnnbp or your own backward\):  (?P<stored>\S+)\n"
    r"  \|numerical - stored\| = (?P<diff>\S+) > tolerance 1e-08"
)


@pytest.mark.parametrize("path, index, name, python", PLANTED, ids=[p[2] for p in PLANTED])
def test_a_planted_error_of_1e6_in_a_stored_gradient_fails(path, index, name, python):
    cnn, batch_x, batch_y = toolbox_test(0)
    planted, old = plant(cnn, path, index)
    with pytest.raises(ConvpropError) as caught:
        cnnnumgradcheck(planted, batch_x, batch_y)
    found = FAILURE.fullmatch(str(caught.value))
    assert found, str(caught.value)
    assert (found["at"], found["python"]) == (name, python)
    param = {"dffb": "ffb", "dffW": "ffW"}.get(name[:4], name[:4]) + name[4:].replace(".dk{", ".k{").replace(".db{", ".b{")
    assert found["param"] == param  # e.g. layers{2}.k{1}{2}(3,4) for layers{2}.dk{1}{2}(3,4)
    numerical, stored = float(found["numerical"]), float(found["stored"])
    assert stored == pytest.approx(old + 1e-6, rel=1e-11, abs=1e-18)
    assert abs(numerical - old) < 1e-8  # the numbers agree with cnnbp's own value ...
    assert abs(numerical - stored) == pytest.approx(1e-6, rel=1e-2)  # ... and the planted entry is off by 1e-6


def test_the_literal_port_rejects_the_planted_error_at_the_same_entry():
    cnn, batch_x, batch_y = toolbox_test(0)
    path, index, name, _ = PLANTED[-1]  # the last entry the toolbox visits: every other one is checked first
    planted, _ = plant(cnn, path, index)
    with pytest.raises(ref.NumGradCheckFailed, match=re.escape(name)):
        ref.cnnnumgradcheck(copy.deepcopy(planted), batch_x, batch_y)
    with pytest.raises(ConvpropError, match=re.escape(f"at net.{name} ")):
        cnnnumgradcheck(planted, batch_x, batch_y)


def _all_entries(cnn):
    """(path, index) of every stored gradient entry of the toolbox test's struct."""
    yield from ((["dffb"], (j, 0)) for j in range(10))
    yield from ((["dffW"], (i, u)) for i in range(10) for u in range(32))
    for l, inputmaps in ((1, 1), (3, 2)):
        for j in range(2):
            yield ["layers", l, "db", j], ()
            for i in range(inputmaps):
                yield from ((["layers", l, "dk", i, j], (u, v)) for u in range(5) for v in range(5))


@pytest.mark.parametrize("draw", range(20))
def test_a_planted_error_is_caught_in_every_random_draw(draw):
    """The issue's experiment: 20 random draws of data, net and planted entry; each must fail there."""
    cnn, batch_x, batch_y = toolbox_test(100 + draw)
    entries = list(_all_entries(cnn))
    assert len(entries) == ENTRIES
    path, index = entries[np.random.default_rng(draw).integers(len(entries))]
    planted, old = plant(cnn, path, index, 1e-6 * (-1) ** draw)
    with pytest.raises(ConvpropError) as caught:
        cnnnumgradcheck(planted, batch_x, batch_y)
    found = FAILURE.fullmatch(str(caught.value))
    assert found and abs(float(found["stored"]) - old) == pytest.approx(1e-6, rel=1e-6)
    assert abs(float(found["numerical"]) - old) < 1e-8


def test_a_struct_without_stored_gradients_says_run_cnnbp_first():
    cnn, batch_x, batch_y = toolbox_test(0)
    fresh = cnnsetup({"layers": [dict(type=s["type"], **{k: s[k] for k in ("outputmaps", "kernelsize", "scale") if k in s})
                                 for s in cnn["layers"]]}, batch_x, batch_y, seed=0)
    run_cnnbp = r"run net = cnnbp\(cnnff\(net, x\), y\) first"
    with pytest.raises(ConvpropError, match=r"net has no field 'dffb': cnnnumgradcheck checks the gradients that cnnbp stored; " + run_cnnbp):
        cnnnumgradcheck(fresh, batch_x, batch_y)
    with pytest.raises(ConvpropError, match="has no field 'dffb'.*" + run_cnnbp):
        cnnnumgradcheck(cnnff(fresh, batch_x), batch_x, batch_y)
    partial = copy.deepcopy(cnn)
    del partial["layers"][3]["dk"]
    with pytest.raises(ConvpropError, match=r"net\['layers'\]\[3\] has no field 'dk'.*" + run_cnnbp):
        cnnnumgradcheck(partial, batch_x, batch_y)
    partial = copy.deepcopy(cnn)
    partial["dffW"] = partial["dffW"][:, :31]
    with pytest.raises(ConvpropError, match=r"net\['dffW'\] has shape \(10, 31\); the layers need 10×32"):
        cnnnumgradcheck(partial, batch_x, batch_y)


def test_gradients_of_another_batch_fail():
    """cnnbp on one batch, the check on another: the stored gradients are not this batch's."""
    cnn, batch_x, batch_y = toolbox_test(0)
    _, other_x, other_y = toolbox_test(1)
    with pytest.raises(ConvpropError, match=r"numerical gradient checking failed\n  at net\.dffb\(1\) "):
        cnnnumgradcheck(cnn, other_x, other_y)
    assert cnnnumgradcheck(cnnbp(cnnff(cnn, other_x), other_y), other_x, other_y).checked == ENTRIES


def test_a_nan_stored_gradient_fails():
    """MATLAB's `if e > er` is false for NaN, so the toolbox would let it pass; convprop does not."""
    cnn, batch_x, batch_y = toolbox_test(0)
    planted, _ = plant(cnn, ["dffW"], (0, 5), np.nan)
    with pytest.raises(ConvpropError) as caught:
        cnnnumgradcheck(planted, batch_x, batch_y)
    found = FAILURE.fullmatch(str(caught.value))
    assert found["at"] == "dffW(1,6)" and found["stored"] == "nan" and found["diff"] == "nan"


# ------------------------------------------------- the original, under GNU Octave

OCTAVE_DIR = Path(__file__).parent / "octave"
octave = shutil.which("octave")
needs_octave = pytest.mark.skipif(octave is None, reason="GNU Octave is not on PATH")


def _cell(items):
    """A MATLAB 1×n cell array for scipy.io.savemat."""
    out = np.empty((1, len(items)), dtype=object)
    for j, item in enumerate(items):
        out[0, j] = item
    return out


def _matlab_struct(cnn):
    """The whole struct, state and gradients included, as MATLAB's cells and structs."""
    layers = np.empty((len(cnn["layers"]), 1), dtype=object)
    for l, spec in enumerate(cnn["layers"]):
        out = {}
        for key, value in spec.items():
            if key in ("k", "dk"):
                out[key] = _cell([_cell([np.asarray(k, dtype=float) for k in row]) for row in value])
            elif key in ("a", "d", "b", "db"):
                out[key] = _cell([np.asarray(v, dtype=float) for v in value])
            else:
                out[key] = value if key == "type" else float(value)
        layers[l, 0] = out
    top = {k: np.asarray(v, dtype=float) for k, v in cnn.items() if k != "layers"}
    return {"layers": layers, **top}


def _toolbox_check(cnn, x, y, folder):
    scipy.io.savemat(folder / "net.mat", {"cnn": _matlab_struct(cnn), "x": x, "y": y})
    (folder / "check.m").write_text(f"addpath('{OCTAVE_DIR}');\nload('net.mat');\n"
                                    "cnnnumgradcheck(cnn, x, y);\ndisp('cnnnumgradcheck passed');\n")
    return subprocess.run([octave, "--no-gui", "--no-window-system", "--quiet", "--norc", "check.m"],
                          cwd=folder, capture_output=True, text=True, timeout=600)


@needs_octave
def test_the_original_cnnnumgradcheck_agrees_under_octave(tmp_path):
    """The toolbox's own cnnnumgradcheck.m passes the struct convprop's cnnbp filled, and rejects
    the planted error that convprop's cnnnumgradcheck rejects."""
    cnn, batch_x, batch_y = toolbox_test(0)
    clean = _toolbox_check(cnn, batch_x, batch_y, tmp_path)
    assert clean.returncode == 0 and "cnnnumgradcheck passed" in clean.stdout, clean.stderr
    path, index, name, _ = PLANTED[3]  # layers{4}.dk{2}{1}(5,1)
    planted, _ = plant(cnn, path, index)
    with pytest.raises(ConvpropError, match=re.escape(f"at net.{name} ")):
        cnnnumgradcheck(planted, batch_x, batch_y)
    rejected = _toolbox_check(planted, batch_x, batch_y, tmp_path)
    assert rejected.returncode != 0 and "numerical gradient checking failed" in rejected.stderr
    assert "cnnnumgradcheck passed" not in rejected.stdout
