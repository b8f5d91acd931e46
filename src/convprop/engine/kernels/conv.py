"""Direct convolution on batch-last maps: forward, weight gradient; the input gradient reuses the forward.

A convolution layer's products are too thin (6 or 12 output maps) for a GEMM
to pay for the patch matrix around it. Here every output row is accumulated
in place, vectorised over its Wo·N contiguous numbers, five kernel taps per
pass over the row (one load and store of the accumulator per five FMAs), and
the bias and activation are applied while the row is still in cache.
"""

from __future__ import annotations

import numpy as np

from . import winograd
from ._jit import ijit, jit, rjit
from .activation import apply_, derivative
from .copies import copy4
from .dots import row_dots, row_dots2

#: Output rows (Wo·N numbers) up to this many bytes: :func:`weight_layout` takes the weight
#: gradient as flat runs over all rows, whose extra multiply-adds on padding cost less than
#: the row-by-row kernel's per-row start-up (measured on the toolbox network, 2 KiB rows:
#: 12c5 weight gradient 0.52x the time at 25 images, 0.76x at 50 in float32; float64 rows of
#: 3 KiB and more: no gain).
FLAT_ROW_BYTES = 2560

#: The input gradient's two accumulator maps (2·H·W·N numbers) up to this many bytes take
#: :func:`input_grad_flat` for kernels narrower than 5 (5 and wider: always, see :func:`flat_input`).
FLAT_INPUT_BYTES = 131072


#: Layouts of the weight gradient (:func:`weight_layout`).
ROWS, PADDED, SHIFTED = 0, 1, 2


@jit
def weight_layout(stride, kw, width, wo, n, itemsize):
    """How :func:`weight_grad_into` takes the weight gradient of a layer with (C_in, H, ``width``, n)
    inputs and ``wo`` output columns: ROWS (:func:`weight_grad`, row by row, or its strided form),
    PADDED or SHIFTED (:func:`weight_grad_flat`'s layouts).

    Long rows go row by row. Short ones (at most :data:`FLAT_ROW_BYTES`) take the padded layout,
    unless more than 30 % of its products would be zeros (W > 10/7·Wo: small maps, wide kernels),
    where kw shifted copies of x cost less (measured, one thread: the toolbox's 12c5 on 12×12 maps,
    float64: 137 against 175 µs at 25 images, 269 against 322 (row by row) at 50; LeNet's 16c5
    on 14×14, 29 % zeros, float32: 190 against 176, so padded there). The shifted layout also
    takes long rows of such maps: it won on every size measured for them.
    """
    if stride != 1:
        return ROWS
    if 7 * width > 10 * wo:
        return SHIFTED
    return PADDED if wo * n * itemsize <= FLAT_ROW_BYTES else ROWS


@jit
def weight_operands(x, d, kw, layout):
    """:func:`weight_grad_flat`'s operands in the PADDED or SHIFTED layout (:func:`weight_layout`).

    Parameters
    ----------
    x : (C_in, H, W, N), the padded maps of the forward pass;  d : (C_out, Ho, Wo, N), dℓ/dz
    kw : the kernel's width;  layout : PADDED or SHIFTED

    Returns
    -------
    xs : (C_in, Lx);  ds : (C_out, Ld);  row, step, length : ints (see :func:`weight_grad_flat`)
    """
    ci, h, width, n = x.shape
    co, ho, wo, _ = d.shape
    if layout == SHIFTED:
        xv = np.empty((ci, kw, h, wo, n), dtype=x.dtype)  # copy v: x from column v on, Wo wide
        for v in range(kw):
            copy4(x[:, :, v : v + wo], xv[:, v])
        return (xv.reshape(ci, kw * h * wo * n), d.reshape(co, ho * wo * n), wo * n, h * wo * n,
                ho * wo * n)
    dfull = np.zeros((co, ho, width, n), dtype=d.dtype)
    copy4(d, dfull[:, :, :wo])
    return (x.reshape(ci, h * width * n), dfull.reshape(co, ho * width * n), width * n, n,
            ((ho - 1) * width + wo) * n)


@jit
def weight_grad_into(x, d, stride, scale, dw):
    """dw = Σ d ⋆ x · scale on one thread, in the layout :func:`weight_layout` picks, or by F(5, 2)
    (:func:`.winograd.weight_grad`) where :func:`.winograd.fits`.

    Parameters
    ----------
    x : (C_in, H, W, N), the padded maps of the forward pass;  d : (C_out, Ho, Wo, N), dℓ/dz
    stride : int;  scale : 1/N;  dw : (C_out, C_in, kh, kw), out
    """
    co, ci, kh, kw = dw.shape
    layout = weight_layout(stride, kw, x.shape[2], d.shape[2], d.shape[3], d.itemsize)
    pairs = (co + 1) // 2
    if stride == 1 and winograd.fits(dw, d.shape[2]):
        vx, dt = winograd.weight_operands(x, d)
        winograd.weight_grad(vx, dt, scale, dw, 0, pairs * ci)
    elif layout != ROWS:
        xs, ds, row, step, length = weight_operands(x, d, kw, layout)
        weight_grad_flat(xs, ds, row, step, length, scale, dw, 0, pairs * ci)
    elif stride == 1:
        weight_grad(x, d, stride, scale, dw, 0, pairs * ci * kh)
    else:
        weight_grad_strided(x, d, stride, scale, dw, 0, co * ci * kh)


@jit
def flat_input(stride, kw, h, w, n, itemsize):
    """Whether the input gradient of (C_in, h, w, n) maps takes :func:`input_grad_flat` (stride 1).

    Measured against :func:`input_grad` (one thread, 1–128 images, float32 and float64): with five
    or more taps a pass the flat kernel wins or ties at every size (12c5 on 12×12 maps, 50 images,
    float64: 438 against 513–543 µs); with fewer, each pass's load and store of the accumulators
    weighs more, and once the two maps leave L2's faster half (16c3 on 16×16, 50 images, float64:
    205 KB) the row kernel, whose accumulators stay in L1, wins (1,297 against 1,704 µs).
    """
    return stride == 1 and (kw >= 5 or 2 * h * w * n * itemsize <= FLAT_INPUT_BYTES)


@jit
def _row_taps(acc, xr, wrow, n, length):
    """acc[m] += Σ_v wrow[v]·xr[m + v·n] for m < length (stride 1: the row is one flat run).

    The shifted rows are taken as slices: with plain offset arithmetic LLVM does not vectorise.
    """
    kw = wrow.shape[0]
    v = 0
    while v + 5 <= kw:
        w0, w1, w2, w3, w4 = wrow[v], wrow[v + 1], wrow[v + 2], wrow[v + 3], wrow[v + 4]
        o = v * n
        x0, x1, x2 = xr[o : o + length], xr[o + n : o + n + length], xr[o + 2 * n : o + 2 * n + length]
        x3, x4 = xr[o + 3 * n : o + 3 * n + length], xr[o + 4 * n : o + 4 * n + length]
        for m in range(length):
            acc[m] += w0 * x0[m] + w1 * x1[m] + w2 * x2[m] + w3 * x3[m] + w4 * x4[m]
        v += 5
    while v + 2 <= kw:
        w0, w1 = wrow[v], wrow[v + 1]
        o = v * n
        x0, x1 = xr[o : o + length], xr[o + n : o + n + length]
        for m in range(length):
            acc[m] += w0 * x0[m] + w1 * x1[m]
        v += 2
    if v < kw:
        w0 = wrow[v]
        x0 = xr[v * n : v * n + length]
        for m in range(length):
            acc[m] += w0 * x0[m]


@jit
def _row_taps2(acc, acc2, xr, wa, wb, n, length):
    """:func:`_row_taps` for two rows at once (two output maps), sharing every load of xr.

    acc[m] += Σ_v wa[v]·xr[m + v·n];  acc2[m] += Σ_v wb[v]·xr[m + v·n]: each sum in the same
    order as :func:`_row_taps`, so the numbers are the same bit for bit.
    """
    kw = wa.shape[0]
    v = 0
    while v + 5 <= kw:
        a0, a1, a2, a3, a4 = wa[v], wa[v + 1], wa[v + 2], wa[v + 3], wa[v + 4]
        b0, b1, b2, b3, b4 = wb[v], wb[v + 1], wb[v + 2], wb[v + 3], wb[v + 4]
        o = v * n
        x0, x1, x2 = xr[o : o + length], xr[o + n : o + n + length], xr[o + 2 * n : o + 2 * n + length]
        x3, x4 = xr[o + 3 * n : o + 3 * n + length], xr[o + 4 * n : o + 4 * n + length]
        for m in range(length):
            v0, v1, v2, v3, v4 = x0[m], x1[m], x2[m], x3[m], x4[m]
            acc[m] += a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3 + a4 * v4
            acc2[m] += b0 * v0 + b1 * v1 + b2 * v2 + b3 * v3 + b4 * v4
        v += 5
    while v + 2 <= kw:
        a0, a1, b0, b1 = wa[v], wa[v + 1], wb[v], wb[v + 1]
        o = v * n
        x0, x1 = xr[o : o + length], xr[o + n : o + n + length]
        for m in range(length):
            v0, v1 = x0[m], x1[m]
            acc[m] += a0 * v0 + a1 * v1
            acc2[m] += b0 * v0 + b1 * v1
        v += 2
    if v < kw:
        a0, b0 = wa[v], wb[v]
        x0 = xr[v * n : v * n + length]
        for m in range(length):
            v0 = x0[m]
            acc[m] += a0 * v0
            acc2[m] += b0 * v0


@ijit
def _five(w, u):
    """Row u of a 5×5 kernel ``w`` as a tuple of five scalars."""
    return w[u, 0], w[u, 1], w[u, 2], w[u, 3], w[u, 4]


@ijit
def _shifts(r, n, length):
    """The five taps of a flat row ``r`` for a 5-wide kernel: views r[v·n : v·n + length], v < 5."""
    return r[:length], r[n:n + length], r[2 * n:2 * n + length], r[3 * n:3 * n + length], r[4 * n:4 * n + length]


@ijit
def _dot5(w, x, m):
    """w[0]·x[0][m] + … + w[4]·x[4][m], summed left to right (a kernel row's five products)."""
    return w[0] * x[0][m] + w[1] * x[1][m] + w[2] * x[2][m] + w[3] * x[3][m] + w[4] * x[4][m]


@jit
def _taps5x5_2(acc, acc2, r0, r1, r2, r3, r4, wa, wb, n, length):
    """acc[m] += Σ_u Σ_v wa[u, v]·r_u[m + v·n], acc2 likewise with wb: two whole 5×5 kernels in one pass.

    The 5×5 kernel (the toolbox's and LeNet's) in one pass over the accumulators per input map,
    instead of one per kernel row (:func:`_row_taps2`): the accumulators are read and written
    once per 25 taps, and a call's fixed costs (slices, alias checks, the vector loop's
    remainder) are paid once per map: on short rows (few images per batch or per thread) the
    forward convolution runs 1.3–4× faster. Each r_u is one row (stride 1); its five shifted
    slices are views, every load shared by the two kernels wa, wb (5, 5).
    """
    a0, a1, a2, a3, a4 = _five(wa, 0), _five(wa, 1), _five(wa, 2), _five(wa, 3), _five(wa, 4)
    b0, b1, b2, b3, b4 = _five(wb, 0), _five(wb, 1), _five(wb, 2), _five(wb, 3), _five(wb, 4)
    x0, x1, x2 = _shifts(r0, n, length), _shifts(r1, n, length), _shifts(r2, n, length)
    x3, x4 = _shifts(r3, n, length), _shifts(r4, n, length)
    for m in range(length):
        acc[m] += (((_dot5(a0, x0, m) + _dot5(a1, x1, m)) + _dot5(a2, x2, m)) + _dot5(a3, x3, m)) + _dot5(a4, x4, m)
        acc2[m] += (((_dot5(b0, x0, m) + _dot5(b1, x1, m)) + _dot5(b2, x2, m)) + _dot5(b3, x3, m)) + _dot5(b4, x4, m)


@jit
def _taps5x5_2x2(a0, b0, a1, b1, r0, r1, r2, r3, r4, r5, wa, wb, n, length):
    """:func:`_taps5x5_2` for two output rows at once: rows r (a0, b0) and r + 1 (a1, b1) of two maps
    from the six input rows r0 … r5 they span.

    Each output's sum is taken in :func:`_taps5x5_2`'s order (kernel row by kernel row, each row's
    five products, then added to the accumulator), so the numbers are the same bit for bit; the
    four input rows the two output rows share are loaded once, and a call's fixed costs are paid
    once per two rows. The toolbox's 12c5 forward pass ran 12 % (float64) and 19–23 % (float32)
    faster with 25 and 50 images.
    """
    u0, u1, u2, u3, u4 = _five(wa, 0), _five(wa, 1), _five(wa, 2), _five(wa, 3), _five(wa, 4)
    v0, v1, v2, v3, v4 = _five(wb, 0), _five(wb, 1), _five(wb, 2), _five(wb, 3), _five(wb, 4)
    x0, x1, x2 = _shifts(r0, n, length), _shifts(r1, n, length), _shifts(r2, n, length)
    x3, x4, x5 = _shifts(r3, n, length), _shifts(r4, n, length), _shifts(r5, n, length)
    for m in range(length):
        p, q = _dot5(u0, x0, m), _dot5(v0, x0, m)  # output row r: input rows 0 … 4
        s, t = _dot5(u0, x1, m), _dot5(v0, x1, m)  # output row r + 1: input rows 1 … 5
        p, q = p + _dot5(u1, x1, m), q + _dot5(v1, x1, m)
        s, t = s + _dot5(u1, x2, m), t + _dot5(v1, x2, m)
        p, q = p + _dot5(u2, x2, m), q + _dot5(v2, x2, m)
        s, t = s + _dot5(u2, x3, m), t + _dot5(v2, x3, m)
        p, q = p + _dot5(u3, x3, m), q + _dot5(v3, x3, m)
        s, t = s + _dot5(u3, x4, m), t + _dot5(v3, x4, m)
        p, q = p + _dot5(u4, x4, m), q + _dot5(v4, x4, m)
        s, t = s + _dot5(u4, x5, m), t + _dot5(v4, x5, m)
        a0[m] += p
        b0[m] += q
        a1[m] += s
        b1[m] += t


@jit
def _row_taps_strided(acc, xr, wrow, n, wo, stride):
    """acc[c·n + k] += Σ_v wrow[v]·xr[(c·stride + v)·n + k]: only the kept columns."""
    for c in range(wo):
        for v in range(wrow.shape[0]):
            wv = wrow[v]
            o = (c * stride + v) * n
            for k in range(n):
                acc[c * n + k] += wv * xr[o + k]


@jit
def forward(x, w, b, stride, code, slope, z, lo, hi):
    """z = f(b + Σ_i Σ_u Σ_v w[j, i, u, v] · x[i, r + u, c + v, n]), in place.

    Output maps are taken in pairs (2q, 2q + 1) that share every load of x; the work
    items t = q·Ho + r, lo ≤ t < hi, run over pairs (the last map alone when C_out is odd).
    Where :func:`.winograd.fits` (5×5 kernels on 2+ input maps in float64, 4+ in float32, Wo even),
    :func:`.winograd.forward` computes the same sums with 15 multiply-adds an output and input map
    instead of 25, over the same number of work items (its own order of them).

    Parameters
    ----------
    x : (C_in, H, W, N), padded maps, C-contiguous
    w : (C_out, C_in, kh, kw) correlation kernels;  b : (C_out,)
    stride : int (1 here; :func:`forward_strided` takes the others)
    code, slope : the activation (see :mod:`.activation`)
    z : (C_out, Ho, Wo, N), out
    """
    co, ho, wo, n = z.shape
    if winograd.fits(w, wo):
        winograd.forward(x, w, b, code, slope, z, lo, hi)
        return
    ci, kh = w.shape[1], w.shape[2]
    width = x.shape[2] * n
    length = wo * n
    five = kh == 5 and w.shape[3] == 5
    t = lo
    while t < hi:
        j = 2 * (t // ho)
        r = t % ho
        if five and j + 1 < co and r + 1 < ho and t + 1 < hi:  # rows r and r + 1 in one pass
            _forward_rows5x5_2x2(x, w, b, code, slope, z, j, r)
            t += 2
            continue
        zr = z[j, r].reshape(length)
        zr[:] = b[j]
        if j + 1 < co:
            z2 = z[j + 1, r].reshape(length)
            z2[:] = b[j + 1]
            for i in range(ci):
                if five:
                    _taps5x5_2(zr, z2, x[i, r].reshape(width), x[i, r + 1].reshape(width), x[i, r + 2].reshape(width),
                               x[i, r + 3].reshape(width), x[i, r + 4].reshape(width), w[j, i], w[j + 1, i], n, length)
                    continue
                for u in range(kh):
                    _row_taps2(zr, z2, x[i, r + u].reshape(width), w[j, i, u], w[j + 1, i, u], n, length)
            apply_(z2, code, slope)
        else:
            for i in range(ci):
                for u in range(kh):
                    _row_taps(zr, x[i, r + u].reshape(width), w[j, i, u], n, length)
        apply_(zr, code, slope)
        t += 1


@jit
def _forward_rows5x5_2x2(x, w, b, code, slope, z, j, r):
    """:func:`forward`'s output rows r and r + 1 of maps j and j + 1 (5×5 kernels, stride 1)."""
    n = z.shape[3]
    width, length = x.shape[2] * n, z.shape[2] * n
    za0, za1 = z[j, r].reshape(length), z[j, r + 1].reshape(length)
    zb0, zb1 = z[j + 1, r].reshape(length), z[j + 1, r + 1].reshape(length)
    za0[:] = b[j]
    za1[:] = b[j]
    zb0[:] = b[j + 1]
    zb1[:] = b[j + 1]
    for i in range(w.shape[1]):
        _taps5x5_2x2(za0, zb0, za1, zb1, x[i, r].reshape(width), x[i, r + 1].reshape(width),
                     x[i, r + 2].reshape(width), x[i, r + 3].reshape(width), x[i, r + 4].reshape(width),
                     x[i, r + 5].reshape(width), w[j, i], w[j + 1, i], n, length)
    for row in (zb0, za0, zb1, za1):
        apply_(row, code, slope)


@jit
def forward_strided(x, w, b, stride, code, slope, z, lo, hi):
    """:func:`forward` for a stride s > 1: only the kept positions r·s, c·s are computed."""
    co, ho, wo, n = z.shape
    ci, kh = w.shape[1], w.shape[2]
    width = x.shape[2] * n
    length = wo * n
    for t in range(lo, hi):
        j = t // ho
        r = t - j * ho
        zr = z[j, r].reshape(length)
        zr[:] = b[j]
        for i in range(ci):
            for u in range(kh):
                _row_taps_strided(zr, x[i, r * stride + u].reshape(width), w[j, i, u], n, wo, stride)
        apply_(zr, code, slope)


@rjit
def _row_dots_strided(dw, dr, xr, n, wo, stride, scale):
    """dw[v] += scale · Σ_c Σ_k dr[c·n + k]·xr[(c·stride + v)·n + k]."""
    for v in range(dw.shape[0]):
        s0 = dr.dtype.type(0)
        for c in range(wo):
            o = (c * stride + v) * n
            d0, x0 = dr[c * n : c * n + n], xr[o : o + n]
            for k in range(n):
                s0 += d0[k] * x0[k]
        dw[v] += s0 * scale


@jit
def input_grad(dpad, wr, stride, dx, lo, hi):
    """dx[i, p, q, n] = Σ_j Σ_u Σ_v' wr[i, j, u, v'] · dpad[j, p − u, q + v', n]: the 'full' correlation.

    With dpad[j, r, q + kw − 1] = d[j, r, q] (d on the stride-1 grid, zero-padded by
    kw − 1 columns on each side) and wr[i, j, u, v'] = w[j, i, u, kw − 1 − v'], this is
    dx[i, p, q] = Σ_j Σ_u Σ_v d[j, p − u, q − v] · w[j, i, u, v]. Rows p − u outside d,
    or off the stride's grid, are skipped rather than padded.

    Parameters
    ----------
    dpad : (C_out, Hv, Wv + 2(kw − 1), N), C-contiguous
    wr : (C_in, C_out, kh, kw)
    dx : (C_in, Hv + kh − 1, Wv + kw − 1, N), out; work items: pairs of input maps × rows
    """
    ci, hp, wp, n = dx.shape
    co, hv = dpad.shape[0], dpad.shape[1]
    kh = wr.shape[2]
    width = dpad.shape[2] * n
    length = wp * n
    for t in range(lo, hi):  # input maps in pairs sharing the loads of dpad: t = q·H + p
        i = 2 * (t // hp)
        p = t % hp
        acc = dx[i, p].reshape(length)
        acc[:] = 0
        pair = i + 1 < ci
        acc2 = dx[i + 1 if pair else i, p].reshape(length)
        if pair:
            acc2[:] = 0
        for j in range(co):
            if pair and kh == 5 and wr.shape[3] == 5 and stride == 1 and 4 <= p < hv:  # all five rows of d
                _taps5x5_2(acc, acc2, dpad[j, p].reshape(width), dpad[j, p - 1].reshape(width),
                           dpad[j, p - 2].reshape(width), dpad[j, p - 3].reshape(width),
                           dpad[j, p - 4].reshape(width), wr[i, j], wr[i + 1, j], n, length)
                continue
            for u in range(kh):
                r = p - u
                if 0 <= r < hv and r % stride == 0:
                    row = dpad[j, r].reshape(width)
                    if pair:
                        _row_taps2(acc, acc2, row, wr[i, j, u], wr[i + 1, j, u], n, length)
                    else:
                        _row_taps(acc, row, wr[i, j, u], n, length)


@rjit
def weight_grad(x, d, stride, scale, dw, lo, hi):
    """dw[j, i, u, v] = Σ_r scale · Σ_c Σ_n d[j, r, c, n] · x[i, r + u, c + v, n].

    Output maps are taken in pairs (2q, 2q + 1) sharing every load of x; work items
    t = (q·C_in + i)·kh + u, lo ≤ t < hi (the last map alone when C_out is odd).

    Parameters
    ----------
    x : (C_in, H, W, N), the padded maps of the forward pass
    d : (C_out, Ho, Wo, N), dℓ/dz
    stride : int (1 here; :func:`weight_grad_strided` takes the others)
    scale : 1/N (the batch mean)
    dw : (C_out, C_in, kh, kw), out; each (j, i, u) row is one thread's, summed in a fixed order
    """
    co, ci, kh, kw = dw.shape
    _, ho, wo, n = d.shape
    width = x.shape[2] * n
    length = wo * n
    for t in range(lo, hi):
        j = 2 * (t // (ci * kh))
        i = (t // kh) % ci
        u = t % kh
        row = dw[j, i, u]
        row[:] = 0
        if j + 1 < co:
            row2 = dw[j + 1, i, u]
            row2[:] = 0
            for r in range(ho):
                row_dots2(row, row2, d[j, r].reshape(length), d[j + 1, r].reshape(length),
                           x[i, r + u].reshape(width), n, length, scale)
        else:
            for r in range(ho):
                row_dots(row, d[j, r].reshape(length), x[i, r + u].reshape(width), n, length, scale)


@rjit
def weight_grad_strided(x, d, stride, scale, dw, lo, hi):
    """:func:`weight_grad` for a stride s > 1: x[i, r·s + u, c·s + v, n]."""
    co, ci, kh, kw = dw.shape
    _, ho, wo, n = d.shape
    width = x.shape[2] * n
    length = wo * n
    for t in range(lo, hi):
        j = t // (ci * kh)
        i = (t // kh) % ci
        u = t % kh
        row = dw[j, i, u]
        row[:] = 0
        for r in range(ho):
            _row_dots_strided(row, d[j, r].reshape(length), x[i, r * stride + u].reshape(width), n, wo, stride, scale)


@rjit
def bias_grad(d, scale, db, lo, hi):
    """db[j] = scale · Σ_r Σ_c Σ_n d[j, r, c, n]."""
    co = d.shape[0]
    length = d.shape[1] * d.shape[2] * d.shape[3]
    for j in range(lo, hi):
        dj = d[j].reshape(length)
        part = dj.dtype.type(0)
        for m in range(length):
            part += dj[m]
        db[j] = part * scale


@jit
def backward(delta, a, x, w, code, slope, stride, need_dx):
    """A whole layer's backward pass on one thread, in one call (:func:`backward_into`, allocating).

    Returns
    -------
    d : (C_out, Ho, Wo, N);  dw : like w;  db : (C_out,);  dx : like x, or (0, 0, 0, 0) when not needed
    """
    d, dw, db = np.empty_like(a), np.empty_like(w), np.empty(w.shape[0], dtype=w.dtype)
    dx = np.empty_like(x) if need_dx else np.empty((0, 0, 0, 0), dtype=x.dtype)
    backward_into(delta, a, x, w, code, slope, stride, d, dw, db, dx)
    return d, dw, db, dx


@jit
def backward_into(delta, a, x, w, code, slope, stride, d, dw, db, dx):
    """A whole layer's backward pass on one thread, in one call: the kernels above in sequence.

    d = δ·f'(z);  dw = Σ d ⋆ x / N;  db = Σ d / N;  dx = the 'full' correlation of d with w
    (as :func:`input_grad`: on d zero-padded by kw − 1 columns and placed on the stride's grid; by the
    adjoint of F(2, 5), :func:`.winograd.input_grad`, where :func:`.winograd.fits_input`).
    One call instead of one per kernel: a batch slice's thread then takes the GIL back once per
    layer, where each hand-back can wait for the other slice's Python (tens of µs each). The
    weight gradient of rows of at most :data:`FLAT_ROW_BYTES` (:func:`weight_grad_flat`) and the
    input gradient where :func:`flat_input` says so (:func:`input_grad_flat`) are taken as long
    flat runs over all rows.

    Parameters
    ----------
    delta, a : (C_out, Ho, Wo, N), the output's delta and the layer's output f(z)
    x : (C_in, H, W, N), the (padded) input of the forward pass;  w : (C_out, C_in, kh, kw)
    code, slope : the activation;  stride : int
    d : like a;  dw : like w;  db : (C_out,);  dx : like x, or empty when the input's delta is not needed (out)
    """
    derivative(delta, a, code, slope, d, 0, d.shape[0] * d.shape[1])
    co, ci, kh, kw = w.shape
    n = d.shape[3]
    scale = d.dtype.type(1.0 / n)
    weight_grad_into(x, d, stride, scale, dw)
    bias_grad(d, scale, db, 0, co)
    if dx.size == 0:
        return
    if stride == 1 and winograd.fits_input(w, d.shape[2]):
        winograd.input_grad(winograd.input_operands(d), w, dx, 0, (ci + 1) // 2)
        return
    flat, flipped, placed = input_operands(d, w, stride, x.shape[1], x.shape[2])
    if flat:
        input_grad_flat(placed, flipped, dx, 0, (ci + 1) // 2)
    else:
        input_grad(placed, flipped, stride, dx, 0, (ci + 1) // 2 * x.shape[1])


@jit
def input_operands(d, w, stride, h, width):
    """The input gradient's operands for (C_in, ``h``, ``width``, N) inputs: whether it takes
    :func:`input_grad_flat` (:func:`flat_input`), the flipped kernels and d laid out for it.

    Parameters
    ----------
    d : (C_out, Ho, Wo, N), dℓ/dz;  w : (C_out, C_in, kh, kw);  stride : int

    Returns
    -------
    flat : bool
    wr : (C_in, C_out, kh, kw), wr[i, j, u, v'] = w[j, i, u, kw − 1 − v']
    placed : :func:`input_grad_flat`'s dflat (d's rows ``width`` apart, below a zero row), or
        :func:`input_grad`'s dpad (d on the stride-1 grid, zero-padded by kw − 1 columns)
    """
    co, ci, kh, kw = w.shape
    n = d.shape[3]
    hv, wv = h - kh + 1, width - kw + 1  # the stride-1 'valid' grid
    flipped = np.empty((ci, co, kh, kw), dtype=w.dtype)
    for j in range(co):
        for i in range(ci):
            for u in range(kh):
                for v in range(kw):
                    flipped[i, j, u, v] = w[j, i, u, kw - 1 - v]
    if flat_input(stride, kw, h, width, n, d.itemsize):
        placed = np.zeros((co, hv + 1, width, n), dtype=d.dtype)
        copy4(d, placed[:, 1:, :wv])
        return True, flipped, placed
    placed = np.zeros((co, hv, wv + 2 * (kw - 1), n), dtype=d.dtype)
    copy4(d, placed[:, ::stride, kw - 1 : kw - 1 + wv : stride])
    return False, flipped, placed


@rjit
def weight_grad_flat(xs, ds, row, step, length, scale, dw, lo, hi):
    """:func:`weight_grad` (stride 1) as one long dot product per tap, over all rows at once.

    dw[j, i, u, v] = scale · Σ_m ds[j][m] · xs[i][m + u·row + v·step] for m < length, in one of
    two layouts (:func:`weight_layout`, :func:`weight_grad_into`):

    * padded: d zero-padded to the input's width W (ds[j] = dfull[j].flat, dfull[j, r, c] =
      d[j, r, c] for c < Wo, else 0), xs[i] = x[i].flat, row = W·N, step = N, length =
      ((Ho − 1)·W + Wo)·N: the padded columns meet the next row's first columns and add
      nothing, for (W − Wo)/W more multiply-adds;
    * shifted: xs[i] holds kw copies of x[i], copy v of width Wo from column v on (xs[i] =
      xv[i].flat, xv : (C_in, kw, H, Wo, N)), ds[j] = d[j].flat, row = Wo·N, step = H·Wo·N,
      length = Ho·Wo·N: no multiply-add is wasted, for kw copies of x.

    For short rows (small maps, few images) either pays: per output row, :func:`weight_grad`
    starts and reduces ten running sums (Ho·C_in·kh times a pair of maps); here kh·C_in times.

    Parameters
    ----------
    xs : (C_in, Lx);  ds : (C_out, Ld);  row, step, length : as above;  scale : 1/N
    dw : (C_out, C_in, kh, kw), out; work items t = q·C_in + i, pairs of output maps (2q, 2q + 1)
    """
    co, ci, kh, kw = dw.shape
    for t in range(lo, hi):
        j = 2 * (t // ci)
        i = t % ci
        xf, da = xs[i], ds[j]
        if j + 1 < co:
            db = ds[j + 1]
            for u in range(kh):
                dwa, dwb = dw[j, i, u], dw[j + 1, i, u]
                dwa[:] = 0
                dwb[:] = 0
                row_dots2(dwa, dwb, da, db, xf[u * row :], step, length, scale)
        else:
            for u in range(kh):
                dwa = dw[j, i, u]
                dwa[:] = 0
                row_dots(dwa, da, xf[u * row :], step, length, scale)


@jit
def input_grad_flat(dflat, wr, dx, lo, hi):
    """:func:`input_grad` (stride 1) with each kernel row's taps applied to all rows of d at once.

    d's rows are laid out Wp = Wv + kw − 1 columns wide (dx's width), d in the first Wv, zeros in
    the rest, below a row of zeros. Output (p, q) takes Σ_v' wr[i, j, u, v']·xr[m + v'·N] at
    m = ((p − u)·Wp + q)·N, where xr is dflat[j] flat from its (Wv·N)-th number (d's column
    q + v' − kw + 1): a tap left of d's row lands in the zero columns that end the row above
    (or in the zero row), one right of it in its own. For each (j, u) that is one run over
    m < Hv·Wp·N, adding into rows u… of dx, which it fills exactly: no column is computed to
    be dropped. One long pass per (j, u) instead of one short one per output row
    (:func:`input_grad`, whose per-row start-up then costs more); the sums are
    :func:`input_grad`'s, taken in the same order (but for its 5×5 kernel's).

    Parameters
    ----------
    dflat : (C_out, Hv + 1, Wp, N), C-contiguous: zeros, d in [:, 1:, :Wv]
    wr : (C_in, C_out, kh, kw), as :func:`input_grad`'s
    dx : (C_in, Hp, Wp, N), out; work items: pairs of input maps (2q, 2q + 1)
    """
    ci, hp, wp, n = dx.shape
    co, kh, kw = wr.shape[1], wr.shape[2], wr.shape[3]
    row = wp * n
    length = (hp - kh + 1) * row
    start = (wp - kw + 1) * n
    for t in range(lo, hi):
        i = 2 * t
        pair = i + 1 < ci
        acc = dx[i].reshape(hp * row)
        acc[:] = 0
        acc2 = dx[i + 1 if pair else i].reshape(hp * row)
        if pair:
            acc2[:] = 0
        for j in range(co):
            xr = dflat[j].reshape(dflat.shape[1] * row)[start:]
            for u in range(kh):
                if pair:
                    _row_taps2(acc[u * row :], acc2[u * row :], xr, wr[i, j, u], wr[i + 1, j, u], n, length)
                else:
                    _row_taps(acc[u * row :], xr, wr[i, j, u], n, length)
