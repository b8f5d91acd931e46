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

from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from .._validation import check_images, check_targets
from ..errors import ConvpropError
from .gradcheck import GradcheckReport, gradcheck
from ..engine.layers import Conv, Dense, MaxPool, Subsample
from ..engine.network import Network

__all__ = ["Summary", "Explanation", "explanation", "explain", "equations"]


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
        L = ½·Σ(o − y)² (sigmoid outputs) or −Σ y·log o (softmax outputs).
    rows : list of Summary
        Forward rows (input to output), then backward rows (output to first conv).
    check : GradcheckReport or None
    forward, backward : list of str
        The equations of this network's layers, forward and backward (see :func:`equations`).
    loss_formula : str
    """

    spec: str
    target: np.ndarray
    output: np.ndarray
    loss: float
    rows: list[Summary]
    check: GradcheckReport | None
    forward: list[str] = field(default_factory=list)
    backward: list[str] = field(default_factory=list)
    loss_formula: str = "½·Σ(o − y)²"

    def __str__(self) -> str:
        head = f"  {'layer':<12} {'name':<5} {'shape':<12} {'min':>12} {'mean':>12} {'max':>12} {'rms':>12}"
        out = [f"network {self.spec}, one input", "", "forward:", *self.forward, head]
        out += [r.line() for r in self.rows if r.phase == "forward"]
        out += ["", f"output o = {np.array2string(self.output, precision=4, max_line_width=100)}",
                f"target y = {np.array2string(self.target, precision=4, max_line_width=100)}",
                f"loss L = {self.loss_formula} = {self.loss:.10g}", "", "backward:", *self.backward, head]
        out += [r.line() for r in self.rows if r.phase == "backward"]
        if self.check is not None:
            out += ["", "gradient check: central differences against backprop, per parameter tensor",
                    "(indices in convprop's layout: conv weight[j, i, u, v] = rot180(k{i}{j})[u, v])",
                    str(self.check)]
        return "\n".join(out)


def _label(i: int, layer) -> str:
    return f"{i} {layer.code} {layer.spec()}"


#: f(z) and f'(z) written from the output a = f(z), by activation name.
_ACTIVATION = {"sigmoid": ("σ", "a(1 − a)"), "tanh": ("tanh", "(1 − a²)"), "relu": ("relu", "[a > 0]"),
               "leaky_relu": ("leaky_relu", "([a > 0] + slope·[a ≤ 0])"), "identity": ("", "1")}


def _layer_equations(i: int, layer) -> tuple[str, str]:
    """The forward and backward equation of one hidden layer, as explain prints them."""
    where = f"  {_label(i, layer):<16}"
    if isinstance(layer, Conv):
        f, df = _ACTIVATION[layer.activation.name]
        return (f"{where}a = {f}(Σ_i conv(a_prev{{i}}, k{{i}}{{j}}) + b{{j}})",
                f"{where}d = δ·{df};  δ_prev{{i}} = Σ_j full-conv(d{{j}}, rot180 k{{i}}{{j}});  dk = conv(a_prev, d)/N")
    if isinstance(layer, Subsample):
        return (f"{where}a = mean of each {layer.scale}×{layer.scale} block",
                f"{where}δ_prev = expand(δ)/{layer.scale * layer.scale}")
    if isinstance(layer, MaxPool):
        return (f"{where}a = max of each {layer.scale}×{layer.scale} block",
                f"{where}δ_prev = δ at each block's arg-max, 0 elsewhere")
    if isinstance(layer, Dense):
        f, df = _ACTIVATION[layer.activation.name]
        return (f"{where}a = {f}(W·x + b)", f"{where}d = δ·{df};  δ_prev = Wᵀ·d;  dW = d·xᵀ/N")
    return f"{where}{type(layer).__name__}", f"{where}{type(layer).__name__}"


def equations(net: Network) -> tuple[list[str], list[str], str]:
    """This network's forward and backward equations, layer by layer, and its loss.

    Returns
    -------
    forward : list of str
        Input to output.
    backward : list of str
        Output to the first hidden layer.
    loss : str
    """
    pairs = [_layer_equations(i, layer) for i, layer in enumerate(net.layers) if i]
    where = f"  {'output':<16}"
    if net.output_kind == "softmax":
        out_f, out_b, loss = "o = softmax(ffW·fv + ffb)", "od = o − y;  fvd = ffWᵀ·od", "−Σ y·log o"
    else:
        out_f, out_b, loss = "o = σ(ffW·fv + ffb)", "od = (o − y)·o(1 − o);  fvd = ffWᵀ·od", "½·Σ(o − y)²"
    forward = [p[0] for p in pairs] + [where + out_f]
    backward = [where + out_b] + [p[1] for p in reversed(pairs)]
    return forward, backward, loss


def explanation(
    net: Network, x: np.ndarray, y: np.ndarray | int | None = None, *, check: bool = True, epsilon: float = 1e-4,
    progress: bool = False,
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
        Step of the central differences (smaller where a step would cross a ReLU kink or a
        max-pool tie; see :func:`~convprop.training.gradcheck.gradcheck`).
    progress : bool
        A progress bar on stderr during the gradient check.

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
    report = gradcheck(net, batch, targets, epsilon=epsilon, progress=progress) if check else None
    forward, backward, loss_formula = equations(net)
    return Explanation(net.spec, targets[0].copy(), o[0].copy(), float(loss), rows, report, forward, backward,
                       loss_formula)


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
