"""Shared plumbing for the atheris fuzz targets in this folder.

Each target is a script ``fuzz_<loader>.py`` that defines ``one_input(path)``: call the loader on
the file at ``path`` (the fuzzer's bytes, written to a temporary file) and return. The contract
checked here: the loader either returns or raises :class:`convprop.errors.ConvpropError`; any other
exception propagates and atheris reports it as a crash (with the input saved as ``crash-*``).
Hangs are caught by libFuzzer's ``-timeout`` and huge allocations by ``-rss_limit_mb``.

Run one target by hand (corpus folder first, then seed folders, then libFuzzer flags)::

    PYTHONPATH=src python3 fuzz/fuzz_idx.py /tmp/corpus/idx /tmp/seeds/idx -runs=100000 \
        -rss_limit_mb=1024 -timeout=10

or all of them with ``python3 fuzz/run.py`` (see its ``--help``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.append(str(ROOT / "src"))  # PYTHONPATH, when set, comes first


def file_runner(one_input: Callable[[str], object], suffix: str) -> Callable[[bytes], None]:
    """Adapt ``one_input(path)`` to atheris' ``TestOneInput(data)`` through a reused temp file."""
    from convprop.errors import ConvpropError

    folder = tempfile.mkdtemp(prefix="convprop-fuzz-")
    path = os.path.join(folder, "input" + suffix)

    def test_one_input(data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)
        try:
            one_input(path)
        except ConvpropError as exc:
            message = str(exc)
            if not message or "\n" in message:
                raise AssertionError(f"ConvpropError message must be one non-empty line: {message!r}")

    return test_one_input


def main(one_input: Callable[[str], object], suffix: str) -> None:
    import atheris

    atheris.Setup(sys.argv, file_runner(one_input, suffix))
    atheris.Fuzz()
