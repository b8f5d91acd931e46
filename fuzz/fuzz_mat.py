"""atheris target: the .mat readers, :func:`convprop.formats.matlab.load_mat` (toolbox nets) and
:func:`convprop.datasets.read_mat` (any variables), on the same bytes; inputs starting with ``G``
are parameters for :func:`generators.mat` (huge inputsize, cell arrays of empties, field-less struct
arrays, too many dimensions)."""

import atheris

import _harness  # noqa: F401  (puts src/ on sys.path)
import generators
import numpy  # noqa: F401  (imported before instrumenting: only scipy.io.matlab and convprop are)
import scipy.sparse  # noqa: F401

with atheris.instrument_imports(include=["convprop", "scipy.io.matlab"]):
    import scipy.io.matlab  # noqa: F401  (instrument loadmat's Python layer too)

    from convprop.formats import matlab as _dltmat
    from convprop.formats import mat as _matfile


def one_input(path: str) -> None:
    try:
        _dltmat.load_mat(path)
    finally:  # both readers on every input, whatever the first one did
        _matfile.read_mat(path)


if __name__ == "__main__":
    _harness.main(one_input, ".mat", generators.mat)
