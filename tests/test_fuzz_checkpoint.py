"""Model and checkpoint files from anywhere: mutated and forged files end in ConvpropError."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from convprop.errors import ConvpropError
from fuzzing import bytes_file, mutated

import convprop as cio  # load_model, load_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import make_seeds  # noqa: E402

SEEDS = {k: v for k, v in make_seeds.checkpoint_seeds().items() if not v.startswith(b"J")}


def _check(data: bytes) -> None:
    with bytes_file(data, ".npz") as path:
        for loader in (cio.load_model, cio.load_checkpoint):
            try:
                loader(path)
            except ConvpropError as exc:
                assert "\n" not in str(exc) and str(path) in str(exc)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=mutated(list(SEEDS.values())))
def test_mutated_files(data):
    _check(data)


def _with_meta(blob: bytes, edit) -> bytes:
    """The checkpoint ``blob`` with its JSON metadata changed by ``edit(meta) -> meta``."""
    src = zipfile.ZipFile(io.BytesIO(blob))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "meta.npy":
                meta = json.loads(np.load(io.BytesIO(data), allow_pickle=False).tobytes())
                text = edit(meta)
                text = text if isinstance(text, str) else json.dumps(text)
                buf = io.BytesIO()
                np.save(buf, np.frombuffer(text.encode(), np.uint8), allow_pickle=False)
                data = buf.getvalue()
            dst.writestr(info.filename, data)
    return out.getvalue()


def _set(**changes):
    def edit(meta):
        for key, value in changes.items():
            target = meta
            *path, last = key.split("__")
            for part in path:
                target = target[part]
            target[last] = value
        return meta
    return edit


FORGED = {
    "input 10^6 x 10^6": (_set(input_shape=[10**6, 10**6, 1]), "parameters"),
    "10^9 outputs": (_set(n_outputs=10**9), "parameters"),
    "layer spec with 5000 digits": (_set(layers="1" * 5000 + "c3"), "layer spec"),
    "JSON nested 100000 deep": (lambda m: "[" * 100_000 + "]" * 100_000, "metadata"),
    "JSON integer of 5000 digits": (lambda m: '{"format": "convprop", "version": ' + "9" * 5000 + "}",
                                    "metadata is not valid JSON"),
    "bit generator state of the wrong kind": (_set(training__rng={"bit_generator": "PCG64", "state": 5}), "rng"),
    "huge generator state": (_set(training__rng={"bit_generator": "PCG64",
                                                  "state": {"state": 2**200, "inc": 2**200},
                                                  "has_uint32": 0, "uinteger": 0}), "rng"),
    "unknown bit generator": (_set(training__rng={"bit_generator": "os.system"}), "unknown bit generator"),
    "negative epoch": (_set(training__epoch=-1), "negative"),
    "float epoch": (_set(training__epoch=1.5), "epoch"),
    "optimizer slot naming a list": (_set(training__optimizer__slots={"exp_avg": [[1]]}), "optimizer state"),
    "optimizer slot of a number": (_set(training__optimizer__slots={"exp_avg": 5}), "must list parameter names"),
    "optimizer of a string": (_set(training__optimizer="adam"), "'optimizer' must be an object"),
}


@pytest.mark.parametrize("case", list(FORGED))
def test_forged_metadata(case):
    edit, words = FORGED[case]
    data = _with_meta(SEEDS["checkpoint"], edit)
    with bytes_file(data, ".npz") as path:
        with pytest.raises(ConvpropError, match=words) as info:
            cio.load_checkpoint(path)
        assert "\n" not in str(info.value)


def test_valid_seeds_load():
    with bytes_file(SEEDS["checkpoint"], ".npz") as path:
        net, state = cio.load_checkpoint(path)
    assert state.epoch == 1 and net.spec == "6x6-2c3-s2-3o"
