"""The command line on bad and hostile input: one line on stderr, exit status 2, never a
traceback or an "internal error"; and a real ``convprop train`` process killed with SIGKILL."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from convprop.datasets import write_idx

cli = pytest.importorskip("convprop.cli", reason="convprop.cli (branch cli) not merged yet")
from convprop.formats.model import load_model  # noqa: E402
from convprop.formats.checkpoint import load_checkpoint  # noqa: E402

SRC = Path(cli.__file__).resolve().parents[2]  # src/ of the convprop under test (cli/__init__.py), for subprocesses



def fake_mnist(folder: Path, n_train=40, n_test=20, *, train_images=None, train_labels=None) -> Path:
    """The four MNIST IDX .gz files with small random contents (or the given arrays)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) % 10).astype(np.uint8),
    }
    if train_images is not None:
        parts["train-images-idx3-ubyte.gz"] = train_images
    if train_labels is not None:
        parts["train-labels-idx1-ubyte.gz"] = train_labels
    for name, arr in parts.items():
        write_idx(folder / name, arr)
    return folder


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_clean_error(code: int, err: str, *words: str) -> None:
    assert code == 2, (code, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "internal error" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


TRAIN = ["train", "--epochs", "1", "--batch-size", "10", "--layers", "2c5-s2", "--no-plots", "--quiet"]

BAD_DATA = {
    "mismatched counts": ({"train_labels": np.zeros(39, np.uint8)}, "holds 40 images but"),
    "label out of range": ({"train_labels": np.full(40, 10, np.uint8)}, "label 10 is outside 0..9"),
    "wrong image size": ({"train_images": np.zeros((40, 27, 28), np.uint8)}, "expected uint8 images of shape (N, 28, 28)"),
    "wrong dtype": ({"train_images": np.zeros((40, 28, 28), np.float32)}, "expected uint8 images"),
    "empty dataset": ({"train_images": np.zeros((0, 28, 28), np.uint8),
                       "train_labels": np.zeros(0, np.uint8)}, "empty"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_train_on_bad_data(tmp_path, capsys, case):
    override, words = BAD_DATA[case]
    data = fake_mnist(tmp_path / "data", **override)
    code, err = run_cli(capsys, *TRAIN, "--data-dir", data, "--out", tmp_path / "run")
    assert_clean_error(code, err, words)


@pytest.mark.parametrize("content, words", [
    (lambda: b"", "not an IDX file"),
    (lambda: gzip.compress(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (40, 28, 28))
                          + bytes(100)), "truncated"),
    (lambda: b"\x1f\x8b" + os.urandom(50), "gzip"),
])
def test_train_on_corrupt_idx(tmp_path, capsys, content, words):
    data = fake_mnist(tmp_path / "data")
    (data / "train-images-idx3-ubyte.gz").write_bytes(content())
    code, err = run_cli(capsys, *TRAIN, "--data-dir", data, "--out", tmp_path / "run")
    assert_clean_error(code, err, "train-images-idx3-ubyte.gz", words)


@pytest.mark.parametrize("args, words", [
    (["--layers", "6c5-s5"], "size must be integer"),
    (["--layers", "6c29"], "larger than its input maps"),
    (["--layers", "1" * 5000 + "c5"], "layer spec"),
    (["--layers", "6q5"], "6q5"),
    (["--epochs", "0"], "epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--alpha", "nan"], "alpha"),
    (["--alpha", "-1"], "alpha"),
    (["--alpha", "inf"], "alpha"),
])
def test_train_bad_settings(tmp_path, capsys, args, words):
    data = fake_mnist(tmp_path / "data")
    argv = [a for a in TRAIN if a not in ("--layers", "2c5-s2")] if "--layers" in args else TRAIN
    code, err = run_cli(capsys, *argv, *args, "--data-dir", data, "--out", tmp_path / "run")
    assert_clean_error(code, err, words)
    assert not (tmp_path / "run").exists()  # refused before anything was created (issue 14, item 2)


def test_divergence_from_too_large_alpha(tmp_path, capsys):
    """float32 and alpha 1e39: the first update overflows; the message names the parameters and
    the step. (In float64 the toolbox's sigmoid saturates instead: weights reach ~1e306 and stay
    finite for any finite alpha, so there is nothing to catch.)"""
    data = fake_mnist(tmp_path / "data")
    code, err = run_cli(capsys, *TRAIN, "--dtype", "float32", "--alpha", "1e39", "--data-dir", data,
                        "--out", tmp_path / "run")
    assert_clean_error(code, err, "diverged at epoch 1, batch 1/4", "conv1.weight", "NaN or inf")


def test_resume_from_mutated_checkpoints(tmp_path, capsys):
    data = fake_mnist(tmp_path / "data")
    run = tmp_path / "run"
    code, _ = run_cli(capsys, *TRAIN, "--data-dir", data, "--out", run)
    assert code == 0
    blob = (run / "checkpoint.npz").read_bytes()
    rng = np.random.default_rng(0)
    for k in range(25):
        bad = bytearray(blob)
        for i in rng.integers(0, len(bad), 1 + k % 4):
            bad[i] ^= 1 << int(rng.integers(0, 8))
        bad = bad[: len(bad) - int(rng.integers(0, 2)) * int(rng.integers(1, len(bad)))]
        p = tmp_path / f"bad{k}.npz"
        p.write_bytes(bytes(bad))
        code, err = run_cli(capsys, "train", "--resume", p, "--epochs", "2", "--data-dir", data,
                            "--quiet", "--no-plots", "--out", tmp_path / f"out{k}")
        if code == 0:  # a flipped bit in padding or a float: still a valid checkpoint
            continue
        assert_clean_error(code, err, str(p))


def test_predict_on_hostile_inputs(tmp_path, capsys):
    data = fake_mnist(tmp_path / "data")
    run = tmp_path / "run"
    assert run_cli(capsys, *TRAIN, "--data-dir", data, "--out", run)[0] == 0
    model = run / "model.npz"
    bomb = tmp_path / "bomb.png"
    import struct
    import zlib

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(bytes(10000))) + chunk(b"IEND", b""))
    junk = tmp_path / "junk.png"
    junk.write_bytes(os.urandom(300))
    idx = tmp_path / "x-idx3-ubyte"
    idx.write_bytes(bytes([0, 0, 8, 3]) + (2**31).to_bytes(4, "big") * 3)
    for f, words in ((bomb, "pixels"), (junk, "not an image file"), (idx, "truncated IDX payload"),
                     (tmp_path / "none.png", "no such file")):
        code, err = run_cli(capsys, "predict", model, f)
        assert_clean_error(code, err, str(f), words)


def test_sigkill_real_process_then_resume_bit_identical(tmp_path):
    """``convprop train`` in a real interpreter, SIGKILLed at random moments (after its first
    checkpoint), then interrupted with Ctrl-C: the checkpoint always loads, and the resumed run
    ends bit-identical to an uninterrupted one."""
    data = fake_mnist(tmp_path / "data", n_train=60)
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    epochs = 400
    base = [sys.executable, "-m", "convprop", "train", "--batch-size", "10", "--layers", "2c5-s2",
            "--no-plots", "--quiet", "--data-dir", str(data), "--seed", "4"]
    run = tmp_path / "killed"
    ckpt = run / "checkpoint.npz"
    rng = np.random.default_rng(1)
    kills, epochs_seen = 0, []
    for attempt in range(5):  # four SIGKILLs, then one Ctrl-C (SIGINT)
        sig = signal.SIGKILL if attempt < 4 else signal.SIGINT
        argv = base + (["--resume", str(ckpt)] if ckpt.exists() else ["--out", str(run)])
        proc = subprocess.Popen(argv + ["--epochs", str(epochs)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        mtime = ckpt.stat().st_mtime_ns if ckpt.exists() else 0
        deadline = time.monotonic() + 60
        while (not ckpt.exists() or ckpt.stat().st_mtime_ns == mtime) and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.3))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        err = err.decode()
        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL, err
            kills += 1
        else:  # Ctrl-C: the batch finishes, a checkpoint is saved, one line, status 130
            assert proc.returncode == 130, err
            assert len(err.strip().splitlines()) == 1 and "checkpoint saved to" in err, err
        _, state = load_checkpoint(ckpt)  # loads after every kill
        epochs_seen.append(state.epoch + state.batch / 6)
        assert epochs_seen == sorted(epochs_seen)
    target = int(epochs_seen[-1]) + 2
    done = subprocess.run(base + ["--resume", str(ckpt), "--epochs", str(target)], env=env,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    ref = subprocess.run(base + ["--out", str(tmp_path / "ref"), "--epochs", str(target)], env=env,
                         capture_output=True, timeout=120)
    assert ref.returncode == 0, ref.stderr.decode()
    a = load_model(run / "model.npz")
    b = load_model(tmp_path / "ref" / "model.npz")
    for name, value in b.parameters().items():
        np.testing.assert_array_equal(a.parameters()[name], value, err_msg=name)
    print(f"{kills} SIGKILLs and a Ctrl-C of `convprop train`; checkpoint epochs: {epochs_seen}")
