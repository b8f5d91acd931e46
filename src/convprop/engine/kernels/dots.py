"""Dot products of a row of d with shifted runs of x: the weight gradient's sums (:mod:`.conv`, :mod:`.winograd`).

Reductions, so compiled with ``rjit``: the sums may be reassociated so that they vectorise (the
order is then the compiler's, fixed for a given machine; it never depends on the thread count).
"""

from __future__ import annotations

from ._jit import ijit, rjit


@ijit
def _add5(dw, v, s0, s1, s2, s3, s4, scale):
    """dw[v + k] += s_k · scale for k < 5: five taps' sums into their kernel row."""
    dw[v] += s0 * scale
    dw[v + 1] += s1 * scale
    dw[v + 2] += s2 * scale
    dw[v + 3] += s3 * scale
    dw[v + 4] += s4 * scale


@ijit
def _runs5(xr, o, n, length):
    """The five taps' runs of xr from offset o: views xr[o + k·n : o + k·n + length], k < 5."""
    return (xr[o : o + length], xr[o + n : o + n + length], xr[o + 2 * n : o + 2 * n + length],
            xr[o + 3 * n : o + 3 * n + length], xr[o + 4 * n : o + 4 * n + length])


@rjit
def row_dots(dw, dr, xr, n, length, scale):
    """dw[v] += scale · Σ_m dr[m]·xr[m + v·n] for every v (stride 1), five v per pass over dr.

    ``n`` is the step from one tap's run to the next: N within a row of maps, H·Wo·N between
    :func:`.conv.weight_grad_flat`'s shifted copies, Wo/2·N between rows of :mod:`.winograd`'s transforms.
    """
    kw = dw.shape[0]
    v = 0
    while v < kw:
        if v + 5 <= kw:
            x0, x1, x2, x3, x4 = _runs5(xr, v * n, n, length)
            s0 = s1 = s2 = s3 = s4 = dr.dtype.type(0)
            for m in range(length):
                dm = dr[m]
                s0 += dm * x0[m]
                s1 += dm * x1[m]
                s2 += dm * x2[m]
                s3 += dm * x3[m]
                s4 += dm * x4[m]
            _add5(dw, v, s0, s1, s2, s3, s4, scale)
            v += 5
        else:
            x0 = xr[v * n : v * n + length]
            s0 = dr.dtype.type(0)
            for m in range(length):
                s0 += dr[m] * x0[m]
            dw[v] += s0 * scale
            v += 1


@rjit
def row_dots2(dwa, dwb, da, db, xr, n, length, scale):
    """:func:`row_dots` for two output maps at once (rows da, db of d), sharing every load of xr."""
    kw = dwa.shape[0]
    v = 0
    while v < kw:
        if v + 5 <= kw:
            x0, x1, x2, x3, x4 = _runs5(xr, v * n, n, length)
            a0 = a1 = a2 = a3 = a4 = b0 = b1 = b2 = b3 = b4 = da.dtype.type(0)
            for m in range(length):
                p, q = da[m], db[m]
                v0, v1, v2, v3, v4 = x0[m], x1[m], x2[m], x3[m], x4[m]
                a0 += p * v0
                a1 += p * v1
                a2 += p * v2
                a3 += p * v3
                a4 += p * v4
                b0 += q * v0
                b1 += q * v1
                b2 += q * v2
                b3 += q * v3
                b4 += q * v4
            _add5(dwa, v, a0, a1, a2, a3, a4, scale)
            _add5(dwb, v, b0, b1, b2, b3, b4, scale)
            v += 5
        else:
            x0 = xr[v * n : v * n + length]
            a0 = b0 = da.dtype.type(0)
            for m in range(length):
                a0 += da[m] * x0[m]
                b0 += db[m] * x0[m]
            dwa[v] += a0 * scale
            dwb[v] += b0 * scale
            v += 1
