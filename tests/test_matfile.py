"""MATLAB/Octave .mat import and export of toolbox networks.

Networks: convprop.formats.matlab.load_mat / save_mat; the façade's structs: convprop.dlt.load_mat / save_mat.
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from convprop import Conv, ConvpropError, Input, Network, Subsample, dlt

from convprop import evaluate

from convprop.engine import layout
from convprop.formats.matlab import load_mat, save_mat

# Every test here runs on both engines: the NumPy reference and the compiled kernels.
pytestmark = pytest.mark.usefixtures("engine")

OCTAVE_DIR = Path(__file__).parent / "octave"
octave = shutil.which("octave")
needs_octave = pytest.mark.skipif(octave is None, reason="GNU Octave is not on PATH")


def _net(seed=0, maps=(2, 3)):
    layers = [Input(28, 28), Conv(maps[0], 5), Subsample(2), Conv(maps[1], 5), Subsample(2)]
    net = Network(layers, n_outputs=10, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name, p in net.parameters().items():
        if name.endswith("bias"):
            p[...] = rng.normal(0, 0.3, p.shape)  # non-zero biases so their layout is checked
    return net


# ------------------------------------------------------------- the fixture


@pytest.fixture(scope="module")
def fixture_files(shared):
    folder = shared / "fixtures" / "dlt"
    net_file, expected_file = folder / "dlt_cnn_mnist6000_1epoch.mat", folder / "dlt_cnn_mnist6000_1epoch_expected.mat"
    if not net_file.is_file():
        pytest.skip("the toolbox fixture is not in ../shared")
    return net_file, scipy.io.loadmat(expected_file)


def test_octave_saved_toolbox_net_reproduces_o_er_bad(fixture_files):
    net_file, expected = fixture_files
    net = load_mat(net_file)
    assert net.spec == "28x28-6c5-s2-12c5-s2-10o"
    x = layout.images_from_dlt(expected["test_x"])
    o = net.forward(x).T
    assert o.shape == expected["o"].shape == (10, 200)
    assert np.abs(o - expected["o"]).max() < 1e-12
    result = evaluate(net, x, expected["test_y"].T)
    assert result.error == expected["er"].item() == 0.93
    np.testing.assert_array_equal(result.wrong + 1, expected["bad"].ravel().astype(int))
    # the façade on the same network gives the same
    er, bad = dlt.cnntest(_struct_of(net), expected["test_x"], expected["test_y"])
    assert er == expected["er"].item()
    np.testing.assert_array_equal(bad + 1, expected["bad"].ravel().astype(int))


def _struct_of(net):
    """The façade's dict struct for a network (through a save/load-free conversion)."""
    return dlt.structs.from_network(net)


def test_fixture_parameters_match_the_raw_file(fixture_files):
    net_file, _ = fixture_files
    raw = scipy.io.loadmat(net_file)["cnn"][0, 0]
    net = load_mat(net_file)
    layers = raw["layers"].ravel()
    k = layers[3][0, 0]["k"]  # second conv: k{i}{j}, 6 × 12
    for i in (0, 5):
        for j in (0, 11):
            np.testing.assert_array_equal(net.layers[3].kernels[i, j], k[0, i][0, j])
    np.testing.assert_array_equal(net.layers[3].params["bias"], [b.item() for b in layers[3][0, 0]["b"].ravel()])
    np.testing.assert_array_equal(layout.ffw_to_dlt(net.output.params["weight"], net.map_shape), raw["ffW"])
    np.testing.assert_array_equal(net.output.params["bias"], raw["ffb"].ravel())
    np.testing.assert_array_equal(net.rL, raw["rL"].ravel())
    assert net.rL.shape == (121,)  # 1 + 6000/50 batches


# -------------------------------------------------------------- round trip


def test_save_load_round_trip_is_exact(tmp_path):
    net = _net()
    net.rL = np.array([0.5, 0.49, 0.48])
    save_mat(net, tmp_path / "cnn.mat")
    back = load_mat(tmp_path / "cnn.mat")
    assert back.spec == net.spec
    for (name, a), b in zip(net.parameters().items(), back.parameters().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(back.rL, net.rL)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_saved_file_has_the_toolbox_layout(tmp_path):
    net = _net()
    save_mat(net, tmp_path / "cnn.mat")
    cnn = scipy.io.loadmat(tmp_path / "cnn.mat")["cnn"][0, 0]
    layers = cnn["layers"]
    assert layers.shape == (5, 1)
    conv = layers[3, 0][0, 0]
    assert conv["type"][0] == "c" and conv["outputmaps"].item() == 3 and conv["kernelsize"].item() == 5
    assert conv["k"].shape == (1, 2) and conv["k"][0, 1].shape == (1, 3)
    np.testing.assert_array_equal(conv["k"][0, 1][0, 2], net.layers[3].kernels[1, 2])
    assert layers[2, 0][0, 0]["scale"].item() == 2
    assert cnn["ffW"].shape == (10, 48) and cnn["ffb"].shape == (10, 1)
    assert cnn["rL"].shape == (1, 0)
    np.testing.assert_array_equal(cnn["inputsize"], [[28, 28]])


def test_save_accepts_a_facade_struct(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((28, 28, 4)), np.eye(10)[:, :4]
    struct = dlt.cnnsetup({"layers": [{"type": "i"}, {"type": "c", "outputmaps": 2, "kernelsize": 5},
                                      {"type": "s", "scale": 2}]}, x, y, seed=3)
    struct["rL"] = np.array([1.0, 0.9])
    dlt.save_mat(struct, tmp_path / "net.mat", name="net")
    net = load_mat(tmp_path / "net.mat")
    np.testing.assert_allclose(net.forward(layout.images_from_dlt(x)).T, dlt.cnnff(struct, x)["o"], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(net.rL, [1.0, 0.9])
    with pytest.raises(ConvpropError, match=r"needs a Network, got dict \(a toolbox struct, a dict, is saved with convprop\.dlt\.save_mat\)"):
        save_mat(struct, tmp_path / "other.mat")


def test_dlt_load_mat_returns_the_struct_cnnsetup_makes(tmp_path):
    """convprop.dlt speaks structs: load_mat gives a dict that cnntest and cnnff take."""
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 16, 6)), np.eye(3)[:, [0, 1, 2, 0, 1, 2]]
    struct = dlt.cnnsetup({"layers": [{"type": "i"}, {"type": "c", "outputmaps": 2, "kernelsize": 3},
                                      {"type": "s", "scale": 2}]}, x, y, seed=1)
    struct["layers"][1]["b"] = [0.25, -0.5]
    struct["rL"] = np.array([0.7, 0.6, 0.5])
    with pytest.raises(ConvpropError, match=r"pass image_size=\(height, width\)"):
        dlt.save_mat(struct, tmp_path / "cnn.mat")  # 5×7 maps, no cnnff yet: the image size is unknown
    dlt.save_mat(struct, tmp_path / "cnn.mat", image_size=(12, 16))
    cnn = dlt.load_mat(tmp_path / "cnn.mat")
    assert isinstance(cnn, dict) and sorted(cnn) == ["ffW", "ffb", "layers", "rL"]
    assert [sorted(spec) for spec in cnn["layers"]] == [
        ["type"], ["b", "k", "kernelsize", "outputmaps", "type"], ["b", "scale", "type"]]
    assert cnn["layers"][1]["b"] == [0.25, -0.5] and cnn["layers"][2]["b"] == [0.0, 0.0]
    for i, j in np.ndindex(1, 2):
        np.testing.assert_array_equal(cnn["layers"][1]["k"][i][j], struct["layers"][1]["k"][i][j])
    np.testing.assert_array_equal(cnn["ffW"], struct["ffW"])
    np.testing.assert_array_equal(cnn["rL"], [0.7, 0.6, 0.5])
    er, bad = dlt.cnntest(cnn, x, y)  # was: "argument of type 'Network' is not iterable"
    assert (er, list(bad)) == (er, list(dlt.cnntest(struct, x, y)[1])) and er == dlt.cnntest(struct, x, y)[0]
    np.testing.assert_array_equal(dlt.cnnff(cnn, x)["o"], dlt.cnnff(struct, x)["o"])
    after_ff = dlt.cnnff(struct, x)  # with layers{1}.a the image size is known
    dlt.save_mat(after_ff, tmp_path / "ff.mat")
    assert load_mat(tmp_path / "ff.mat").spec == "12x16-2c3-s2-3o"
    dlt.save_mat(load_mat(tmp_path / "ff.mat"), tmp_path / "net.mat")  # a Network is accepted too
    np.testing.assert_array_equal(dlt.load_mat(tmp_path / "net.mat")["ffW"], struct["ffW"])


def test_image_size_is_inferred_or_given(tmp_path):
    def save_without_inputsize(net, path):
        save_mat(net, path)
        cnn = scipy.io.loadmat(path)["cnn"][0, 0]
        scipy.io.savemat(path, {"cnn": {k: cnn[k] for k in cnn.dtype.names if k != "inputsize"}})

    net = Network([Input(20, 20), Conv(2, 3), Subsample(2), Conv(2, 4)], n_outputs=3, seed=0)
    save_without_inputsize(net, tmp_path / "a.mat")
    assert load_mat(tmp_path / "a.mat").image_shape == (20, 20, 1)  # 6×6 maps → 9×9 → 18 → 20
    rect = Network([Input(12, 16), Conv(2, 3), Subsample(2)], n_outputs=3, seed=0)
    save_mat(rect, tmp_path / "rect.mat")
    assert load_mat(tmp_path / "rect.mat").spec == rect.spec  # from the inputsize field
    save_without_inputsize(rect, tmp_path / "rect.mat")
    with pytest.raises(ConvpropError, match="pass image_size"):
        load_mat(tmp_path / "rect.mat")
    assert load_mat(tmp_path / "rect.mat", image_size=(12, 16)).spec == rect.spec


# ------------------------------------------------------------------ errors


def test_errors_are_clear(tmp_path):
    with pytest.raises(ConvpropError, match=r"missing\.mat: no such file"):
        load_mat(tmp_path / "missing.mat")
    (tmp_path / "text.mat").write_text("not a mat file at all " * 10)
    with pytest.raises(ConvpropError, match="not a readable MATLAB .mat file"):
        load_mat(tmp_path / "text.mat")
    save_mat(_net(), tmp_path / "good.mat")
    data = (tmp_path / "good.mat").read_bytes()
    (tmp_path / "truncated.mat").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConvpropError, match="not a readable MATLAB .mat file"):
        load_mat(tmp_path / "truncated.mat")
    # MATLAB v7.3: a 512-byte text header, then an HDF5 file
    (tmp_path / "v73.mat").write_bytes(b"MATLAB 7.3 MAT-file".ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(ConvpropError, match=r"HDF5 file \(MATLAB -v7\.3.*save\(file, 'cnn', '-v7'\)"):
        load_mat(tmp_path / "v73.mat")
    scipy.io.savemat(tmp_path / "other.mat", {"x": np.ones(3)})
    with pytest.raises(ConvpropError, match="holds no toolbox network.*variables: x"):
        load_mat(tmp_path / "other.mat")
    with pytest.raises(ConvpropError, match="has no variable 'net'"):
        load_mat(tmp_path / "good.mat", name="net")


def _mutated(tmp_path, edit):
    cnn = scipy.io.loadmat(tmp_path / "good.mat")["cnn"][0, 0]
    fields = {name: cnn[name] for name in cnn.dtype.names}
    edit(fields)
    scipy.io.savemat(tmp_path / "bad.mat", {"cnn": fields})
    return tmp_path / "bad.mat"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: f.pop("ffW"), "no field 'ffW'"),
        (lambda f: f.__setitem__("ffb", np.zeros((3, 1))), "ffb has 3 entries"),
        (lambda f: f.__setitem__("ffW", np.zeros((10, 47))), r"ffW is 10×47 but the layers"),
        (lambda f: f["layers"][1, 0][0, 0].__setitem__("type", np.array(["x"])), r"layers\{2\}.type is 'x'"),
        (lambda f: f["layers"][3, 0][0, 0]["k"][0, 0].__setitem__((0, 1), np.zeros((4, 4))),
         r"layers\{4\}.k\{1\}\{2\} has shape \(4, 4\)"),
        (lambda f: f["layers"][1, 0][0, 0]["k"][0, 0].__setitem__((0, 0), np.full((5, 5), np.nan)), "NaN"),
    ],
)
def test_malformed_structs_name_the_field(tmp_path, edit, message):
    save_mat(_net(), tmp_path / "good.mat")
    with pytest.raises(ConvpropError, match=message):
        load_mat(_mutated(tmp_path, edit))


def test_failed_save_leaves_no_file(tmp_path):
    with pytest.raises(ConvpropError, match="does not exist"):
        save_mat(_net(), tmp_path / "no" / "such" / "dir.mat")
    with pytest.raises(ConvpropError, match="save_mat needs a Network, got str"):
        save_mat("net", tmp_path / "x.mat")
    with pytest.raises(ConvpropError, match=r"save_mat: net must be the toolbox's struct, a dict with a 'layers' list; got str"):
        dlt.save_mat("net", tmp_path / "x.mat")
    with pytest.raises(ConvpropError, match=r"save_mat: net must be the toolbox's struct.*bare list of layers"):
        dlt.save_mat([{"type": "i"}], tmp_path / "x.mat")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ Octave


def _octave(script: str, cwd: Path) -> str:
    (cwd / "octave_script.m").write_text(f"addpath('{OCTAVE_DIR}');\n{script}\n")
    run = subprocess.run(
        [octave, "--no-gui", "--no-window-system", "--quiet", "--norc", "octave_script.m"],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


@needs_octave
def test_octave_runs_the_toolbox_cnnff_on_a_saved_network(tmp_path):
    net = _net(seed=4)
    save_mat(net, tmp_path / "cnn.mat")
    rng = np.random.default_rng(5)
    x = rng.random((28, 28, 7))  # toolbox layout
    y = np.eye(10)[:, rng.integers(0, 10, 7)]
    scipy.io.savemat(tmp_path / "data.mat", {"x": x, "y": y})
    _octave("load('cnn.mat'); load('data.mat'); net = cnnff(cnn, x); o = net.o; fv = net.fv; "
            "[er, bad] = cnntest(cnn, x, y); save('-v7', 'out.mat', 'o', 'fv', 'er', 'bad');", tmp_path)
    out = scipy.io.loadmat(tmp_path / "out.mat")
    o = net.forward(layout.images_from_dlt(x))
    assert np.abs(out["o"] - o.T).max() < 1e-12
    fv = layout.fv_to_dlt(net.activations[-1].reshape(7, -1), net.map_shape)
    assert np.abs(out["fv"] - fv).max() < 1e-12
    result = evaluate(net, layout.images_from_dlt(x), y.T)
    assert out["er"].item() == result.error
    np.testing.assert_array_equal(out["bad"].ravel().astype(int), result.wrong + 1)


@needs_octave
def test_a_struct_built_and_saved_by_octave_loads(tmp_path):
    # The struct is built in Octave the way cnnsetup lays it out, then run with the toolbox's cnnff.
    script = """
    rand('state', 0);
    cnn.layers = {struct('type', 'i'); struct('type', 'c', 'outputmaps', 3, 'kernelsize', 5);
                  struct('type', 's', 'scale', 2)};
    for j = 1:3
      cnn.layers{2}.k{1}{j} = rand(5) - 0.5;
      cnn.layers{2}.b{j} = 0.1 * j;
    end
    for j = 1:3
      cnn.layers{3}.b{j} = 0;
    end
    cnn.ffW = rand(4, 3 * 6 * 6) - 0.5; cnn.ffb = [0.1; -0.2; 0.3; 0];
    cnn.rL = [0.4 0.39];
    x = rand(16, 16, 5);
    net = cnnff(cnn, x); o = net.o;
    save('-v7', 'octave.mat', 'cnn');
    save('-v7', 'expected.mat', 'x', 'o');
    save('-hdf5', 'hdf5.mat', 'cnn');
    """
    _octave(script, tmp_path)
    net = load_mat(tmp_path / "octave.mat")
    assert net.spec == "16x16-3c5-s2-4o"
    expected = scipy.io.loadmat(tmp_path / "expected.mat")
    o = net.forward(layout.images_from_dlt(expected["x"])).T
    assert np.abs(o - expected["o"]).max() < 1e-12
    np.testing.assert_array_equal(net.rL, [0.4, 0.39])
    with pytest.raises(ConvpropError, match=r"HDF5 file .*'-v7'"):
        load_mat(tmp_path / "hdf5.mat")


@needs_octave
def test_octave_toolbox_cnnbp_gives_the_engines_gradients(tmp_path):
    net = _net(seed=6)
    save_mat(net, tmp_path / "cnn.mat")
    rng = np.random.default_rng(7)
    x = rng.random((28, 28, 4))
    y = rng.random((10, 4))
    scipy.io.savemat(tmp_path / "data.mat", {"x": x, "y": y})
    _octave("load('cnn.mat'); load('data.mat'); net = cnnbp(cnnff(cnn, x), y);\n"
            "L = net.L; dffW = net.dffW; dffb = net.dffb; dk2 = net.layers{4}.dk; db2 = net.layers{4}.db;\n"
            "dk1 = net.layers{2}.dk; d3 = net.layers{3}.d; save('-v7', 'grads.mat', 'L', 'dffW', 'dffb', 'dk1', 'dk2', 'db2', 'd3');",
            tmp_path)
    g = scipy.io.loadmat(tmp_path / "grads.mat")
    net.forward(layout.images_from_dlt(x))
    L = net.backward(y.T)
    assert abs(g["L"].item() - L) < 1e-12
    out = net.output.grads
    assert np.abs(g["dffW"] - layout.ffw_to_dlt(out["weight"], net.map_shape)).max() < 1e-12
    assert np.abs(g["dffb"].ravel() - out["bias"]).max() < 1e-12
    dk2 = layout.kernels_to_dlt(net.layers[3].grads["weight"])
    for i in range(2):
        for j in range(3):
            assert np.abs(g["dk2"][0, i][0, j] - dk2[i, j]).max() < 1e-12
    assert np.abs(np.ravel([b.item() for b in g["db2"].ravel()]) - net.layers[3].grads["bias"]).max() < 1e-12
    dk1 = layout.kernels_to_dlt(net.layers[1].grads["weight"])
    for j in range(2):
        assert np.abs(g["dk1"][0, 0][0, j] - dk1[0, j]).max() < 1e-12
    d3 = layout.maps_to_dlt(net.layers[2].d)  # the pooling layer's delta, full-convolution result
    for j in range(2):
        assert np.abs(g["d3"][0, j] - d3[j]).max() < 1e-12
