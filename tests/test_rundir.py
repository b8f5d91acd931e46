"""One run per directory, crash leftovers, early and precise failures (issue 15, classes 6, 7 and
8; issue 14, items 2 and 3)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from convprop.cli import main
from convprop.cli.rundir import RunDir
from convprop.errors import ConvpropError
from convprop.formats.checkpoint import load_checkpoint, save_checkpoint
from convprop.formats.model import load_model

from limits import SRC
from test_cli_hostile import TRAIN, assert_clean_error, fake_mnist, run_cli


@pytest.fixture
def data(tmp_path):
    return fake_mnist(tmp_path / "data")


def train(capsys, data, out, *extra):
    return run_cli(capsys, *TRAIN, "--data-dir", data, "--out", out, *extra)


# ------------------------------------------------------------ class 6: one process per directory


def test_second_owner_is_refused_and_stale_lock_taken_over(tmp_path):
    with RunDir(tmp_path / "run").acquire():
        with pytest.raises(ConvpropError, match=rf"in use by another convprop process \(pid {os.getpid()}\)"):
            RunDir(tmp_path / "run").acquire(resume=True)
    (tmp_path / "run" / ".lock").write_text("999999\n")  # a dead owner's lock file: not locked
    with RunDir(tmp_path / "run").acquire(resume=True):
        assert (tmp_path / "run" / ".lock").read_text() == f"{os.getpid()}\n"


def test_two_processes_into_one_run_directory(tmp_path, data, capsys):
    """A second ``convprop train`` into a directory a live process holds stops at once, before
    loading data; the first one's lock dies with it (SIGKILL), and the directory is usable again."""
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from convprop.cli.rundir import RunDir; "
         f"RunDir({str(out)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(SRC)))
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        code, err = train(capsys, data, out)
        assert_clean_error(code, err, f"{out} is in use by another convprop process (pid {holder.pid})")
        assert time.monotonic() - start < 5
    finally:
        holder.kill()
        holder.wait()
    code, err = train(capsys, data, out)
    assert code == 0, err
    assert (out / "model.npz").is_file()


# ------------------------------------------------------------ issue 14, item 2: no silent overwrite


def test_existing_run_is_refused_unless_resume_or_force(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert train(capsys, data, out)[0] == 0
    before = (out / "model.npz").read_bytes()
    (out / "plots").mkdir()
    (out / "plots" / "stale.png").write_bytes(b"old")
    code, err = train(capsys, data, out, "--seed", "1")
    assert_clean_error(code, err, "already holds a run", "--resume", "--force")
    assert (out / "model.npz").read_bytes() == before
    code, err = train(capsys, data, out, "--seed", "1", "--force")
    assert code == 0, err
    assert (out / "model.npz").read_bytes() != before
    assert not (out / "plots" / "stale.png").exists()  # the old run's plots went with it


# ------------------------------------------------------------ class 7: crash leftovers


def test_leftovers_removed_and_final_model_recovered(tmp_path, data, capsys):
    """A SIGKILL during the final model.npz write leaves a temporary file and no model; --resume
    with the epochs already done cleans the leftover and writes model.npz from the checkpoint."""
    out = tmp_path / "run"
    assert train(capsys, data, out)[0] == 0
    net, state = load_checkpoint(out / "checkpoint.npz")
    (out / "model.npz").unlink()
    (out / ".model.npz.k2j4x9_q.tmp").write_bytes(b"half a file")
    (out / "summary.json").write_text("{}")  # lagging an epoch behind the checkpoint
    code = main(["train", "--resume", str(out), "--epochs", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert "rewritten from the checkpoint" in capsys.readouterr().out
    assert not list(out.glob(".*.tmp"))
    recovered = load_model(out / "model.npz")
    for name, arr in net.parameters().items():
        np.testing.assert_array_equal(recovered.parameters()[name], arr)
    assert json.loads((out / "summary.json").read_text())["epochs"] == state.epoch


# ------------------------------------------------------------ class 8: late or vague failures


def test_unwritable_run_directory_fails_before_loading_data(tmp_path, data, capsys, monkeypatch):
    import convprop.cli.rundir as rundir

    real_open = os.open

    def read_only(path, flags, *args):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(rundir.os, "open", read_only)
    loaded = []
    monkeypatch.setattr("convprop.cli._data.load_split", lambda *a, **k: loaded.append(a))
    code, err = train(capsys, data, tmp_path / "run")
    assert_clean_error(code, err, "cannot write in the run directory", "Read-only file system")
    assert not loaded and not (tmp_path / "run").exists()


def test_out_under_a_file_fails_at_once(tmp_path, data, capsys):
    (tmp_path / "f").write_text("x")
    code, err = train(capsys, data, tmp_path / "f" / "run")
    assert_clean_error(code, err, "cannot create the run directory")


def test_full_disk_names_the_file(tmp_path, monkeypatch):
    from convprop._files import atomic_write_text

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ConvpropError, match=r"summary\.json: cannot write it \(No space left on device\)"):
        atomic_write_text(tmp_path / "summary.json", "{}")
    assert not list(tmp_path.iterdir())  # the temporary file is gone too


def _rewrite_training(path: Path, change) -> None:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    change(meta["training"])
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, words", [
    (lambda t: t["config"].pop("dtype"), "no valid 'dtype'"),
    (lambda t: t["config"].update(batch_size="ten"), "no valid 'batch_size'"),
    (lambda t: t["config"].update(layers="4c5-s2"), "disagrees with the network it holds: layers"),
    (lambda t: t["config"].update(dtype="float32"), "disagrees with the network it holds: dtype"),
    (lambda t: t["config"].update(output="softmax"), "disagrees with the network it holds: output"),
    (lambda t: t.update(epoch_elapsed=1e308), "epoch_elapsed"),
])
def test_resume_checks_the_checkpoint_config(tmp_path, data, capsys, change, words):
    out = tmp_path / "run"
    assert train(capsys, data, out)[0] == 0
    _rewrite_training(out / "checkpoint.npz", change)
    code, err = run_cli(capsys, "train", "--resume", out, "--epochs", "2", "--data-dir", data, "--quiet")
    assert_clean_error(code, err, words)


def test_summary_stays_json_with_infinite_values(tmp_path):
    from convprop.cli.report import write_summary
    from convprop.formats.checkpoint import TrainingState
    from convprop import Conv, Input, Network, Subsample

    net = Network([Input(8, 8), Conv(2, 3), Subsample(2)], n_outputs=10, seed=0)
    state = TrainingState.new(0, {})
    state.epoch, state.rL, state.test_error, state.epoch_seconds = 1, [float("nan")], [0.5], [float("inf")]
    config = {"dataset": "mnist", "batch_size": 5, "alpha": 1.0, "seed": 0}
    write_summary(tmp_path / "summary.json", config, net, state)
    summary = json.loads((tmp_path / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert summary["epoch_seconds"] == [None] and summary["final_rL"] is None


# ------------------------------------------------------------ issue 14, item 3: batch memory


def test_huge_batch_is_refused_with_the_estimate(tmp_path, data, capsys, monkeypatch):
    from convprop import Conv, Input, Network, Subsample
    from convprop.training.budget import batch_bytes, check_batch

    net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10, seed=0)
    assert 8e9 < batch_bytes(net, 60_000) < 11e9  # 10 GB measured on main for --batch-size 100000
    with pytest.raises(ConvpropError, match=r"one batch of 60000 images would need about 8\.4 GiB .* "
                                            r"use --batch-size 14257 or less, or raise the cap with CONVPROP_MAX_BATCH_MB"):
        check_batch(net, 100_000, 60_000)
    monkeypatch.setenv("CONVPROP_MAX_BATCH_MB", "1")
    code, err = train(capsys, data, tmp_path / "run", "--batch-size", "40")
    assert_clean_error(code, err, "--batch-size 40: one batch of 40 images", "CONVPROP_MAX_BATCH_MB")
    assert not (tmp_path / "run").exists()
