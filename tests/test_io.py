import json
import os

import numpy as np
import pytest

from convprop import Conv, ConvpropError, Input, Network, Subsample
from convprop.formats.model import load_model, save_model
from convprop.formats.checkpoint import TrainingState, load_checkpoint, rng_from_state, save_checkpoint


def small_net(dtype=np.float64, seed=0):
    return Network([Input(12, 12), Conv(2, 3), Subsample(2), Conv(3, 3)], n_outputs=4, dtype=dtype, seed=seed)


def same_params(a, b):
    pa, pb = a.parameters(), b.parameters()
    return pa.keys() == pb.keys() and all(
        pa[k].dtype == pb[k].dtype and np.array_equal(pa[k], pb[k]) for k in pa
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_model_round_trip_is_exact(tmp_path, dtype):
    net = small_net(dtype)
    path = save_model(net, tmp_path / "m.npz", extra={"dataset": "mnist", "class_names": list("abcd")})
    loaded = load_model(path)
    extra = loaded.extra
    assert loaded.spec == net.spec == "12x12-2c3-s2-3c3-4o"
    assert loaded.dtype == np.dtype(dtype)
    assert same_params(net, loaded)
    assert extra == {"dataset": "mnist", "class_names": ["a", "b", "c", "d"]}
    x = np.random.default_rng(0).random((3, 12, 12))
    assert np.array_equal(net.predict_proba(x), loaded.predict_proba(x))


def test_checkpoint_round_trip_keeps_rng_and_history(tmp_path):
    net = small_net()
    rng = np.random.default_rng(123)
    rng.permutation(10)  # advance it
    state = TrainingState(epoch=2, batch=3, rng_state=rng.bit_generator.state, config={"alpha": 0.5},
                          rL=[1.0, 0.99, 0.1 + 1e-17], L=[0.3, 0.2], epoch_seconds=[1.5, 2.5],
                          test_error=[0.5, 0.25], epoch_elapsed=0.75)
    save_checkpoint(net, tmp_path / "c.npz", state, extra={"dataset": "x"})
    loaded, st = load_checkpoint(tmp_path / "c.npz")
    extra = loaded.extra
    assert same_params(net, loaded)
    assert (st.epoch, st.batch, st.config, st.epoch_elapsed) == (2, 3, {"alpha": 0.5}, 0.75)
    assert st.rL == state.rL and st.L == state.L and st.test_error == [0.5, 0.25]
    # the restored generator continues exactly where the saved one stood
    assert np.array_equal(rng_from_state(st.rng_state).permutation(1000), rng.permutation(1000))
    assert extra == {"dataset": "x"}
    # a checkpoint is also a model
    assert same_params(load_model(tmp_path / "c.npz"), net)


def test_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save_model(small_net(seed=1), path)
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_model(small_net(seed=2), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind
    monkeypatch.undo()
    assert same_params(load_model(path), small_net(seed=1))


def test_a_pickle_file_is_refused(tmp_path):
    import pickle

    (tmp_path / "model.npz").write_bytes(pickle.dumps({"weights": [1, 2]}))
    with pytest.raises(ConvpropError, match="not a .npz file"):
        load_model(tmp_path / "model.npz")


def test_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, meta=np.array([{"format": "convprop"}], dtype=object))
    with pytest.raises(ConvpropError, match="pickle"):
        load_model(path)


def _rewrite(path, out, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["meta"].tobytes())
    for k, v in changes.items():
        if k.startswith("array:"):
            arrays[k[6:]] = v
        else:
            meta[k] = v
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"format": "other"}, "not a convprop file"),
        ({"version": 99}, "version 99"),
        ({"layers": "2c3-q2"}, "cannot read 'q2'"),
        ({"dtype": "int8"}, "dtype"),
        ({"input_shape": [12, 12]}, "input_shape"),
        ({"n_outputs": "4"}, "n_outputs"),
        ({"array:param/conv1.weight": np.zeros((2, 1, 3, 4))}, "conv1.weight has shape"),
        ({"array:param/output.bias": np.full(4, np.nan)}, "NaN"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(tmp_path, changes, words):
    good = save_model(small_net(), tmp_path / "good.npz")
    bad = _rewrite(good, tmp_path / "bad.npz", **changes)
    with pytest.raises(ConvpropError) as info:
        load_model(bad)
    assert words in str(info.value) and "bad.npz" in str(info.value)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(ConvpropError, match="no such file"):
        load_model(tmp_path / "nothing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConvpropError, match="junk.npz: not a .npz file"):
        load_model(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ConvpropError, match="single .npy array"):
        load_model(tmp_path / "single.npy")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ConvpropError, match="no metadata"):
        load_model(tmp_path / "plain.npz")


def test_a_model_is_not_a_checkpoint(tmp_path):
    save_model(small_net(), tmp_path / "m.npz")
    with pytest.raises(ConvpropError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "m.npz")


def test_bad_rng_state_is_refused(tmp_path):
    state = TrainingState(epoch=1, batch=0, rng_state={"bit_generator": "Evil", "state": {}})
    save_checkpoint(small_net(), tmp_path / "c.npz", state)
    with pytest.raises(ConvpropError, match="bit generator"):
        load_checkpoint(tmp_path / "c.npz")


def test_suffix_must_be_npz(tmp_path):
    with pytest.raises(ConvpropError, match=".npz"):
        save_model(small_net(), tmp_path / "m.pkl")


@pytest.mark.parametrize("spec", ["16c3-m2", "8c3ps/2-s2", "6c5-s2-120fr-84fr", "2c3l0.00001-m2", "2c3l0.1234567891"])
def test_models_beyond_the_toolbox_round_trip(tmp_path, spec):
    """Large enough to pass the size check's 2^20 floor, with layers it must model exactly."""
    from convprop.engine.spec import parse_layers

    net = Network([Input(100, 100), *parse_layers(spec)], n_outputs=10, seed=0)
    save_model(net, tmp_path / "m.npz")
    back = load_model(tmp_path / "m.npz")
    assert back.spec == net.spec
    for name, arr in net.parameters().items():
        np.testing.assert_array_equal(back.parameters()[name], arr)


def test_a_non_string_output_kind_is_refused(tmp_path):
    net = Network([Input(8, 8), Conv(2, 3)], n_outputs=2, seed=0)
    save_model(net, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["output"] = ["x"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ConvpropError, match="'output' must be a string"):
        load_model(tmp_path / "bad.npz")
