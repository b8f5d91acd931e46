"""DeepLearnToolbox-compatible façade: cnnsetup, cnnff, cnnbp, cnnapplygrads, cnntrain, cnntest, cnnnumgradcheck.

The toolbox's ``cnn`` struct is a plain dict here, with the toolbox's field
names and layouts (see :mod:`convprop.layout`)::

    cnn = {"layers": [{"type": "i"},
                      {"type": "c", "outputmaps": 6, "kernelsize": 5},
                      {"type": "s", "scale": 2},
                      {"type": "c", "outputmaps": 12, "kernelsize": 5},
                      {"type": "s", "scale": 2}]}
    cnn = cnnsetup(cnn, train_x, train_y, seed=0)    # train_x H×W×N, train_y K×N
    cnn = cnntrain(cnn, train_x, train_y, {"alpha": 1, "batchsize": 50, "numepochs": 1})
    er, bad = cnntest(cnn, test_x, test_y)

After set-up, a 'c' layer holds ``k[i][j]`` (kh×kw true-convolution kernels)
and ``b[j]``; the struct holds ``ffW`` (K×F) and ``ffb`` (K×1). ``cnnff``
adds ``a`` (per layer, a list of H×W×N maps), ``fv`` (F×N) and ``o`` (K×N);
``cnnbp`` adds ``e``, ``L``, ``od``, ``fvd``, each layer's ``d``, ``dk``,
``db``, and ``dffW``, ``dffb``; ``cnntrain`` adds ``rL``.

Like MATLAB, each function returns a new struct and leaves its argument
unchanged. Every computation runs in the same engine as the Pythonic API
(:class:`convprop.Network`); this module only converts layouts at its edges.
Differences from the toolbox: the random numbers come from a seedable NumPy
generator (``seed=``), not MATLAB's ``rand``; ``bad`` holds 0-based indices;
single-precision inputs (float32) run in float32, everything else in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .engine import layout
from ._validation import as_float_array
from .errors import ConvpropError
from .training.evaluate import evaluate
from .training.gradcheck import GradcheckReport, gradcheck
from .engine.layers import Conv, Input, Subsample
from .engine.network import Network
from .training.loop import train

Struct = dict[str, Any]

__all__ = [
    "cnnsetup", "cnnff", "cnnbp", "cnnapplygrads", "cnntrain", "cnntest", "cnnnumgradcheck",
    "load_mat", "save_mat",
]


# ------------------------------------------------------------------ layouts


def _dtype_of(x: np.ndarray) -> type:
    return np.float32 if np.asarray(x).dtype == np.float32 else np.float64


def _images(x, what: str = "x") -> np.ndarray:
    """Toolbox images (H, W, N) → (N, H, W) as floats."""
    arr = as_float_array(x, _dtype_of(x), what)
    if arr.ndim == 2:  # MATLAB drops a trailing singleton: one H×W image
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ConvpropError(f"{what} must be H×W×N (toolbox layout); got shape {arr.shape}")
    return layout.images_from_dlt(arr)


def _targets(y, n: int, what: str = "y") -> np.ndarray:
    """Toolbox targets (K, N) → (N, K)."""
    arr = as_float_array(y, _dtype_of(y), what)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != n:
        raise ConvpropError(f"{what} must be K×N with N = {n} (toolbox layout); got shape {arr.shape}")
    return arr.T


def _layer_objects(net: Struct, image_size: tuple[int, int]):
    specs = net.get("layers")
    if not isinstance(specs, (list, tuple)) or not specs:
        raise ConvpropError("net['layers'] must be a non-empty list of layer dicts")
    layers = []
    for l, spec in enumerate(specs):
        kind = spec.get("type") if isinstance(spec, dict) else None
        if l == 0:
            if kind != "i":
                raise ConvpropError("net['layers'][0] must be {'type': 'i'}")
            layers.append(Input(*image_size))
        elif kind == "c":
            layers.append(Conv(_int(spec, "outputmaps", l), _int(spec, "kernelsize", l)))
        elif kind == "s":
            layers.append(Subsample(_int(spec, "scale", l)))
        else:
            raise ConvpropError(f"net['layers'][{l}] has type {kind!r}; expected 'c' or 's'")
    return layers


def _int(spec: dict, key: str, l: int) -> int:
    if key not in spec:
        raise ConvpropError(f"net['layers'][{l}] ('{spec['type']}') needs '{key}'")
    value = np.asarray(spec[key])
    if value.size != 1 or value.ravel()[0] != int(value.ravel()[0]):
        raise ConvpropError(f"net['layers'][{l}]['{key}'] must be an integer, got {spec[key]!r}")
    return int(value.ravel()[0])


def _image_size(net: Struct, x: np.ndarray | None) -> tuple[int, int]:
    if x is not None:
        return x.shape[1], x.shape[2]
    if "inputsize" in net:
        h, w = np.asarray(net["inputsize"]).ravel()[:2]
        return int(h), int(w)
    first = net["layers"][0].get("a")
    if first:
        return first[0].shape[0], first[0].shape[1]
    raise ConvpropError("the input size is unknown: run cnnsetup or cnnff first")


def _network(net: Struct, x: np.ndarray | None, dtype: type = np.float64) -> Network:
    """The engine's Network holding the struct's parameters (and gradients, if any)."""
    try:
        return _struct_to_network(net, x, dtype)
    except ConvpropError:
        raise
    except KeyError as exc:  # a field the toolbox always sets is missing
        raise ConvpropError(f"the net struct has no field {exc.args[0]!r} where the toolbox keeps one") from None
    except (ValueError, IndexError, TypeError) as exc:  # arrays of the wrong size or kind
        raise ConvpropError(f"the net struct's arrays do not fit its layers: {' '.join(str(exc).split())}") from None


def _vector(value, n: int, what: str, dtype: type) -> np.ndarray:
    """A struct's bias as a vector of length ``n`` (no silent broadcasting)."""
    arr = np.ravel(np.asarray(value, dtype=dtype))
    if arr.size != n:
        raise ConvpropError(f"the net struct's {what} has {arr.size} values; its layer needs {n}")
    return arr


def _struct_to_network(net: Struct, x: np.ndarray | None, dtype: type) -> Network:
    if "ffW" not in net:
        raise ConvpropError("net has no ffW: run cnnsetup first")
    ffw = np.asarray(net["ffW"])
    if ffw.ndim != 2:
        raise ConvpropError(f"net['ffW'] must be a matrix (classes × features), got shape {ffw.shape}")
    engine = Network(_layer_objects(net, _image_size(net, x)), n_outputs=ffw.shape[0], dtype=dtype)
    if ffw.shape[1] != engine.n_features:
        raise ConvpropError(
            f"net['ffW'] is {ffw.shape[0]}×{ffw.shape[1]} but the layers give {engine.n_features} features"
        )
    for spec, layer in zip(net["layers"], engine.layers):
        if isinstance(layer, Conv):
            kernels = np.array([[np.asarray(k, dtype=dtype) for k in row] for row in spec["k"]])
            if kernels.shape != (layer.in_shape[2], layer.outputmaps, *layer.kernelsize):
                raise ConvpropError(f"layer '{spec['type']}' kernels k{{i}}{{j}} have shape {kernels.shape}")
            layer.params["weight"][...] = layout.kernels_from_dlt(kernels)
            layer.params["bias"][...] = _vector(spec["b"], layer.outputmaps, "b", dtype)
            if "dk" in spec:
                dk = np.array([[np.asarray(k, dtype=dtype) for k in row] for row in spec["dk"]])
                layer.grads = {
                    "weight": layout.kernels_from_dlt(dk),
                    "bias": np.ravel(np.asarray(spec["db"], dtype=dtype)),
                }
    out = engine.output
    out.params["weight"][...] = layout.ffw_from_dlt(ffw, engine.map_shape)
    out.params["bias"][...] = _vector(net["ffb"], engine.n_outputs, "ffb", dtype)
    if "dffW" in net:
        out.grads = {
            "weight": layout.ffw_from_dlt(np.asarray(net["dffW"], dtype=dtype), engine.map_shape),
            "bias": np.ravel(np.asarray(net["dffb"], dtype=dtype)),
        }
    return engine


def _copy(net: Struct) -> Struct:
    """A new struct (MATLAB value semantics): new dicts and lists, arrays shared until replaced."""
    out = dict(net)
    out["layers"] = [dict(spec) for spec in net["layers"]]
    return out


def _store_params(net: Struct, engine: Network) -> None:
    for spec, layer in zip(net["layers"], engine.layers):
        if isinstance(layer, Conv):
            kernels = layout.kernels_to_dlt(layer.params["weight"])
            spec["k"] = [list(row) for row in kernels]
            spec["b"] = [layer.params["bias"].dtype.type(v) for v in layer.params["bias"]]
    net["ffW"] = layout.ffw_to_dlt(engine.output.params["weight"], engine.map_shape)
    net["ffb"] = engine.output.params["bias"][:, None].copy()


def _store_forward(net: Struct, engine: Network) -> None:
    for spec, a in zip(net["layers"], engine.activations):
        spec["a"] = layout.maps_to_dlt(a)
    net["fv"] = layout.fv_to_dlt(engine.activations[-1].reshape(engine.o.shape[0], -1), engine.map_shape)
    net["o"] = engine.o.T.copy()


def _store_backward(net: Struct, engine: Network) -> None:
    for spec, layer in zip(net["layers"][1:], engine.layers[1:]):
        spec["d"] = layout.maps_to_dlt(layer.d)
        if isinstance(layer, Conv):
            spec["dk"] = [list(row) for row in layout.kernels_to_dlt(layer.grads["weight"])]
            spec["db"] = [layer.grads["bias"].dtype.type(v) for v in layer.grads["bias"]]
    last_d = engine.layers[-1].d
    net["e"] = engine.e.T.copy()
    net["L"] = engine.L
    net["od"] = engine.output.d.T.copy()
    net["fvd"] = layout.fv_to_dlt(last_d.reshape(last_d.shape[0], -1), engine.map_shape)
    net["dffW"] = layout.ffw_to_dlt(engine.output.grads["weight"], engine.map_shape)
    net["dffb"] = engine.output.grads["bias"][:, None].copy()


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
        The struct with ``k``, ``b`` per 'c' layer, ``ffW`` (K×F), ``ffb`` (K×1),
        ``rL`` = [] and ``inputsize`` = (H, W).
    """
    images = _images(x)
    n_out = np.shape(y)[0] if np.ndim(y) else 0
    if np.ndim(y) not in (1, 2) or n_out < 1:
        raise ConvpropError(f"y must be K×N (toolbox layout); got shape {np.shape(y)}")
    engine = Network(_layer_objects(net, images.shape[1:]), n_outputs=n_out, seed=seed)
    out = _copy(net)
    _store_params(out, engine)
    out["rL"] = np.zeros(0)
    out["inputsize"] = images.shape[1:]
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
        A new struct with each layer's ``a`` (a list of H×W×N maps), ``fv``
        (F×N) and ``o`` (K×N).
    """
    images = _images(x)
    engine = _network(net, images, _dtype_of(images))
    engine.forward(images)
    out = _copy(net)
    _store_forward(out, engine)
    return out


def cnnbp(net: Struct, y: np.ndarray) -> Struct:
    """Backward pass after :func:`cnnff`, as the toolbox's cnnbp.

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
        each layer's ``d`` (list of maps), each 'c' layer's ``dk[i][j]``
        (kh×kw) and ``db[j]``, ``dffW`` (K×F) and ``dffb`` (K×1). The
        equations are derived in ``docs/derivation.md``.
    """
    if "o" not in net or not net["layers"][0].get("a"):
        raise ConvpropError("cnnbp needs the state of cnnff: call net = cnnff(net, x) first")
    images = layout.images_from_dlt(net["layers"][0]["a"][0])
    engine = _network(net, images, _dtype_of(images))
    engine.forward(images)
    engine.backward(_targets(y, images.shape[0]))
    out = _copy(net)
    _store_backward(out, engine)
    return out


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
        A new struct with the updated parameters.
    """
    if "dffW" not in net:
        raise ConvpropError("cnnapplygrads needs gradients: call cnnff and cnnbp first")
    dtype = _dtype_of(net["ffW"])
    engine = _network(net, None, dtype)
    engine.step(float(opts["alpha"]))
    out = _copy(net)
    _store_params(out, engine)
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
        The trained parameters, the last batch's state and ``rL``, shape
        (1 + number of batches,).
    """
    images = _images(x)
    targets = _targets(y, images.shape[0])
    batchsize = _int(opts, "batchsize", 0) if "batchsize" in opts else 0
    if batchsize < 1 or images.shape[0] % batchsize:
        raise ConvpropError(f"numbatches not integer: {images.shape[0]} images, batchsize {opts.get('batchsize')}")
    engine = _network(net, images, _dtype_of(images))
    history = train(
        engine,
        images,
        targets,
        epochs=_int(opts, "numepochs", 0),
        batch_size=batchsize,
        alpha=float(opts["alpha"]),
        seed=seed,
    )
    out = _copy(net)
    _store_params(out, engine)
    _store_forward(out, engine)
    _store_backward(out, engine)
    out["rL"] = np.asarray(history.rL)
    return out


def cnntest(net: Struct, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Error rate and wrong samples, as the toolbox's cnntest.

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
    images = _images(x)
    result = evaluate(_network(net, images, _dtype_of(images)), images, _targets(y, images.shape[0]))
    return result.error, result.wrong


def cnnnumgradcheck(net: Struct, x: np.ndarray, y: np.ndarray) -> GradcheckReport:
    """Central differences (ε = 1e-4) on every parameter, as cnnnumgradcheck.

    Parameters
    ----------
    net : dict
    x : array, shape (H, W, N)
    y : array, shape (K, N)

    Returns
    -------
    GradcheckReport
        The per-tensor report, when every entry is within 1e-8.

    Raises
    ------
    ConvpropError
        When any entry differs from backprop by more than 1e-8.
    """
    images = _images(x)
    report = gradcheck(_network(net, images), images, _targets(y, images.shape[0]))
    if not report.passed:
        raise ConvpropError(f"numerical gradient checking failed\n{report}")
    return report


# .mat import/export lives in its own module; imported last because it uses this one.
from .formats.matlab import load_mat, save_mat  # noqa: E402
