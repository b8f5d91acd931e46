"""Hypothesis helpers shared by the property tests: byte mutations of valid files."""

from __future__ import annotations

import os
import struct
import tempfile
from contextlib import contextmanager

from hypothesis import strategies as st

#: 32-bit values that break size arithmetic: zero, one, signs, overflow edges.
INTERESTING_U32 = [0, 1, 2, 7, 8, 255, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
                   0xFFFFFFF0, 0xFFFFFFFF]


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """One of ``seeds`` with 1 to 4 random mutations (flip, overwrite int, cut, insert, splice)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "byte", "u32", "cut", "insert", "erase", "splice"]))
        n = len(data)
        if op == "flip" and n:
            i = draw(st.integers(0, n - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and n:
            data[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        elif op == "u32" and n >= 4:
            i = draw(st.integers(0, n - 4))
            value = draw(st.sampled_from(INTERESTING_U32) | st.integers(0, 2**32 - 1))
            data[i:i + 4] = struct.pack(draw(st.sampled_from(["<I", ">I"])), value)
        elif op == "cut":
            data = data[: draw(st.integers(0, n))]
        elif op == "insert":
            i = draw(st.integers(0, n))
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "erase" and n:
            i = draw(st.integers(0, n - 1))
            del data[i:i + draw(st.integers(1, 16))]
        elif op == "splice" and n:
            other = draw(st.sampled_from(seeds))
            i = draw(st.integers(0, n))
            data = data[:i] + other[draw(st.integers(0, len(other))):]
    return bytes(data)


@contextmanager
def bytes_file(data: bytes, suffix: str):
    """A temporary file holding ``data``, removed afterwards."""
    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        os.unlink(path)


def in_child(fn, *args) -> None:
    """Run ``fn(*args)`` in a forked child process, so that a crash in compiled code (a
    segmentation fault inside a parser) fails this one test instead of killing the test run."""
    import sys
    import traceback

    import pytest

    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork (POSIX)")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            fn(*args)
        except BaseException:  # noqa: BLE001 - report everything to the parent
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        pytest.fail(f"{getattr(fn, '__name__', fn)} crashed the interpreter with signal "
                    f"{os.WTERMSIG(status)}")
    assert os.WEXITSTATUS(status) == 0, f"{getattr(fn, '__name__', fn)} failed (see stderr)"
