"""A machine's first `convprop train`: the kernels compile in a child process while the NumPy engine trains."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import convprop
from convprop import ConvpropError, Input, Network, Subsample, Conv
from convprop.cli import compiling
from convprop.engine import backend, precompile
from idx_helpers import tiny_dataset

SETTINGS = {"layers": "2c5-s4", "dtype": "float64", "output": "sigmoid", "optimizer": None, "threads": 1}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    monkeypatch.delenv("CONVPROP_ENGINE", raising=False)
    monkeypatch.setenv("CONVPROP_COMPILE", "background")
    yield tmp_path / "cache"
    convprop.set_engine(None)


class Args:
    quiet = False


class FakeChild:
    def __init__(self, code):
        self.returncode, self.code = None, code

    def poll(self):
        self.returncode = self.code
        return self.code


def test_the_setting_and_its_errors(monkeypatch):
    monkeypatch.setenv("CONVPROP_COMPILE", "Foreground")
    assert not precompile.background_wanted()
    monkeypatch.setenv("CONVPROP_COMPILE", "")
    assert precompile.background_wanted()
    monkeypatch.setenv("CONVPROP_COMPILE", "later")
    with pytest.raises(ConvpropError, match="CONVPROP_COMPILE must be background or foreground"):
        precompile.background_wanted()


def test_one_marker_per_settings_and_cache_in_the_cache(cache, monkeypatch):
    mark = precompile.marker(SETTINGS)
    assert mark.parent == cache and not precompile.is_warm(SETTINGS)
    assert precompile.marker({**SETTINGS, "dtype": "float32"}) != mark
    assert precompile.marker({**SETTINGS, "threads": 2}) != mark
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache / "other"))
    assert precompile.marker(SETTINGS).name != mark.name


def test_a_cold_run_starts_the_child_and_trains_on_numpy(cache, monkeypatch, capsys):
    started = []
    monkeypatch.setattr(precompile, "start", lambda settings: started.append(settings) or FakeChild(None))
    config = {"layers": "2c5-s4", "output": "sigmoid", "optimizer": "adam", "alpha": 0.01}
    child = compiling.begin(Args(), config, np.dtype("float32"), None)
    assert child is not None and backend.engine() == "numpy"
    assert started[0]["dtype"] == "float32" and started[0]["optimizer"]["name"] == "adam"
    assert "compiled kernels are being built in the background" in capsys.readouterr().out
    convprop.set_engine(None)
    # nothing to do: an engine chosen, compilation asked in the run, MPI, or the kernels already there
    for env, value in (("CONVPROP_ENGINE", "numba"), ("CONVPROP_COMPILE", "foreground")):
        with monkeypatch.context() as m:
            m.setenv(env, value)
            assert compiling.begin(Args(), config, np.dtype("float32"), None) is None
    assert compiling.begin(Args(), config, np.dtype("float32"), object()) is None
    precompile.marker(started[0]).write_text("{}")
    assert compiling.begin(Args(), config, np.dtype("float32"), None) is None
    assert len(started) == 1 and backend.engine() == "numba"


@pytest.mark.parametrize("code", [0, 1])
def test_the_switch_to_the_compiled_engine(cache, capsys, code):
    class Loop:
        epoch = 2
        net = Network([Input(8, 8), Conv(2, 3), Subsample(2)], n_outputs=2, seed=0)

    convprop.set_engine("numpy")
    switch = compiling.EngineSwitch(FakeChild(None), Args())
    switch.child.poll = lambda: None
    switch.on_epoch_begin(Loop)
    assert backend.engine() == "numpy" and capsys.readouterr().out == ""
    switch.child = FakeChild(code)
    switch.on_epoch_begin(Loop)
    out = capsys.readouterr().out
    if code == 0:
        assert backend.engine() == "numba" and "epoch 3 on uses them" in out
    else:
        assert backend.engine() == "numpy" and "compiling the kernels failed" in out
    switch.on_epoch_begin(Loop)  # said once
    assert capsys.readouterr().out == ""


@pytest.mark.skipif(not backend.available(), reason="Numba is not installed")
def test_first_and_second_run_through_the_command(cache, tmp_path):
    """A real first run: the note, the NumPy engine, a child that writes the marker last; then a run
    that finds the kernels (no note) and gives the same test error."""
    data = tiny_dataset(tmp_path / "data")
    argv = [sys.executable, "-m", "convprop", "train", "--data-dir", str(data), "--layers", "2c5-s4",
            "--batch-size", "10", "--no-plots"]
    first = subprocess.run([*argv, "--out", str(tmp_path / "a")], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "being built in the background" in first.stdout
    settings = {"layers": "2c5-s4", "dtype": "float64", "output": "sigmoid", "optimizer": None,
                "threads": convprop.get_num_threads()}
    deadline = time.monotonic() + 400
    while not precompile.is_warm(settings):
        assert time.monotonic() < deadline, "the background compilation wrote no marker"
        time.sleep(0.5)
    assert json.loads(precompile.marker(settings).read_text()) == settings
    second = subprocess.run([*argv, "--out", str(tmp_path / "b")], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "background" not in second.stdout
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in "ab"]
    assert summaries[0]["test_error"] == summaries[1]["test_error"]
    # the first run's one epoch trained before its kernels were ready; the second's on them
    assert summaries[0]["engines"] == ["numpy"] and summaries[1]["engines"] == ["numba"]


def test_a_failed_child_leaves_a_mark_and_the_next_runs_compile_in_the_run(cache, monkeypatch):
    from convprop.engine import warmup

    monkeypatch.setattr(warmup, "run", lambda *a, **k: False)
    assert precompile.main([json.dumps(SETTINGS)]) == 1 and precompile.has_failed(SETTINGS)
    assert not precompile.is_warm(SETTINGS)
    config = {"layers": "2c5-s4", "output": "sigmoid", "alpha": 1.0}
    monkeypatch.setattr(precompile, "start", lambda settings: pytest.fail("started again"))
    monkeypatch.setattr(compiling, "settings", lambda config, dtype: SETTINGS)
    assert compiling.begin(Args(), config, np.dtype("float64"), None) is None
    monkeypatch.setattr(warmup, "run", lambda *a, **k: 1 / 0)  # an exception: marked too
    other = {**SETTINGS, "dtype": "float32"}
    assert precompile.main([json.dumps(other)]) == 1 and precompile.has_failed(other)


def test_a_child_that_cannot_start_means_compiling_in_the_run(cache, monkeypatch):
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: (_ for _ in ()).throw(OSError("no fork")))
    config = {"layers": "2c5-s4", "output": "sigmoid", "alpha": 1.0}
    assert compiling.begin(Args(), config, np.dtype("float64"), None) is None
    assert backend.engine() == "numba" if backend.available() else True


@pytest.mark.skipif(not backend.available() or (os.cpu_count() or 1) < 2, reason="Numba and 2 cores needed")
def test_after_the_switch_the_dense_kernels_blas_is_capped_too():
    """The loop capped the BLAS libraries loaded when it started (NumPy's); SciPy's, which the
    compiled dense kernels call, comes with the switch and is capped then (a fresh process, so that
    nothing loaded it before)."""
    script = """
import sys
import numpy as np
from threadpoolctl import threadpool_info
import convprop
from convprop import Callback, Conv, Dense, Input, Network, train
from convprop.cli.compiling import EngineSwitch
from convprop.engine import backend

class Child:
    returncode, calls = None, 0
    def poll(self):
        self.calls += 1
        self.returncode = 0 if self.calls > 1 else None
        return self.returncode

class Args:
    quiet = True

seen = []
class Spy(Callback):
    def on_batch_end(self, loop):
        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        seen.append((loop.epoch, backend.engine(), len(blas), max(blas)))

convprop.set_engine("numpy")
net = Network([Input(8, 8), Conv(2, 3), Dense(4)], n_outputs=2, seed=0)
x = np.random.default_rng(0).random((40, 8, 8))
assert "scipy.linalg.cython_blas" not in sys.modules
switch = EngineSwitch(Child(), Args())
train(net, x, np.arange(40) % 2, epochs=2, batch_size=20, callbacks=[switch, Spy()])
assert {s[1] for s in seen if s[0] == 0} == {"numpy"}, seen
after = [s for s in seen if s[0] == 1]
assert after and {s[1] for s in after} == {"numba"} and all(s[2] >= 2 and s[3] == 1 for s in after), seen
assert max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas") > 1  # restored after
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CONVPROP_THREADS": "2", "CONVPROP_COMPILE": "foreground"})
    assert done.returncode == 0, done.stdout + done.stderr
