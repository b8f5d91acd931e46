"""cnnnumgradcheck: the toolbox's check of the gradients *stored in a struct* by a backward pass.

A port of ``CNN/cnnnumgradcheck.m``: for every entry θ of ``ffb``, ``ffW``
and, from the last layer down, of each 'c' layer's ``b{j}`` and
``k{i}{j}``, in the toolbox's order, the numerical derivative
d = (L(θ + ε) − L(θ − ε)) / 2ε, ε = 1e-4, L = ½·Σ(o − y)²/N, is compared
with the gradient the struct holds (``dffb``, ``dffW``, ``db{j}``,
``dk{i}{j}``, left there by ``cnnbp`` — or by a learner's own backward
pass); the first entry off by more than 1e-8 stops the check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .._validation import check_images
from ..engine import layout
from ..engine.layers import Conv
from ..engine.network import Network
from ..errors import ConvpropError
from . import structs

#: The toolbox's step and tolerance (``epsilon = 1e-4; er = 1e-8;``).
EPSILON = 1e-4
TOLERANCE = 1e-8


@dataclass(frozen=True)
class NumGradCheck:
    """What :func:`cnnnumgradcheck` checked, when every entry was within the tolerance.

    Attributes
    ----------
    checked : int
        Number of parameter entries checked (the toolbox's whole loop).
    max_abs_error : float
        Largest |numerical − stored| seen.
    worst : str
        The stored gradient entry where it was seen, e.g. ``layers{2}.dk{1}{2}(3,4)``.
    epsilon, tolerance : float
    """

    checked: int
    max_abs_error: float
    worst: str
    epsilon: float = EPSILON
    tolerance: float = TOLERANCE

    @property
    def passed(self) -> bool:
        """True: a failing check raises instead of returning."""
        return self.max_abs_error <= self.tolerance

    def __str__(self) -> str:
        return (f"numerical gradient check passed: {self.checked} entries, largest |numerical - stored| "
                f"{self.max_abs_error:.3e} at {self.worst} (epsilon {self.epsilon:g}, tolerance {self.tolerance:g})")


@dataclass
class _Tensor:
    """One parameter of the struct and its stored gradient, as the toolbox's loop visits them."""

    param: str  # MATLAB name of the parameter, e.g. "layers{2}.k{1}{2}"
    grad: str  # MATLAB name of its stored gradient, e.g. "layers{2}.dk{1}{2}"
    python: str  # the stored gradient in the dict, e.g. "net['layers'][1]['dk'][0][1]"
    value: np.ndarray  # the parameter, struct layout, float64
    stored: np.ndarray  # the stored gradient, same shape
    put: Callable[[np.ndarray], None]  # writes a value of the parameter into the engine
    python_shape: tuple[int, ...] | None = None  # the dict's own shape of the stored gradient, if not value's


def _matlab_index(index: tuple[int, ...]) -> str:
    return f"({','.join(str(i + 1) for i in index)})" if index else ""


def _python_index(tensor: _Tensor, index: tuple[int, ...]) -> str:
    if tensor.python_shape is not None and tensor.python_shape != tensor.value.shape:
        index = np.unravel_index(np.ravel_multi_index(index, tensor.value.shape), tensor.python_shape)
    return f"[{', '.join(str(int(i)) for i in index)}]" if index else ""


def _tensors(net: structs.Struct, engine: Network, stored: dict[str, np.ndarray]) -> Iterator[_Tensor]:
    """ffb, ffW, then for l = n down to 2 and each output map j of a 'c' layer: b{j}, k{1..}{j}."""
    out = engine.output

    def put_ffb(v):
        out.params["bias"][...] = v

    def put_ffw(v):
        out.params["weight"][...] = layout.ffw_from_dlt(v, engine.map_shape)

    ffb = np.ravel(np.asarray(net["ffb"], dtype=np.float64))
    yield _Tensor("ffb", "dffb", "net['dffb']", ffb, stored["dffb"], put_ffb, np.shape(net["dffb"]))
    ffw = np.asarray(net["ffW"], dtype=np.float64)
    yield _Tensor("ffW", "dffW", "net['dffW']", ffw, stored["dffW"], put_ffw)
    for l in range(len(engine.layers) - 1, 0, -1):
        layer = engine.layers[l]
        if isinstance(layer, Conv):
            yield from _conv_tensors(net, l, layer, stored)


def _conv_tensors(net: structs.Struct, l: int, layer: Conv, stored: dict[str, np.ndarray]) -> Iterator[_Tensor]:
    spec, at, py = net["layers"][l], f"layers{{{l + 1}}}", f"net['layers'][{l}]"
    b = np.ravel(np.asarray(spec["b"], dtype=np.float64))
    k = np.asarray([[np.asarray(kij, dtype=np.float64) for kij in row] for row in spec["k"]])
    db, dk = stored[f"{at}.db"], stored[f"{at}.dk"]
    for j in range(layer.outputmaps):

        def put_b(v, j=j):
            layer.params["bias"][j] = v

        yield _Tensor(f"{at}.b{{{j + 1}}}", f"{at}.db{{{j + 1}}}", f"{py}['db'][{j}]", np.array(b[j]), np.array(db[j]), put_b)
        for i in range(k.shape[0]):

            def put_k(v, i=i, j=j):
                layer.params["weight"][j, i] = v[::-1, ::-1]  # weight[j, i] = rot180(k{i}{j})

            yield _Tensor(f"{at}.k{{{i + 1}}}{{{j + 1}}}", f"{at}.dk{{{i + 1}}}{{{j + 1}}}",
                          f"{py}['dk'][{i}][{j}]", k[i, j], dk[i, j], put_k)


def _message(tensor: _Tensor, index: tuple[int, ...], numeric: float, stored: float) -> str:
    """The toolbox's message, then which entry, and the two values."""
    at = _matlab_index(index)
    return (
        "numerical gradient checking failed\n"
        f"  at net.{tensor.grad}{at} (Python: {tensor.python}{_python_index(tensor, index)}), "
        f"the derivative of L with respect to net.{tensor.param}{at}\n"
        f"  numerical, (L(+e) - L(-e)) / 2e with e = {EPSILON:g}: {numeric:.12e}\n"
        f"  stored in the struct (by cnnbp or your own backward):  {stored:.12e}\n"
        f"  |numerical - stored| = {abs(numeric - stored):.3e} > tolerance {TOLERANCE:g}"
    )


def _loss_function(engine: Network, images: np.ndarray, targets: np.ndarray) -> Callable[[], float]:
    """L = 1/2 * sum(e(:) .^ 2) / size(e, 2) with e = o - y, for the engine's current parameters."""
    maps, _ = check_images(images, engine.image_shape, engine.dtype, "x")

    def loss() -> float:
        e = engine.forward_batch(maps) - targets
        return 0.5 * float(np.sum(e * e)) / e.shape[0]

    return loss


def cnnnumgradcheck(net: structs.Struct, x: np.ndarray, y: np.ndarray) -> NumGradCheck:
    """Check the gradients stored in ``net`` against central differences, as the toolbox's cnnnumgradcheck.

    The struct's ``dffb``, ``dffW`` and each 'c' layer's ``db{j}`` and
    ``dk{i}{j}`` — left there by :func:`~convprop.dlt.cnnbp`, or written by
    your own backward pass — are compared entry by entry, in the toolbox's
    order (ffb, ffW, then from the last layer down: b{j}, k{i}{j}), with
    (L(θ + ε) − L(θ − ε)) / 2ε, ε = 1e-4, where L = ½·Σ(o − y)²/N is the
    loss of a forward pass on ``x``, ``y`` (in float64). The first entry off
    by more than 1e-8 (or not a number) stops the check.

    Parameters
    ----------
    net : dict
        A struct after ``cnnbp`` (or with your own gradients in those fields).
    x : array, shape (H, W, N)
    y : array, shape (K, N)
        The batch the gradients are meant for.

    Returns
    -------
    NumGradCheck
        How many entries were checked and the largest difference.

    Raises
    ------
    ConvpropError
        "numerical gradient checking failed", followed by the entry (MATLAB
        and Python indices), the numerical and the stored value; or, when the
        struct holds no gradients, a message saying to run cnnbp first.
    """
    net = structs.check_struct(net, "cnnnumgradcheck")
    images = structs.images(x, dtype=np.float64)
    targets = structs.targets(y, images.shape[0], dtype=np.float64)
    engine = structs.checked_network(net, images, np.float64)
    stored = structs.stored_gradients(net, engine)
    loss = _loss_function(engine, images, targets)
    checked, worst, worst_at = 0, -1.0, ""
    for tensor in _tensors(net, engine, stored):
        for index in np.ndindex(tensor.value.shape):
            plus, minus = tensor.value.copy(), tensor.value.copy()
            plus[index] = tensor.value[index] + EPSILON
            minus[index] = tensor.value[index] - EPSILON
            tensor.put(minus)
            l_minus = loss()
            tensor.put(plus)
            l_plus = loss()
            tensor.put(tensor.value)
            numeric = (l_plus - l_minus) / (2 * EPSILON)
            error = abs(numeric - float(tensor.stored[index]))
            if not error <= TOLERANCE:  # NaN fails too (MATLAB's `if e > er` lets it pass)
                raise ConvpropError(_message(tensor, index, numeric, float(tensor.stored[index])))
            checked += 1
            if error > worst:
                worst, worst_at = error, f"{tensor.grad}{_matlab_index(index)}"
    return NumGradCheck(checked=checked, max_abs_error=max(worst, 0.0), worst=worst_at)
