"""Copies between strided arrays inside the kernels, without Numba's slice assignment.

``a[...] = b`` between arrays makes Numba compile its shape-mismatch message
(``str()`` of every dimension, ``join``, concatenation), and that string code is
linked and optimised again in every kernel above the one that assigns: about 2 s
per level of the one-call training step on a machine's first run. A loop with a
fixed error message compiles to a few lines.
"""

from __future__ import annotations

from ._jit import plain


@plain
def copy4(src, dst):
    """dst[...] = src.

    Parameters
    ----------
    src, dst : 4-D arrays of one shape (either may be a strided view), dst out

    Raises
    ------
    ValueError
        When the shapes differ.
    """
    if src.shape != dst.shape:
        raise ValueError("copy4: the source and destination shapes differ")
    a, b, c, d = src.shape
    for i in range(a):
        for j in range(b):
            for k in range(c):
                for m in range(d):
                    dst[i, j, k, m] = src[i, j, k, m]
