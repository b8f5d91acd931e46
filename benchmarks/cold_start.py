"""Wall time of the README's first command (one MNIST epoch through the CLI), cold and warm.

Three variants, run in turn ``--reps`` times so that machine load hits all of them:

* ``numba-cold``: the compiled engine with an empty kernel cache (a fresh ``NUMBA_CACHE_DIR``):
  the first run on a machine, compilation included;
* ``numba-warm``: the compiled engine, kernels loaded from the cache of the run before;
* ``numpy``: ``CONVPROP_ENGINE=numpy``, the NumPy engine (no compilation).

Usage (from the project root)::

    PYTHONPATH=$PWD/src python3 benchmarks/cold_start.py --data-dir ../shared/data/mnist --reps 3
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


def run(env_extra: dict, data_dir: str, out: str) -> float:
    env = {**os.environ, **env_extra}
    cmd = [sys.executable, "-m", "convprop", "train", "--data-dir", data_dir, "--out", out, "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "cold_start.json"))
    args = ap.parse_args()
    times: dict[str, list[float]] = {"numba-cold": [], "numba-warm": [], "numpy": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            cache = os.path.join(tmp, f"cache{rep}")
            os.makedirs(cache)
            numba_env = {"CONVPROP_ENGINE": "numba", "NUMBA_CACHE_DIR": cache}
            times["numba-cold"].append(run(numba_env, args.data_dir, os.path.join(tmp, f"c{rep}")))
            times["numba-warm"].append(run(numba_env, args.data_dir, os.path.join(tmp, f"w{rep}")))
            times["numpy"].append(run({"CONVPROP_ENGINE": "numpy"}, args.data_dir, os.path.join(tmp, f"n{rep}")))
            print({k: round(v[-1], 2) for k, v in times.items()}, f"load {os.getloadavg()[0]:.1f}", flush=True)
    result = {k: {"median": statistics.median(v), "all": v} for k, v in times.items()}
    result["loadavg_end"] = os.getloadavg()
    for k in ("numba-cold", "numba-warm", "numpy"):
        print(f"{k:11s} median {result[k]['median']:6.2f} s")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
