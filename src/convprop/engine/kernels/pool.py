"""Mean and max pooling over non-overlapping blocks of batch-last maps, and their adjoints.

Same numbers as :mod:`convprop.engine.ops` (sums in the same order, the same
tie rule); one pass over memory each, shared over threads by output rows.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit


@jit
def mean_pool(a, s, out, lo, hi):
    """out[c, p, q, n] = (Σ_u Σ_v a[c, p·s + u, q·s + v, n]) · (1/s²), summed u-major as ops.mean_pool.

    a : (C, H, W, N);  out : (C, H/s, W/s, N)
    """
    ch, hp, wp, n = out.shape
    inv = a.dtype.type(1.0 / (s * s))
    for t in range(lo, hi):  # t = c·Hp + p
        c = t // hp
        p = t - c * hp
        orow = out[c, p]
        for q in range(wp):
            for k in range(n):
                orow[q, k] = a[c, p * s, q * s, k]
        for u in range(s):
            arow = a[c, p * s + u]
            for q in range(wp):
                for v in range(s):
                    if u or v:
                        for k in range(n):
                            orow[q, k] += arow[q * s + v, k]
        for q in range(wp):
            for k in range(n):
                orow[q, k] *= inv


@jit
def mean_pool_backward(delta, s, out, lo, hi):
    """out[c, p·s + u, q·s + v, n] = delta[c, p, q, n] / s².

    delta : (C, Hp, Wp, N);  out : (C, Hp·s, Wp·s, N)
    """
    ch, hp, wp, n = delta.shape
    ss = delta.dtype.type(s * s)
    # For s a power of two, ·(1/s²) is the same rounding as /s² (an exact power of two), and
    # a multiplication, not a division (the 2x2 pass over 6x24x24 maps of 50 images: 96 -> 31 µs
    # in float64, 43 -> 17 µs in float32; the same bits).
    inv = delta.dtype.type(1.0 / (s * s)) if s & (s - 1) == 0 else delta.dtype.type(0)
    for t in range(lo, hi):  # t = c·Hp + p
        c = t // hp
        p = t - c * hp
        drow = delta[c, p]
        for u in range(s):
            orow = out[c, p * s + u]
            for q in range(wp):
                for v in range(s):
                    if inv != 0:
                        for k in range(n):
                            orow[q * s + v, k] = drow[q, k] * inv
                    else:
                        for k in range(n):
                            orow[q * s + v, k] = drow[q, k] / ss


@jit
def max_pool(a, s, out, arg, lo, hi):
    """out = max of each s×s block; arg = u·s + v of its FIRST maximum in row-major order.

    a : (C, H, W, N) (rows / columns past the last whole block are ignored);
    out, arg : (C, H//s, W//s, N), arg of an integer type
    """
    ch, hp, wp, n = out.shape
    # An output row's arg-max is kept in int32 and stored into arg after the row: with arg's uint8
    # in the loop (float32 compared, uint8 selected) the loop did not vectorise and ran at the speed
    # of its mispredicted branches (6×28×28 maps of 25 images: 330 µs float32, 354 µs float64;
    # 77 and 95 µs so; the same numbers).
    wide = np.empty((wp, n), dtype=np.int32)
    for t in range(lo, hi):  # t = c·Hp + p
        c = t // hp
        p = t - c * hp
        orow, grow = out[c, p], arg[c, p]
        arow = a[c, p * s]
        for q in range(wp):
            for k in range(n):
                orow[q, k] = arow[q * s, k]
                wide[q, k] = 0
        for u in range(s):
            arow = a[c, p * s + u]
            for q in range(wp):
                for v in range(s):
                    if u or v:
                        here = np.int32(u * s + v)
                        for k in range(n):
                            val, top = arow[q * s + v, k], orow[q, k]
                            better = val > top  # False for a NaN either side: the first one stays
                            orow[q, k] = val if better else top
                            wide[q, k] = here if better else wide[q, k]
        for q in range(wp):
            for k in range(n):
                grow[q, k] = wide[q, k]


@jit
def max_pool_backward(delta, arg, s, out, lo, hi):
    """out[c, p·s + u, q·s + v, n] = delta[c, p, q, n] where u·s + v = arg, else 0.

    out : (C, H, W, N), zero-filled by the caller (rows / columns past the blocks stay 0)
    """
    ch, hp, wp, n = delta.shape
    zero = delta.dtype.type(0)
    for t in range(lo, hi):  # t = c·Hp + p
        c = t // hp
        p = t - c * hp
        drow, grow = delta[c, p], arg[c, p]
        for u in range(s):
            orow = out[c, p * s + u]
            for q in range(wp):
                for v in range(s):
                    here = u * s + v
                    for k in range(n):
                        orow[q * s + v, k] = drow[q, k] if grow[q, k] == here else zero
