"""DeepLearnToolbox-compatible façade: cnnsetup, cnnff, cnnbp, cnnapplygrads, cnntrain, cnntest, cnnnumgradcheck.

The toolbox's ``cnn`` struct is a plain dict here, with the toolbox's field
names and layouts (see :mod:`convprop.engine.layout`)::

    cnn = {"layers": [{"type": "i"},
                      {"type": "c", "outputmaps": 6, "kernelsize": 5},
                      {"type": "s", "scale": 2},
                      {"type": "c", "outputmaps": 12, "kernelsize": 5},
                      {"type": "s", "scale": 2}]}
    cnn = cnnsetup(cnn, train_x, train_y, seed=0)    # train_x H×W×N, train_y K×N
    cnn = cnntrain(cnn, train_x, train_y, {"alpha": 1, "batchsize": 50, "numepochs": 1})
    er, bad = cnntest(cnn, test_x, test_y)

Every function here takes and returns such structs, and reads and writes
the fields that its toolbox namesake reads and writes (the table is in
``docs/toolbox-fields.md``): after set-up, a 'c' layer holds ``k[i][j]``
(kh×kw true-convolution kernels) and ``b[j]``, an 's' layer ``b`` (zeros);
the struct holds ``ffW`` (K×F) and ``ffb`` (K×1). ``cnnff`` adds ``a``
(per layer, a list of H×W×N maps), ``fv`` (F×N) and ``o`` (K×N); ``cnnbp``
adds ``e``, ``L``, ``od``, ``fvd``, each layer's ``d``, ``dk``, ``db``, and
``dffW``, ``dffb``; ``cnntrain`` adds ``rL``. ``cnnnumgradcheck`` checks
the gradients stored in the struct — cnnbp's, or your own backward pass's
(``docs/own-backward.md``). ``load_mat`` / ``save_mat`` read and write
structs as MATLAB ``.mat`` files.

Like MATLAB, each function returns a new struct and leaves its argument
unchanged. Every computation runs in the same engine as the Pythonic API
(:class:`convprop.Network`); this package only converts layouts at its edges.
Differences from the toolbox: the random numbers come from a seedable NumPy
generator (``seed=``), not MATLAB's ``rand``; ``bad`` holds 0-based indices;
single-precision inputs (float32) run in float32, everything else in float64.
"""

from .facade import cnnapplygrads, cnnbp, cnnff, cnnsetup, cnntest, cnntrain, engine_gradcheck
from .matfile import load_mat, save_mat
from .numgradcheck import NumGradCheck, cnnnumgradcheck

__all__ = [
    "cnnsetup", "cnnff", "cnnbp", "cnnapplygrads", "cnntrain", "cnntest", "cnnnumgradcheck",
    "NumGradCheck", "engine_gradcheck", "load_mat", "save_mat",
]
