"""atheris target: :func:`convprop.datasets.read_idx` (raw and gzip IDX files)."""

import atheris

import _harness  # noqa: F401  (puts src/ on sys.path)
import numpy  # noqa: F401  (not instrumented: only the reader is)

with atheris.instrument_imports(include=["convprop", "gzip"]):
    import gzip  # the gzip path of the reader is part of the target

    from convprop.formats import idx as _idx


def one_input(path: str) -> None:
    _idx.read_idx(path)


if __name__ == "__main__":
    _harness.main(one_input, ".idx")
