"""Where the time of a training epoch goes, per layer and per step.

Two views of the same run of the DLT example network (batch 50):

1. a per-layer table: every layer's forward and backward wrapped in a timer
   (plus the SGD step), as share of the epoch;
2. optionally (``--pyinstrument``) a pyinstrument call tree of the same work.

Usage (from the project root)::

    PYTHONPATH=$PWD/src python3 benchmarks/profile_layers.py --dtype float32 --images 6000
    PYTHONPATH=$PWD/src python3 benchmarks/profile_layers.py --engine numpy --threads 1

bench.py ``--profile`` calls :func:`profile` for both engines.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

import convprop  # noqa: E402
import convprop.engine.backend  # noqa: E402
from convprop import Conv, Input, Network, Subsample, train  # noqa: E402


def wrap(totals: dict, name: str, fn, clock=time.perf_counter):
    def timed(*args, **kwargs):
        t0 = clock()
        out = fn(*args, **kwargs)
        totals[name] += clock() - t0
        return out

    return timed


def profile(dtype: str = "float32", images: int = 6000, pyinstrument: bool = False, clock=time.perf_counter) -> dict:
    """Time one training epoch of ``images`` images with every layer's forward / backward timed.

    Returns ``{"epoch_s": seconds per 60,000-image epoch, "parts": {part: seconds per epoch}, "tree": text}``.
    """
    rng = np.random.default_rng(0)
    x = rng.random((images, 28, 28)).astype(dtype)
    labels = rng.integers(0, 10, images)
    net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10,
                  dtype=dtype, seed=0)
    totals: dict[str, float] = defaultdict(float)
    for i, layer in enumerate([*net.layers[1:], net.output], start=1):
        name = f"{i if layer is not net.output else 'out'} {layer.spec()}"
        layer.forward = wrap(totals, f"{name} forward", layer.forward, clock)
        layer.backward = wrap(totals, f"{name} backward", layer.backward, clock)
    net.step = wrap(totals, "SGD step", net.step, clock)
    # warm-up (and compilation) through the wrapped layers: they go layer by layer, whose kernels the
    # one-call training step does not load (a warm-up before wrapping left their compiling in the epoch)
    train(net, x[:500], labels[:500], epochs=1, batch_size=50, seed=0)
    totals.clear()
    if pyinstrument:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    t0 = clock()
    train(net, x, labels, epochs=1, batch_size=50, seed=0)
    total = clock() - t0
    tree = ""
    if pyinstrument:
        profiler.stop()
        tree = profiler.output_text(unicode=False, color=False, show_all=False)
    per_epoch = 60000 / images
    totals["rest (loop, loss, checks)"] = total - sum(totals.values())
    return {"epoch_s": total * per_epoch, "parts": {k: v * per_epoch for k, v in totals.items()}, "tree": tree}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--images", type=int, default=6000)
    ap.add_argument("--engine", choices=["numba", "numpy"], help="default: convprop's (numba when installed)")
    ap.add_argument("--threads", type=int, help="convprop's thread count (default: every core)")
    ap.add_argument("--pyinstrument", action="store_true")
    args = ap.parse_args()
    convprop.set_engine(args.engine)
    convprop.set_num_threads(args.threads)
    result = profile(args.dtype, args.images, args.pyinstrument)
    print(f"{args.dtype}, {args.images} images, batch 50, engine {convprop.engine.backend.engine()}, "
          f"{convprop.get_num_threads()} threads: {result['epoch_s']:.2f} s per 60,000-image epoch, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"{'part':<26} {'s/epoch':>8} {'share':>6}")
    for name, secs in sorted(result["parts"].items(), key=lambda kv: -kv[1]):
        print(f"{name:<26} {secs:8.3f} {secs / result['epoch_s']:6.1%}")
    if args.pyinstrument:
        print(result["tree"])


if __name__ == "__main__":
    main()
