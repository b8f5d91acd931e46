"""Wall time of the README's first command (one MNIST epoch through the CLI), cold and warm.

Three variants, run in turn ``--reps`` times so that machine load hits all of them:

* ``auto-cold``: the command as the README gives it (no engine chosen), with an empty kernel cache
  (a fresh ``NUMBA_CACHE_DIR``): the first run on a machine, which trains on the NumPy engine while
  a child process compiles the kernels (``convprop.engine.precompile``); the next measurement waits
  for that child;
* ``auto-warm``: the same command again, its kernels now in the cache;
* ``numba-cold``: ``CONVPROP_ENGINE=numba`` with an empty kernel cache: compilation in the run;
* ``numpy``: ``CONVPROP_ENGINE=numpy``, the NumPy engine (no compilation);
* ``before`` (with ``--before SRC``): the same command from another checkout's ``src``, e.g. main
  as it was when issue 12 was filed (``git worktree add /tmp/before cd7a72f``).

Every run's peak resident memory is recorded too (``wait4``'s ``ru_maxrss`` of the child).

Usage (from the project root)::

    PYTHONPATH=$PWD/src python3 benchmarks/cold_start.py --data-dir ../shared/data/mnist --reps 3 \
        --before /tmp/before/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run(env_extra: dict, data_dir: str, out: str) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one run of the command."""
    env = {**os.environ, **env_extra}
    cmd = [sys.executable, "-m", "convprop", "train", "--data-dir", data_dir, "--out", out, "--quiet"]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{cmd} failed with status {child.returncode}")
    return seconds, usage.ru_maxrss / 1024


def wait_for_compiling(limit: float = 300.0) -> None:
    """Wait until no background compilation (``python -m convprop.engine.precompile``) runs."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        running = False
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    running = running or b"convprop.engine.precompile" in f.read()
            except OSError:
                continue
        if not running:
            return
        time.sleep(0.5)
    raise SystemExit("the background compilation did not end")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "cold_start.json"))
    ap.add_argument("--before", help="another checkout's src directory, run as the 'before' variant")
    args = ap.parse_args()
    kinds = ["auto-cold", "auto-warm", "numba-cold", "numpy"] + (["before"] if args.before else [])
    times: dict[str, list[float]] = {k: [] for k in kinds}
    peaks: dict[str, list[float]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            caches = [os.path.join(tmp, f"cache{rep}-{i}") for i in range(2)]
            for cache in caches:
                os.makedirs(cache)
            auto_env = {"NUMBA_CACHE_DIR": caches[0]}
            envs = {"auto-cold": auto_env, "auto-warm": auto_env,
                    "numba-cold": {"CONVPROP_ENGINE": "numba", "NUMBA_CACHE_DIR": caches[1]},
                    "numpy": {"CONVPROP_ENGINE": "numpy"}, "before": {"PYTHONPATH": args.before or ""}}
            for kind in kinds:
                wait_for_compiling()
                seconds, peak = run(envs[kind], args.data_dir, os.path.join(tmp, f"{kind}{rep}"))
                times[kind].append(seconds)
                peaks[kind].append(peak)
            print({k: round(v[-1], 2) for k, v in times.items()}, f"load {os.getloadavg()[0]:.1f}", flush=True)
    result = {k: {"median": statistics.median(times[k]), "all": times[k], "peak_mib": max(peaks[k])} for k in kinds}
    result["loadavg_end"] = os.getloadavg()
    for k in kinds:
        print(f"{k:11s} median {result[k]['median']:6.2f} s, peak {result[k]['peak_mib']:.0f} MiB")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
