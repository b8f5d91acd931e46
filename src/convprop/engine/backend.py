"""Which engine computes the layers: compiled kernels (Numba) or NumPy.

``"numba"``: the kernels of :mod:`convprop.engine.kernels`, a batch cut into
slices over every core (see :mod:`convprop.engine.slices`), compiled on first
use and cached on disk. ``"numpy"``: the vectorised NumPy layers, the reference the kernels are
tested against. The choice, in order of precedence: :func:`set_engine`, the
environment variable ``CONVPROP_ENGINE`` (``numba``, ``numpy`` or ``auto``),
else ``auto``: Numba when it can be imported, NumPy otherwise. Layers ask at
every forward / backward call, so a change takes effect on the next batch.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from ..errors import ConvpropError
from .environment import getenv

ENGINES = ("numba", "numpy")

_forced: str | None = None
_numba_ok: bool | None = None
_kernels: SimpleNamespace | None = None


def _check(name: str, what: str) -> str:
    if name not in (*ENGINES, "auto"):
        raise ConvpropError(f"{what} must be one of numba, numpy, auto; got {name!r}")
    return name


def quiet_numba() -> None:
    """Keep Numba from loading colorama, whose exit handler writes an ANSI reset ("\\x1b[0m") to
    stdout whenever that is a terminal: under mpiexec every rank's output ended with one."""
    os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")


def available() -> bool:
    """Whether the compiled engine can run here (Numba imports)."""
    global _numba_ok
    if _numba_ok is None:
        quiet_numba()
        try:
            import numba  # noqa: F401
        except ImportError:
            _numba_ok = False
        else:
            _numba_ok = True
    return _numba_ok


def set_engine(name: str | None) -> None:
    """Use engine ``name`` ("numba", "numpy" or "auto") from now on; None: back to ``CONVPROP_ENGINE``."""
    global _forced
    _forced = None if name is None else _check(name, "the engine")


def _asked() -> str:
    """The engine asked for: :func:`set_engine`'s, else ``CONVPROP_ENGINE``'s ("auto" when unset)."""
    return _forced or _check(os.environ.get("CONVPROP_ENGINE", "auto").strip().lower() or "auto", "CONVPROP_ENGINE")


def chosen() -> bool:
    """Whether an engine was chosen (:func:`set_engine`, or ``CONVPROP_ENGINE`` other than auto)."""
    return _asked() != "auto"


#: (:func:`set_engine`'s choice, ``CONVPROP_ENGINE``'s raw value, the engine) of the last
#: :func:`engine` call: the layers ask several times a step, and parsing the setting took 2 µs each.
_last: tuple[str | None, str | None, str] | None = None


def engine() -> str:
    """The engine the layers use now: "numba" or "numpy"."""
    global _last
    raw, last = getenv("CONVPROP_ENGINE"), _last
    if last is not None and last[0] == _forced and last[1] == raw:
        return last[2]
    name = _asked()
    if name == "auto":
        name = "numba" if available() else "numpy"
    elif name == "numba" and not available():
        raise ConvpropError("the numba engine was asked for, but Numba cannot be imported (pip install numba)")
    _last = (_forced, raw, name)
    return name


def compiled_for(activation) -> SimpleNamespace | None:
    """:func:`compiled`, for a layer with ``activation``: None also when the kernels do not compute it
    (a user's own function: the layer takes the NumPy path)."""
    return compiled() if activation.has_kernel else None


def compiled() -> SimpleNamespace | None:
    """The kernel modules (``conv``, ``pool``, ``activation``, ``dense``, ``output``, ``stack``, ``arrays``), else None.

    None when the NumPy engine is selected.
    """
    global _kernels
    if engine() != "numba":
        return None
    if _kernels is None:
        from .kernels import activation, arrays, conv, dense, output, pool, stack, winograd

        _kernels = SimpleNamespace(conv=conv, pool=pool, activation=activation, dense=dense, stack=stack,
                                   output=output, arrays=arrays, winograd=winograd)
    return _kernels
