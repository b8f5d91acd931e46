"""Run a snippet in a child Python under an address-space limit (RLIMIT_AS) and a time limit, and
report how it ended, how long it took and its peak resident size (VmHWM, else ru_maxrss)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

_WRAPPER = """
import json, resource, sys, time
limit = {as_mb} << 20
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
{setup}
start = time.monotonic()
try:
{body}
    out = {{"ok": True}}
except BaseException as exc:
    out = {{"error": type(exc).__name__, "message": str(exc),
            "memory_error_inside": isinstance(exc.__context__, MemoryError) or isinstance(exc, MemoryError)}}
out["seconds"] = time.monotonic() - start
def _peak_mb():
    # VmHWM: this process image's own peak (ru_maxrss survives execve, so it would include the
    # parent's size at fork time)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["maxrss_mb"] = _peak_mb()
out.update(globals().get("extra", {{}}))
print("RESULT " + json.dumps(out))
"""


def run_limited(body: str, *, as_mb: int = 0, timeout: float = 60, setup: str = "") -> dict:
    """Run ``body`` (Python statements) after ``setup`` in a child with ``as_mb`` MiB of address space.

    Returns the child's report: ``ok`` or ``error``/``message``, ``seconds`` (of ``body``),
    ``maxrss_mb`` (peak resident size of the whole child) and anything ``body`` put in a dict
    named ``extra``. ``setup`` (imports, file preparation) is not timed but counts for the peak.
    """
    code = _WRAPPER.format(as_mb=as_mb, setup=textwrap.dedent(setup),
                           body=textwrap.indent(textwrap.dedent(body), "    "))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"child died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(lines[-1][len("RESULT "):])
