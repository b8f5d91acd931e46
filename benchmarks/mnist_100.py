"""The DeepLearnToolbox example network trained for 100 epochs on MNIST (the toolbox reports ~1.2 % error).

Reads the original MNIST IDX .gz files (default ../shared/data/mnist), trains
28x28-6c5-s2-12c5-s2-10o with alpha 1, batch 50, shuffled every epoch, logs
every epoch (time, smoothed loss rL, test error every --test-every epochs) and
writes a result JSON when done (temp file + os.replace).

Usage (from the project root)::

    nohup nice env PYTHONPATH=$PWD/src python3 benchmarks/mnist_100.py > runs/mnist_100.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from convprop import Conv, Input, Network, Subsample

from convprop import evaluate

from convprop import train
from convprop.datasets import read_idx


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data", "mnist"))
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-every", type=int, default=10)
    ap.add_argument("--out", default=os.path.join(here, "mnist_100_result.json"))
    args = ap.parse_args()

    x = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz")).astype(args.dtype) / 255
    y = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    xt = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")).astype(args.dtype) / 255
    yt = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10,
                  dtype=args.dtype, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    errors, seconds, rl = {}, [], []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        h = train(net, x, y, epochs=1, batch_size=50, alpha=1.0, seed=rng)
        seconds.append(h.epoch_seconds[0])
        rl.append(h.rL[-1])
        line = f"epoch {epoch:3d}  {h.epoch_seconds[0]:6.2f} s  rL {h.rL[-1]:.5f}"
        if epoch % args.test_every == 0 or epoch == args.epochs:
            errors[epoch] = evaluate(net, xt, yt).error
            line += f"  test error {errors[epoch]:.2%}"
        print(line, f"load {os.getloadavg()[0]:.1f}", flush=True)
    total = time.perf_counter() - start
    result = {"network": net.spec, "dtype": args.dtype, "epochs": args.epochs, "batch": 50, "alpha": 1.0,
              "seed": args.seed, "test_error": errors[args.epochs], "test_error_by_epoch": errors,
              "total_seconds": total, "epoch_seconds": seconds, "final_rL_per_epoch": rl,
              "loadavg_end": os.getloadavg()}
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    print(f"done: {args.epochs} epochs in {total / 60:.1f} min, test error {errors[args.epochs]:.2%}")


if __name__ == "__main__":
    main()
