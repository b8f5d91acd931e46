"""The fully connected output layer (sigmoid or softmax) and its loss, batch-last.

The layer's few small products and elementwise passes took a dozen NumPy calls
per step, each with its Python overhead, during which a batch slice holds the
GIL; here one call each for the forward pass, the loss and the backward pass.
Arrays are batch-last as the maps: the feature vectors fvᵀ (F, N), the outputs'
transpose oᵀ (K, N), so that every inner loop runs over the batch, contiguous.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit, rjit
from .activation import sigmoid_


@jit
def _combine(out, c, x):
    """out[i] = Σ_j c[i, j]·x[j] for every row i (rows of N numbers, summed in j order).

    W·fvᵀ with c = W; its adjoint Wᵀ·odᵀ with c = Wᵀ (a view).
    """
    for i in range(c.shape[0]):
        acc = out[i]
        acc[:] = 0
        for j in range(c.shape[1]):
            cij, row = c[i, j], x[j]
            for m in range(acc.shape[0]):
                acc[m] += cij * row[m]


@rjit
def mean_rows(d, scale, out):
    """out[k] = scale · Σ_m d[k, m]: a fully connected layer's bias gradient from its d (K, N), scale 1/N."""
    for k in range(d.shape[0]):
        row = d[k]
        total = d.dtype.type(0)
        for m in range(row.shape[0]):
            total += row[m]
        out[k] = total * scale


@jit
def forward(fvt, w, b, softmax, ot, log_ot):
    """oᵀ = σ(W·fvᵀ + b) or softmax over k of the same z (then log oᵀ too).

    Parameters
    ----------
    fvt : (F, N) feature vectors;  w : (K, F);  b : (K,);  softmax : bool
    ot : (K, N), out;  log_ot : (K, N), out (softmax; unused for sigmoid)
    """
    k_out = w.shape[0]
    n = fvt.shape[1]
    _combine(ot, w, fvt)
    for k in range(k_out):
        z = ot[k]
        for m in range(n):
            z[m] += b[k]
    if not softmax:
        sigmoid_(ot.reshape(k_out * n))
        return
    for m in range(n):  # z − max z, log o = that − log Σ exp, o = exp(log o)
        top = ot[0, m]
        for k in range(1, k_out):
            top = max(top, ot[k, m])
        total = 0.0
        for k in range(k_out):
            ot[k, m] -= top
            total += math.exp(ot[k, m])
        shift = math.log(total)
        for k in range(k_out):
            log_ot[k, m] = ot[k, m] - shift
            ot[k, m] = math.exp(log_ot[k, m])


@jit
def loss(ot, yt, log_ot, softmax, et):
    """The loss (½·Σ(o − y)²/N, or −Σ y·log o / N for softmax) and eᵀ = (o − y)ᵀ.

    The squared error is summed as Σ (c·e)² with c = √(½/N), as :func:`convprop.engine.losses.
    half_squared_error` does: no partial sum exceeds the loss, so a loss within the float range
    never overflows on the way (targets of 1e153 did).

    Parameters
    ----------
    ot, yt : (K, N) outputs and targets;  log_ot : (K, N) log o (softmax)
    et : (K, N), out
    """
    k_out, n = ot.shape
    c = math.sqrt(0.5 / n)
    total = 0.0
    for k in range(k_out):
        for m in range(n):
            e = ot[k, m] - yt[k, m]
            et[k, m] = e
            if softmax:
                total += -yt[k, m] * log_ot[k, m]
            else:
                s = e * c
                total += s * s
    return total / n if softmax else total


@rjit
def backward(et, ot, fvt, w, softmax, odt, dw, db, fvdt):
    """od = e·o(1 − o) (sigmoid) or e (softmax: already dℓ/dz); dW = od·fv / N; db = Σ od / N; fvd = Wᵀ·od.

    Parameters
    ----------
    et, ot : (K, N);  fvt : (F, N);  w : (K, F);  softmax : bool
    odt : (K, N), out;  dw : (K, F), out;  db : (K,), out;  fvdt : (F, N) out, or (0, 0) when not needed
    """
    k_out, n = et.shape
    one = ot.dtype.type(1)
    for k in range(k_out):
        for m in range(n):
            odt[k, m] = et[k, m] if softmax else et[k, m] * ((one - ot[k, m]) * ot[k, m])
    scale = ot.dtype.type(1.0 / n)
    mean_rows(odt, scale, db)
    for k in range(k_out):
        d = odt[k]
        for f in range(w.shape[1]):
            x = fvt[f]
            total = d.dtype.type(0)
            for m in range(n):
                total += d[m] * x[m]
            dw[k, f] = total * scale
    if fvdt.size == 0:
        return
    _combine(fvdt, w.T, odt)
