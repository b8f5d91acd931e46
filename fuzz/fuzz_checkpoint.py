"""atheris target: :func:`convprop.formats.model.load_model` and :func:`convprop.formats.checkpoint.load_checkpoint`
(``.npz`` archives of plain arrays + JSON metadata) on the same bytes.

Two kinds of input: a whole file (any bytes), or, when the input starts with ``J``, JSON
metadata that is packed into a valid archive beside a real checkpoint's arrays, so that the
fuzzer also explores the metadata checks behind the zip layer (random bytes rarely survive a
zip's CRCs). Inputs starting with ``G`` are parameters for :func:`generators.checkpoint` (a
metadata member inflating to up to 1 GiB, or metadata claiming huge layers beside real arrays).
"""

import io
import os

import atheris

import _harness  # noqa: F401  (puts src/ on sys.path)
import generators
import numpy as np

with atheris.instrument_imports(include=["convprop", "zipfile", "json"]):
    import json  # noqa: F401
    import zipfile  # noqa: F401

    import convprop as _io
    # convprop's exports load on first use: import the loaders here, so that they are instrumented
    import convprop.formats.checkpoint  # noqa: F401
    import convprop.formats.model  # noqa: F401

_REAL: dict = {}


def _real() -> dict:
    """The arrays (``meta`` included) of a real checkpoint of a tiny net."""
    if not _REAL:
        import make_seeds

        blob = make_seeds.checkpoint_seeds()["checkpoint"]
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            _REAL.update({k: npz[k] for k in npz.files})
    return _REAL


def _arrays() -> dict:
    """The arrays (all but ``meta``) of a real checkpoint of a tiny net."""
    return {k: v for k, v in _real().items() if k != "meta"}


def generate(data: bytes) -> bytes:
    return generators.checkpoint(data, _real())


def one_input(path: str) -> None:
    with open(path, "rb") as f:
        head = f.read(1)
        if head == b"J":
            meta = np.frombuffer(f.read(), dtype=np.uint8)
            packed = path + ".npz"
            with open(packed, "wb") as out:
                np.savez(out, meta=meta, **_arrays())
            os.replace(packed, path)
    try:
        _io.load_model(path)
    finally:  # both loaders on every input
        _io.load_checkpoint(path)


if __name__ == "__main__":
    _harness.main(one_input, ".npz", generate)
