"""Models and checkpoints on disk: one ``.npz`` of plain arrays plus JSON metadata.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._npz import file_errors, read_npz
from .._files import atomic_write
from ..errors import ConvpropError
from ..engine.layers import Conv, Dense, Input, MaxPool, Subsample
from ..engine.network import Network
from ..engine.spec import format_layers, parse_layers

FORMAT = "convprop"
VERSION = 1
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
_HISTORY = ("rL", "L", "epoch_seconds", "test_error")


@dataclass
class TrainingState:
    """Where a training run stands: enough to continue it bit for bit.

    Attributes
    ----------
    epoch : int
        Epochs completed.
    batch : int
        Batches completed in epoch ``epoch`` (0 at an epoch boundary).
    rng_state : dict
        ``Generator.bit_generator.state`` at the start of epoch ``epoch``,
        before its permutation was drawn.
    config : dict
        The run's settings (batch size, alpha, seed, dataset …), JSON values.
    rL, L, epoch_seconds, test_error : list of float
        History so far (``test_error`` has one entry per evaluated epoch).
    epoch_elapsed : float
        Seconds already spent in epoch ``epoch`` (mid-epoch checkpoints).
    optimizer : dict or None
        The optimiser's :meth:`~convprop.optim.Optimizer.state_dict` (None: the
        toolbox's plain SGD, which has no state).
    """

    epoch: int
    batch: int
    rng_state: dict
    config: dict = field(default_factory=dict)
    rL: list[float] = field(default_factory=list)
    L: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)
    epoch_elapsed: float = 0.0
    optimizer: dict | None = None


# ---------------------------------------------------------------- writing


def _atomic_savez(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    path = Path(path)
    if path.suffix != ".npz":
        raise ConvpropError(f"{path}: model and checkpoint files must end in .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return path


def _meta_array(meta: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)


def _network_meta(net: Network, kind: str, extra: dict | None) -> tuple[dict, dict[str, np.ndarray]]:
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


def save_model(path: str | os.PathLike, net: Network, extra: dict | None = None) -> Path:
    """Write ``net`` (structure and parameters) to ``path`` (.npz), atomically.

    Parameters
    ----------
    path : path-like ending in ``.npz``
    net : Network
    extra : dict, optional
        JSON-serialisable notes kept in the metadata (dataset, class names …).

    Returns
    -------
    Path
    """
    meta, arrays = _network_meta(net, "model", extra)
    arrays["meta"] = _meta_array(meta)
    return _atomic_savez(path, arrays)


def save_checkpoint(
    path: str | os.PathLike, net: Network, state: TrainingState, extra: dict | None = None
) -> Path:
    """Write ``net`` and the training ``state`` to ``path`` (.npz), atomically."""
    meta, arrays = _network_meta(net, "checkpoint", extra)
    meta["training"] = {
        "epoch": int(state.epoch),
        "batch": int(state.batch),
        "epoch_elapsed": float(state.epoch_elapsed),
        "config": state.config,
        "rng": state.rng_state,
    }
    for name in _HISTORY:
        arrays[f"history/{name}"] = np.asarray(getattr(state, name), dtype=np.float64).reshape(-1)
    if state.optimizer is not None:
        opt = {k: v for k, v in state.optimizer.items() if k != "state"}
        opt["slots"] = {slot: sorted(bufs) for slot, bufs in state.optimizer.get("state", {}).items()}
        meta["training"]["optimizer"] = opt
        for slot, bufs in state.optimizer.get("state", {}).items():
            for pname, arr in bufs.items():
                arrays[f"optim/{slot}/{pname}"] = np.asarray(arr)
    arrays["meta"] = _meta_array(meta)
    return _atomic_savez(path, arrays)


def _optimizer_state(training: dict, arrays: dict[str, np.ndarray], net: Network, where: str) -> dict | None:
    """The optimiser's state_dict from a checkpoint's metadata and ``optim/<slot>/<param>`` arrays."""
    opt = training.get("optimizer")
    if opt is None:
        return None
    if not isinstance(opt, dict):
        raise ConvpropError(f"{where}: metadata field 'optimizer' must be an object")
    kind = _get(opt, "type", str, where)
    hyper = _get(opt, "hyperparameters", dict, where)
    epoch, t = _get(opt, "epoch", int, where), _get(opt, "t", int, where)
    slots = _get(opt, "slots", dict, where)
    params = net.parameters()
    state: dict[str, dict[str, np.ndarray]] = {}
    for slot, names in slots.items():
        if not isinstance(names, list):
            raise ConvpropError(f"{where}: optimizer slot {slot!r} must list parameter names")
        state[slot] = {}
        for pname in names:
            arr = arrays.get(f"optim/{slot}/{pname}")
            if not isinstance(pname, str) or pname not in params or arr is None:  # str: [1] is unhashable
                raise ConvpropError(f"{where}: optimizer state {slot}[{pname!r}] is missing or names no parameter")
            if arr.shape != params[pname].shape or arr.dtype != params[pname].dtype or not np.all(np.isfinite(arr)):
                raise ConvpropError(
                    f"{where}: optimizer state {slot}[{pname!r}] must be finite {params[pname].dtype} of shape "
                    f"{params[pname].shape}; got {arr.dtype} {arr.shape}"
                )
            state[slot][pname] = arr
    return {"type": kind, "hyperparameters": hyper, "epoch": epoch, "t": t, "state": state}


# ---------------------------------------------------------------- reading


def _read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    path = Path(path)
    where = str(path)
    with file_errors(where, ".npz"), open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise ConvpropError(f"{where}: a single .npy array, not a convprop .npz file")
    if magic[:4] != b"PK\x03\x04":
        raise ConvpropError(f"{where}: not a .npz file (a convprop model or checkpoint)")
    # Every member is checked (plain numeric .npy, sizes consistent with the archive) before
    # anything is allocated; object arrays (pickles) are refused. See convprop._npz.
    arrays = read_npz(path, names=lambda key: key == "meta" or key.startswith(("param/", "history/", "optim/")))
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


def _get(meta: dict, key: str, kind: type | tuple, where: str) -> Any:
    value = meta.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConvpropError(f"{where}: metadata field {key!r} is missing or of the wrong type ({value!r})")
    return value


def _parameter_count(shape: list, layers: list, n_outputs: int) -> int | None:
    """Number of parameters of the network described, by arithmetic alone (no allocation);
    None when the layers do not fit the input (building the network then says why)."""
    if n_outputs < 1:
        return None
    h, w, c = shape
    features = None  # set once a Dense layer has flattened the maps
    total = 0
    for layer in layers:
        if isinstance(layer, Dense):
            fan_in = features if features is not None else h * w * c
            total += layer.units * (fan_in + 1)
            features = layer.units
        elif features is not None:
            return None  # maps after a Dense layer: Network refuses it, saying why
        elif isinstance(layer, Conv):
            kh, kw = layer.kernelsize
            top, bottom, left, right = layer.pads
            hp, wp = h + top + bottom, w + left + right
            if kh > hp or kw > wp:
                return None
            total += layer.outputmaps * (c * kh * kw + 1)
            h, w, c = (hp - kh) // layer.stride + 1, (wp - kw) // layer.stride + 1, layer.outputmaps
        elif isinstance(layer, (Subsample, MaxPool)):
            if h < layer.scale or w < layer.scale:
                return None
            h, w = h // layer.scale, w // layer.scale
    fan_in = features if features is not None else h * w * c
    return total + n_outputs * (fan_in + 1)


def _build(meta: dict, arrays: dict[str, np.ndarray], where: str) -> Network:
    spec = _get(meta, "layers", str, where)
    try:
        layers = parse_layers(spec)
    except ConvpropError as exc:
        raise ConvpropError(f"{where}: {exc}") from None
    shape = _get(meta, "input_shape", list, where)
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ConvpropError(f"{where}: input_shape must be [H, W, C] of positive integers, got {shape!r}")
    dtype = _get(meta, "dtype", str, where)
    if dtype not in ("float32", "float64"):
        raise ConvpropError(f"{where}: dtype must be float32 or float64, got {dtype!r}")
    n_outputs = _get(meta, "n_outputs", int, where)
    # Check the size the metadata describes against the arrays the file holds *before* building
    # (a forged 10⁶×10⁶ input_shape would otherwise allocate terabytes); small mismatches are
    # named parameter by parameter below.
    expected = _parameter_count(shape, layers, n_outputs)
    held = sum(a.size for k, a in arrays.items() if k.startswith("param/"))
    if expected is not None and expected > max(held, 1 << 20):
        raise ConvpropError(f"{where}: the metadata describes a network of {expected} parameters, "
                            f"the file holds {held}")
    try:
        output = meta.get("output", "sigmoid")  # absent in files from before softmax outputs
        if not isinstance(output, str):
            raise ConvpropError(f"metadata field 'output' must be a string, got {output!r}")
        net = Network([Input(*shape), *layers], n_outputs, dtype=dtype, seed=0, output=output)
    except ConvpropError as exc:
        raise ConvpropError(f"{where}: {exc}") from None
    params = net.parameters()
    names = _get(meta, "params", list, where)
    if sorted(names) != sorted(params):
        raise ConvpropError(f"{where}: parameters {names} do not match the network's {list(params)}")
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
    return net


def model_file(path: str | os.PathLike) -> Path:
    """The model file a user named: the file itself, or a run directory's model.npz / checkpoint.npz."""
    p = Path(path)
    if p.is_dir():
        for name in ("model.npz", "checkpoint.npz"):
            if (p / name).is_file():
                return p / name
        raise ConvpropError(f"{p}: no model.npz or checkpoint.npz in this directory")
    return p


def load_model(path: str | os.PathLike) -> tuple[Network, dict]:
    """Read a model (or the model inside a checkpoint).

    Returns
    -------
    net : Network
    extra : dict
        The notes saved with it.

    Raises
    ------
    ConvpropError
        For a missing, unreadable, pickled, inconsistent or non-finite file.
    """
    meta, arrays = _read(path)
    extra = meta.get("extra", {})
    if not isinstance(extra, dict):
        raise ConvpropError(f"{path}: metadata field 'extra' must be an object")
    return _build(meta, arrays, str(path)), extra


def rng_from_state(state: dict, where: str = "rng state") -> np.random.Generator:
    """A Generator with the given ``bit_generator.state`` (validated)."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise ConvpropError(f"{where}: unknown bit generator {name!r}")
    rng = np.random.Generator(getattr(np.random, name)())
    try:
        rng.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:  # Overflow: a 2**200 state
        raise ConvpropError(f"{where}: invalid {name} state ({exc})") from None
    return rng


def load_checkpoint(path: str | os.PathLike) -> tuple[Network, TrainingState, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    net : Network
    state : TrainingState
    extra : dict
    """
    where = str(path)
    meta, arrays = _read(path)
    if meta.get("kind") != "checkpoint" or not isinstance(meta.get("training"), dict):
        raise ConvpropError(f"{where}: a model file, not a checkpoint (no training state to resume)")
    net = _build(meta, arrays, where)
    training = meta["training"]
    epoch = _get(training, "epoch", int, where)
    batch = _get(training, "batch", int, where)
    config = _get(training, "config", dict, where)
    if epoch < 0 or batch < 0:
        raise ConvpropError(f"{where}: negative epoch or batch in the training state")
    rng_from_state(training.get("rng"), f"{where}: rng")
    history = {}
    for name in _HISTORY:
        arr = arrays.get(f"history/{name}")
        if arr is None or arr.ndim != 1 or arr.dtype != np.float64:
            raise ConvpropError(f"{where}: history array {name!r} is missing or not 1-D float64")
        history[name] = arr.tolist()
    elapsed = training.get("epoch_elapsed", 0.0)
    if not isinstance(elapsed, (int, float)) or isinstance(elapsed, bool):
        raise ConvpropError(f"{where}: metadata field 'epoch_elapsed' must be a number")
    state = TrainingState(
        epoch=epoch, batch=batch, rng_state=training["rng"], config=config, epoch_elapsed=float(elapsed),
        optimizer=_optimizer_state(training, arrays, net, where), **history
    )
    extra = meta.get("extra", {})
    return net, state, extra if isinstance(extra, dict) else {}
