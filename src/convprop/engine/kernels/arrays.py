"""Elementwise work over all of a network's parameter-shaped arrays in one call.

A training step touched each parameter tensor with a few NumPy calls (the SGD
update, the divergence guard's finiteness check, the join of the batch slices'
gradients): some 40 calls of 1–3 µs on arrays of a few hundred numbers, all
while the other slice threads wait for the next step. Here each is one call over
tuples of flattened (1-D) arrays. No ``fastmath`` at all: every product and sum
is rounded as NumPy rounds it (no fused multiply-add), so the numbers are NumPy's
bit for bit.
"""

from __future__ import annotations

import numpy as np

from ._jit import plain, rjit


@plain
def sgd(params, grads, alpha):
    """params[j] −= alpha · grads[j] for every j, alpha in the arrays' dtype (NumPy's ``p -= alpha * g``)."""
    for j in range(len(params)):
        p, g = params[j], grads[j]
        a = p.dtype.type(alpha)
        for i in range(p.shape[0]):
            p[i] = p[i] - a * g[i]


@plain
def divide(a, d):
    """a[i] /= d for every i, d in a's dtype (NumPy's ``a /= d``, on caches a step's kernels have just
    cooled: 5–6 µs against 11–13 µs for the MPI hook's buffer)."""
    b = a.dtype.type(d)
    for i in range(a.shape[0]):
        a[i] = a[i] / b


@rjit
def all_finite(arrays):
    """Whether no array holds NaN or ±inf.

    Σ (a_i − a_i) is 0 when every a_i is finite and NaN otherwise (∞ − ∞ is NaN), whatever the
    order of the sum: so it may be reassociated, and the loop vectorises (a test with an early
    exit per element does not: 40 µs a step for the LeNet-style network's parameters).
    """
    for j in range(len(arrays)):
        a = arrays[j]
        if a.shape[0] == 0:
            continue
        total = a[0] - a[0]
        for i in range(1, a.shape[0]):
            total += a[i] - a[i]
        if not total == 0:
            return False
    return True


@plain
def weighted_join(parts, weights, outs):
    """outs[j] = Σ_s weights[s] · parts[s][j], summed in slice order (NumPy's ``t = a·w0; t += b·w1 …``).

    Parameters
    ----------
    parts : tuple (one per slice) of tuples of 1-D arrays (one per parameter)
    weights : (slices,) float64, cast to the arrays' dtype;  outs : tuple of 1-D arrays, out
    """
    for j in range(len(outs)):
        out = outs[j]
        w0 = out.dtype.type(weights[0])
        first = parts[0][j]
        for i in range(out.shape[0]):
            out[i] = first[i] * w0
        for s in range(1, len(parts)):
            w = out.dtype.type(weights[s])
            part = parts[s][j]
            for i in range(out.shape[0]):
                out[i] = out[i] + part[i] * w


@plain
def adam(params, grads, exp_avgs, exp_avg_sqs, consts, flags):
    """Adam's update of every parameter in one call, each product and sum rounded in the arrays'
    dtype as :meth:`convprop.engine.optim.Adam._update`'s NumPy expressions round them.

    Parameters
    ----------
    params, grads, exp_avgs, exp_avg_sqs : tuples of 1-D arrays (one per parameter), the first,
        third and fourth changed in place
    consts : (8,) float64: β₁, 1 − β₁, β₂, 1 − β₂, √(1 − β₂ᵗ), eps, lr / (1 − β₁ᵗ), then the weight
        decay term: wd (L2) or 1 − lr·wd (decoupled)
    flags : (2,) int64: weight decay on, decoupled
    """
    # the flags read once, here: read from their array inside the loop, they could (for all LLVM
    # knows) have been changed by the loop's stores, and the loop did not vectorise (4 ns an element,
    # 258 µs a step for the LeNet-style network's 62k float32 parameters; 39 µs so, the same bits)
    decay, decoupled = flags[0] != 0, flags[1] != 0
    for j in range(len(params)):
        p, g, m, v = params[j], grads[j], exp_avgs[j], exp_avg_sqs[j]
        t = p.dtype.type
        b1, c1, b2, c2 = t(consts[0]), t(consts[1]), t(consts[2]), t(consts[3])
        s2, eps, step, wd = t(consts[4]), t(consts[5]), t(consts[6]), t(consts[7])
        for i in range(p.shape[0]):
            gi, pi = g[i], p[i]
            if decay:
                if decoupled:
                    pi = pi * wd
                else:
                    gi = gi + wd * pi
            mi = m[i] * b1
            mi = mi + c1 * gi
            vi = v[i] * b2
            vi = vi + c2 * (gi * gi)
            denom = np.sqrt(vi) / s2
            denom = denom + eps
            m[i], v[i] = mi, vi
            p[i] = pi - step * (mi / denom)
