"""Optional threads for the convolutions: ``CONVPROP_THREADS=k`` (default 1).

A convolution's patch matrix is built and multiplied in blocks of output rows
(see :class:`convprop.layers.Conv`); with k > 1 those blocks are shared out
over k threads, each with its own work buffer. NumPy copies and BLAS calls
release the GIL, so the threads run in parallel. Results are deterministic
for a given k (partial weight gradients are summed in thread order). Use it
with a single-threaded BLAS (``OPENBLAS_NUM_THREADS=1``) to avoid
oversubscribing the cores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .errors import ConvpropError

T = TypeVar("T")
_pools: dict[int, ThreadPoolExecutor] = {}


def n_threads() -> int:
    """The thread count from ``CONVPROP_THREADS`` (read at every call; 1 when unset)."""
    raw = os.environ.get("CONVPROP_THREADS", "1")
    try:
        k = int(raw)
    except ValueError:
        raise ConvpropError(f"CONVPROP_THREADS must be a positive integer, got {raw!r}") from None
    if k < 1:
        raise ConvpropError(f"CONVPROP_THREADS must be a positive integer, got {raw!r}")
    return k


def map_blocks(work: Callable[[int, Sequence[tuple[int, int]]], T], blocks: Sequence[tuple[int, int]]) -> list[T]:
    """Run ``work(slot, blocks_of_slot)`` for each thread slot; block i goes to slot i mod k.

    Returns the results in slot order (one slot, in this thread, when k = 1 or
    there is a single block).
    """
    k = min(n_threads(), len(blocks))
    if k <= 1:
        return [work(0, blocks)]
    pool = _pools.get(k)
    if pool is None:
        pool = _pools[k] = ThreadPoolExecutor(max_workers=k, thread_name_prefix="convprop")
    futures = [pool.submit(work, slot, blocks[slot::k]) for slot in range(k)]
    return [f.result() for f in futures]
