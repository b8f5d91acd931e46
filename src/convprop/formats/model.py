"""Models on disk: one ``.npz`` of plain arrays plus JSON metadata.

The file format (``format`` = ``"convprop"``, ``version`` = 1) is a NumPy
``.npz`` archive holding only numeric arrays, read with
``np.load(..., allow_pickle=False)``:

* ``meta`` — uint8 array: UTF-8 JSON with ``format``, ``version``, ``kind``
  (``"model"`` or ``"checkpoint"``), ``layers`` (e.g. ``"6c5-s2-12c5-s2"``),
  ``input_shape`` [H, W, C], ``n_outputs``, ``output`` (``"sigmoid"`` or
  ``"softmax"``; "sigmoid" when absent), ``dtype``, ``params`` (the names
  of the parameter arrays) and ``extra`` (free JSON: dataset, class names …);
  a checkpoint adds ``training``: ``epoch`` (epochs completed), ``batch``
  (batches completed in the current epoch; 0 at an epoch boundary),
  ``epoch_elapsed`` (seconds already spent in that epoch),
  ``config`` (batch size, alpha, seed …) and ``rng`` (the permutation
  generator's ``bit_generator.state``, taken at the start of the current
  epoch, before its permutation was drawn);
* ``param/<name>`` — every parameter (``param/conv1.weight`` …) in the
  network's dtype and layout;
* ``history/rL``, ``history/L``, ``history/epoch_seconds``,
  ``history/test_error`` (checkpoints only) — float64.

Files are written atomically: to a temporary file in the same directory,
flushed and fsynced, then renamed over the target with :func:`os.replace`, so
a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._npz import read_npz
from .._files import atomic_write, open_regular
from ..errors import ConvpropError
from ..engine.layers import Input
from ..engine.network import Network, plan_network
from ..engine.spec import format_layers, parse_layers

FORMAT = "convprop"
VERSION = 1
#: Largest metadata member read (bytes of JSON); real files hold a few kilobytes.
MAX_META_BYTES = 4 << 20


# ---------------------------------------------------------------- writing


def atomic_savez(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    path = Path(path)
    if path.suffix != ".npz":
        raise ConvpropError(f"{path}: model and checkpoint files must end in .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return path


def meta_array(meta: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)


def network_meta(net: Network, kind: str, extra: dict | None) -> tuple[dict, dict[str, np.ndarray]]:
    params = net.parameters()
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "layers": format_layers(net.layers),
        "input_shape": list(net.image_shape),
        "n_outputs": net.n_outputs,
        "output": net.output_kind,
        "dtype": net.dtype.name,
        "params": list(params),
        "extra": extra or {},
    }
    arrays = {f"param/{name}": np.ascontiguousarray(arr) for name, arr in params.items()}
    return meta, arrays


def save_model(net: Network, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``net`` (structure and parameters) to ``path`` (.npz), atomically.

    Parameters
    ----------
    net : Network
    path : path-like ending in ``.npz``
    extra : dict, optional
        JSON-serialisable notes kept in the metadata (dataset, class names …).

    Returns
    -------
    Path
    """
    meta, arrays = network_meta(net, "model", extra)
    arrays["meta"] = meta_array(meta)
    return atomic_savez(path, arrays)


# ---------------------------------------------------------------- reading


def read_file(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    path = Path(path)
    where = str(path)
    with open_regular(path, ".npz") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise ConvpropError(f"{where}: a single .npy array, not a convprop .npz file")
    if magic[:4] != b"PK\x03\x04":
        raise ConvpropError(f"{where}: not a .npz file (a convprop model or checkpoint)")
    # Every member is checked (plain numeric .npy, sizes consistent with the archive) before
    # anything is allocated; object arrays (pickles) are refused. See convprop._npz.
    arrays = read_npz(path, names=lambda key: key == "meta" or key.startswith(("param/", "history/", "optim/")),
                      limits={"meta": MAX_META_BYTES})
    if "meta" not in arrays:
        raise ConvpropError(f"{where}: not a convprop file (no metadata)")
    raw = arrays.pop("meta")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ConvpropError(f"{where}: metadata must be a 1-D uint8 array")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConvpropError(f"{where}: metadata is not valid JSON ({message})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ConvpropError(f"{where}: not a convprop file (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        raise ConvpropError(f"{where}: file format version {meta.get('version')!r}; this convprop reads version {VERSION}")
    return meta, arrays


def get_field(meta: dict, key: str, kind: type | tuple, where: str) -> Any:
    value = meta.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConvpropError(f"{where}: metadata field {key!r} is missing or of the wrong type ({value!r})")
    return value


def build_network(meta: dict, arrays: dict[str, np.ndarray], where: str) -> Network:
    spec = get_field(meta, "layers", str, where)
    try:
        layers = parse_layers(spec)
    except ConvpropError as exc:
        raise ConvpropError(f"{where}: {exc}") from None
    shape = get_field(meta, "input_shape", list, where)
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ConvpropError(f"{where}: input_shape must be [H, W, C] of positive integers, got {shape!r}")
    dtype = get_field(meta, "dtype", str, where)
    if dtype not in ("float32", "float64"):
        raise ConvpropError(f"{where}: dtype must be float32 or float64, got {dtype!r}")
    n_outputs = get_field(meta, "n_outputs", int, where)
    output = meta.get("output", "sigmoid")  # absent in files from before softmax outputs
    # Size the network the metadata describes by the layers' own shape arithmetic and compare it
    # with the arrays the file holds *before* building it (a forged 10⁶×10⁶ input_shape or
    # 100000f-100000f would otherwise allocate terabytes); small mismatches are named parameter
    # by parameter below.
    try:
        if not isinstance(output, str):
            raise ConvpropError(f"metadata field 'output' must be a string, got {output!r:.60}")
        layers = [Input(*shape), *layers]
        expected = plan_network(layers, n_outputs).params
    except ConvpropError as exc:
        raise ConvpropError(f"{where}: {exc}") from None
    held = sum(a.size for k, a in arrays.items() if k.startswith("param/"))
    if expected > held + (1 << 20):
        raise ConvpropError(f"{where}: the metadata describes a network of {expected} parameters, "
                            f"the file holds {held}")
    try:
        net = Network(layers, n_outputs, dtype=dtype, seed=0, output=output)
    except ConvpropError as exc:
        raise ConvpropError(f"{where}: {exc}") from None
    params = net.parameters()
    names = get_field(meta, "params", list, where)
    if not all(isinstance(n, str) for n in names) or sorted(names) != sorted(params):
        raise ConvpropError(f"{where}: parameters {names!r:.200} do not match the network's {list(params)}")
    for name, live in params.items():
        arr = arrays.get(f"param/{name}")
        if arr is None:
            raise ConvpropError(f"{where}: parameter array {name!r} is missing")
        if arr.shape != live.shape or arr.dtype != live.dtype:
            raise ConvpropError(
                f"{where}: parameter {name} has shape {arr.shape} and dtype {arr.dtype}; "
                f"expected {live.shape} {live.dtype}"
            )
        if not np.isfinite(arr).all():
            raise ConvpropError(f"{where}: parameter {name} contains NaN or infinite values")
        live[...] = arr
    extra = meta.get("extra", {})
    if not isinstance(extra, dict):
        raise ConvpropError(f"{where}: metadata field 'extra' must be an object")
    net.extra = extra
    return net


def load_model(path: str | os.PathLike) -> Network:
    """Read a model (or the model inside a checkpoint).

    Returns
    -------
    Network
        With the notes saved beside it (dataset, class names …) as ``net.extra``.

    Raises
    ------
    ConvpropError
        For a missing, unreadable, pickled, inconsistent or non-finite file.
    """
    meta, arrays = read_file(path)
    return build_network(meta, arrays, str(path))



