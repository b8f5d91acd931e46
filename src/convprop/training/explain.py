"""Follow the derivation on real numbers: one input, layer by layer, forward and backward.

:func:`explain` runs a network on one input, backpropagates the loss against
a target, and prints for every layer the shape and a short numeric summary
(min, mean, max, root mean square) of the activations ``a``, the deltas
``d`` and the gradients ``dk``, ``db``, ``dffW``, ``dffb``, named as in the
toolbox and in ``docs/derivation.md``; then a gradient check per parameter
tensor (finite differences against backprop: largest absolute and relative
error and the worst element).

From the command line (:mod:`convprop.cli.explain`)::

    convprop explain cnn.mat --input test_x.mat --index 0 --label 7
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from .._validation import check_images, check_targets
from ..errors import ConvpropError
from .gradcheck import GradcheckReport, gradcheck
from ..engine.layers import Conv, Input, Subsample
from ..engine.network import Network

__all__ = ["Summary", "Explanation", "explanation", "explain"]


@dataclass(frozen=True)
class Summary:
    """Shape and summary statistics of one array at one layer.

    Attributes
    ----------
    phase : {'forward', 'backward'}
    layer : str
        ``"1 c 6c5"`` style label (toolbox layer number, 0 = input), or ``"output"``.
    name : str
        The toolbox's name of the quantity: ``a``, ``o``, ``d``, ``od``, ``dk``, ``db``, ``dffW``, ``dffb``.
    shape : tuple of int
        Its shape for the one input: maps are (H, W, C), ``dk`` is (C_in, C_out, kh, kw)
        (``dk[i, j]`` is the toolbox's ``dk{i}{j}``), ``dffW`` is (K, F).
    min, mean, max, rms : float
    """

    phase: str
    layer: str
    name: str
    shape: tuple[int, ...]
    min: float
    mean: float
    max: float
    rms: float

    @classmethod
    def of(cls, phase: str, layer: str, name: str, array: np.ndarray) -> "Summary":
        a = np.asarray(array, dtype=np.float64)
        return cls(phase, layer, name, tuple(a.shape), float(a.min()), float(a.mean()), float(a.max()),
                   float(np.sqrt(np.mean(a * a))))

    def line(self) -> str:
        shape = "x".join(str(s) for s in self.shape)
        return (f"  {self.layer:<12} {self.name:<5} {shape:<12} {self.min:>12.5e} {self.mean:>12.5e} "
                f"{self.max:>12.5e} {self.rms:>12.5e}")


@dataclass
class Explanation:
    """What :func:`explain` prints, as data.

    Attributes
    ----------
    spec : str
        The network, e.g. ``28x28-6c5-s2-12c5-s2-10o``.
    target : ndarray, shape (K,)
    output : ndarray, shape (K,)
        The outputs ``o`` for the input.
    loss : float
        L = ½·Σ(o − y)².
    rows : list of Summary
        Forward rows (input to output), then backward rows (output to first conv).
    check : GradcheckReport or None
    """

    spec: str
    target: np.ndarray
    output: np.ndarray
    loss: float
    rows: list[Summary]
    check: GradcheckReport | None

    def __str__(self) -> str:
        head = f"  {'layer':<12} {'name':<5} {'shape':<12} {'min':>12} {'mean':>12} {'max':>12} {'rms':>12}"
        out = [f"network {self.spec}, one input", "", "forward: a = σ(Σ conv + b), pooling means, o = σ(ffW·fv + ffb)", head]
        out += [r.line() for r in self.rows if r.phase == "forward"]
        out += ["", f"output o = {np.array2string(self.output, precision=4, max_line_width=100)}",
                f"target y = {np.array2string(self.target, precision=4, max_line_width=100)}",
                f"loss L = ½·Σ(o − y)² = {self.loss:.10g}", "",
                "backward: od = (o − y)·o(1 − o), fvd = ffWᵀ·od, d = a(1 − a)·expand(d)/scale², "
                "d = Σ full-conv(d, rot180 k)", head]
        out += [r.line() for r in self.rows if r.phase == "backward"]
        if self.check is not None:
            out += ["", "gradient check: central differences against backprop, per parameter tensor",
                    "(indices in convprop's layout: conv weight[j, i, u, v] = rot180(k{i}{j})[u, v])",
                    str(self.check)]
        return "\n".join(out)


def _label(i: int, layer) -> str:
    return f"{i} {layer.code} {layer.spec()}"


def explanation(
    net: Network, x: np.ndarray, y: np.ndarray | int | None = None, *, check: bool = True, epsilon: float = 1e-4
) -> Explanation:
    """Run one input forward and backward and collect the per-layer summaries.

    Parameters
    ----------
    net : Network
        Not changed: the work is done on a float64 copy.
    x : array_like, shape (H, W) or (H, W, C)
        One input image.
    y : int, array_like of shape (K,), or None
        Class label or target vector; ``None`` takes the one-hot vector of
        the predicted class.
    check : bool
        Also run the gradient check (every parameter entry, two passes each).
    epsilon : float
        Step of the central differences.

    Returns
    -------
    Explanation
    """
    net = net.copy(dtype=np.float64)
    maps, single = check_images(x, net.image_shape, np.float64)
    if not single or maps.shape[0] != 1:
        raise ConvpropError(f"explain takes one input of shape {net.image_shape[:2]} (or with channels); "
                            f"got {np.shape(x)}")
    o = net.forward_batch(maps)
    if y is None:
        y = int(np.argmax(o[0]))
    targets = check_targets(np.atleast_1d(y) if np.ndim(y) == 0 else np.asarray(y)[None],
                            1, net.n_outputs, np.float64)
    loss = net.backward_batch(targets)

    rows = []
    for i, (layer, a) in enumerate(zip(net.layers, net.activations)):
        rows.append(Summary.of("forward", _label(i, layer), "a", a[0]))
    rows.append(Summary.of("forward", "output", "o", o[0]))
    out = net.output
    rows.append(Summary.of("backward", "output", "od", out.d[0]))
    rows.append(Summary.of("backward", "output", "dffW", out.grads["weight"]))
    rows.append(Summary.of("backward", "output", "dffb", out.grads["bias"]))
    for i in range(len(net.layers) - 1, 0, -1):
        layer = net.layers[i]
        rows.append(Summary.of("backward", _label(i, layer), "d", layer.d[0]))
        if isinstance(layer, Conv):
            rows.append(Summary.of("backward", _label(i, layer), "dk", layer.grads["weight"][:, :, ::-1, ::-1]
                                   .transpose(1, 0, 2, 3)))
            rows.append(Summary.of("backward", _label(i, layer), "db", layer.grads["bias"]))
    batch = maps[..., 0] if net.image_shape[2] == 1 else maps
    report = gradcheck(net, batch, targets, epsilon=epsilon) if check else None
    return Explanation(net.spec, targets[0].copy(), o[0].copy(), float(loss), rows, report)


def explain(
    net: Network,
    x: np.ndarray,
    y: np.ndarray | int | None = None,
    *,
    check: bool = True,
    epsilon: float = 1e-4,
    file: TextIO | None = None,
) -> str:
    """Print, layer by layer, shapes and summaries of activations, deltas and gradients for one input.

    Parameters
    ----------
    net : Network
    x : array_like, shape (H, W) or (H, W, C)
    y : int, array_like of shape (K,), or None
        Label or target; ``None`` uses the predicted class.
    check : bool
        Append the per-tensor gradient-check report (relative error, worst element).
    epsilon : float
    file : text stream, optional
        Where to print; nothing is printed when omitted.

    Returns
    -------
    str
        The text (see :class:`Explanation` for the same numbers as data).

    Examples
    --------
    >>> import numpy as np
    >>> from convprop import Network, Input, Conv, Subsample
    >>> net = Network([Input(8, 8), Conv(2, 3), Subsample(2)], n_outputs=3, seed=0)
    >>> text = explain(net, np.linspace(0, 1, 64).reshape(8, 8), 1)
    >>> print(text.splitlines()[0])
    network 8x8-2c3-s2-3o, one input
    """
    text = str(explanation(net, x, y, check=check, epsilon=epsilon))
    if file is not None:
        print(text, file=file)
    return text
