"""atheris target: :func:`convprop.data.read_mat` (MATLAB v4/v5/v7 .mat files)."""

import atheris

import _harness  # noqa: F401  (puts src/ on sys.path)
import numpy  # noqa: F401  (imported before instrumenting: only scipy.io.matlab and convprop are)
import scipy.sparse  # noqa: F401

with atheris.instrument_imports():
    import scipy.io.matlab  # noqa: F401  (instrument loadmat's Python layer too)

    from convprop.data import matfile as _matfile


def one_input(path: str) -> None:
    _matfile.read_mat(path)


if __name__ == "__main__":
    _harness.main(one_input, ".mat")
