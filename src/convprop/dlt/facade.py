"""The toolbox's functions: cnnsetup, cnnff, cnnbp, cnnapplygrads, cnntrain, cnntest.

Each reads and writes the struct fields that its MATLAB namesake reads and
writes (``docs/toolbox-fields.md`` lists them against the toolbox source)
and runs the engine (:class:`convprop.Network`); :mod:`.structs` converts
layouts at the edges.
"""

from __future__ import annotations

import numpy as np

from ..engine.network import Network
from ..errors import ConvpropError
from ..training.evaluate import evaluate
from ..training.gradcheck import GradcheckReport, gradcheck
from ..training.loop import train
from . import structs
from .structs import Struct

__all__ = ["cnnsetup", "cnnff", "cnnbp", "cnnapplygrads", "cnntrain", "cnntest", "engine_gradcheck"]


# ----------------------------------------------------------------- the API


def cnnsetup(net: Struct, x: np.ndarray, y: np.ndarray, seed: int | np.random.Generator | None = None) -> Struct:
    """Initialise kernels, biases and output weights as the toolbox's cnnsetup.

    Parameters
    ----------
    net : dict
        ``{"layers": [{"type": "i"}, {"type": "c", "outputmaps": m, "kernelsize": k},
        {"type": "s", "scale": s}, ...]}``.
    x : array, shape (H, W, N)
        Images (only the size is used).
    y : array, shape (K, N)
        Targets (only K is used).
    seed : int, Generator or None
        Random source, in place of MATLAB's ``rand('state', …)``.

    Returns
    -------
    dict
        A new struct with, as cnnsetup writes them, ``k`` (``k[i][j]``, kh×kw)
        and ``b`` (``b[j]`` = 0) of each 'c' layer, ``b`` (zeros, one per map)
        of each 's' layer, ``ffW`` (K×F) and ``ffb`` (K×1, zeros).
    """
    net = structs.check_struct(net, "cnnsetup")
    images = structs.images(x)
    n_out = np.shape(y)[0] if np.ndim(y) else 0
    if np.ndim(y) not in (1, 2) or n_out < 1:
        raise ConvpropError(f"y must be K×N (toolbox layout); got shape {np.shape(y)}")
    engine = Network(structs.layer_objects(net, images.shape[1:]), n_outputs=n_out, seed=seed)
    out = structs.copy_struct(net)
    structs.store_setup(out, engine)
    return out


def cnnff(net: Struct, x: np.ndarray) -> Struct:
    """Forward pass, as the toolbox's cnnff.

    Parameters
    ----------
    net : dict
        A struct from :func:`cnnsetup` or :func:`cnntrain`.
    x : array, shape (H, W, N)
        Images in the toolbox layout.

    Returns
    -------
    dict
        A new struct with each layer's ``a`` (a list of H×W×N maps; the
        input layer's ``a[0]`` is ``x``), ``fv`` (F×N) and ``o`` (K×N).
    """
    net = structs.check_struct(net, "cnnff")
    images = structs.images(x)
    engine = structs.checked_network(net, images, structs.dtype_of(images))
    engine.forward(images)
    out = structs.copy_struct(net)
    structs.store_forward(out, engine)
    return out


def _forward_state(net: Struct) -> np.ndarray:
    """The batch cnnff left in ``layers{1}.a{1}``, as (N, H, W) images; checks that ``o`` is there."""
    first = net["layers"][0].get("a")
    if "o" not in net or not isinstance(first, (list, tuple)) or not first:
        raise ConvpropError("cnnbp needs the state of cnnff: call net = cnnff(net, x) first")
    return structs.images(first[0], "net['layers'][0]['a'][0]")


def _check_same_output(net: Struct, o: np.ndarray) -> None:
    """The struct's ``o`` must be what its parameters give on ``layers{1}.a{1}``."""
    stored = np.asarray(net["o"])
    tol = dict(rtol=1e-4, atol=1e-6) if o.dtype == np.float32 else dict(rtol=1e-9, atol=1e-12)
    if stored.shape != o.shape or not np.allclose(stored, o, **tol):
        raise ConvpropError(
            "net['o'] is not the output of net's parameters on net['layers'][0]['a'][0] "
            "(were they changed after cnnff, e.g. by cnnapplygrads?): call net = cnnff(net, x) again before cnnbp"
        )


def cnnbp(net: Struct, y: np.ndarray) -> Struct:
    """Backward pass after :func:`cnnff`, as the toolbox's cnnbp.

    The engine runs the forward pass again on the batch that cnnff left in
    ``layers[0]["a"][0]`` (its backward needs its own forward state) and
    checks that it gives the struct's ``o``.

    Parameters
    ----------
    net : dict
        The struct returned by :func:`cnnff`.
    y : array, shape (K, N)
        Targets in the toolbox layout.

    Returns
    -------
    dict
        A new struct with ``e`` (K×N), ``L``, ``od`` (K×N), ``fvd`` (F×N),
        the ``d`` (list of maps) of every layer after the input, each 'c'
        layer's ``dk[i][j]`` (kh×kw) and ``db[j]``, ``dffW`` (K×F) and
        ``dffb`` (K×1). The equations are derived in ``docs/derivation.md``.
    """
    net = structs.check_struct(net, "cnnbp")
    images = _forward_state(net)
    engine = structs.checked_network(net, images, structs.dtype_of(images))
    targets = structs.targets(y, images.shape[0])
    _check_same_output(net, engine.forward(images).T)
    engine.backward(targets)
    out = structs.copy_struct(net)
    structs.store_backward(out, engine)
    return out


def _alpha(opts: Struct, caller: str) -> float:
    alpha = np.asarray(structs.check_opts(opts, caller, ("alpha",))["alpha"])
    if alpha.size != 1 or alpha.dtype.kind not in "biuf" or not np.isfinite(alpha).all():
        raise ConvpropError(f"{caller}: opts['alpha'] must be one finite number, got {opts['alpha']!r}")
    return float(alpha.ravel()[0])


def cnnapplygrads(net: Struct, opts: Struct) -> Struct:
    """SGD step, as cnnapplygrads: every k, b, ffW, ffb −= opts['alpha'] · its gradient.

    Parameters
    ----------
    net : dict
        The struct returned by :func:`cnnbp`.
    opts : dict
        ``{"alpha": learning rate}``.

    Returns
    -------
    dict
        A new struct with the updated ``k``, ``b`` ('c' layers), ``ffW`` and ``ffb``.
    """
    net = structs.check_struct(net, "cnnapplygrads")
    alpha = _alpha(opts, "cnnapplygrads")
    if "dffW" not in net:
        raise ConvpropError("cnnapplygrads needs gradients: call cnnff and cnnbp first")
    engine = structs.checked_network(net, None, structs.dtype_of(net.get("ffW")), grads=True)
    engine.step(alpha)
    out = structs.copy_struct(net)
    structs.store_params(out, engine)
    return out


def cnntrain(
    net: Struct, x: np.ndarray, y: np.ndarray, opts: Struct, seed: int | np.random.Generator | None = None
) -> Struct:
    """Train as the toolbox's cnntrain.

    N must be a multiple of the batch size (the toolbox's "numbatches not
    integer" error). Each epoch draws a fresh permutation from ``seed``.

    Parameters
    ----------
    net : dict
        A struct from :func:`cnnsetup` (or a trained one, to go on training).
    x : array, shape (H, W, N)
    y : array, shape (K, N)
    opts : dict
        ``alpha``, ``batchsize``, ``numepochs``.
    seed : int, Generator or None
        Source of the per-epoch permutations.

    Returns
    -------
    dict
        The trained parameters, the last batch's state (what cnnff and cnnbp
        write; ``k``, ``b``, ``ffW``, ``ffb`` after its update) and ``rL``,
        shape (1 + number of batches,), started afresh as the toolbox's
        ``net.rL = []``.
    """
    net = structs.check_struct(net, "cnntrain")
    alpha = _alpha(structs.check_opts(opts, "cnntrain", ("alpha", "batchsize", "numepochs")), "cnntrain")
    images = structs.images(x)
    targets = structs.targets(y, images.shape[0])
    batchsize = structs.opt_int(opts, "batchsize")
    if batchsize < 1 or images.shape[0] % batchsize:
        raise ConvpropError(f"numbatches not integer: {images.shape[0]} images, batchsize {opts['batchsize']}")
    engine = structs.checked_network(net, images, structs.dtype_of(images))
    epochs = structs.opt_int(opts, "numepochs")
    history = train(engine, images, targets, epochs=epochs, batch_size=batchsize, alpha=alpha, seed=seed)
    out = structs.copy_struct(net)
    structs.store_params(out, engine)
    structs.store_forward(out, engine)
    structs.store_backward(out, engine)
    out["rL"] = np.asarray(history.rL)
    return out


def cnntest(net: Struct, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Error rate and wrong samples, as the toolbox's cnntest (the struct is not changed).

    Parameters
    ----------
    net : dict
    x : array, shape (H, W, N)
    y : array, shape (K, N)
        One-hot (or any) targets; the true class is the argmax of each column.

    Returns
    -------
    er : float
        Fraction of samples whose argmax output differs from argmax y.
    bad : ndarray of int
        Their **0-based** indices (the toolbox's ``bad`` − 1).
    """
    net = structs.check_struct(net, "cnntest")
    images = structs.images(x)
    engine = structs.checked_network(net, images, structs.dtype_of(images))
    result = evaluate(engine, images, structs.targets(y, images.shape[0]))
    return result.error, result.wrong


def engine_gradcheck(net: Struct, x: np.ndarray, y: np.ndarray) -> GradcheckReport:
    """convprop's own backprop on the struct's parameters against central differences.

    Not a toolbox function, and not :func:`~convprop.dlt.cnnnumgradcheck`: the
    struct's stored gradients are never read. The network is rebuilt from
    the struct's parameters, the engine's backward pass computes the
    gradients, and :func:`convprop.gradcheck` compares them with central
    differences (ε = 1e-4, tolerance 1e-8) — a check of convprop, not of a
    learner's backward pass.

    Parameters
    ----------
    net : dict
    x : array, shape (H, W, N)
    y : array, shape (K, N)

    Returns
    -------
    GradcheckReport
        The per-tensor report (convprop's layout and names), when every entry is within 1e-8.

    Raises
    ------
    ConvpropError
        When any entry differs from backprop by more than 1e-8.
    """
    net = structs.check_struct(net, "engine_gradcheck")
    images = structs.images(x)
    engine = structs.checked_network(net, images)
    report = gradcheck(engine, images, structs.targets(y, images.shape[0]))
    if not report.passed:
        raise ConvpropError(f"numerical gradient checking failed (convprop's own backprop)\n{report}")
    return report
