"""A 5×5 convolution by Winograd's minimal filtering F(2, 5): 6 products per 2 outputs of a row, not 10.

Two outputs of a 5-tap correlation, y[c] = Σ_v g[v]·x[c + v] (c = 0, 1), from six inputs:

    y = Aᵀ[(G g) ⊙ (Bᵀ x)]     (Lavin & Gray 2016, "Fast algorithms for convolutional neural
                                networks"; interpolation points 0, 1, −1, 2, −2, ∞)

    Bᵀ = [4  0 −5  0  1  0]    G = [ 1/4    0     0     0     0 ]    Aᵀ = [1  1  1  1  1  0]
         [0 −4 −4  1  1  0]        [−1/6  −1/6  −1/6  −1/6  −1/6]         [0  1 −1  2 −2  1]
         [0  4 −4 −1  1  0]        [−1/6   1/6  −1/6   1/6  −1/6]
         [0 −2 −1  2  1  0]        [ 1/24  1/12  1/6   1/3   2/3]
         [0  2 −1 −2  1  0]        [ 1/24 −1/12  1/6  −1/3   2/3]
         [0  4  0 −5  0  1]        [  0     0     0     0     1 ]

Applied along the rows of batch-last maps (C, H, W, N): every input row is transformed once,
V[i, row, ξ, t, n] = Σ_k Bᵀ[ξ, k]·x[i, row, 2t + k, n]; every kernel row once,
U[j, i, u, ξ] = Σ_v G[ξ, v]·w[j, i, u, v]; the two columns 2t, 2t + 1 of an output row are then

    z[j, r, 2t + c, n] = f(b[j] + Σ_ξ Aᵀ[c, ξ] · Σ_i Σ_u U[j, i, u, ξ]·V[i, r + u, ξ, t, n]),

15 multiply-adds per output and input map where the direct sum takes 25, each a scalar times a
contiguous run over (t, n), as in :mod:`.conv`. Rounding: the transforms add a few roundings of
numbers the size of the inputs (differences from the direct sums, relative to the largest output:
float64 under 2e-15, float32 under 6e-7); G's divisions by 6 and 24 are single correctly rounded
divisions. Every constant is of the maps' dtype: float32 stays float32.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .activation import apply_
from .dots import row_dots2

#: Input maps from which :func:`fits` takes F(2, 5), float64 and float32. Measured on one thread,
#: 25 images, against :func:`.conv.forward`'s direct sums in the same process (identity; with the
#: sigmoid): float64 one map 1.06× (1.03×: the toolbox's 6c5 on 28×28; the transforms and the
#: transformed sums' loads and stores cost what the products save), two 0.82× (0.87×), three 0.74×,
#: six 0.55× (0.60×: its 12c5 on 12×12); float32, whose vectors the runs of 25 fill less well: one
#: 1.64×, two 1.16×, three 0.98×, four 0.82×, six 0.66× (0.68×).
MIN_INPUT_MAPS_F64, MIN_INPUT_MAPS_F32 = 2, 4


@jit
def fits(w, wo):
    """Whether a stride-1 convolution with kernels ``w`` (C_out, C_in, kh, kw) and ``wo`` output columns
    takes :func:`forward` and :func:`weight_grad`: 5×5 kernels, Wo even, at least :data:`MIN_INPUT_MAPS_F64`
    input maps in float64, ``MIN_INPUT_MAPS_F32`` in float32."""
    least = MIN_INPUT_MAPS_F64 if w.itemsize == 8 else MIN_INPUT_MAPS_F32
    return w.shape[2] == 5 and w.shape[3] == 5 and w.shape[1] >= least and wo % 2 == 0


@jit
def kernel_transform(w):
    """U[j, i, u, ξ] = Σ_v G[ξ, v]·w[j, i, u, v]: w (C_out, C_in, 5, 5) → U (C_out, C_in, 5, 6)."""
    co, ci = w.shape[0], w.shape[1]
    u = np.empty((co, ci, 5, 6), dtype=w.dtype)
    c2, c4, c6, c8, c16, c24 = (w.dtype.type(2), w.dtype.type(4), w.dtype.type(6), w.dtype.type(8),
                                w.dtype.type(16), w.dtype.type(24))
    for j in range(co):
        for i in range(ci):
            for r in range(5):
                g0, g1, g2, g3, g4 = w[j, i, r, 0], w[j, i, r, 1], w[j, i, r, 2], w[j, i, r, 3], w[j, i, r, 4]
                u[j, i, r, 0] = g0 / c4
                u[j, i, r, 1] = -((((g0 + g1) + g2) + g3) + g4) / c6
                u[j, i, r, 2] = -((((g0 - g1) + g2) - g3) + g4) / c6
                u[j, i, r, 3] = ((((g0 + c2 * g1) + c4 * g2) + c8 * g3) + c16 * g4) / c24
                u[j, i, r, 4] = ((((g0 - c2 * g1) + c4 * g2) - c8 * g3) + c16 * g4) / c24
                u[j, i, r, 5] = g4
    return u


@jit
def _transform_row(xr, v, tiles, n):
    """v[ξ, t·n + k] = Σ_c Bᵀ[ξ, c]·xr[2t + c, k]: one input row xr (W, n) → v (6, tiles·n)."""
    c2, c4, c5 = xr.dtype.type(2), xr.dtype.type(4), xr.dtype.type(5)
    for t in range(tiles):
        c, o = 2 * t, t * n
        x0, x1, x2, x3, x4, x5 = xr[c], xr[c + 1], xr[c + 2], xr[c + 3], xr[c + 4], xr[c + 5]
        v0, v1, v2 = v[0, o:o + n], v[1, o:o + n], v[2, o:o + n]
        v3, v4, v5 = v[3, o:o + n], v[4, o:o + n], v[5, o:o + n]
        for k in range(n):
            a0, a1, a2, a3, a4, a5 = x0[k], x1[k], x2[k], x3[k], x4[k], x5[k]
            v0[k] = (c4 * a0 - c5 * a2) + a4
            v1[k] = (a3 + a4) - c4 * (a1 + a2)
            v2[k] = c4 * (a1 - a2) + (a4 - a3)
            v3[k] = c2 * (a3 - a1) + (a4 - a2)
            v4[k] = c2 * (a1 - a3) + (a4 - a2)
            v5[k] = (c4 * a1 - c5 * a3) + a5


@jit
def _accumulate(acc, ring, ua, r, rows, first, length):
    """acc[s, ξ] (+)= Σ_u ua[u, ξ]·V[r + s + u, ξ] for the output rows r + s, s < ``rows`` (4 or 1); ``first``:
    assigned, not added. ring (8, 6, length): transformed input row k at ring[k % 8].

    Four rows of one map a pass: its 5 kernel rows' weights stay in registers and each input row loaded
    feeds up to four rows' sums (two maps × two rows needed 10 weights, which AVX2's 16 registers could
    not hold beside the rows: 58 % of the FMA peak against 80 % for the direct kernels). Each row's sum
    is the same expression in either form, so a row's numbers do not depend on how the work was split.
    """
    for xi in range(6):
        a0, a1, a2, a3, a4 = ua[0, xi], ua[1, xi], ua[2, xi], ua[3, xi], ua[4, xi]
        p0, p1, p2, p3 = ring[r % 8, xi], ring[(r + 1) % 8, xi], ring[(r + 2) % 8, xi], ring[(r + 3) % 8, xi]
        p4 = ring[(r + 4) % 8, xi]
        m0 = acc[0, xi]
        if rows == 4:
            p5, p6, p7 = ring[(r + 5) % 8, xi], ring[(r + 6) % 8, xi], ring[(r + 7) % 8, xi]
            m1, m2, m3 = acc[1, xi], acc[2, xi], acc[3, xi]
            if first:
                for m in range(length):
                    q0, q1, q2, q3, q4, q5, q6, q7 = p0[m], p1[m], p2[m], p3[m], p4[m], p5[m], p6[m], p7[m]
                    m0[m] = a0 * q0 + a1 * q1 + a2 * q2 + a3 * q3 + a4 * q4
                    m1[m] = a0 * q1 + a1 * q2 + a2 * q3 + a3 * q4 + a4 * q5
                    m2[m] = a0 * q2 + a1 * q3 + a2 * q4 + a3 * q5 + a4 * q6
                    m3[m] = a0 * q3 + a1 * q4 + a2 * q5 + a3 * q6 + a4 * q7
            else:
                for m in range(length):
                    q0, q1, q2, q3, q4, q5, q6, q7 = p0[m], p1[m], p2[m], p3[m], p4[m], p5[m], p6[m], p7[m]
                    m0[m] += a0 * q0 + a1 * q1 + a2 * q2 + a3 * q3 + a4 * q4
                    m1[m] += a0 * q1 + a1 * q2 + a2 * q3 + a3 * q4 + a4 * q5
                    m2[m] += a0 * q2 + a1 * q3 + a2 * q4 + a3 * q5 + a4 * q6
                    m3[m] += a0 * q3 + a1 * q4 + a2 * q5 + a3 * q6 + a4 * q7
        elif first:
            for m in range(length):
                m0[m] = a0 * p0[m] + a1 * p1[m] + a2 * p2[m] + a3 * p3[m] + a4 * p4[m]
        else:
            for m in range(length):
                m0[m] += a0 * p0[m] + a1 * p1[m] + a2 * p2[m] + a3 * p3[m] + a4 * p4[m]


@jit
def _finish(mx, zr, bias, code, slope, tiles, n):
    """zr[2t + c, k] = f(bias + Σ_ξ Aᵀ[c, ξ]·mx[ξ, t·n + k]): mx (6, tiles·n) → one output row zr (Wo, n)."""
    c2 = mx.dtype.type(2)
    for t in range(tiles):
        o = t * n
        m0, m1, m2 = mx[0, o:o + n], mx[1, o:o + n], mx[2, o:o + n]
        m3, m4, m5 = mx[3, o:o + n], mx[4, o:o + n], mx[5, o:o + n]
        z0, z1 = zr[2 * t], zr[2 * t + 1]
        for k in range(n):
            z0[k] = bias + (((m0[k] + m1[k]) + m2[k]) + (m3[k] + m4[k]))
            z1[k] = bias + (((m1[k] - m2[k]) + c2 * (m3[k] - m4[k])) + m5[k])
    apply_(zr.reshape(zr.shape[0] * n), code, slope)


@jit
def _block(t, pairs, lo, hi, ho):
    """The output rows work item t (row r = t // pairs) starts: 4 when r opens a block of four rows whose
    items are all in [lo, hi), 0 when such a block took row r, else 1."""
    r, q = t // pairs, t % pairs
    r0 = r - r % 4
    whole = r0 + 3 < ho and r0 * pairs + q >= lo and (r0 + 3) * pairs + q < hi
    if whole:
        return 4 if r == r0 else 0
    return 1


@jit
def forward(x, w, b, code, slope, z, lo, hi):
    """z = f(b + Σ_i Σ_u Σ_v w[j, i, u, v]·x[i, r + u, c + v, n]) by F(2, 5), in place (when :func:`fits`).

    Work items t = r·Q + q (Q = ⌈C_out / 2⌉), lo ≤ t < hi: output row r of the maps 2q and 2q + 1
    (:func:`.conv.forward`'s count), four rows (r = 0 mod 4) in one pass when all four are in the
    range. The input rows are transformed as the rows advance, into a ring of eight: working memory
    C_in·8·3·Wo·N numbers, not the maps'.

    Parameters
    ----------
    x : (C_in, H, W, N), padded maps, C-contiguous;  w : (C_out, C_in, 5, 5);  b : (C_out,)
    code, slope : the activation (:mod:`.activation`);  z : (C_out, H − 4, W − 4, N), out
    """
    ci, n = x.shape[0], x.shape[3]
    co, ho, wo = z.shape[0], z.shape[1], z.shape[2]
    pairs, tiles = (co + 1) // 2, wo // 2
    length = tiles * n
    u = kernel_transform(w)
    ring = np.empty((ci, 8, 6, length), dtype=x.dtype)
    acc = np.empty((4, 6, length), dtype=x.dtype)
    top = lo // pairs  # the next input row to transform
    for t in range(lo, hi):
        rows = _block(t, pairs, lo, hi, ho)
        if rows == 0:
            continue
        r, q = t // pairs, t % pairs
        while top < r + rows + 4:
            for i in range(ci):
                _transform_row(x[i, top], ring[i, top % 8], tiles, n)
            top += 1
        for j in range(2 * q, min(2 * q + 2, co)):
            for i in range(ci):
                _accumulate(acc, ring[i], u[j, i], r, rows, i == 0, length)
            for s in range(rows):
                _finish(acc[s], z[j, r + s], b[j], code, slope, tiles, n)


# The weight gradient, dw[j, i, u, v] = Σ_r Σ_c Σ_n d[j, r, c, n]·x[i, r + u, c + v, n]·scale, takes F(5, 2):
# five outputs v of a 2-tap correlation (two columns 2t, 2t + 1 of d) from six inputs (columns 2t … 2t + 5
# of x), with the same points: y = A'ᵀ[(G' d) ⊙ (Bᵀ x)], Bᵀ as above,
#
#     G' = [1/4 0; −1/6 −1/6; −1/6 1/6; 1/24 1/12; 1/24 −1/12; 0 1],
#     A'ᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 0; 0 1 1 16 16 1].
#
# Summed over tiles, rows and images in the transformed domain, each (j, i, u, ξ) is one long dot product
# of d's and x's transforms (:func:`.dots.row_dots2`, the direct kernels' own), and A'ᵀ is applied once:
# 6 multiply-adds per two columns and kernel row where the direct sums take 10. G''s fractions are taken
# out of the transform (G' = diag(1/4, 1/6, 1/6, 1/24, 1/24, 1)·integers) and divided out of the sums.


@jit
def _transform_grad(d, dt):
    """dt[j, ξ, r, t·N + n] = (6·G' d's columns 2t, 2t + 1)[ξ] without G''s fractions: d (C_out, Ho, Wo, N) →
    dt (C_out, 6, Ho, Wo/2·N)."""
    co, ho, wo, n = d.shape
    c2 = d.dtype.type(2)
    for j in range(co):
        for r in range(ho):
            for t in range(wo // 2):
                d0, d1, o = d[j, r, 2 * t], d[j, r, 2 * t + 1], t * n
                e0, e1, e2 = dt[j, 0, r, o:o + n], dt[j, 1, r, o:o + n], dt[j, 2, r, o:o + n]
                e3, e4, e5 = dt[j, 3, r, o:o + n], dt[j, 4, r, o:o + n], dt[j, 5, r, o:o + n]
                for k in range(n):
                    a, b = d0[k], d1[k]
                    e0[k] = a
                    e1[k] = -(a + b)
                    e2[k] = b - a
                    e3[k] = a + c2 * b
                    e4[k] = a - c2 * b
                    e5[k] = b


@jit
def weight_operands(x, d):
    """:func:`weight_grad`'s operands: x's rows and d's column pairs transformed.

    Parameters
    ----------
    x : (C_in, H, W, N), the padded maps of the forward pass;  d : (C_out, H − 4, W − 4, N), dℓ/dz (Wo even)

    Returns
    -------
    vx : (C_in, 6, H, Wo/2·N), Bᵀ over x's columns 2t … 2t + 5;  dt : (C_out, 6, Ho, Wo/2·N), :func:`_transform_grad`
    """
    ci, h, n = x.shape[0], x.shape[1], x.shape[3]
    co, ho, wo = d.shape[0], d.shape[1], d.shape[2]
    tiles = wo // 2
    vx = np.empty((ci, 6, h, tiles * n), dtype=x.dtype)
    dt = np.empty((co, 6, ho, tiles * n), dtype=x.dtype)
    for i in range(ci):
        for row in range(h):
            _transform_row(x[i, row], vx[i, :, row], tiles, n)
    _transform_grad(d, dt)
    return vx, dt


@jit
def weight_grad(vx, dt, scale, dw, lo, hi):
    """dw[j, i, u, v] = scale · Σ_r Σ_c Σ_n d[j, r, c, n]·x[i, r + u, c + v, n] by F(5, 2) (when :func:`fits`).

    Parameters
    ----------
    vx, dt : :func:`weight_operands`;  scale : 1/N
    dw : (C_out, C_in, 5, 5), out; work items t = q·C_in + i, pairs of output maps (2q, 2q + 1) × input maps
    """
    co, ci = dw.shape[0], dw.shape[1]
    h, ho, length = vx.shape[2], dt.shape[2], vx.shape[3]
    one = dw.dtype.type(1)
    parts = (dw.dtype.type(4), dw.dtype.type(6), dw.dtype.type(6), dw.dtype.type(24), dw.dtype.type(24), one)
    m = np.empty((2, 6, 5), dtype=dw.dtype)
    for t in range(lo, hi):
        j, i = 2 * (t // ci), t % ci
        k = j + 1 if j + 1 < co else j  # an odd C_out's last map: its pair's second sums are not kept
        m[:] = 0
        for xi in range(6):  # m[s, ξ, u] = Σ_r Σ_m dt[j_s, ξ, r, m]·vx[i, ξ, r + u, m], five u a pass
            row_dots2(m[0, xi], m[1, xi], dt[j, xi].reshape(ho * length), dt[k, xi].reshape(ho * length),
                      vx[i, xi].reshape(h * length), length, ho * length, one)
        _weights_from_sums(m[0], parts, scale, dw[j, i])
        if k != j:
            _weights_from_sums(m[1], parts, scale, dw[k, i])


@jit
def _weights_from_sums(m, parts, scale, g):
    """g[u, v] = scale · Σ_ξ A'ᵀ[v, ξ]·m[ξ, u] / parts[ξ]: m (6, 5) transformed sums → one kernel's gradient (5, 5)."""
    c2, c4, c8, c16 = g.dtype.type(2), g.dtype.type(4), g.dtype.type(8), g.dtype.type(16)
    for u in range(5):
        m0, m1, m2 = m[0, u] / parts[0], m[1, u] / parts[1], m[2, u] / parts[2]
        m3, m4, m5 = m[3, u] / parts[3], m[4, u] / parts[4], m[5, u] / parts[5]
        g[u, 0] = scale * ((((m0 + m1) + m2) + m3) + m4)
        g[u, 1] = scale * (((m1 - m2) + c2 * m3) - c2 * m4)
        g[u, 2] = scale * (((m1 + m2) + c4 * m3) + c4 * m4)
        g[u, 3] = scale * (((m1 - m2) + c8 * m3) - c8 * m4)
        g[u, 4] = scale * ((((m1 + m2) + c16 * m3) + c16 * m4) + m5)


# The input gradient, dx[i, r + u, c + v] += Σ_j w[j, i, u, v]·d[j, r, c], is the forward's adjoint: with
# z = Aᵀ[(G g) ⊙ (Bᵀ x)] for each tile, x̄ = B[(G g) ⊙ (A z̄)]. Each tile of d (columns 2t, 2t + 1) is taken
# to six numbers by A (:func:`_transform_delta`), each kernel row's U = G g multiplies them, the products
# are summed over maps and kernel rows into the rows of dx in the transformed domain (row r of d reaches
# rows r … r + 4), and B takes each sum back to the six columns 2t … 2t + 5 it touches, tiles overlapping
# (:func:`_untransform_row`): 6 multiply-adds per two columns of d and kernel row, not 10, and none on
# the zero padding the 'full' correlation of :func:`.conv.input_grad` multiplies.


@jit
def fits_input(w, wv):
    """Whether the input gradient of a stride-1 convolution with kernels ``w`` (C_out, C_in, kh, kw) and
    ``wv`` output columns takes :func:`input_grad`: float64, 5×5 kernels, C_out ≥ :data:`MIN_INPUT_MAPS_F64`
    (they are its sum's input maps), Wo even.

    Measured on one thread against :func:`.conv.input_grad_flat`, in the same process: the toolbox's 12c5
    (6 maps of 12×12 from 12 of 8×8), float64: 0.59–0.70× the time with 25 images, 0.64–0.70× with 50;
    LeNet's 16c5 on 14×14 (ten rows of d: two taken one at a time) 0.92–0.94×. Float32: 0.72–0.89× on
    the toolbox's, 1.09× on LeNet's: not taken. A few images (3 or 4): 1.5–2.5× the direct time, in
    tens of µs.
    """
    return w.itemsize == 8 and w.shape[2] == 5 and w.shape[3] == 5 and w.shape[0] >= MIN_INPUT_MAPS_F64 and wv % 2 == 0


@jit
def input_operands(d):
    """ad[j, r, ξ, t·N + n] = (A d's columns 2t, 2t + 1)[ξ]: d (C_out, Ho, Wo, N) → ad (C_out, Ho, 6, Wo/2·N)."""
    co, ho, wo, n = d.shape
    ad = np.empty((co, ho, 6, wo // 2 * n), dtype=d.dtype)
    c2 = d.dtype.type(2)
    for j in range(co):
        for r in range(ho):
            for t in range(wo // 2):
                d0, d1, o = d[j, r, 2 * t], d[j, r, 2 * t + 1], t * n
                e0, e1, e2 = ad[j, r, 0, o:o + n], ad[j, r, 1, o:o + n], ad[j, r, 2, o:o + n]
                e3, e4, e5 = ad[j, r, 3, o:o + n], ad[j, r, 4, o:o + n], ad[j, r, 5, o:o + n]
                for k in range(n):
                    a, b = d0[k], d1[k]
                    e0[k] = a
                    e1[k] = a + b
                    e2[k] = a - b
                    e3[k] = a + c2 * b
                    e4[k] = a - c2 * b
                    e5[k] = b
    return ad


@jit
def _scatter(s, ad, ua, r, rows, length):
    """s[r + k + u, ξ] += ua[u, ξ]·ad[r + k, ξ] for the rows r + k of d, k < ``rows`` (4, 2 or 1), every u < 5.

    Four rows of d a pass reach eight rows of s (5 weights, 4 rows loaded and 8 sums an element: 20
    multiply-adds). Each row of s takes its products in the order of the rows of d.
    """
    for xi in range(6):
        a0, a1, a2, a3, a4 = ua[0, xi], ua[1, xi], ua[2, xi], ua[3, xi], ua[4, xi]
        p0 = ad[r, xi]
        s0, s1, s2, s3, s4 = s[r, xi], s[r + 1, xi], s[r + 2, xi], s[r + 3, xi], s[r + 4, xi]
        if rows == 4:
            p1, p2, p3 = ad[r + 1, xi], ad[r + 2, xi], ad[r + 3, xi]
            s5, s6, s7 = s[r + 5, xi], s[r + 6, xi], s[r + 7, xi]
            for m in range(length):
                q0, q1, q2, q3 = p0[m], p1[m], p2[m], p3[m]
                s0[m] += a0 * q0
                s1[m] += a1 * q0 + a0 * q1
                s2[m] += a2 * q0 + a1 * q1 + a0 * q2
                s3[m] += a3 * q0 + a2 * q1 + a1 * q2 + a0 * q3
                s4[m] += a4 * q0 + a3 * q1 + a2 * q2 + a1 * q3
                s5[m] += a4 * q1 + a3 * q2 + a2 * q3
                s6[m] += a4 * q2 + a3 * q3
                s7[m] += a4 * q3
        else:
            for m in range(length):
                q0 = p0[m]
                s0[m] += a0 * q0
                s1[m] += a1 * q0
                s2[m] += a2 * q0
                s3[m] += a3 * q0
                s4[m] += a4 * q0


@jit
def _untransform_row(sr, dxr, tiles, n):
    """dxr[2t + c, k] = Σ_t' Σ_ξ B[c, ξ]·sr[ξ, t'·n + k] over the tiles t' that reach column 2t + c: one row."""
    c2, c4, c5 = dxr.dtype.type(2), dxr.dtype.type(4), dxr.dtype.type(5)
    dxr[:] = 0
    for t in range(tiles):
        o = t * n
        m0, m1, m2 = sr[0, o:o + n], sr[1, o:o + n], sr[2, o:o + n]
        m3, m4, m5 = sr[3, o:o + n], sr[4, o:o + n], sr[5, o:o + n]
        x0, x1, x2 = dxr[2 * t], dxr[2 * t + 1], dxr[2 * t + 2]
        x3, x4, x5 = dxr[2 * t + 3], dxr[2 * t + 4], dxr[2 * t + 5]
        for k in range(n):
            s0, s1, s2, s3, s4, s5 = m0[k], m1[k], m2[k], m3[k], m4[k], m5[k]
            x0[k] += c4 * s0
            x1[k] += ((c4 * (s2 - s1) + c2 * (s4 - s3)) + c4 * s5)
            x2[k] += -((c5 * s0 + c4 * (s1 + s2)) + (s3 + s4))
            x3[k] += ((s1 - s2) + c2 * (s3 - s4)) - c5 * s5
            x4[k] += (((s0 + s1) + s2) + s3) + s4
            x5[k] += s5


@jit
def input_grad(ad, w, dx, lo, hi):
    """dx[i, p, q, n] = Σ_j Σ_u Σ_v w[j, i, u, v]·d[j, p − u, q − v, n] by the adjoint of F(2, 5) (when
    :func:`fits_input`): :func:`.conv.input_grad`'s 'full' correlation, d zero outside its maps.

    Parameters
    ----------
    ad : (C_out, Ho, 6, Wo/2·N), :func:`input_operands` (d);  w : (C_out, C_in, 5, 5)
    dx : (C_in, Ho + 4, Wo + 4, N), out; work items: pairs of input maps (2q, 2q + 1)
    """
    ci, hp, wp, n = dx.shape
    co, ho, length = ad.shape[0], ad.shape[1], ad.shape[3]
    u = kernel_transform(w)
    s = np.empty((hp, 6, length), dtype=dx.dtype)
    for t in range(lo, hi):
        for i in range(2 * t, min(2 * t + 2, ci)):
            s[:] = 0
            for j in range(co):
                r = 0
                while r < ho:
                    rows = 4 if r + 4 <= ho else 1
                    _scatter(s, ad[j], u[j, i], r, rows, length)
                    r += rows
            for p in range(hp):
                _untransform_row(s[p], dx[i, p], length // n, n)
