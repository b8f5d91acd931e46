"""Shared plumbing for the atheris fuzz targets in this folder.

Each target is a script ``fuzz_<loader>.py`` that defines ``one_input(path)``: call the loader on
the file at ``path`` (the fuzzer's bytes, written to a temporary file) and return. An input that
starts with ``G`` is not the file itself but parameters for the target's generator in
:mod:`generators`, which writes a file claiming sizes the fuzzer chooses.

The contract checked, for every input (issue 15): the loader either returns or raises
:class:`convprop.errors.ConvpropError` with a one-line message, and does so

* within :data:`AS_LIMIT_MB` of address space (``RLIMIT_AS``, set on this process: an
  allocation past it is a MemoryError, reported as a violation even when a loader turned it into
  a ConvpropError), and
* within ``TIME_BASE + TIME_PER_BYTE × file size`` seconds of CPU time (a violation, reported as
  a crash; CPU rather than wall-clock time, so that a busy machine does not make false finds).

Any other exception, and any violation, propagates and atheris reports it as a crash (with the
input saved as ``crash-*``). Hangs past libFuzzer's ``-timeout`` are reported too.

Run one target by hand (corpus folder first, then seed folders, then libFuzzer flags)::

    PYTHONPATH=src python3 fuzz/fuzz_idx.py /tmp/corpus/idx /tmp/seeds/idx -runs=100000 -timeout=10

or all of them with ``python3 fuzz/run.py`` (see its ``--help``). ``CONVPROP_FUZZ_AS_MB`` and
``CONVPROP_FUZZ_TIME`` override the limits.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.append(str(ROOT / "src"))  # PYTHONPATH, when set, comes first


#: Address space of the fuzzing process (MiB): the interpreter with NumPy, SciPy and Pillow
#: takes about 150; the rest is what one input may cost.
AS_LIMIT_MB = int(os.environ.get("CONVPROP_FUZZ_AS_MB", "1024"))
#: Time one input may take: TIME_BASE seconds plus TIME_PER_BYTE per byte of the file.
TIME_BASE = float(os.environ.get("CONVPROP_FUZZ_TIME", "3"))
TIME_PER_BYTE = 10e-6


class Violation(AssertionError):
    """An input broke the memory or time bound (or the one-line message rule)."""


def limit_memory(mb: int = AS_LIMIT_MB) -> None:
    """Cap this process's address space at ``mb`` MiB (RLIMIT_AS)."""
    limit = mb << 20
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _memory_error_inside(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, MemoryError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def file_runner(one_input: Callable[[str], object], suffix: str,
                generate: Callable[[bytes], bytes] | None = None) -> Callable[[bytes], None]:
    """Adapt ``one_input(path)`` to atheris' ``TestOneInput(data)`` through a reused temp file.

    Inputs starting with ``G`` go through ``generate`` first (when given).
    """
    from convprop.errors import ConvpropError

    folder = tempfile.mkdtemp(prefix="convprop-fuzz-")
    path = os.path.join(folder, "input" + suffix)

    def test_one_input(data: bytes) -> None:
        if generate is not None and data[:1] == b"G":
            data = generate(data[1:])
        with open(path, "wb") as f:
            f.write(data)
        budget = TIME_BASE + TIME_PER_BYTE * len(data)
        start = time.process_time()  # CPU time: the bound holds however busy the machine is
        try:
            one_input(path)
        except ConvpropError as exc:
            message = str(exc)
            if not message or "\n" in message:
                raise Violation(f"ConvpropError message must be one non-empty line: {message!r}") from None
            if _memory_error_inside(exc):
                raise Violation(f"out of memory (address space {AS_LIMIT_MB} MiB) on a {len(data)}-byte "
                                f"file, reported as: {message}") from None
        except MemoryError:
            raise Violation(f"out of memory (address space {AS_LIMIT_MB} MiB) on a {len(data)}-byte file") from None
        finally:
            seconds = time.process_time() - start
        if seconds > budget:
            raise Violation(f"{seconds:.1f} s of CPU on a {len(data)}-byte file (bound {budget:.1f} s)")

    return test_one_input


def main(one_input: Callable[[str], object], suffix: str,
         generate: Callable[[bytes], bytes] | None = None) -> None:
    import atheris

    limit_memory()
    atheris.Setup(sys.argv, file_runner(one_input, suffix, generate))
    atheris.Fuzz()
