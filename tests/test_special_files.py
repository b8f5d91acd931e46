"""Special files where a file is expected (issue 15, class 3): a FIFO blocked every loader but
``read_mat`` forever. Now every loader opens through ``_files.open_regular``, which never blocks
and refuses anything but a regular file in one line."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from convprop.errors import ConvpropError

LOADERS = {
    "load_model": lambda p: __import__("convprop.formats.model", fromlist=["x"]).load_model(p),
    "load_checkpoint": lambda p: __import__("convprop.formats.checkpoint", fromlist=["x"]).load_checkpoint(p),
    "read_npz": lambda p: __import__("convprop.formats._npz", fromlist=["x"]).read_npz(p),
    "read_npy": lambda p: __import__("convprop.formats._npz", fromlist=["x"]).read_npy(p),
    "read_idx": lambda p: __import__("convprop.formats.idx", fromlist=["x"]).read_idx(p),
    "iter_idx": lambda p: __import__("convprop.formats.idx", fromlist=["x"]).iter_idx(p, 10),
    "looks_like_idx": lambda p: __import__("convprop.formats.idx", fromlist=["x"]).looks_like_idx(p),
    "read_mat": lambda p: __import__("convprop.formats.mat", fromlist=["x"]).read_mat(p),
    "load_mat": lambda p: __import__("convprop.formats.matlab", fromlist=["x"]).load_mat(p),
    "read_image": lambda p: __import__("convprop.datasets.images", fromlist=["x"]).read_image(Path(p), (28, 28, 1), False),
}


def call_with_timeout(fn, path, seconds=5.0):
    """(exception or None, seconds) of fn(path) in a thread; unblocks a FIFO reader if it hangs."""
    result = {}

    def target():
        try:
            fn(path)
            result["exc"] = None
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            result["exc"] = exc

    start = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    elapsed = time.monotonic() - start
    if thread.is_alive():  # blocked in open(): give it a writer so that the thread ends
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(5)
        pytest.fail(f"{fn} blocked on {path} for more than {seconds} s")
    return result["exc"], elapsed


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_fifo_is_refused_at_once(tmp_path, name):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    exc, elapsed = call_with_timeout(LOADERS[name], str(fifo))
    assert isinstance(exc, ConvpropError), exc
    assert "FIFO" in str(exc) and "not a regular file" in str(exc) and str(fifo) in str(exc), exc
    assert elapsed < 2


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_directory_and_device_are_refused(tmp_path, name):
    for path, word in ((tmp_path, "directory"), ("/dev/zero", "character device")):
        with pytest.raises(ConvpropError, match=f"{word}"):
            LOADERS[name](str(path))


def test_cli_predict_on_a_fifo(tmp_path, capsys):
    from convprop import Conv, Input, Network, Subsample
    from convprop.cli import main
    from convprop.formats.model import save_model

    save_model(Network([Input(28, 28), Conv(2, 5), Subsample(4)], n_outputs=10, seed=0), tmp_path / "m.npz")
    fifo = tmp_path / "images.idx"
    os.mkfifo(fifo)
    exc, _ = call_with_timeout(lambda p: main(["predict", str(tmp_path / "m.npz"), p]), str(fifo))
    err = capsys.readouterr().err
    assert exc is None and "FIFO" in err and len(err.strip().splitlines()) == 1, err
