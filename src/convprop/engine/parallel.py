"""Threads: optional ones for the convolutions, and a cap on BLAS's own.

``CONVPROP_THREADS=k`` (default 1) shares each convolution's work over k threads.
``CONVPROP_BLAS_THREADS=m`` (default 1) caps the BLAS library's threads while
convprop trains or predicts (:func:`blas_limit`): the GEMMs of a small CNN are
thin (6 or 12 output maps), a second BLAS thread gains nothing on them (see
benchmarks/README.md), and on a machine whose other core is busy OpenBLAS's
spinning threads made training up to 8× slower.

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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from ..errors import ConvpropError

T = TypeVar("T")
_pools: dict[int, ThreadPoolExecutor] = {}
# A forked child (multiprocessing's default start method on Linux) inherits the pools but not
# their threads: work submitted there would wait forever. The child starts with no pools.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pools.clear)


def _env_count(name: str) -> int:
    raw = os.environ.get(name, "1")
    try:
        k = int(raw)
    except ValueError:
        raise ConvpropError(f"{name} must be a positive integer, got {raw!r}") from None
    if k < 1:
        raise ConvpropError(f"{name} must be a positive integer, got {raw!r}")
    return k


def n_threads() -> int:
    """The thread count from ``CONVPROP_THREADS`` (read at every call; 1 when unset)."""
    return _env_count("CONVPROP_THREADS")


@contextmanager
def blas_limit() -> Iterator[None]:
    """Cap BLAS at ``CONVPROP_BLAS_THREADS`` threads (default 1) inside the ``with`` block."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=_env_count("CONVPROP_BLAS_THREADS"), user_api="blas"):
        yield


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
