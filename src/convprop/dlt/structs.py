"""The toolbox's ``cnn`` struct (a dict) and the engine's :class:`Network`: checks and conversions.

Everything here converts layouts (see :mod:`convprop.engine.layout`) or checks
a struct; no arithmetic happens, so conversions are bit-exact both ways.
Field names follow the toolbox: ``net['layers'][l]['k'][i][j]`` is MATLAB's
``net.layers{l+1}.k{i+1}{j+1}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import as_float_array
from ..engine import layout
from ..engine.layers import Conv, Input, Subsample
from ..engine.network import Network
from ..errors import ConvpropError

Struct = dict[str, Any]


# ------------------------------------------------------------- the inputs


def dtype_of(x: Any) -> type:
    """float32 for single-precision arrays, float64 for everything else."""
    return np.float32 if np.asarray(x).dtype == np.float32 else np.float64


def images(x: Any, what: str = "x", dtype: type | None = None) -> np.ndarray:
    """Toolbox images (H, W, N) → (N, H, W) as floats (float32 stays float32 unless ``dtype``)."""
    arr = as_float_array(x, dtype or dtype_of(x), what)
    if arr.ndim == 2:  # MATLAB drops a trailing singleton: one H×W image
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ConvpropError(f"{what} must be H×W×N (toolbox layout); got shape {arr.shape}")
    return layout.images_from_dlt(arr)


def targets(y: Any, n: int, what: str = "y", dtype: type | None = None) -> np.ndarray:
    """Toolbox targets (K, N) → (N, K)."""
    arr = as_float_array(y, dtype or dtype_of(y), what)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != n:
        raise ConvpropError(f"{what} must be K×N with N = {n} (toolbox layout); got shape {arr.shape}")
    return arr.T


def check_struct(net: Any, caller: str) -> Struct:
    """``net`` itself when it is a toolbox struct: a dict whose ``layers`` is a list of layer dicts."""
    if not isinstance(net, dict):
        hint = ""
        if isinstance(net, (list, tuple)):
            hint = ' (a bare list of layers: wrap it as {"layers": [...]}, as MATLAB\'s cnn.layers = {...})'
        raise ConvpropError(
            f"{caller}: net must be the toolbox's struct, a dict with a 'layers' list; "
            f"got {type(net).__name__}{hint}"
        )
    specs = net.get("layers")
    if not isinstance(specs, (list, tuple)) or not specs:
        raise ConvpropError(f"{caller}: net['layers'] must be a non-empty list of layer dicts")
    for l, spec in enumerate(specs):
        if not isinstance(spec, dict) or "type" not in spec:
            raise ConvpropError(
                f"{caller}: net['layers'][{l}] must be a dict with a 'type' ('i', 'c' or 's'), got {spec!r}"
            )
    return net


def check_opts(opts: Any, caller: str, keys: tuple[str, ...]) -> Struct:
    """``opts`` itself when it is a dict holding ``keys``."""
    if not isinstance(opts, dict):
        raise ConvpropError(f"{caller}: opts must be a dict with {', '.join(keys)}; got {type(opts).__name__}")
    missing = [key for key in keys if key not in opts]
    if missing:
        raise ConvpropError(f"{caller}: opts has no {', '.join(repr(k) for k in missing)}")
    return opts


def _whole(value: Any) -> int | None:
    """``value`` as an int when it is one finite whole number, else None."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "biuf":
        return None
    number = arr.ravel()[0]
    return int(number) if np.isfinite(number) and number == int(number) else None


def integer(spec: dict, key: str, l: int) -> int:
    """``spec[key]`` of layer ``l`` as an int."""
    if key not in spec:
        raise ConvpropError(f"net['layers'][{l}] ('{spec.get('type')}') needs '{key}'")
    number = _whole(spec[key])
    if number is None:
        raise ConvpropError(f"net['layers'][{l}]['{key}'] must be an integer, got {spec[key]!r}")
    return number


def opt_int(opts: Struct, key: str) -> int:
    """``opts[key]`` as an int (``batchsize``, ``numepochs``)."""
    number = _whole(opts[key])
    if number is None:
        raise ConvpropError(f"opts['{key}'] must be an integer, got {opts[key]!r}")
    return number


# ------------------------------------------------------- struct → Network


def layer_objects(net: Struct, image_size: tuple[int, int]) -> list:
    """The engine's layers for the struct's layer list on images of ``image_size``."""
    layers = []
    for l, spec in enumerate(net["layers"]):
        kind = spec["type"]
        if l == 0:
            if kind != "i":
                raise ConvpropError("net['layers'][0] must be {'type': 'i'}")
            layers.append(Input(*image_size))
        elif kind == "c":
            layers.append(Conv(integer(spec, "outputmaps", l), integer(spec, "kernelsize", l)))
        elif kind == "s":
            layers.append(Subsample(integer(spec, "scale", l)))
        else:
            raise ConvpropError(f"net['layers'][{l}] has type {kind!r}; expected 'c' or 's'")
    return layers


def image_size(net: Struct, x: np.ndarray | None = None, given: tuple[int, int] | None = None) -> tuple[int, int]:
    """The input's height and width: from ``x``, ``given``, ``layers{1}.a{1}``, or worked back from ffW.

    The toolbox never stores the image size; after ``cnnff`` the input layer's
    maps hold it. Otherwise square maps give it back exactly from the number of
    columns of ``ffW`` (a map size fixes the image size).
    """
    if x is not None:
        return x.shape[1], x.shape[2]
    if given is not None:
        return int(given[0]), int(given[1])
    first = net["layers"][0].get("a")
    if isinstance(first, (list, tuple)) and first and np.ndim(first[0]) >= 2:
        return np.shape(first[0])[0], np.shape(first[0])[1]
    return _square_image_size(net)


def _square_image_size(net: Struct) -> tuple[int, int]:
    n_features = np.shape(net.get("ffW", np.zeros((0, 0))))[-1]
    maps = 1
    for l, spec in enumerate(net["layers"][1:], 1):
        if spec["type"] == "c":
            maps = integer(spec, "outputmaps", l)
    side = int(round(np.sqrt(n_features / maps)))
    if side < 1 or side * side * maps != n_features:
        raise ConvpropError(
            f"the image size is unknown: net has no layers{{1}}.a (run cnnff) and ffW's {n_features} "
            f"columns are not {maps} square maps; pass image_size=(height, width)"
        )
    size = side
    for l in range(len(net["layers"]) - 1, 0, -1):
        spec = net["layers"][l]
        size = size * integer(spec, "scale", l) if spec["type"] == "s" else size + integer(spec, "kernelsize", l) - 1
    return size, size


def _kernels(value: Any, shape: tuple[int, ...], what: str, dtype: type) -> np.ndarray:
    """A struct's ``k`` or ``dk`` (a list over i of lists over j of kh×kw arrays) as one array."""
    try:
        arr = np.array([[np.asarray(k, dtype=dtype) for k in row] for row in value])
    except (TypeError, ValueError):
        raise ConvpropError(f"{what} must be a list of {shape[0]} lists of {shape[1]} {shape[2]}×{shape[3]} arrays") from None
    if arr.shape != shape:
        raise ConvpropError(f"{what} has shape {arr.shape} as [i][j][u, v]; its layer needs {shape}")
    return arr


def _vector(value: Any, n: int, what: str, dtype: type) -> np.ndarray:
    """A struct's bias (``b``, ``db``, ``ffb``, ``dffb``) as a vector of length ``n`` (no broadcasting)."""
    try:
        arr = np.ravel(np.asarray(value, dtype=dtype))
    except (TypeError, ValueError):
        raise ConvpropError(f"{what} must hold {n} numbers, got {value!r}") from None
    if arr.size != n:
        raise ConvpropError(f"{what} has {arr.size} values; its layer needs {n}")
    return arr


def _matrix(value: Any, shape: tuple[int, int], what: str, dtype: type) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise ConvpropError(f"{what} must be a {shape[0]}×{shape[1]} matrix") from None
    if arr.shape != shape:
        raise ConvpropError(f"{what} has shape {arr.shape}; the layers need {shape[0]}×{shape[1]}")
    return arr


def field(net: Struct, key: str, where: str = "net", hint: str = "") -> Any:
    """``net[key]``, or a ConvpropError naming the missing field (and what to run)."""
    if key not in net:
        raise ConvpropError(f"{where} has no field {key!r}" + (f": {hint}" if hint else " where the toolbox keeps one"))
    return net[key]


def to_network(
    net: Struct,
    x: np.ndarray | None = None,
    dtype: type = np.float64,
    *,
    grads: bool = False,
    given_size: tuple[int, int] | None = None,
) -> Network:
    """The engine's Network holding the struct's parameters (and, with ``grads``, its gradients).

    Parameters
    ----------
    net : dict
        A checked toolbox struct (see :func:`check_struct`).
    x : ndarray, shape (N, H, W), optional
        Images, for their size.
    dtype : float64 or float32
    grads : bool
        Also load ``dk``, ``db``, ``dffW``, ``dffb`` (all of them must be there).
    given_size : (int, int), optional
        The image size, when neither ``x`` nor ``layers{1}.a`` tell it.
    """
    if "ffW" not in net:
        raise ConvpropError("net has no field 'ffW': run cnnsetup first")
    ffw = np.asarray(net["ffW"])
    if ffw.ndim != 2:
        raise ConvpropError(f"net['ffW'] must be a matrix (classes × features), got shape {ffw.shape}")
    engine = Network(layer_objects(net, image_size(net, x, given_size)), n_outputs=ffw.shape[0], dtype=dtype)
    if ffw.shape[1] != engine.n_features:
        raise ConvpropError(
            f"net['ffW'] is {ffw.shape[0]}×{ffw.shape[1]} but the layers give {engine.n_features} features"
        )
    hint = "run net = cnnbp(cnnff(net, x), y) first"
    for l, (spec, layer) in enumerate(zip(net["layers"], engine.layers)):
        if isinstance(layer, Conv):
            shape = (layer.in_shape[2], layer.outputmaps, *layer.kernelsize)
            at = f"net['layers'][{l}]"
            k = _kernels(field(spec, "k", at), shape, f"{at}['k']", dtype)
            layer.params["weight"][...] = layout.kernels_from_dlt(k)
            layer.params["bias"][...] = _vector(field(spec, "b", at), layer.outputmaps, f"{at}['b']", dtype)
            if grads:
                dk = _kernels(field(spec, "dk", at, hint), shape, f"{at}['dk']", dtype)
                db = _vector(field(spec, "db", at, hint), layer.outputmaps, f"{at}['db']", dtype)
                layer.grads = {"weight": layout.kernels_from_dlt(dk), "bias": db}
    out, shape = engine.output, (engine.n_outputs, engine.n_features)
    out.params["weight"][...] = layout.ffw_from_dlt(ffw, engine.map_shape)
    out.params["bias"][...] = _vector(field(net, "ffb"), engine.n_outputs, "net['ffb']", dtype)
    if grads:
        dffw = _matrix(field(net, "dffW", hint=hint), shape, "net['dffW']", dtype)
        out.grads = {
            "weight": layout.ffw_from_dlt(dffw, engine.map_shape),
            "bias": _vector(field(net, "dffb", hint=hint), engine.n_outputs, "net['dffb']", dtype),
        }
    return engine


def stored_gradients(net: Struct, engine: Network) -> dict[str, np.ndarray]:
    """The struct's gradients in its own layout, by toolbox name (``dffb``, ``dffW``, ``layers{l}.db``, …).

    Checked against ``engine``'s shapes; float64. ``layers{l}.dk`` is an array
    (inputmaps, outputmaps, kh, kw) holding ``dk{i}{j}`` at ``[i, j]``.
    """
    hint = "cnnnumgradcheck checks the gradients that cnnbp stored; run net = cnnbp(cnnff(net, x), y) first"
    shape = (engine.n_outputs, engine.n_features)
    out = {
        "dffb": _vector(field(net, "dffb", hint=hint), engine.n_outputs, "net['dffb']", np.float64),
        "dffW": _matrix(field(net, "dffW", hint=hint), shape, "net['dffW']", np.float64),
    }
    for l, (spec, layer) in enumerate(zip(net["layers"], engine.layers)):
        if isinstance(layer, Conv):
            at = f"net['layers'][{l}]"
            kshape = (layer.in_shape[2], layer.outputmaps, *layer.kernelsize)
            out[f"layers{{{l + 1}}}.db"] = _vector(field(spec, "db", at, hint), layer.outputmaps, f"{at}['db']", np.float64)
            out[f"layers{{{l + 1}}}.dk"] = _kernels(field(spec, "dk", at, hint), kshape, f"{at}['dk']", np.float64)
    return out


def checked_network(net: Struct, x: np.ndarray | None = None, dtype: type = np.float64, **kw: Any) -> Network:
    """:func:`to_network`, with any other fault of the struct's arrays turned into a ConvpropError."""
    try:
        return to_network(net, x, dtype, **kw)
    except ConvpropError:
        raise
    except (ValueError, IndexError, TypeError, KeyError) as exc:  # arrays of the wrong size or kind
        raise ConvpropError(f"the net struct's arrays do not fit its layers: {' '.join(str(exc).split())}") from None


# ------------------------------------------------------- Network → struct


def copy_struct(net: Struct) -> Struct:
    """A new struct (MATLAB value semantics): new dicts and lists, arrays shared until replaced."""
    out = dict(net)
    out["layers"] = [dict(spec) for spec in net["layers"]]
    return out


def store_params(net: Struct, engine: Network) -> None:
    """Write ``k``, ``b`` ('c' layers), ``ffW`` and ``ffb``: what cnnapplygrads writes."""
    for spec, layer in zip(net["layers"], engine.layers):
        if isinstance(layer, Conv):
            kernels = layout.kernels_to_dlt(layer.params["weight"])
            spec["k"] = [list(row) for row in kernels]
            spec["b"] = [layer.params["bias"].dtype.type(v) for v in layer.params["bias"]]
    net["ffW"] = layout.ffw_to_dlt(engine.output.params["weight"], engine.map_shape)
    net["ffb"] = engine.output.params["bias"][:, None].copy()


def store_setup(net: Struct, engine: Network) -> None:
    """Write what cnnsetup writes: :func:`store_params` and ``b{j} = 0`` of every 's' layer."""
    store_params(net, engine)
    for spec, layer in zip(net["layers"], engine.layers):
        if isinstance(layer, Subsample):
            spec["b"] = [engine.dtype.type(0)] * layer.in_shape[2]


def store_forward(net: Struct, engine: Network) -> None:
    """Write what cnnff writes: every layer's ``a`` (``layers{1}.a{1}`` = x), ``fv`` and ``o``."""
    for spec, a in zip(net["layers"], engine.activations):
        spec["a"] = layout.maps_to_dlt(a)
    net["fv"] = layout.fv_to_dlt(engine.activations[-1].reshape(engine.o.shape[0], -1), engine.map_shape)
    net["o"] = engine.o.T.copy()


def store_backward(net: Struct, engine: Network) -> None:
    """Write what cnnbp writes: ``e``, ``L``, ``od``, ``fvd``, ``d``, ``dk``, ``db``, ``dffW``, ``dffb``."""
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


def from_network(net: Network) -> Struct:
    """The struct that cnnsetup would make with ``net``'s parameters (plus ``rL`` when ``net`` has one)."""
    reason = net.toolbox_mismatch()
    if reason is not None:
        raise ConvpropError(f"the toolbox cannot represent network {net.spec}: {reason}")
    layers: list[dict] = [{"type": "i"}]
    for layer in net.layers[1:]:
        if isinstance(layer, Conv):
            kh, kw = layer.kernelsize
            if kh != kw:
                raise ConvpropError(f"{layer.spec()} has a {kh}x{kw} kernel; the toolbox only has square kernels")
            layers.append({"type": "c", "outputmaps": layer.outputmaps, "kernelsize": kh})
        else:
            layers.append({"type": "s", "scale": layer.scale})
    struct: Struct = {"layers": layers}
    store_setup(struct, net)
    if getattr(net, "rL", None) is not None:
        struct["rL"] = np.asarray(net.rL, dtype=np.float64).reshape(-1).copy()
    return struct


def as_rl(value: Any) -> np.ndarray:
    """A struct's ``rL`` as a finite 1-D float64 array."""
    return as_float_array(value, np.float64, "net['rL']").reshape(-1).copy()
