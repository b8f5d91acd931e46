"""The DeepLearnToolbox façade: the toolbox's semantics, layouts and errors, on the same engine."""

import copy

import numpy as np
import pytest

import dlt_reference as ref
from convprop import Conv, ConvpropError, Input, Network, Subsample
from convprop import evaluate
from convprop.engine import backend, layout
from convprop import train
from convprop import dlt

# Every test here runs on both engines: the NumPy reference and the compiled kernels.
pytestmark = pytest.mark.usefixtures("engine")

TOOLBOX_LAYERS = [
    {"type": "i"},
    {"type": "c", "outputmaps": 2, "kernelsize": 5},
    {"type": "s", "scale": 2},
    {"type": "c", "outputmaps": 3, "kernelsize": 5},
    {"type": "s", "scale": 2},
]


def _data(n=6, h=28, w=28, k=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((h, w, n))  # toolbox layout H×W×N
    labels = rng.integers(0, k, n)
    y = np.eye(k)[labels].T  # K×N one-hot
    return x, y


def _setup(layers=TOOLBOX_LAYERS, **kw):
    x, y = _data(**kw)
    return dlt.cnnsetup({"layers": copy.deepcopy(layers)}, x, y, seed=0), x, y


def test_setup_shapes_and_ranges():
    net, x, y = _setup()
    k1 = net["layers"][1]["k"]
    assert len(k1) == 1 and len(k1[0]) == 2 and k1[0][0].shape == (5, 5)
    k2 = net["layers"][3]["k"]
    assert len(k2) == 2 and len(k2[0]) == 3
    assert net["layers"][1]["b"] == [0, 0]
    assert net["ffW"].shape == (10, 3 * 4 * 4) and net["ffb"].shape == (10, 1)
    assert not net["ffb"].any()
    # uniform in ±sqrt(6/(fan_in + fan_out))
    bound1 = np.sqrt(6 / (1 * 25 + 2 * 25))
    bound2 = np.sqrt(6 / (2 * 25 + 3 * 25))
    assert max(np.abs(k).max() for row in k1 for k in row) <= bound1
    assert max(np.abs(k).max() for row in k2 for k in row) <= bound2
    assert np.abs(net["ffW"]).max() <= np.sqrt(6 / (10 + 48))
    assert np.abs(net["ffW"]).max() > 0.9 * np.sqrt(6 / (10 + 48))


def test_setup_draws_in_toolbox_order_column_major():
    """k{i}{j} is drawn for j outer, i inner, each filled column-major, then ffW column-major."""
    net, x, y = _setup()
    rng = np.random.default_rng(0)
    b1 = np.sqrt(6 / (25 + 50))
    for j in range(2):
        expected = (rng.random(25).reshape(5, 5, order="F") - 0.5) * 2 * b1
        np.testing.assert_array_equal(net["layers"][1]["k"][0][j], expected)
    b2 = np.sqrt(6 / (50 + 75))
    for j in range(3):
        for i in range(2):
            expected = (rng.random(25).reshape(5, 5, order="F") - 0.5) * 2 * b2
            np.testing.assert_array_equal(net["layers"][3]["k"][i][j], expected)
    ffw = (rng.random(10 * 48).reshape(10, 48, order="F") - 0.5) * 2 * np.sqrt(6 / 58)
    np.testing.assert_array_equal(net["ffW"], ffw)


def test_setup_names_the_layer_when_size_is_not_integer():
    bad = copy.deepcopy(TOOLBOX_LAYERS)
    bad[3]["kernelsize"] = 4  # 12 − 3 = 9, not divisible by 2
    x, y = _data()
    with pytest.raises(ConvpropError, match=r"Layer 4 \(s2\) size must be integer.*9x9.*4.5x4.5"):
        dlt.cnnsetup({"layers": bad}, x, y)


def test_ff_and_bp_match_a_literal_port_of_the_toolbox():
    net, x, y = _setup()
    # Non-zero biases so that their handling is checked as well.
    net["layers"][1]["b"] = [0.1, -0.2]
    net["layers"][3]["b"] = [0.05, 0.0, -0.3]
    net["ffb"] = np.linspace(-0.5, 0.5, 10)[:, None]
    ours = dlt.cnnbp(dlt.cnnff(net, x), y)
    theirs = ref.cnnbp(ref.cnnff(copy.deepcopy(net), x), y)
    tol = dict(rtol=1e-12, atol=1e-14)
    for key in ("fv", "o", "e", "od", "fvd", "dffW", "dffb"):
        np.testing.assert_allclose(ours[key], theirs[key], err_msg=key, **tol)
    assert ours["L"] == pytest.approx(theirs["L"], rel=1e-13)
    for l in range(1, 5):
        for j, (a, b) in enumerate(zip(ours["layers"][l]["a"], theirs["layers"][l]["a"])):
            np.testing.assert_allclose(a, b, err_msg=f"a layer {l} map {j}", **tol)
        for j, (a, b) in enumerate(zip(ours["layers"][l]["d"], theirs["layers"][l]["d"])):
            np.testing.assert_allclose(a, b, err_msg=f"d layer {l} map {j}", **tol)
    for l in (1, 3):
        np.testing.assert_allclose(ours["layers"][l]["db"], theirs["layers"][l]["db"], **tol)
        for i, row in enumerate(ours["layers"][l]["dk"]):
            for j, dk in enumerate(row):
                np.testing.assert_allclose(dk, theirs["layers"][l]["dk"][i][j], err_msg=f"dk{l} {i} {j}", **tol)


def test_literal_port_with_a_last_conv_layer_and_non_square_input():
    layers = [{"type": "i"}, {"type": "c", "outputmaps": 2, "kernelsize": 3}, {"type": "s", "scale": 2},
              {"type": "c", "outputmaps": 3, "kernelsize": 2}]
    net, x, y = _setup(layers, h=12, w=16, k=4)
    ours = dlt.cnnbp(dlt.cnnff(net, x), y)
    theirs = ref.cnnbp(ref.cnnff(copy.deepcopy(net), x), y)
    for key in ("o", "fvd", "dffW"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-12, atol=1e-14)
    for i, row in enumerate(ours["layers"][1]["dk"]):
        for j, dk in enumerate(row):
            np.testing.assert_allclose(dk, theirs["layers"][1]["dk"][i][j], rtol=1e-12, atol=1e-14)


def test_facade_and_pythonic_api_give_the_same_numbers():
    net, x, y = _setup()
    engine = Network([Input(28, 28), Conv(2, 5), Subsample(2), Conv(3, 5), Subsample(2)], n_outputs=10, seed=0)
    # Same seed, same draws: the same parameters, in each side's layout.
    np.testing.assert_array_equal(layout.kernels_to_dlt(engine.layers[3].params["weight"])[1][2], net["layers"][3]["k"][1][2])
    np.testing.assert_array_equal(layout.ffw_to_dlt(engine.output.params["weight"], engine.map_shape), net["ffW"])
    images = layout.images_from_dlt(x)
    o = engine.forward(images)
    loss = engine.backward(y.T)
    after = dlt.cnnbp(dlt.cnnff(net, x), y)
    np.testing.assert_array_equal(after["o"], o.T)
    assert after["L"] == loss
    np.testing.assert_array_equal(after["dffW"], layout.ffw_to_dlt(engine.gradients()["output.weight"], engine.map_shape))
    stepped = dlt.cnnapplygrads(after, {"alpha": 0.5})
    engine.step(0.5)
    np.testing.assert_array_equal(stepped["ffW"], layout.ffw_to_dlt(engine.output.params["weight"], engine.map_shape))
    np.testing.assert_array_equal(np.array(stepped["layers"][1]["k"]), layout.kernels_to_dlt(engine.layers[1].params["weight"]))
    np.testing.assert_array_equal(np.ravel(stepped["layers"][3]["b"]), engine.layers[3].params["bias"])
    # value semantics: the input struct is unchanged
    np.testing.assert_array_equal(after["ffW"], net["ffW"])


def test_cnntrain_rl_and_permutations_match_the_engine():
    net, x, y = _setup(n=20)
    opts = {"alpha": 1, "batchsize": 5, "numepochs": 2}
    trained = dlt.cnntrain(net, x, y, opts, seed=3)
    rl = trained["rL"]
    assert rl.shape == (2 * 4 + 1,)
    assert rl[1] == 0.99 * rl[0] + 0.01 * rl[0]  # rL(1) = L(1), then 0.99·rL(1) + 0.01·L(1)
    engine = Network([Input(28, 28), Conv(2, 5), Subsample(2), Conv(3, 5), Subsample(2)], n_outputs=10, seed=0)
    history = train(engine, layout.images_from_dlt(x), y.T, epochs=2, batch_size=5, alpha=1, seed=3)
    np.testing.assert_array_equal(rl, history.rL)
    for t in range(1, len(rl)):
        assert rl[t] == 0.99 * rl[t - 1] + 0.01 * history.L[t - 1]
    np.testing.assert_array_equal(trained["ffW"], layout.ffw_to_dlt(engine.output.params["weight"], engine.map_shape))
    assert trained["L"] == history.L[-1]


def test_cnntrain_needs_whole_batches():
    net, x, y = _setup(n=7)
    with pytest.raises(ConvpropError, match="numbatches not integer"):
        dlt.cnntrain(net, x, y, {"alpha": 1, "batchsize": 5, "numepochs": 1})


def test_cnntest_returns_error_rate_and_zero_based_bad():
    net, x, y = _setup(n=30)
    er, bad = dlt.cnntest(net, x, y)
    o = dlt.cnnff(net, x)["o"]
    expected = np.flatnonzero(o.argmax(0) != y.argmax(0))
    np.testing.assert_array_equal(bad, expected)
    assert er == len(expected) / 30
    result = evaluate(_engine_of(net), layout.images_from_dlt(x), y.argmax(0))
    assert result.error == er


def _engine_of(net):
    from convprop.dlt import structs

    return structs.to_network(net)  # 28×28 worked back from ffW (square maps)


def test_cnnnumgradcheck_passes_on_the_toolbox_test_and_fails_on_a_bad_gradient(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.random((28, 28, 5))
    y = rng.random((10, 5))
    net = dlt.cnnsetup({"layers": copy.deepcopy(TOOLBOX_LAYERS[:2]) + [{"type": "s", "scale": 2}]}, x, y, seed=0)
    good = dlt.cnnbp(dlt.cnnff(net, x), y)
    result = dlt.cnnnumgradcheck(good, x, y)
    assert result.passed and result.max_abs_error < 1e-8
    assert result.checked == 10 + 10 * 288 + 2 + 2 * 25
    report = dlt.engine_gradcheck(net, x, y)
    assert report.passed and report.max_abs_error < 1e-8
    from convprop.engine.layers import output

    real = output.ops.sigmoid_backward
    monkeypatch.setattr(output.ops, "sigmoid_backward", lambda d, a: real(d, a) * 1.001)
    if backend.available():  # the compiled engine's output kernel: the same od·1.001, and all that follows from it
        from convprop.engine.kernels import output as kernel

        real_kernel = kernel.backward

        def bad_kernel(et, ot, fvt, w, softmax, odt, dw, db, fvdt):
            real_kernel(et, ot, fvt, w, softmax, odt, dw, db, fvdt)
            for out in (odt, dw, db, fvdt):
                out *= 1.001

        monkeypatch.setattr(kernel, "backward", bad_kernel)
    bad = dlt.cnnbp(dlt.cnnff(net, x), y)  # a broken backward stores wrong gradients: the check reads them
    with pytest.raises(ConvpropError, match=r"numerical gradient checking failed\n  at net\.dffb\(1\)"):
        dlt.cnnnumgradcheck(bad, x, y)
    with pytest.raises(ConvpropError, match="numerical gradient checking failed"):
        dlt.engine_gradcheck(net, x, y)


def test_float32_inputs_run_in_float32():
    net, x, y = _setup()
    out = dlt.cnnbp(dlt.cnnff(net, x.astype(np.float32)), y.astype(np.float32))
    assert out["o"].dtype == np.float32 and out["dffW"].dtype == np.float32
    ref64 = dlt.cnnff(net, x)["o"]
    np.testing.assert_allclose(out["o"], ref64, rtol=1e-5)


def test_facade_errors_are_clear():
    net, x, y = _setup()
    with pytest.raises(ConvpropError, match="H×W×N"):
        dlt.cnnff(net, x.reshape(-1))
    with pytest.raises(ConvpropError, match="call net = cnnff"):
        dlt.cnnbp(net, y)
    with pytest.raises(ConvpropError, match="type 'x'"):
        dlt.cnnsetup({"layers": [{"type": "i"}, {"type": "x"}]}, x, y)
    with pytest.raises(ConvpropError, match="needs 'scale'"):
        dlt.cnnsetup({"layers": [{"type": "i"}, {"type": "s"}]}, x, y)
    with pytest.raises(ConvpropError, match="K×N with N = 6"):
        dlt.cnnbp(dlt.cnnff(net, x), y[:, :3])


@pytest.mark.parametrize("damage, words", [
    (lambda net: net.pop("ffb"), "no field 'ffb'"),
    (lambda net: net.update(ffb=net["ffb"][:1]), r"net\['ffb'\] has 1 values; its layer needs 3"),
    (lambda net: net.update(ffW=net["ffW"].ravel()), "must be a matrix"),
    (lambda net: net["layers"][1].pop("k"), "no field 'k'"),
    (lambda net: net["layers"][1].update(b=[0.0]), r"net\['layers'\]\[1\]\['b'\] has 1 values; its layer needs 2"),
])
def test_a_damaged_struct_is_a_clear_error(damage, words):
    from convprop.dlt import cnnff, cnnsetup

    x = np.random.default_rng(0).random((12, 12, 4))
    y = np.eye(3)[:, [0, 1, 2, 0]]
    net = cnnsetup({"layers": [{"type": "i"}, {"type": "c", "outputmaps": 2, "kernelsize": 3},
                               {"type": "s", "scale": 2}]}, x, y, seed=0)
    damage(net)
    with pytest.raises(ConvpropError, match=words):
        cnnff(net, x)


def test_a_bare_list_of_layers_is_a_clear_error():
    """cnnsetup([...]) used to raise AttributeError: 'list' object has no attribute 'get'."""
    x, y = _data()
    with pytest.raises(ConvpropError, match=r"^cnnsetup: net must be the toolbox's struct, a dict with a 'layers' list; "
                                            r"got list \(a bare list of layers: wrap it as \{\"layers\": \[\.\.\.\]\}"):
        dlt.cnnsetup(copy.deepcopy(TOOLBOX_LAYERS), x, y)
    net, x, y = _setup()
    for call in (lambda: dlt.cnnff(net["layers"], x), lambda: dlt.cnntest(None, x, y),
                 lambda: dlt.cnnnumgradcheck("cnn", x, y), lambda: dlt.cnnapplygrads([net], {"alpha": 1})):
        with pytest.raises(ConvpropError, match=r"net must be the toolbox's struct, a dict with a 'layers' list; got"):
            call()
    with pytest.raises(ConvpropError, match=r"cnnff: net\['layers'\]\[1\] must be a dict with a 'type'"):
        dlt.cnnff({**net, "layers": [net["layers"][0], "c"]}, x)
    with pytest.raises(ConvpropError, match=r"cnnapplygrads: opts must be a dict with alpha; got list"):
        dlt.cnnapplygrads(dlt.cnnbp(dlt.cnnff(net, x), y), [1])
    with pytest.raises(ConvpropError, match=r"cnntrain: opts has no 'numepochs'"):
        dlt.cnntrain(net, x, y, {"alpha": 1, "batchsize": 2})
    with pytest.raises(ConvpropError, match=r"cnnapplygrads: opts\['alpha'\] must be one finite number, got 'x'"):
        dlt.cnnapplygrads(dlt.cnnbp(dlt.cnnff(net, x), y), {"alpha": "x"})


def _layer(n, l, **change):
    return {**n, "layers": n["layers"][:l] + [{**n["layers"][l], **change}] + n["layers"][l + 1:]}


DAMAGES = {
    "layers a dict": lambda n: {**n, "layers": {"i": {}}},
    "no layers": lambda n: {k: v for k, v in n.items() if k != "layers"},
    "layer without type": lambda n: {**n, "layers": [{}] + n["layers"][1:]},
    "type a number": lambda n: _layer(n, 1, type=3),
    "k a string": lambda n: _layer(n, 1, k="abc"),
    "k None": lambda n: _layer(n, 1, k=None),
    "k ragged": lambda n: _layer(n, 1, k=[[np.ones((5, 5)), np.ones((2, 2))]]),
    "b strings": lambda n: _layer(n, 1, b=["x", "y"]),
    "dk a string": lambda n: _layer(n, 1, dk="x"),
    "db too short": lambda n: _layer(n, 3, db=[1.0]),
    "scale 0": lambda n: _layer(n, 2, scale=0),
    "scale NaN": lambda n: _layer(n, 2, scale=float("nan")),
    "kernelsize -1": lambda n: _layer(n, 1, kernelsize=-1),
    "kernelsize 30": lambda n: _layer(n, 1, kernelsize=30),
    "outputmaps 0": lambda n: _layer(n, 1, outputmaps=0),
    "ffW a string": lambda n: {**n, "ffW": "x"},
    "ffW 3-D": lambda n: {**n, "ffW": n["ffW"][None]},
    "ffb None": lambda n: {**n, "ffb": None},
    "dffW a string": lambda n: {**n, "dffW": "x"},
    "o 1 column": lambda n: {**n, "o": n["o"][:, :1]},
    "a{1} a string": lambda n: _layer(n, 0, a=["x"]),
    "a{1} 10x10": lambda n: _layer(n, 0, a=[np.ones((10, 10, 2))]),
    "rL a string": lambda n: {**n, "rL": "x"},
}
CALLS = {
    "cnnsetup": lambda n, x, y: dlt.cnnsetup(n, x, y, seed=0),
    "cnnff": lambda n, x, y: dlt.cnnff(n, x),
    "cnnbp": lambda n, x, y: dlt.cnnbp(n, y),
    "cnnapplygrads": lambda n, x, y: dlt.cnnapplygrads(n, {"alpha": 0.5}),
    "cnntrain": lambda n, x, y: dlt.cnntrain(n, x, y, {"alpha": 0.5, "batchsize": 3, "numepochs": 1}, seed=0),
    "cnntest": lambda n, x, y: dlt.cnntest(n, x, y),
    "cnnnumgradcheck": lambda n, x, y: dlt.cnnnumgradcheck(n, x, y),
    "engine_gradcheck": lambda n, x, y: dlt.engine_gradcheck(n, x, y),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_every_function_on_a_damaged_struct_runs_or_raises_convprop_error(damage, tmp_path):
    """One error taxonomy: a damaged struct is a ConvpropError, or harmless where the field is not read."""
    x, y = _data(n=3, h=14, w=14, k=3)
    layers = [{"type": "i"}, {"type": "c", "outputmaps": 2, "kernelsize": 3}, {"type": "s", "scale": 2},
              {"type": "c", "outputmaps": 2, "kernelsize": 3}, {"type": "s", "scale": 2}]
    full = dlt.cnnbp(dlt.cnnff(dlt.cnnsetup({"layers": layers}, x, y, seed=0), x), y)
    outcomes = {}
    calls = {**CALLS, "save_mat": lambda n, x, y: dlt.save_mat(n, tmp_path / "net.mat")}
    for name, call in calls.items():
        try:
            call(DAMAGES[damage](copy.deepcopy(full)), x, y)
            outcomes[name] = "ran"
        except ConvpropError as exc:
            outcomes[name] = "error"
            assert str(exc) and "\n" not in str(exc).split("numerical gradient checking failed")[0], str(exc)
    # every function that reads the damaged field says so (cnnsetup reads only the layer list)
    assert outcomes.keys() == calls.keys()
    reads_parameters = ["cnnff", "cnntest", "cnntrain", "cnnbp", "cnnapplygrads", "cnnnumgradcheck"]
    if damage in ("layers a dict", "no layers", "layer without type", "type a number", "scale 0", "scale NaN",
                  "kernelsize -1", "kernelsize 30", "outputmaps 0"):
        assert set(outcomes.values()) == {"error"}, outcomes
    elif damage in ("k a string", "k None", "k ragged", "b strings", "ffW a string", "ffW 3-D", "ffb None"):
        assert all(outcomes[name] == "error" for name in reads_parameters + ["save_mat"]) and outcomes["cnnsetup"] == "ran"
    elif damage in ("dk a string", "db too short", "dffW a string"):
        assert {k for k, v in outcomes.items() if v == "error"} == {"cnnapplygrads", "cnnnumgradcheck"}
    elif damage == "o 1 column":
        assert {k for k, v in outcomes.items() if v == "error"} == {"cnnbp"}
    elif damage == "rL a string":
        assert {k for k, v in outcomes.items() if v == "error"} == {"save_mat"}
    elif damage == "a{1} a string":  # cnnbp's batch; for the image size, unusable maps are passed over
        assert {k for k, v in outcomes.items() if v == "error"} == {"cnnbp"}
    else:  # maps of the wrong size: the batch of cnnbp, the image size of cnnapplygrads and save_mat
        assert {k for k, v in outcomes.items() if v == "error"} == {"cnnbp", "cnnapplygrads", "save_mat"}
