"""The toolbox's example (MNIST, 6c5-s2-12c5-s2, batch 50, alpha 1, one epoch) alone and on K MPI ranks.

Runs ``convprop train`` once as one process and once under ``mpiexec -n K`` with the same
seed, then compares the test errors and the weights. Writes ``mpi_mnist_example.json``.

    PYTHONPATH=$PWD/src python3 benchmarks/mpi_mnist_example.py --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    from convprop.formats.checkpoint import load_checkpoint
    from mpi_throughput import _mpiexec

    env = dict(os.environ, CONVPROP_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    train = [sys.executable, "-m", "convprop", "train", "--data-dir", args.data_dir, "--epochs", str(args.epochs),
             "--quiet", "--no-plots", "--seed", "0"]
    result = {"ranks": args.ranks, "epochs": args.epochs}
    with tempfile.TemporaryDirectory() as tmp:
        for label, prefix in (("alone", []), (f"{args.ranks} ranks", [*_mpiexec(), "-n", str(args.ranks)])):
            t0 = time.perf_counter()
            out = subprocess.run([*prefix, *train, "--out", f"{tmp}/{label}"], env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stderr)
            net, state = load_checkpoint(Path(tmp, label, "checkpoint.npz"))
            result[label] = {"test_error": state.test_error, "final_rL": state.rL[-1], "seconds": time.perf_counter() - t0,
                             "weights": {k: v.copy() for k, v in net.parameters().items()}}
            print(f"{label}: test error {100 * state.test_error[-1]:.2f} %, rL {state.rL[-1]:.6f}, "
                  f"{result[label]['seconds']:.1f} s", flush=True)
    a, b = result["alone"].pop("weights"), result[f"{args.ranks} ranks"].pop("weights")
    result["max_relative_weight_difference"] = max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(a[k]))) for k in a)
    result["load_average_after"] = os.getloadavg()[0]
    print(f"max relative weight difference: {result['max_relative_weight_difference']:.2e}")
    (HERE / "mpi_mnist_example.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
