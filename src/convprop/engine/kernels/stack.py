"""The network's run of map layers (convolution, mean and max pooling) in one call per direction.

A training step of the toolbox network calls a dozen kernels; between them,
Python (the layers' bookkeeping) holds the GIL. Two batch slices on two threads
run the same layers at the same moments, so each slice's thread kept waiting for
the other's Python: on 2 cores a 25-image slice took 1.2× as long as alone
(processes in the same lockstep: 1.0×). Here the layers' kernels run back to
back in one nogil call: the same kernels, in the same order, on the same
arrays, so the numbers are the layer-by-layer path's, bit for bit. The
training step (:func:`train`) goes on through the hidden dense layers and the
output layer after the maps.

A layer is a row of ``table`` (:data:`COLUMNS`); its arrays come in tuples that
:mod:`convprop.engine.stack` allocates: ``maps[l]`` is layer l's input and
``maps[l + 1]`` its output, all (C, H, W, N). A tuple may hold more arrays than the
network has layers (empty ones after the last): the kernels take their counts from
``table`` and ``head``, never from a tuple's length, so that Numba, which compiles
a function once per tuple length, compiles one step for networks of different
depths (:mod:`convprop.engine.stack` fills the tuples up).
"""

from __future__ import annotations

import numpy as np

from . import conv, dense, output, pool, spin
from .copies import copy4
from ._jit import ijit, jit

#: Layer kinds in column 0 of the table.
CONV, MEAN, MAX = 0, 1, 2
#: The table's columns: kind, activation code, stride, padding (top, bottom, left, right),
#: pooling scale, index of the layer's parameters in the weight / bias tuples.
COLUMNS = ("kind", "code", "stride", "top", "bottom", "left", "right", "scale", "param")


@jit
def forward(table, slopes, weights, biases, maps, padded, args):
    """Every layer's forward pass in turn: maps[l + 1] from maps[l].

    Parameters
    ----------
    table : (L, 9) int64, see :data:`COLUMNS`;  slopes : (L,) the activations' slopes
    weights, biases : tuples of the convolutions' (C_out, C_in, kh, kw) and (C_out,) parameters
    maps : tuple of ≥ L + 1 (C, H, W, N) arrays, maps[0] the input (out: the others)
    padded : tuple of ≥ L arrays: a convolution's zero-padded input (out: the interior; the
        border is zero), or maps[l] itself when it has no padding
    args : tuple of ≥ L uint8 arrays: a max pooling's arg-max (out), empty for the others
    """
    for l in range(table.shape[0]):
        kind, x, out = table[l, 0], maps[l], maps[l + 1]
        if kind == CONV:
            xp, p, stride = padded[l], table[l, 8], table[l, 2]
            if xp.shape[1] != x.shape[1] or xp.shape[2] != x.shape[2]:
                copy4(x, xp[:, table[l, 3] : table[l, 3] + x.shape[1], table[l, 5] : table[l, 5] + x.shape[2]])
            if stride == 1:
                conv.forward(xp, weights[p], biases[p], 1, table[l, 1], slopes[l], out, 0,
                             (out.shape[0] + 1) // 2 * out.shape[1])
            else:
                conv.forward_strided(xp, weights[p], biases[p], stride, table[l, 1], slopes[l], out, 0,
                                     out.shape[0] * out.shape[1])
        elif kind == MEAN:
            pool.mean_pool(x, table[l, 7], out, 0, out.shape[0] * out.shape[1])
        else:
            pool.max_pool(x, table[l, 7], out, args[l], 0, out.shape[0] * out.shape[1])


@ijit
def backward(table, slopes, weights, maps, padded, args, deltas, ds, dws, dbs):
    """Every layer's backward pass, last to first; the first layer's input delta is not computed.

    Parameters
    ----------
    table, slopes, weights, maps, padded, args : as :func:`forward`, after it
    deltas : tuple of ≥ L arrays, deltas[l] the delta of layer l's output (like maps[l + 1]):
        deltas[L − 1] given, the others out
    ds : tuple of ≥ L arrays: a convolution's d = δ·f'(z) (out), empty for the others
    dws, dbs : tuples of the convolutions' weight and bias gradients (out)
    """
    for l in range(table.shape[0] - 1, -1, -1):
        kind, delta, x = table[l, 0], deltas[l], maps[l]
        if kind == CONV:
            xp, p = padded[l], table[l, 8]
            inside = xp.shape[1] == x.shape[1] and xp.shape[2] == x.shape[2]
            if l == 0:
                dx = np.empty((0, 0, 0, 0), dtype=x.dtype)
            elif inside:
                dx = deltas[l - 1]
            else:
                dx = np.empty_like(xp)
            conv.backward_into(delta, maps[l + 1], xp, weights[p], table[l, 1], slopes[l], table[l, 2], ds[l],
                               dws[p], dbs[p], dx)
            if l > 0 and not inside:
                prev = deltas[l - 1]
                copy4(dx[:, table[l, 3] : table[l, 3] + x.shape[1], table[l, 5] : table[l, 5] + x.shape[2]], prev)
        elif l > 0:
            prev = deltas[l - 1]
            if kind == MEAN:
                pool.mean_pool_backward(delta, table[l, 7], prev, 0, delta.shape[0] * delta.shape[1])
            else:
                prev[:] = 0
                pool.max_pool_backward(delta, args[l], table[l, 7], prev, 0, delta.shape[0] * delta.shape[1])


@jit
def train(x, y, rows, first, table, slopes, weights, biases, maps, padded, args, deltas, ds, dws, dbs,
          head, head_slopes, hws, hbs, hxs, hds, hdxs, hdws, hdbs, softmax, ot, log_ot, et,
          signal, signal_at, signal_value):
    """A whole training pass of map layers, hidden fully connected layers and an output layer, in one call.

    The same kernels, in the same order, on the same arrays as the layer-by-layer path:
    the batch-last input, :func:`forward`, the feature vectors (H, W, C order), each dense
    layer's forward pass (:mod:`.dense`), the output layer's forward pass, loss and backward
    pass (:mod:`.output`), the dense layers' backward passes, the delta back into maps,
    :func:`backward`. A batch slice's thread then takes the GIL once per step.

    Parameters
    ----------
    x : (M, H, W, C) images;  y : (M, K) targets
    rows : (≥ first + N,) int64, C-contiguous;  first : int, the batch's images are x[rows[first : first + N]]
        and their targets y[…] (a crew thread's slice of the whole batch's rows: one argument type for
        both callers, so one compilation)
    table … dbs : as :func:`forward` and :func:`backward` (maps[0], deltas[L − 1]: out here)
    head, head_slopes : (D,) int64 and float64, the D dense layers' activations (codes, slopes)
    hws, hbs : tuples of ≥ D + 1 weights (U, F) and biases (U,): the dense layers', then the output layer's
    hxs : tuple of ≥ D + 1 (F, N) arrays, out: each fully connected layer's input (hxs[0] the feature
        vectors, hxs[l + 1] dense layer l's output)
    hds, hdxs : tuples of ≥ D + 1 arrays, out: each one's d (U, N) (the last the output's od) and its
        input's delta (F, N)
    hdws, hdbs : tuples of ≥ D + 1 gradients, out;  softmax : bool
    ot, log_ot, et : (K, N), out
    signal, signal_at, signal_value : signal[signal_at] = signal_value first, without the GIL
        (:func:`convprop.engine.parallel.start_signal`: the thread that handed this slice over waits for it)

    Returns
    -------
    L : float, the batch's loss
    """
    spin.announce(signal, signal_at, signal_value)
    x0 = maps[0]
    c_in, h, w, n = x0.shape
    for c in range(c_in):
        for r in range(h):
            for q in range(w):
                for m in range(n):
                    x0[c, r, q, m] = x[rows[first + m], r, q, c]
    forward(table, slopes, weights, biases, maps, padded, args)
    top = head.shape[0]
    _flatten(maps[table.shape[0]], hxs[0], False)
    for l in range(top):
        dense.forward(hxs[l], hws[l], hbs[l], head[l], head_slopes[l], hxs[l + 1])
    output.forward(hxs[top], hws[top], hbs[top], softmax, ot, log_ot)
    yt = np.empty_like(ot)
    for k in range(yt.shape[0]):
        for m in range(n):
            yt[k, m] = y[rows[first + m], k]
    loss = output.loss(ot, yt, log_ot, softmax, et)
    output.backward(et, ot, hxs[top], hws[top], softmax, hds[top], hdws[top], hdbs[top], hdxs[top])
    for l in range(top - 1, -1, -1):
        dense.backward(hdxs[l + 1], hxs[l + 1], hxs[l], hws[l], head[l], head_slopes[l], hds[l], hdws[l], hdbs[l],
                       hdxs[l])
    _flatten(deltas[table.shape[0] - 1], hdxs[0], True)
    backward(table, slopes, weights, maps, padded, args, deltas, ds, dws, dbs)
    return loss


@jit
def _flatten(maps, vectors, back):
    """vectors[(r·W + q)·C + c, n] = maps[c, r, q, n] (the feature vectors' (H, W, C) order), or with
    ``back`` the other way round: maps (C, H, W, N), vectors (C·H·W, N)."""
    c_l, h_l, w_l, n = maps.shape
    for r in range(h_l):
        for q in range(w_l):
            for c in range(c_l):
                f = (r * w_l + q) * c_l + c
                for m in range(n):
                    if back:
                        maps[c, r, q, m] = vectors[f, m]
                    else:
                        vectors[f, m] = maps[c, r, q, m]
