"""Activation functions, each with its derivative written through its output.

Every activation here has a derivative that the output a = f(z) determines,
so a layer keeps only ``a`` for its backward pass:

==============  ===========================  ===================================
name            a = f(z)                     f'(z) from a
==============  ===========================  ===================================
``sigmoid``     1 / (1 + e^−z)               a(1 − a)          (the toolbox's)
``tanh``        tanh z                       1 − a²
``relu``        max(z, 0)                    1 if a > 0 else 0
``leaky_relu``  z if z > 0 else slope·z      1 if a > 0 else slope
``identity``    z                            1
==============  ===========================  ===================================

At z = 0, where ReLU and leaky ReLU have no derivative, the derivative is
taken as 0 (ReLU) and ``slope`` (leaky ReLU): a = 0 there, and a > 0 is the
test (PyTorch does the same). Leaky ReLU reads the sign of z off a: for
0 ≤ slope < 1, a > 0 exactly when z > 0 (a negative slope would flip it).

:func:`get` turns a name (or an :class:`Activation`) into the object a layer
keeps; :class:`LeakyReLU` takes its slope, ``"leaky_relu"`` means slope 0.01.
"""

from __future__ import annotations

import numpy as np

from . import ops
from ..errors import ConvpropError


class Activation:
    """An elementwise f with f' expressed through a = f(z).

    Subclasses define :meth:`forward` (may work in place: ``out`` is ``z``)
    and :meth:`backward` (dL/dz from dL/da and a).
    """

    #: Name accepted by :func:`get`.
    name: str = ""
    #: Letter in spec strings (``6c5r``: a ReLU convolution); '' for sigmoid, the default.
    code: str = ""
    #: Whether f has a kink at z = 0 (f' jumps there: ReLU, leaky ReLU).
    kinked: bool = False
    #: Number of the function in the compiled kernels (:mod:`convprop.engine.kernels.activation`).
    kernel: int = -1

    @property
    def kernel_args(self) -> tuple[int, float]:
        """(kernel number, slope) as the compiled kernels take them."""
        return self.kernel, float(getattr(self, "slope", 0.0))

    @property
    def has_kernel(self) -> bool:
        """Whether the compiled kernels compute this activation: one of the built-in classes itself
        (a subclass, the user's own, may compute another function; its layer takes the NumPy path)."""
        return type(self) in _BY_NAME.values()

    def forward(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def backward(self, delta: np.ndarray, a: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.__dict__.items()))))

    def __repr__(self) -> str:
        return repr(self.name)


class Sigmoid(Activation):
    name, code, kernel = "sigmoid", "", 0

    # a = σ(z)
    def forward(self, z, out=None):
        return ops.sigmoid(z, out=out)

    # dL/dz = δ·a(1−a)
    def backward(self, delta, a):
        return ops.sigmoid_backward(delta, a)


class Tanh(Activation):
    name, code, kernel = "tanh", "t", 1

    # a = tanh z
    def forward(self, z, out=None):
        return np.tanh(z, out=out)

    # dL/dz = δ·(1 − a²)
    def backward(self, delta, a):
        d = a * a
        np.subtract(1, d, out=d)
        d *= delta
        return d


class ReLU(Activation):
    name, code, kernel = "relu", "r", 2
    kinked = True

    # a = max(z, 0)
    def forward(self, z, out=None):
        return np.maximum(z, 0, out=out)

    # dL/dz = δ·[a > 0]  (0 at z = 0)
    def backward(self, delta, a):
        return np.where(a > 0, delta, 0).astype(delta.dtype, copy=False)


class LeakyReLU(Activation):
    """``LeakyReLU(slope)``: z for z > 0, slope·z otherwise (0 ≤ slope < 1)."""

    name, code, kernel = "leaky_relu", "l", 3
    kinked = True

    def __init__(self, slope: float = 0.01) -> None:
        slope = float(slope)
        if not 0 <= slope < 1:
            raise ConvpropError(f"leaky ReLU slope must lie in [0, 1), got {slope!r}")
        self.slope = slope

    # a = z if z > 0 else slope·z
    def forward(self, z, out=None):
        a = np.where(z > 0, z, z * z.dtype.type(self.slope))
        if out is None:
            return a
        np.copyto(out, a)
        return out

    # dL/dz = δ·(1 if a > 0 else slope)  (slope at z = 0)
    def backward(self, delta, a):
        return np.where(a > 0, delta, delta * delta.dtype.type(self.slope)).astype(delta.dtype, copy=False)

    def __repr__(self) -> str:
        return f"LeakyReLU({self.slope:g})"


class Identity(Activation):
    name, code, kernel = "identity", "i", 4

    # a = z
    def forward(self, z, out=None):
        if out is None or out is z:
            return z
        np.copyto(out, z)
        return out

    # dL/dz = δ
    def backward(self, delta, a):
        return delta


_BY_NAME = {cls.name: cls for cls in (Sigmoid, Tanh, ReLU, LeakyReLU, Identity)}
_BY_CODE = {cls.code: cls for cls in (Sigmoid, Tanh, ReLU, LeakyReLU, Identity)}
NAMES = tuple(_BY_NAME)


def get(activation: str | Activation) -> Activation:
    """The activation object for a name (``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"``, ``"identity"``)."""
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str) and activation.lower() in _BY_NAME:
        return _BY_NAME[activation.lower()]()
    raise ConvpropError(f"activation must be one of {', '.join(NAMES)} or an Activation, got {activation!r}")


def from_code(code: str, slope: str | None = None) -> Activation:
    """The activation for a spec letter ('' sigmoid, 't', 'r', 'l', 'i'); ``slope`` for 'l'."""
    cls = _BY_CODE[code]
    return cls(float(slope)) if slope else cls()


def spec_code(act: Activation) -> str:
    """The spec letter(s): '' for sigmoid, 'r', 't', 'i', 'l' or 'l0.2' for another leaky slope."""
    if isinstance(act, LeakyReLU) and act.slope != 0.01:
        return "l" + np.format_float_positional(act.slope, trim="-")  # exact, never 1e-05
    return act.code


__all__ = ["Activation", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Identity", "get", "NAMES"]
