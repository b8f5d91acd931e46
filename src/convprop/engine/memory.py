"""Keep freed work arrays in the process heap (glibc), so that every step does not fault them in again.

A training step allocates its maps, deltas and gradients afresh (a few MiB for
the toolbox network's 50-image batch) and frees them a step later. glibc's
malloc serves blocks over its mmap threshold (128 KiB at start, raised on its
own as such blocks are freed) from fresh mappings, and hands the top of its heap
back to the kernel when more than twice that is free: each step then touches
new pages, and the kernel's page faults cost 10 % of a single-threaded step
here (150–370 faults per step, measured with ``getrusage``). Raising the
thresholds to 32 MiB (glibc's own upper bound for the mmap threshold) and 64
MiB keeps those blocks in the heap: no faults once the first step has run.
The cost: up to 64 MiB of freed memory may stay with the process instead of
going back to the system; arrays over 32 MiB (data sets) are mapped and
unmapped as before.

Only on Linux with glibc; ``CONVPROP_MALLOC=system`` leaves malloc as it is.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: mallopt's parameter numbers (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20

_done = False


def keep_freed_arrays() -> bool:
    """Set glibc's mmap and trim thresholds once per process; whether they were set."""
    global _done
    if _done:
        return False
    _done = True
    if not sys.platform.startswith("linux") or os.environ.get("CONVPROP_MALLOC", "").strip().lower() == "system":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
