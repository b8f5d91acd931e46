"""Seconds to compile the compiled engine's kernels for one network, as a tree of the functions compiled.

A first run on a machine (and every CI run, on a fresh machine) compiles the kernels its network
needs before it can use them. This measures that in a child process with an empty kernel cache (a
fresh ``NUMBA_CACHE_DIR``): one training epoch of ``--images`` random images compiles every kernel the
training step calls; a Numba ``numba:compile`` listener records each compilation's wall time, nested
under the compilation that called for it (a caller's time includes its callees' compiled for it).
``--numba-default`` compiles with Numba's own optimisation settings instead of the kernels' raised
level (:mod:`convprop.engine.kernels.optlevel`), to measure what that level costs. Writes
``compile_time.json`` (or ``--out``).

    PYTHONPATH=$PWD/src python3 benchmarks/compile_time.py --dtype float64 --threads 1
    PYTHONPATH=$PWD/src python3 benchmarks/compile_time.py --dtype float32 --numba-default
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def child(dtype: str, images: int, default_level: bool) -> dict:
    """Train the toolbox network for one epoch with an empty cache; the compile tree, depth first."""
    if default_level:  # before the kernels are imported: their listener is never registered
        from convprop.engine.kernels import optlevel

        optlevel.install = lambda: True
    import numpy as np
    from numba.core import event

    from convprop import Conv, Input, Network, Subsample, fit

    rows, starts = [], []

    class Clock(event.Listener):
        def on_start(self, ev):
            starts.append((time.perf_counter(), len(rows)))
            rows.append(None)  # a place kept for this compilation, before its callees'

        def on_end(self, ev):
            start, at = starts.pop()
            func = getattr(ev.data.get("dispatcher"), "py_func", None)
            name = f"{func.__module__.rsplit('.', 1)[-1]}.{func.__qualname__}" if func else "?"
            rows[at] = {"depth": len(starts), "function": name, "seconds": round(time.perf_counter() - start, 3)}

    rng = np.random.default_rng(0)
    x, y = rng.random((images, 28, 28)).astype(dtype), rng.integers(0, 10, images)
    net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10,
                  seed=0, dtype=dtype)
    with event.install_listener("numba:compile", Clock()):
        start = time.perf_counter()
        fit(net, x, y, epochs=1, batch_size=50, alpha=1.0, seed=1)
        total = time.perf_counter() - start
    return {"seconds": round(total, 2), "tree": [r for r in rows if r is not None]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                    help="the network's dtype (default float64)")
    ap.add_argument("--threads", type=int, default=1, help="CONVPROP_THREADS of the run (default 1)")
    ap.add_argument("--images", type=int, default=200, help="random images in the epoch that compiles (default 200)")
    ap.add_argument("--numba-default", action="store_true", help="Numba's own levels, not the kernels' raised one")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "compile_time.json"),
                    help="the JSON file written (default benchmarks/compile_time.json)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.dtype, args.images, args.numba_default)))
        return
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "CONVPROP_THREADS": str(args.threads),
               "CONVPROP_ENGINE": "numba"}
        argv = [sys.executable, __file__, "--child", "--dtype", args.dtype, "--images", str(args.images)]
        done = subprocess.run(argv + ["--numba-default"] * args.numba_default, env=env, capture_output=True,
                              text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for row in result["tree"]:
        if row["seconds"] >= 0.5:
            print(f"{'  ' * row['depth']}{row['seconds']:7.2f}  {row['function']}")
    top = sum(r["seconds"] for r in result["tree"] if r["depth"] == 0)
    print(f"epoch with compilation {result['seconds']:.1f} s, of which compiling {top:.1f} s "
          f"({args.dtype}, {args.threads} thread(s), {'Numba default' if args.numba_default else 'raised'} level)")
    result.update(dtype=args.dtype, threads=args.threads, numba_default=args.numba_default,
                  compiling_seconds=round(top, 2))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
