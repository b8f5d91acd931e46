"""Images per second of data-parallel training: 1 process against K MPI ranks, alternated in one run.

The toolbox's example network (28x28-6c5-s2-12c5-s2-10o, float64, SGD alpha 1) trains one epoch
of ``--images`` random MNIST-sized images per measurement, at each global batch size of
``--batches``. Each repetition runs, back to back, one plain process (no MPI, the baseline) and
``mpiexec -n K`` (one engine thread per rank), so that the machine's load drifts over both alike;
the ratio is median(K ranks) / median(1 process) of images/s. Only the epoch is timed (from the
loop's first batch to its end: no interpreter or MPI start-up), on rank 0. The load average before
each measurement is recorded too, and the CPU seconds of the epoch (of the busiest rank): their
ratio is the speed-up the run would have with a free core per rank, which a busy machine hides. Writes ``mpi_throughput.json`` (or ``--out``).

    PYTHONPATH=$PWD/src python3 benchmarks/mpi_throughput.py                 # 2 ranks, batches 50 and 200
    PYTHONPATH=$PWD/src python3 benchmarks/mpi_throughput.py --ranks 3 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(images: int, batch: int) -> None:
    """One measurement (run by each rank, or by the single process): prints images/s on rank 0."""
    import numpy as np

    from convprop import Conv, Input, Network, Subsample, fit
    from convprop.training.callbacks import Callback
    from convprop.training.mpi import world

    class Clock(Callback):
        def on_epoch_begin(self, loop):
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, loop):
            self.seconds = time.perf_counter() - self.start
            self.cpu = time.process_time() - self.cpu_start

    comm = world()
    rng = np.random.default_rng(0)
    x, y = rng.random((images, 28, 28)), rng.integers(0, 10, images)
    net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10, seed=0)
    # warm-up, alone, not timed: the compiled engine loads (or compiles) its kernels at first use
    fit(net.copy(), x[:2 * batch], y[:2 * batch], epochs=1, batch_size=batch, alpha=1.0, seed=1)
    clock = Clock()
    fit(net, x, y, epochs=1, batch_size=batch, alpha=1.0, seed=1, comm=comm, callbacks=[clock])
    cpu = clock.cpu if comm is None else comm.allreduce(clock.cpu, op=__import__("mpi4py").MPI.MAX)
    if comm is None or comm.Get_rank() == 0:  # cpu: the busiest rank's CPU seconds in the epoch
        print(json.dumps({"images_per_s": images / clock.seconds, "seconds": clock.seconds, "cpu_seconds": cpu}),
              flush=True)


def _mpiexec() -> list[str]:
    beside = Path(sys.executable).parent / "mpiexec"
    exe = str(beside) if beside.exists() else "mpiexec"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return [exe, "--oversubscribe", "--bind-to", "none"] if "Open MPI" in version else [exe]


def measure(ranks: int, images: int, batch: int) -> dict:
    env = dict(os.environ, CONVPROP_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    body = [sys.executable, __file__, "--worker", str(images), str(batch)]
    argv = body if ranks == 1 else [*_mpiexec(), "-n", str(ranks), *body]
    load = os.getloadavg()[0]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_before"] = load
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--images", type=int, default=6000)
    p.add_argument("--batches", type=int, nargs="+", default=[50, 200])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", type=Path, default=HERE / "mpi_throughput.json")
    args = p.parse_args()
    runs = {b: {1: [], args.ranks: []} for b in args.batches}
    for rep in range(args.reps):
        for b in args.batches:
            for k in (1, args.ranks) if rep % 2 == 0 else (args.ranks, 1):  # alternate who goes first
                r = measure(k, args.images, b)
                runs[b][k].append(r)
                print(f"rep {rep + 1} batch {b} ranks {k}: {r['images_per_s']:.0f} img/s "
                      f"(load {r['load_before']:.2f})", flush=True)
    summary = {"network": "28x28-6c5-s2-12c5-s2-10o float64", "images_per_epoch": args.images,
               "cores": os.cpu_count(), "ranks": args.ranks, "reps": args.reps, "batches": {}}
    for b, by_k in runs.items():
        med = {k: statistics.median(r["images_per_s"] for r in rs) for k, rs in by_k.items()}
        cpu = {k: statistics.median(r["cpu_seconds"] for r in rs) for k, rs in by_k.items()}
        summary["batches"][str(b)] = {
            "median_images_per_s": {str(k): v for k, v in med.items()},
            "ratio": med[args.ranks] / med[1],
            # what the ratio would be with a core free for every rank: CPU seconds of the one process
            # over those of the busiest rank (waits sleep, so they cost next to no CPU)
            "cpu_time_ratio": cpu[1] / cpu[args.ranks],
            "median_cpu_seconds": {str(k): v for k, v in cpu.items()},
            "all_images_per_s": {str(k): [round(r["images_per_s"], 1) for r in rs] for k, rs in by_k.items()},
            "load_average_before": {str(k): [round(r["load_before"], 2) for r in rs] for k, rs in by_k.items()},
        }
        print(f"batch {b}: 1 process {med[1]:.0f} img/s, {args.ranks} ranks {med[args.ranks]:.0f} img/s, "
              f"ratio {med[args.ranks] / med[1]:.2f} (CPU-time ratio {cpu[1] / cpu[args.ranks]:.2f})")
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
