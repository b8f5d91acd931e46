"""Numerical gradient check (cnnnumgradcheck), with a per-tensor report."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_images, check_targets
from ..engine.network import Network


#: Smaller steps tried, as fractions of epsilon, when a step crosses a kink.
REFINE = (1e-1, 1e-2, 1e-3)


@dataclass
class TensorCheck:
    """Finite differences against backprop for one parameter tensor.

    ``kinks`` counts the entries left out: every step tried (epsilon, then
    epsilon·10⁻¹ … 10⁻³) crossed a point where the loss has no derivative (a ReLU's
    input changed sign, a max-pool's maximum changed place), so the difference
    quotient measures no derivative. ``refined`` counts the entries measured with
    a smaller step than epsilon for that reason. The errors are over the others.
    """

    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    passed: bool
    kinks: int = 0
    refined: int = 0


@dataclass
class GradcheckReport:
    """Result of :func:`gradcheck`; ``passed`` is the toolbox's verdict on every entry that has a derivative."""

    epsilon: float
    tolerance: float
    tensors: list[TensorCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)

    @property
    def max_abs_error(self) -> float:
        return max((t.max_abs_error for t in self.tensors), default=0.0)

    @property
    def kinks(self) -> int:
        return sum(t.kinks for t in self.tensors)

    @property
    def refined(self) -> int:
        return sum(t.refined for t in self.tensors)

    def __str__(self) -> str:
        rows = [f"{'tensor':<16} {'shape':<16} {'max |num-bp|':>13} {'max rel':>10}  worst at"]
        for t in self.tensors:
            kinks = f"  ({t.kinks} at kinks)" if t.kinks else ""
            rows.append(
                f"{t.name:<16} {str(t.shape):<16} {t.max_abs_error:13.3e} {t.max_rel_error:10.3e}  "
                f"{t.worst_index}{'' if t.passed else '  FAIL'}{kinks}"
            )
        verdict = "passed" if self.passed else "FAILED"
        rows.append(f"gradient check {verdict} (epsilon {self.epsilon:g}, tolerance {self.tolerance:g})")
        if self.refined or self.kinks:
            rows.append(self._kink_note())
        return "\n".join(rows)

    def _kink_note(self) -> str:
        note = (f"note: at epsilon {self.epsilon:g} the step crossed a ReLU kink or a max-pool tie for "
                f"{self.refined + self.kinks} entries (the loss has no derivative there; not a backprop error): ")
        parts = []
        if self.refined:
            parts.append(f"{self.refined} were measured with a smaller step that crosses none")
        if self.kinks:
            parts.append(f"{self.kinks} crossed one even at {self.epsilon * REFINE[-1]:g} and are left out")
        return note + "; ".join(parts)


class _Probe:
    """The loss at the live parameters, and which linear piece each kinked unit was on."""

    def __init__(self, net: Network, maps: np.ndarray, targets: np.ndarray):
        self.net, self.maps, self.targets = net, maps, targets
        self.layers = [*net.layers, net.output]

    def __call__(self) -> tuple[float, list[np.ndarray]]:
        self.net.forward_batch(self.maps)
        loss = self.net.backward_batch(self.targets)
        return loss, [m for layer in self.layers for m in layer.pieces()]

    @staticmethod
    def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
        return all(np.array_equal(x, y) for x, y in zip(a, b))


def _difference(probe: _Probe, flat: np.ndarray, k: int, epsilon: float, pieces) -> tuple[float, int]:
    """Central difference for entry k: (value, 0) with epsilon, (value, 1) with a smaller step,
    (nan, 2) when every step crosses a kink."""
    keep = flat[k]
    for level, step in enumerate((epsilon, *(epsilon * r for r in REFINE))):
        flat[k] = keep + step
        plus, p_plus = probe()
        flat[k] = keep - step
        minus, p_minus = probe()
        flat[k] = keep
        if not pieces or (probe.same(p_plus, pieces) and probe.same(p_minus, pieces)):
            return (plus - minus) / (2 * step), min(level, 1)
    return float("nan"), 2


def _tensor_check(name: str, numeric: np.ndarray, analytic: np.ndarray, kind: np.ndarray,
                  tolerance: float) -> TensorCheck:
    ok = kind < 2
    err = np.where(ok, np.abs(numeric - analytic), 0.0)
    scale = np.maximum(np.abs(numeric) + np.abs(analytic), np.finfo(np.float64).tiny)
    rel = np.where(ok, err / np.where(ok, scale, 1.0), 0.0)
    worst = np.unravel_index(int(np.argmax(err)), err.shape)
    return TensorCheck(name=name, shape=numeric.shape, max_abs_error=float(err.max()),
                       max_rel_error=float(rel.max()), worst_index=tuple(int(i) for i in worst),
                       passed=bool(err.max() <= tolerance), kinks=int(np.sum(kind == 2)),
                       refined=int(np.sum(kind == 1)))


def gradcheck(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epsilon: float = 1e-4,
    tolerance: float = 1e-8,
    progress: bool = False,
) -> GradcheckReport:
    """Compare backprop with central differences on every parameter entry.

    The check runs on a float64 copy of ``net`` (the network itself is not
    changed). For each entry θ, the numerical derivative is
    (L(θ + ε) − L(θ − ε)) / 2ε; an entry fails, as in the toolbox, when it
    differs from the backprop gradient by more than ``tolerance``.

    ReLU and max pooling make the loss only piecewise differentiable. When a step
    changes which piece a unit is on (a ReLU input changes sign, a block's maximum
    moves), the difference quotient straddles a kink and measures no derivative:
    the entry is measured again with ε/10, ε/100, ε/1000, and left out (counted in
    :attr:`TensorCheck.kinks`) if every step crosses one.

    Parameters
    ----------
    net : Network
    x : array_like, shape (N, H, W[, C])
    y : array_like, shape (N,) labels or (N, n_outputs) targets
    epsilon, tolerance : float
    progress : bool
        A progress bar on stderr (two forward and backward passes per entry).

    Returns
    -------
    GradcheckReport
        Max absolute and relative error and the worst entry, per tensor.
    """
    from tqdm.auto import tqdm

    net = net.copy(dtype=np.float64)
    maps, _ = check_images(x, net.image_shape, net.dtype)
    targets = check_targets(y, maps.shape[0], net.n_outputs, net.dtype)
    probe = _Probe(net, maps, targets)
    _, pieces = probe()
    analytic = {name: g.copy() for name, g in net.gradients().items()}
    report = GradcheckReport(epsilon=epsilon, tolerance=tolerance)
    total = sum(p.size for p in net.parameters().values())
    with tqdm(total=total, desc="gradient check", unit="entry", disable=not progress, leave=False,
              mininterval=0.5 if sys.stderr.isatty() else 30.0) as bar:  # a log file: a line every 30 s
        for name, param in net.parameters().items():
            numeric = np.empty(param.shape, dtype=np.float64)
            kind = np.zeros(param.shape, dtype=np.int8)
            flat = param.reshape(-1)  # a view: perturbs the live parameter
            for k in range(flat.size):
                numeric.flat[k], kind.flat[k] = _difference(probe, flat, k, epsilon, pieces)
                bar.update()
            report.tensors.append(_tensor_check(name, numeric, analytic[name], kind, tolerance))
    return report
