"""1-D views of many arrays, for the kernels that take them in one tuple, kept from call to call.

The update (SGD, Adam) and the finiteness check run once per training step on
every parameter and gradient, each as one compiled call on tuples of 1-D views.
Making the views and checking the arrays took several µs of Python per call,
3–5 times as long on the caches a step's kernels have just cooled (Adam's update
of the LeNet-style network: 134 µs a step in the loop). The arrays are the same
objects from step to step (the parameters, the kept step's gradients, an
optimiser's state), so the views are kept while they are.

The other way round, :func:`runs_of_one_buffer` makes arrays as runs of one buffer: a kept
training step's gradients, which the data-parallel hook then sums where they are, and the
hook's own buffer for gradients that are not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def kept_flat(kept: dict, use: str, arrays: Sequence[np.ndarray],
              same_dtype: bool = False) -> tuple[np.ndarray, ...] | None:
    """``tuple(a.reshape(-1) for a in arrays)``, or None when one is not C-contiguous (or, with
    ``same_dtype``, not of the first one's dtype).

    Parameters
    ----------
    kept : dict
        The caller's store: ``kept[use]`` holds the last call's arrays (by identity: the views keep
        them alive, so no other array takes their ``id``) and views.
    use : str
        What the views are for (one entry each).
    arrays : sequence of ndarray, any shapes
    same_dtype : bool
    """
    key = tuple(map(id, arrays))
    last = kept.get(use)
    if last is not None and last[0] == key:
        return last[1]
    dtype = arrays[0].dtype if len(arrays) else None
    if not all(a.flags.c_contiguous and (not same_dtype or a.dtype == dtype) for a in arrays):
        return None
    flat = tuple(a.reshape(-1) for a in arrays)
    kept[use] = (key, flat)
    return flat


def runs_of_one_buffer(shapes: Sequence[tuple[int, ...]], dtype, spare: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """One 1-D array holding arrays of ``shapes`` one after the other, then ``spare`` elements, and
    those arrays (C-contiguous views of it, in order)."""
    ends = np.cumsum([0] + [int(np.prod(shape, dtype=np.int64)) for shape in shapes])
    buffer = np.empty(int(ends[-1]) + spare, dtype=dtype)
    return buffer, [buffer[a:b].reshape(shape) for a, b, shape in zip(ends[:-1], ends[1:], shapes)]
