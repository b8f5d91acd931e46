"""Checkpoints: a model file (see :mod:`convprop.formats.model`) plus where training stands.

A checkpoint's metadata adds ``training``: ``epoch`` (epochs completed),
``batch`` (batches completed in the current epoch; 0 at an epoch boundary),
``epoch_elapsed`` (seconds already spent in that epoch), ``config`` (batch
size, alpha, seed …), ``rng`` (the permutation generator's
``bit_generator.state``, taken at the start of the current epoch, before its
permutation was drawn) and ``optimizer`` (its hyper-parameters; its buffers
are ``optim/<slot>/<param>`` arrays); the arrays add ``history/rL``,
``history/L``, ``history/epoch_seconds`` and ``history/test_error`` (float64).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.network import Network
from ..errors import ConvpropError
from .model import atomic_savez, build_network, get_field, meta_array, network_meta, read_file

_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
_HISTORY = ("rL", "L", "epoch_seconds", "test_error")
#: Largest ``epoch_elapsed`` accepted (seconds; a century): sums of it stay finite, JSON-writable.
MAX_ELAPSED = 3.2e9


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

    @classmethod
    def new(cls, seed: int | None = None, config: dict | None = None) -> "TrainingState":
        """The state of a run that has not started: epoch 0, the seed's generator."""
        rng = np.random.default_rng(seed)
        return cls(epoch=0, batch=0, rng_state=rng.bit_generator.state, config=dict(config or {}))


# ---------------------------------------------------------------- writing


def save_checkpoint(
    net: Network, path: str | os.PathLike, state: TrainingState, extra: dict | None = None
) -> Path:
    """Write ``net`` and the training ``state`` to ``path`` (.npz), atomically."""
    meta, arrays = network_meta(net, "checkpoint", extra)
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
    arrays["meta"] = meta_array(meta)
    return atomic_savez(path, arrays)


def _optimizer_state(training: dict, arrays: dict[str, np.ndarray], net: Network, where: str) -> dict | None:
    """The optimiser's state_dict from a checkpoint's metadata and ``optim/<slot>/<param>`` arrays."""
    opt = training.get("optimizer")
    if opt is None:
        return None
    if not isinstance(opt, dict):
        raise ConvpropError(f"{where}: metadata field 'optimizer' must be an object")
    kind = get_field(opt, "type", str, where)
    hyper = get_field(opt, "hyperparameters", dict, where)
    epoch, t = get_field(opt, "epoch", int, where), get_field(opt, "t", int, where)
    slots = get_field(opt, "slots", dict, where)
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


def load_checkpoint(path: str | os.PathLike) -> tuple[Network, TrainingState]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    net : Network
        With the notes saved beside it as ``net.extra``.
    state : TrainingState
    """
    where = str(path)
    meta, arrays = read_file(path)
    if meta.get("kind") != "checkpoint" or not isinstance(meta.get("training"), dict):
        raise ConvpropError(f"{where}: a model file, not a checkpoint (no training state to resume)")
    net = build_network(meta, arrays, where)
    training = meta["training"]
    epoch = get_field(training, "epoch", int, where)
    batch = get_field(training, "batch", int, where)
    config = get_field(training, "config", dict, where)
    if epoch < 0 or batch < 0:
        raise ConvpropError(f"{where}: negative epoch or batch in the training state")
    rng_from_state(training.get("rng"), f"{where}: rng")
    history = {}
    for name in _HISTORY:
        arr = arrays.get(f"history/{name}")
        if arr is None or arr.ndim != 1 or arr.dtype != np.float64:
            raise ConvpropError(f"{where}: history array {name!r} is missing or not 1-D float64")
        if not np.isfinite(arr).all():
            raise ConvpropError(f"{where}: history array {name!r} holds NaN or infinite values")
        history[name] = arr.tolist()
    elapsed = training.get("epoch_elapsed", 0.0)
    if (not isinstance(elapsed, (int, float)) or isinstance(elapsed, bool)
            or not 0 <= elapsed < MAX_ELAPSED):  # also refuses NaN; a float of an int past 1e308 is inf
        raise ConvpropError(f"{where}: metadata field 'epoch_elapsed' must be a number of seconds in "
                            f"[0, {MAX_ELAPSED:g}), got {elapsed!r:.40}")
    state = TrainingState(
        epoch=epoch, batch=batch, rng_state=training["rng"], config=config, epoch_elapsed=float(elapsed),
        optimizer=_optimizer_state(training, arrays, net, where), **history
    )
    return net, state
