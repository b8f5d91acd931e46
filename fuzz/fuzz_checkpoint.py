"""atheris target: :func:`convprop.io.load_model` and :func:`convprop.io.load_checkpoint`
(``.npz`` archives of plain arrays + JSON metadata) on the same bytes."""

import atheris

import _harness  # noqa: F401  (puts src/ on sys.path)
import numpy  # noqa: F401  (imported before instrumenting)

with atheris.instrument_imports(include=["convprop", "zipfile", "json"]):
    import json  # noqa: F401
    import zipfile  # noqa: F401

    from convprop import io as _io


def one_input(path: str) -> None:
    try:
        _io.load_model(path)
    finally:  # both loaders on every input
        _io.load_checkpoint(path)


if __name__ == "__main__":
    _harness.main(one_input, ".npz")
