"""Seconds to compile the compiled engine's kernels for one network, as a tree of the functions compiled.

A first run on a machine (and every CI run, on a fresh machine) compiles the kernels its network
needs before it can use them. This measures that in a child process with an empty kernel cache (a
fresh ``NUMBA_CACHE_DIR``): one training epoch of ``--images`` random images compiles every kernel the
training step calls; a Numba ``numba:compile`` listener records each compilation's wall time, nested
under the compilation that called for it (a caller's time includes its callees' compiled for it).
``--numba-default`` compiles with Numba's own optimisation settings instead of the kernels' raised
level (:mod:`convprop.engine.kernels.optlevel`), to measure what that level costs. ``--then`` trains
more networks after the first one in the same process and cache, each for one epoch, and times what
each of them still compiles (another depth shares the compiled step: :data:`convprop.engine.stack.ROOM`).
Writes ``compile_time.json`` (or ``--out``).

    PYTHONPATH=$PWD/src python3 benchmarks/compile_time.py --dtype float64 --threads 1
    PYTHONPATH=$PWD/src python3 benchmarks/compile_time.py --dtype float32 --numba-default
    PYTHONPATH=$PWD/src python3 benchmarks/compile_time.py --then lenet,deep --out compile_then.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def network(name: str, dtype: str):
    """The toolbox network, the LeNet-style one (examples/lenet.py, trained with SGD here) or a deeper
    one (three convolutions, a dense layer)."""
    from convprop import Conv, Dense, Input, MaxPool, Network, Subsample

    if name == "toolbox":
        return Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10,
                       seed=0, dtype=dtype)
    if name == "lenet":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
        from lenet import lenet  # the example's network, as bench.py takes it

        return lenet(dtype, 0)
    return Network([Input(28, 28), Conv(4, 3), Conv(8, 3), Subsample(2), Conv(8, 3, "relu"), MaxPool(2),
                    Dense(32, "tanh")], n_outputs=10, seed=0, dtype=dtype)


def child(dtype: str, images: int, default_level: bool, names: list[str]) -> dict:
    """Train each network of ``names`` for one epoch, in turn, starting with an empty cache; for each,
    the seconds of its epoch and its compile tree, depth first."""
    if default_level:  # before the kernels are imported: their listener is never registered
        from convprop.engine.kernels import optlevel

        optlevel.install = lambda: True
    import numpy as np
    from numba.core import event

    from convprop import fit

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
    runs = []
    with event.install_listener("numba:compile", Clock()):
        for name in names:
            net, rows[:] = network(name, dtype), []
            start = time.perf_counter()
            fit(net, x, y, epochs=1, batch_size=50, alpha=1.0 if name == "toolbox" else 0.1, seed=1)
            total = time.perf_counter() - start
            runs.append({"network": name, "seconds": round(total, 2), "tree": [r for r in rows if r is not None]})
    return {**runs[0], "then": runs[1:]}


def report(run: dict) -> float:
    """Print a network's compile tree (compilations of 0.5 s or more); its seconds of compiling."""
    for row in run["tree"]:
        if row["seconds"] >= 0.5:
            print(f"{'  ' * row['depth']}{row['seconds']:7.2f}  {row['function']}")
    top = sum(r["seconds"] for r in run["tree"] if r["depth"] == 0)
    run["compiling_seconds"] = round(top, 2)
    return top


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                    help="the network's dtype (default float64)")
    ap.add_argument("--threads", type=int, default=1, help="CONVPROP_THREADS of the run (default 1)")
    ap.add_argument("--images", type=int, default=200, help="random images in the epoch that compiles (default 200)")
    ap.add_argument("--numba-default", action="store_true", help="Numba's own levels, not the kernels' raised one")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "compile_time.json"),
                    help="the JSON file written (default benchmarks/compile_time.json)")
    ap.add_argument("--then", default="", help="networks trained next, in the same process and cache: a "
                    "comma-separated list of lenet, deep, toolbox (default none)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = ["toolbox", *(n.strip() for n in args.then.split(",") if n.strip())]
    if not set(names) <= {"toolbox", "lenet", "deep"}:
        ap.error(f"--then takes lenet, deep and toolbox, not {args.then!r}")
    if args.child:
        print(json.dumps(child(args.dtype, args.images, args.numba_default, names)))
        return
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "CONVPROP_THREADS": str(args.threads),
               "CONVPROP_ENGINE": "numba"}
        argv = [sys.executable, __file__, "--child", "--dtype", args.dtype, "--images", str(args.images),
                "--then", args.then]
        done = subprocess.run(argv + ["--numba-default"] * args.numba_default, env=env, capture_output=True,
                              text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    level = "Numba default" if args.numba_default else "raised"
    for run in (result, *result["then"]):
        top = report(run)
        print(f"{run['network']}: epoch with compilation {run['seconds']:.1f} s, of which compiling {top:.1f} s "
              f"({args.dtype}, {args.threads} thread(s), {level} level)")
    result.update(dtype=args.dtype, threads=args.threads, numba_default=args.numba_default)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
