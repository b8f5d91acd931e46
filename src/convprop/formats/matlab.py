"""Read and write DeepLearnToolbox networks as MATLAB/Octave ``.mat`` files.

A network trained with the toolbox (``cnnsetup`` / ``cnntrain``) and saved
with ``save('cnn.mat', 'cnn', '-v7')`` in MATLAB or Octave loads into a
:class:`~convprop.engine.network.Network` that gives the same outputs; a convprop
network saved with :func:`save_mat` loads back into MATLAB/Octave as a
``cnn`` struct that the toolbox's ``cnnff`` and ``cnntest`` run unchanged.
This module speaks Networks (``load_mat(path) -> Network``,
``save_mat(net, path)``); :func:`convprop.dlt.load_mat` and
:func:`convprop.dlt.save_mat` do the same for the façade's dict structs.

What is read and written: the layer list (``type``, ``outputmaps``,
``kernelsize``, ``scale``), the kernels ``k{i}{j}``, the biases ``b{j}``,
the output weights ``ffW`` and biases ``ffb``, and the smoothed loss ``rL``
when present. Per-batch state (``a``, ``d``, ``o``, ``fv``, …) is not
needed to run a network and is ignored on load and not written on save.

Files are read with :func:`scipy.io.loadmat`, which only decodes data: no
code in the file is ever run. MATLAB's ``-v7.3`` format is HDF5, which this
module does not read; re-save such a file with ``-v7``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from ..engine import layout
from .mat import read_mat
from .._files import atomic_write, file_errors, open_regular
from ..errors import ConvpropError
from ..engine.layers import Conv, Input, Subsample
from ..engine.network import Network, plan_network

__all__ = ["load_mat", "save_mat", "network_from_struct", "struct_from_network"]

#: The first bytes of an HDF5 file; a MATLAB v7.3 file has them at offset 512.
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Names tried, in order, when the file holds several variables.
_PREFERRED_NAMES = ("cnn", "net")


# ----------------------------------------------------------- reading helpers


def _field(struct: np.ndarray, name: str, where: str) -> Any:
    """The value of field ``name`` of a 1×1 MATLAB struct array."""
    names = struct.dtype.names or ()
    if name not in names:
        raise ConvpropError(f"{where} has no field '{name}' (fields: {', '.join(names) or 'none'})")
    return struct[name].ravel()[0]


def _has(struct: np.ndarray, name: str) -> bool:
    return name in (struct.dtype.names or ())


def _cell(value: Any, where: str) -> list[Any]:
    """The elements of a MATLAB cell array, in MATLAB's linear (column-major) order."""
    if not isinstance(value, np.ndarray) or value.dtype != object:
        raise ConvpropError(f"{where} must be a cell array, got {type(value).__name__}")
    return list(value.ravel(order="F"))


def _struct(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.names is None or value.size != 1:
        raise ConvpropError(f"{where} must be a 1×1 struct")
    return value


def _text(value: Any, where: str) -> str:
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":
        return "".join(value.ravel().tolist())
    if isinstance(value, str):
        return value
    raise ConvpropError(f"{where} must be a character string")


def _scalar_int(value: Any, where: str) -> int:
    arr = np.asarray(value)
    if arr.size != 1 or not np.issubdtype(arr.dtype, np.number) or arr.ravel()[0] != int(arr.ravel()[0]):
        raise ConvpropError(f"{where} must be one integer, got {value!r}")
    number = int(arr.ravel()[0])
    if number < 1:
        raise ConvpropError(f"{where} must be a positive integer, got {number}")
    return number


def _matrix(value: Any, where: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype.kind == "c":
        raise ConvpropError(f"{where} must be a real numeric array, got {arr.dtype}")
    arr = arr.astype(np.float64)
    if shape is not None and arr.shape != shape:
        raise ConvpropError(f"{where} has shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise ConvpropError(f"{where} holds NaN or infinite values")
    return arr


def _read(path: Path) -> dict[str, Any]:
    """:func:`convprop.data.read_mat` (structure-checked loadmat, one-line errors) in the layout the
    struct decoder expects, with the toolbox user's own fix named for HDF5 files."""
    with open_regular(path, ".mat") as f, file_errors(str(path), ".mat"):
        head = f.read(520)
    if head[512:520] == _HDF5_SIGNATURE or head[:8] == _HDF5_SIGNATURE:
        raise ConvpropError(
            f"{path} is an HDF5 file (MATLAB -v7.3 or Octave -hdf5), which convprop does not read; "
            "re-save it in MATLAB or Octave with save(file, 'cnn', '-v7')"
        )
    try:
        return read_mat(path, squeeze_me=False, struct_as_record=True, chars_as_strings=True)
    except ConvpropError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise ConvpropError(f"{path} is not a readable MATLAB .mat file (v4-v7): {reason}") from None


def _pick_struct(contents: dict[str, Any], path: Path, name: str | None) -> tuple[str, np.ndarray]:
    variables = {k: v for k, v in contents.items() if not k.startswith("__")}
    if name is not None:
        if name not in variables:
            raise ConvpropError(f"{path} has no variable '{name}' (it has: {', '.join(variables) or 'none'})")
        return name, _struct(variables[name], f"variable '{name}'")
    nets = {
        k: v
        for k, v in variables.items()
        if isinstance(v, np.ndarray) and v.dtype.names and "layers" in v.dtype.names and v.size == 1
    }
    if not nets:
        raise ConvpropError(
            f"{path} holds no toolbox network (a struct with fields layers, ffW, ffb); "
            f"its variables: {', '.join(variables) or 'none'}"
        )
    for preferred in _PREFERRED_NAMES:
        if preferred in nets:
            return preferred, nets[preferred]
    if len(nets) > 1:
        raise ConvpropError(f"{path} holds several networks ({', '.join(nets)}): pass name=")
    return next(iter(nets.items()))


# -------------------------------------------------------- struct ↔ network


def _input_size(
    specs: list[dict], n_features: int, cnn: np.ndarray, first: np.ndarray, image_size: tuple[int, int] | None
) -> tuple[int, int]:
    """The image size: given, stored (``inputsize``, ``layers{1}.a{1}``), or inferred from ffW for square maps."""
    if image_size is not None:
        return int(image_size[0]), int(image_size[1])
    if _has(cnn, "inputsize"):
        size = np.asarray(cnn["inputsize"].ravel()[0]).ravel()
        if size.size == 2:
            return _scalar_int(size[0], "inputsize(1)"), _scalar_int(size[1], "inputsize(2)")
    if _has(first, "a"):
        maps = first["a"].ravel()[0]
        if isinstance(maps, np.ndarray) and maps.dtype == object and maps.size:
            a1 = np.asarray(maps.ravel()[0])
            if a1.ndim >= 2:
                return int(a1.shape[0]), int(a1.shape[1])
    # Walk back from the feature count: the last maps are side×side×maps.
    maps = 1
    for spec in specs[1:]:
        if spec["type"] == "c":
            maps = spec["outputmaps"]
    side = int(round(np.sqrt(n_features / maps)))
    if side * side * maps != n_features:
        raise ConvpropError(
            f"cannot infer the image size: ffW has {n_features} columns for {maps} maps, "
            "which are not square; pass image_size=(height, width)"
        )
    size = side
    for spec in reversed(specs[1:]):
        size = size * spec["scale"] if spec["type"] == "s" else size + spec["kernelsize"] - 1
    return size, size


def _conv_spec(s: np.ndarray, at: str, inputmaps: int | None) -> dict:
    """The spec of a 'c' layer struct: sizes, kernels k{i}{j} (checked kh×kw) and biases b{j}."""
    outputmaps = _scalar_int(_field(s, "outputmaps", at), f"{at}.outputmaps")
    ks = _scalar_int(_field(s, "kernelsize", at), f"{at}.kernelsize")
    kernels = []
    for i, row in enumerate(_cell(_field(s, "k", at), f"{at}.k")):
        cells = _cell(row, f"{at}.k{{{i + 1}}}")
        if len(cells) != outputmaps:
            raise ConvpropError(f"{at}.k{{{i + 1}}} has {len(cells)} kernels, expected outputmaps = {outputmaps}")
        kernels.append([_matrix(k, f"{at}.k{{{i + 1}}}{{{j + 1}}}", (ks, ks)) for j, k in enumerate(cells)])
    if inputmaps is not None and len(kernels) != inputmaps:
        raise ConvpropError(f"{at}.k has {len(kernels)} rows, expected {inputmaps} input maps")
    biases = [_matrix(b, f"{at}.b{{{j + 1}}}") for j, b in enumerate(_cell(_field(s, "b", at), f"{at}.b"))]
    if len(biases) != outputmaps or any(b.size != 1 for b in biases):
        raise ConvpropError(f"{at}.b must hold {outputmaps} scalars")
    return {"type": "c", "outputmaps": outputmaps, "kernelsize": ks,
            "k": np.array(kernels), "b": np.array([b.item() for b in biases])}


def _layer_specs(structs: list[np.ndarray], where: str) -> list[dict]:
    """The layer list of a struct as dicts: 'i', then 'c' (with k, b) and 's' (with scale)."""
    specs: list[dict] = []
    inputmaps = None
    for l, s in enumerate(structs):
        at = f"{where}.layers{{{l + 1}}}"
        kind = _text(_field(s, "type", at), f"{at}.type")
        if l == 0:
            if kind != "i":
                raise ConvpropError(f"{at}.type is '{kind}'; the first layer must be 'i'")
            specs.append({"type": "i"})
        elif kind == "c":
            specs.append(_conv_spec(s, at, inputmaps))
            inputmaps = specs[-1]["outputmaps"]
        elif kind == "s":
            specs.append({"type": "s", "scale": _scalar_int(_field(s, "scale", at), f"{at}.scale")})
        else:
            raise ConvpropError(f"{at}.type is '{kind}'; expected 'c' or 's'")
    return specs


def network_from_struct(
    cnn: np.ndarray, *, image_size: tuple[int, int] | None = None, where: str = "cnn"
) -> Network:
    """A :class:`Network` from a toolbox struct as returned by :func:`scipy.io.loadmat`.

    Parameters
    ----------
    cnn : ndarray
        A 1×1 MATLAB struct (``struct_as_record=True``, not squeezed) with
        fields ``layers``, ``ffW``, ``ffb`` and optionally ``rL``.
    image_size : (int, int), optional
        Input height and width, when the struct does not tell them.
    where : str
        Name used in error messages.

    Returns
    -------
    Network
        With the struct's kernels, biases and output weights (float64), and
        ``rL`` (1-D) when the struct has it.
    """
    cnn = _struct(cnn, where)
    layer_cells = _cell(_field(cnn, "layers", where), f"{where}.layers")
    if not layer_cells:
        raise ConvpropError(f"{where}.layers is empty")
    structs = [_struct(s, f"{where}.layers{{{l + 1}}}") for l, s in enumerate(layer_cells)]
    specs = _layer_specs(structs, where)
    first_conv = next((s for s in specs if s["type"] == "c"), None)
    channels = first_conv["k"].shape[0] if first_conv is not None else 1
    ffw = _matrix(_field(cnn, "ffW", where), f"{where}.ffW")
    if ffw.ndim != 2:
        raise ConvpropError(f"{where}.ffW must be a K×F matrix, got shape {ffw.shape}")
    ffb = _matrix(_field(cnn, "ffb", where), f"{where}.ffb").reshape(-1)
    if ffb.size != ffw.shape[0]:
        raise ConvpropError(f"{where}.ffb has {ffb.size} entries but ffW has {ffw.shape[0]} rows")
    height, width = _input_size(specs, ffw.shape[1], cnn, structs[0], image_size)

    layers: list = [Input(height, width, channels)]
    for spec in specs[1:]:
        layers.append(Conv(spec["outputmaps"], spec["kernelsize"]) if spec["type"] == "c" else Subsample(spec["scale"]))
    # Compare the sizes the struct claims (inputsize, layers) with ffW *before* building: a
    # forged inputsize of 10⁵×10⁵ must not allocate its maps' kernels and buffers.
    n_features = int(np.prod(plan_network(layers, ffw.shape[0]).map_shape, dtype=object))
    if ffw.shape[1] != n_features:
        raise ConvpropError(
            f"{where}.ffW is {ffw.shape[0]}×{ffw.shape[1]} but the layers on {height}×{width} images "
            f"give {n_features} features"
        )
    net = Network(layers, n_outputs=ffw.shape[0])
    for spec, layer in zip(specs, net.layers):
        if spec["type"] == "c":
            layer.params["weight"][...] = layout.kernels_from_dlt(spec["k"])
            layer.params["bias"][...] = spec["b"]
    net.output.params["weight"][...] = layout.ffw_from_dlt(ffw, net.map_shape)
    net.output.params["bias"][...] = ffb
    if _has(cnn, "rL"):
        rl = _matrix(cnn["rL"].ravel()[0], f"{where}.rL")
        net.rL = rl.reshape(-1).copy()
    return net


def _cell_array(items: list[Any], shape: tuple[int, int]) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for index, item in enumerate(items):
        out[np.unravel_index(index, shape, order="F")] = item
    return out


def struct_from_network(net: Network) -> dict[str, Any]:
    """The toolbox ``cnn`` struct of a network, ready for :func:`scipy.io.savemat`.

    Parameters
    ----------
    net : Network

    Returns
    -------
    dict
        ``layers`` (an L×1 cell of structs with ``type``, ``outputmaps``,
        ``kernelsize``, ``k`` (a 1×inputmaps cell of 1×outputmaps cells of
        kh×kw kernels), ``b`` (1×outputmaps cell) or ``scale`` and ``b``),
        ``ffW`` (K×F), ``ffb`` (K×1) and ``rL`` (1×R) — all float64, as
        ``cnnsetup`` makes them — plus ``inputsize`` ([H W]), an extra field
        that the toolbox ignores and :func:`load_mat` reads.
    """
    reason = net.toolbox_mismatch()
    if reason is not None:
        raise ConvpropError(f"the toolbox cannot represent network {net.spec}: {reason}")
    layers = []
    inputmaps = net.image_shape[2]
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Input):
            layers.append({"type": "i"})
        elif isinstance(layer, Conv):
            kh, kw = layer.kernelsize
            if kh != kw:
                raise ConvpropError(f"layer {i} has a {kh}x{kw} kernel; the toolbox only has square kernels")
            kernels = layout.kernels_to_dlt(layer.params["weight"].astype(np.float64))
            rows = [_cell_array(list(kernels[r]), (1, layer.outputmaps)) for r in range(inputmaps)]
            layers.append({
                "type": "c",
                "outputmaps": float(layer.outputmaps),
                "kernelsize": float(kh),
                "k": _cell_array(rows, (1, inputmaps)),
                "b": _cell_array([float(b) for b in layer.params["bias"]], (1, layer.outputmaps)),
            })
            inputmaps = layer.outputmaps
        elif isinstance(layer, Subsample):
            layers.append({
                "type": "s",
                "scale": float(layer.scale),
                "b": _cell_array([0.0] * inputmaps, (1, inputmaps)),  # as cnnsetup leaves it
            })
        else:
            raise ConvpropError(f"layer {i} ({type(layer).__name__}) has no DeepLearnToolbox equivalent")
    if net.image_shape[2] != 1:
        raise ConvpropError("the toolbox's cnnff takes one input map; this network has "
                            f"{net.image_shape[2]} input channels")
    out = net.output.params
    rl = getattr(net, "rL", None)
    return {
        "layers": _cell_array(layers, (len(layers), 1)),
        "ffW": layout.ffw_to_dlt(out["weight"].astype(np.float64), net.map_shape),
        "ffb": out["bias"].astype(np.float64).reshape(-1, 1),
        "rL": np.zeros((1, 0)) if rl is None else np.asarray(rl, dtype=np.float64).reshape(1, -1),
        # Not a toolbox field (cnnff ignores it): the image size, which the toolbox never stores.
        "inputsize": np.array([[float(net.image_shape[0]), float(net.image_shape[1])]]),
    }


# --------------------------------------------------------------------- API


def load_mat(
    path: str | os.PathLike, *, name: str | None = None, image_size: tuple[int, int] | None = None
) -> Network:
    """Load a DeepLearnToolbox ``cnn`` struct from a MATLAB/Octave ``.mat`` file.

    Parameters
    ----------
    path : str or path-like
        A file written by ``save(path, 'cnn', '-v7')`` (or ``-v6``, ``-v4``)
        in MATLAB or Octave, or by :func:`save_mat`.
    name : str, optional
        The variable to read. By default the only struct with a ``layers``
        field (``cnn`` or ``net`` preferred when there are several).
    image_size : (int, int), optional
        Input height and width. Needed only when the file holds neither
        ``inputsize`` (written by :func:`save_mat`) nor the input layer's maps
        ``layers{1}.a{1}`` (left by ``cnntrain``) and the last maps are not
        square (otherwise the size is worked back from ``ffW``).

    Returns
    -------
    Network
        Float64 network with the file's kernels ``k{i}{j}`` (stored as
        rotated correlation kernels, see :mod:`convprop.layout`), biases
        ``b{j}``, ``ffW`` and ``ffb``; ``net.rL`` holds ``rL`` when present.
        ``net.forward(x)`` on images (N, H, W) gives the toolbox's ``o``
        transposed, (N, K).

    Raises
    ------
    ConvpropError
        When the file is missing, not a .mat file, a v7.3 (HDF5) file, or
        does not hold a valid toolbox network.

    Examples
    --------
    >>> net = load_mat("cnn.mat")                        # doctest: +SKIP
    >>> o = net.forward(np.moveaxis(test_x, -1, 0)).T    # doctest: +SKIP
    """
    path = Path(path)
    contents = _read(path)
    var, cnn = _pick_struct(contents, path, name)
    return network_from_struct(cnn, image_size=image_size, where=var)


def save_mat(net: Network, path: str | os.PathLike, *, name: str = "cnn") -> None:
    """Save a network as a toolbox struct that MATLAB/Octave load and run with ``cnnff``.

    The file is a MATLAB v5 (``-v7``-compatible, uncompressed-or-compressed
    v5 format) ``.mat`` file holding one variable, ``name``, with the fields
    described in :func:`struct_from_network`. It is written to a temporary
    file and moved into place, so a failed save never leaves half a file.

    Parameters
    ----------
    net : Network
        A convprop network the toolbox can represent. (A struct of the
        :mod:`convprop.dlt` façade is saved with :func:`convprop.dlt.save_mat`.)
    path : str or path-like
        Destination (``.mat`` is not appended).
    name : str
        MATLAB variable name (default ``cnn``).
    """
    if not isinstance(net, Network):
        hint = " (a toolbox struct, a dict, is saved with convprop.dlt.save_mat)" if isinstance(net, dict) else ""
        raise ConvpropError(f"save_mat needs a Network, got {type(net).__name__}{hint}")
    if not name.isidentifier():
        raise ConvpropError(f"{name!r} is not a valid MATLAB variable name")
    struct = struct_from_network(net)
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ConvpropError(f"cannot save to {path}: folder {directory} does not exist")
    with atomic_write(path) as f:
        scipy.io.savemat(f, {name: struct}, format="5", do_compression=True, oned_as="column")
