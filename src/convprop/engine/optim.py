"""Optimisers and learning-rate schedules, written on the public Network API.

An optimiser reads ``net.parameters()`` and ``net.gradients()`` (dicts of
arrays by name) and updates the parameters in place, one vectorised NumPy
expression per tensor. Its state (momentum buffers, Adam moments) is kept as
arrays under the same names, created on the first step.

``SGD(lr)`` with no momentum and no weight decay is exactly the toolbox's
update ``p -= lr·grad`` (bit for bit the same as ``net.step(lr)``). The update
rules follow ``torch.optim.SGD``, ``torch.optim.Adam`` and
``torch.optim.AdamW``; the tests compare them step by step.

The learning rate ``lr`` is a number or a schedule: any callable
``epoch -> lr`` (epochs count from 0), such as :class:`StepLR`,
:class:`ExponentialLR` or :class:`CosineLR`. The optimiser counts epochs
itself: :func:`convprop.train.train` calls :meth:`Optimizer.end_epoch` after
each one, so a schedule carries on across several ``train`` calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .._validation import POSITIVE, POSITIVE_INT, Interval, check_param
from ..errors import ConvpropError
from . import backend, views

Schedule = Callable[[int], float]


class _HasParams(Protocol):
    def parameters(self) -> dict[str, np.ndarray]: ...

    def gradients(self) -> dict[str, np.ndarray]: ...


def _identities(layers) -> tuple[int, ...] | None:
    """The ids of the layers' parameter and gradient arrays, in order; None when one has no gradient."""
    try:
        return tuple(id(a) for layer in layers for p, arr in layer.params.items() for a in (arr, layer.grads[p]))
    except KeyError:
        return None


def _nonneg(value: float, what: str, upper: float | None = None) -> float:
    """``value`` as a float in [0, upper) (or [0, inf))."""
    return check_param(what, _as_number(value), Interval(float, 0, upper, closed="left"))


def _positive(value: float, what: str) -> float:
    """``value`` as a finite float > 0."""
    return check_param(what, _as_number(value), POSITIVE)


def _as_number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


# ------------------------------------------------------------------ schedules


class StepLR:
    """lr = base_lr · gamma^(epoch // step_size)   (as ``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, base_lr: float, step_size: int, gamma: float = 0.1) -> None:
        self.base_lr = _positive(base_lr, "StepLR base_lr")
        self.step_size = check_param("StepLR step_size", step_size, POSITIVE_INT)
        self.gamma = _positive(gamma, "StepLR gamma")

    def __call__(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)

    def config(self) -> dict[str, Any]:
        return {"schedule": "StepLR", "base_lr": self.base_lr, "step_size": self.step_size, "gamma": self.gamma}


class ExponentialLR:
    """lr = base_lr · gamma^epoch   (as ``torch.optim.lr_scheduler.ExponentialLR``)."""

    def __init__(self, base_lr: float, gamma: float) -> None:
        self.base_lr = _positive(base_lr, "ExponentialLR base_lr")
        self.gamma = _positive(gamma, "ExponentialLR gamma")

    def __call__(self, epoch: int) -> float:
        return self.base_lr * self.gamma**epoch

    def config(self) -> dict[str, Any]:
        return {"schedule": "ExponentialLR", "base_lr": self.base_lr, "gamma": self.gamma}


class CosineLR:
    """lr = eta_min + (base_lr − eta_min)·(1 + cos(π·epoch/T_max))/2, held at eta_min after T_max.

    The closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR`` for
    epochs 0..T_max.
    """

    def __init__(self, base_lr: float, T_max: int, eta_min: float = 0.0) -> None:
        self.base_lr = _positive(base_lr, "CosineLR base_lr")
        self.T_max = check_param("CosineLR T_max", T_max, POSITIVE_INT)
        self.eta_min = _nonneg(eta_min, "CosineLR eta_min")

    def __call__(self, epoch: int) -> float:
        e = min(epoch, self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2

    def config(self) -> dict[str, Any]:
        return {"schedule": "CosineLR", "base_lr": self.base_lr, "T_max": self.T_max, "eta_min": self.eta_min}


# ----------------------------------------------------------------- optimisers


class Optimizer:
    """Base class: learning rate (number or schedule), epoch and step counters, named state.

    Subclasses define ``_slots`` (names of their per-parameter state arrays)
    and ``_update(p, g, state, lr)``, which changes ``p`` in place; ``_update_all`` may do
    every parameter's update in one compiled call instead (and return True).
    """

    _slots: tuple[str, ...] = ()

    def __init__(self, lr: float | Schedule) -> None:
        if callable(lr):
            self.schedule: Schedule | None = lr
            self.base_lr = None
        else:
            self.schedule = None
            self.base_lr = _positive(lr, f"{type(self).__name__} lr")
        #: Epochs completed (the schedule's argument) and update steps taken.
        self.epoch = 0
        self.t = 0
        #: slot → {parameter name → array}, created on the first step.
        self.state: dict[str, dict[str, np.ndarray]] = {slot: {} for slot in self._slots}
        #: The arrays of the last update as 1-D views (:func:`.views.kept_flat`).
        self._flats: dict[str, tuple] = {}

    def __getstate__(self) -> dict:
        # a copy takes the state, not what the last update kept of the network's arrays
        return {**self.__dict__, "_flats": {}, "_kept": None}

    @property
    def lr(self) -> float:
        """The learning rate of the current epoch."""
        if self.schedule is None:
            return self.base_lr
        lr = float(self.schedule(self.epoch))
        if not math.isfinite(lr) or lr < 0:
            raise ConvpropError(f"the learning-rate schedule gave {lr!r} at epoch {self.epoch}")
        return lr

    def end_epoch(self) -> None:
        """Advance the schedule by one epoch (called by :func:`convprop.train.train`)."""
        self.epoch += 1

    def step(self, net: _HasParams) -> None:
        """Update every parameter of ``net`` in place from its last gradients."""
        ps, gs, states = self._arrays(net)
        lr = self.lr
        self.t += 1
        if self._update_all(ps, gs, states, lr):
            return
        for p, g, state in zip(ps, gs, states):
            self._update(p, g, state, lr)

    def _arrays(self, net: _HasParams) -> tuple[list[np.ndarray], list[np.ndarray], list[dict[str, np.ndarray]]]:
        """``net``'s parameters, gradients and state arrays (by slot), in the order of ``parameters()``.

        For a :class:`~convprop.engine.network.Network`, kept from the last step while its parameter and
        gradient arrays are the same objects and :attr:`state` holds the same arrays: naming them and
        checking the state took 40–60 µs of a LeNet-style step's Python, on cold caches.
        """
        trainable = getattr(net, "_trainable", None)
        key = _identities(trainable()) if trainable is not None else None
        kept = self.__dict__.get("_kept")
        if key is not None and kept is not None and kept[0] == key and self._same_state(kept[1]):
            return kept[2]
        params, grads = net.parameters(), net.gradients()
        states = [self._slot_arrays(name, p) for name, p in params.items()]
        arrays = list(params.values()), [grads[name] for name in params], states
        if key is not None:  # (the arrays kept alive with their ids, which no other array can take then)
            self._kept = (key, [(slot, name, state[slot]) for name, state in zip(params, states) for slot in state],
                          arrays)
        return arrays

    def _same_state(self, kept: list[tuple[str, str, np.ndarray]]) -> bool:
        """Whether :attr:`state` still holds these (slot, parameter name, array): a user may replace or
        clear them (a callback resetting the moments, a checkpoint loaded)."""
        state = self.state
        try:
            return all(state[slot].get(name) is arr for slot, name, arr in kept)
        except (KeyError, AttributeError, TypeError):
            return False

    def _slot_arrays(self, name: str, p: np.ndarray) -> dict[str, np.ndarray]:
        """Parameter ``name``'s state arrays by slot (zeros at first), checked against ``p``."""
        state = {}
        for slot in self._slots:
            buf = self.state[slot].get(name)
            if buf is None:
                buf = self.state[slot][name] = np.zeros_like(p)
            elif buf.shape != p.shape:
                raise ConvpropError(
                    f"{type(self).__name__} state {slot}[{name!r}] has shape {buf.shape}, but the "
                    f"parameter has shape {p.shape}: is this optimiser for another network?"
                )
            elif buf.dtype != p.dtype:
                buf = self.state[slot][name] = buf.astype(p.dtype)
            state[slot] = buf
        return state

    def _update_all(self, params: list[np.ndarray], grads: list[np.ndarray], states: list[dict[str, np.ndarray]],
                    lr: float) -> bool:
        """Every parameter's update in one compiled call, where a subclass has one; False: none done."""
        return False

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], lr: float) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------- checkpoints

    def hyperparameters(self) -> dict[str, Any]:
        """JSON-able hyperparameters (the schedule as its ``config()`` when it has one)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state as plain data: no pickling needed to save it.

        Returns
        -------
        dict
            ``{"type": str, "hyperparameters": dict, "epoch": int, "t": int,
            "state": {slot: {parameter name: ndarray}}}``; everything but the
            arrays is JSON-able. The arrays are copies.
        """
        return {
            "type": type(self).__name__,
            "hyperparameters": self.hyperparameters(),
            "epoch": self.epoch,
            "t": self.t,
            "state": {slot: {k: v.copy() for k, v in bufs.items()} for slot, bufs in self.state.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore counters and state arrays saved by :meth:`state_dict`.

        Hyperparameters are those of this optimiser (the saved ones are for
        reference); the type and the state's slots must match.
        """
        if state.get("type") != type(self).__name__:
            raise ConvpropError(f"state_dict is for {state.get('type')!r}, not {type(self).__name__}")
        slots = state.get("state", {})
        if set(slots) != set(self._slots):
            raise ConvpropError(f"state_dict slots {sorted(slots)} do not match {sorted(self._slots)}")
        self.epoch = int(state["epoch"])
        self.t = int(state["t"])
        self.state = {slot: {k: np.array(v) for k, v in slots[slot].items()} for slot in self._slots}

    def _lr_config(self) -> float | dict[str, Any] | None:
        if self.schedule is None:
            return self.base_lr
        config = getattr(self.schedule, "config", None)
        return config() if callable(config) else None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

    With g = grad + weight_decay·p:  b ← momentum·b + g;  p ← p − lr·(g + momentum·b)
    for Nesterov, p ← p − lr·b for classic momentum, p ← p − lr·g without
    momentum (``torch.optim.SGD`` with dampening 0). ``SGD(lr)`` is the
    toolbox's update, bit for bit.

    Parameters
    ----------
    lr : float or callable epoch -> float
    momentum : float in [0, 1)
    nesterov : bool
        Needs momentum > 0.
    weight_decay : float
        L2 penalty coefficient, added to the gradient.
    """

    _slots = ("momentum_buffer",)

    def __init__(self, lr: float | Schedule, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> None:
        self.momentum = _nonneg(momentum, "SGD momentum", upper=1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ConvpropError("SGD nesterov=True needs momentum > 0")
        self.weight_decay = _nonneg(weight_decay, "SGD weight_decay")
        self._slots = ("momentum_buffer",) if self.momentum else ()
        super().__init__(lr)

    # g = ∇ + λp;  b = μb + g;  p −= lr·(nesterov ? g + μb : b)
    def _update(self, p, g, state, lr):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= lr * g

    def hyperparameters(self):
        return {"lr": self._lr_config(), "momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam; with ``decoupled=True`` (or :class:`AdamW`) decoupled weight decay.

    m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;
    p ← p − lr·(m/(1−β₁ᵗ)) / (√v/√(1−β₂ᵗ) + eps).
    Weight decay: ``decoupled=False`` adds weight_decay·p to g (L2, as
    ``torch.optim.Adam``); ``decoupled=True`` first shrinks p ← p·(1 − lr·weight_decay)
    (as ``torch.optim.AdamW``).

    Parameters
    ----------
    lr : float or callable epoch -> float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
    decoupled : bool, default False
    """

    _slots = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        lr: float | Schedule = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ConvpropError(f"Adam betas must be a pair of numbers in [0, 1), got {betas!r}") from None
        self.betas = (_nonneg(b1, "Adam beta1", upper=1.0), _nonneg(b2, "Adam beta2", upper=1.0))
        self.eps = _positive(eps, "Adam eps")
        self.weight_decay = _nonneg(weight_decay, "Adam weight_decay")
        self.decoupled = bool(decoupled)
        super().__init__(lr)

    def _update(self, p, g, state, lr):
        b1, b2 = self.betas
        if self.weight_decay:
            if self.decoupled:
                p *= 1 - lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        bc1 = 1 - b1**self.t
        bc2 = 1 - b2**self.t
        denom = np.sqrt(v) / math.sqrt(bc2)
        denom += self.eps
        p -= (lr / bc1) * (m / denom)

    def _update_all(self, params, grads, states, lr):
        # one compiled call (kernels.arrays.adam), the same roundings as _update: the same bits
        kernels = backend.compiled()
        arrays = [*params, *grads, *(s["exp_avg"] for s in states), *(s["exp_avg_sq"] for s in states)]
        flat = views.kept_flat(self.__dict__.setdefault("_flats", {}), "adam", arrays, same_dtype=True) \
            if kernels is not None else None
        if flat is None:
            return False
        b1, b2 = self.betas
        wd = (1 - lr * self.weight_decay) if self.decoupled else self.weight_decay
        consts = np.array([b1, 1 - b1, b2, 1 - b2, math.sqrt(1 - b2**self.t), self.eps, lr / (1 - b1**self.t), wd])
        flags = np.array([self.weight_decay != 0, self.decoupled], dtype=np.int64)
        k = len(params)
        kernels.arrays.adam(flat[:k], flat[k:2 * k], flat[2 * k:3 * k], flat[3 * k:], consts, flags)
        return True

    def hyperparameters(self):
        return {
            "lr": self._lr_config(),
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "decoupled": self.decoupled,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay (default 1e-2, as ``torch.optim.AdamW``)."""

    def __init__(
        self,
        lr: float | Schedule = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(lr, betas, eps, weight_decay, decoupled=True)

    def hyperparameters(self):
        hp = super().hyperparameters()
        del hp["decoupled"]
        return hp


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "StepLR", "ExponentialLR", "CosineLR"]


#: Optimiser names understood by :func:`make_optimizer` (and the CLI's ``--optimizer``).
OPTIMIZERS = ("sgd", "adam", "adamw")


def make_optimizer(
    name: str, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
) -> Optimizer:
    """An optimiser from its name and plain hyperparameters (what a CLI or a checkpoint holds).

    Parameters
    ----------
    name : {"sgd", "adam", "adamw"}
    lr : float
        Step size (the toolbox's alpha for SGD).
    momentum, nesterov : SGD only (an error for Adam / AdamW when set)
    weight_decay : float
        L2 for SGD and Adam, decoupled for AdamW.
    """
    kind = str(name).lower()
    if kind == "sgd":
        return SGD(lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if kind not in OPTIMIZERS:
        raise ConvpropError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    if momentum or nesterov:
        raise ConvpropError(f"momentum / nesterov are SGD options, not {kind}'s")
    return (Adam if kind == "adam" else AdamW)(lr, weight_decay=weight_decay)
