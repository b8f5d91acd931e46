"""Numerical gradient check (cnnnumgradcheck), with a per-tensor report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validation import check_images, check_targets
from ..engine.network import Network


@dataclass
class TensorCheck:
    """Finite differences against backprop for one parameter tensor."""

    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    passed: bool


@dataclass
class GradcheckReport:
    """Result of :func:`gradcheck`; ``passed`` is the toolbox's verdict."""

    epsilon: float
    tolerance: float
    tensors: list[TensorCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)

    @property
    def max_abs_error(self) -> float:
        return max((t.max_abs_error for t in self.tensors), default=0.0)

    def __str__(self) -> str:
        rows = [f"{'tensor':<16} {'shape':<16} {'max |num-bp|':>13} {'max rel':>10}  worst at"]
        for t in self.tensors:
            rows.append(
                f"{t.name:<16} {str(t.shape):<16} {t.max_abs_error:13.3e} {t.max_rel_error:10.3e}  "
                f"{t.worst_index}{'' if t.passed else '  FAIL'}"
            )
        verdict = "passed" if self.passed else "FAILED"
        rows.append(f"gradient check {verdict} (epsilon {self.epsilon:g}, tolerance {self.tolerance:g})")
        return "\n".join(rows)


def gradcheck(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epsilon: float = 1e-4,
    tolerance: float = 1e-8,
) -> GradcheckReport:
    """Compare backprop with central differences on every parameter entry.

    The check runs on a float64 copy of ``net`` (the network itself is not
    changed). For each entry θ, the numerical derivative is
    (L(θ + ε) − L(θ − ε)) / 2ε; an entry fails, as in the toolbox, when it
    differs from the backprop gradient by more than ``tolerance``.

    Parameters
    ----------
    net : Network
    x : array_like, shape (N, H, W[, C])
    y : array_like, shape (N,) labels or (N, n_outputs) targets
    epsilon, tolerance : float

    Returns
    -------
    GradcheckReport
        Max absolute and relative error and the worst entry, per tensor.
    """
    net = net.copy(dtype=np.float64)
    maps, _ = check_images(x, net.image_shape, net.dtype)
    targets = check_targets(y, maps.shape[0], net.n_outputs, net.dtype)

    def loss() -> float:
        net.forward_batch(maps)
        return net.backward_batch(targets)

    loss()
    analytic = {name: g.copy() for name, g in net.gradients().items()}
    report = GradcheckReport(epsilon=epsilon, tolerance=tolerance)
    for name, param in net.parameters().items():
        numeric = np.empty_like(param)
        flat = param.reshape(-1)  # a view: perturbs the live parameter
        for k in range(flat.size):
            keep = flat[k]
            flat[k] = keep + epsilon
            plus = loss()
            flat[k] = keep - epsilon
            minus = loss()
            flat[k] = keep
            numeric.reshape(-1)[k] = (plus - minus) / (2 * epsilon)
        err = np.abs(numeric - analytic[name])
        scale = np.maximum(np.abs(numeric) + np.abs(analytic[name]), np.finfo(np.float64).tiny)
        worst = np.unravel_index(int(np.argmax(err)), err.shape)
        report.tensors.append(
            TensorCheck(
                name=name,
                shape=param.shape,
                max_abs_error=float(err.max()),
                max_rel_error=float((err / scale).max()),
                worst_index=tuple(int(i) for i in worst),
                passed=bool(err.max() <= tolerance),
            )
        )
    return report
