"""What each rank runs in the MPI tests: ``mpiexec -n K python mpi_worker.py SCENARIO OUT``.

``equivalence``: trains every case of :data:`CASES` data-parallel (``fit(...,
comm=MPI.COMM_WORLD)``); rank 0 writes ``OUT/<case>.npz`` (weights, history,
test errors, and each rank's share sizes), which the test compares with a
single-process run of the same case (:func:`train_case` without a
communicator). ``mismatch``: rank 1 trains on other data; every rank must
raise the same error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from convprop import Conv, Input, Network, Subsample, fit
from convprop.engine.optim import SGD
from convprop.training.callbacks import Callback

#: name → (n_train, batch_size, epochs, optimizer?, float dtype); the global batch sizes and the
#: last partial batches are chosen so that some K in 1..4 do not divide them, and batch 2 leaves
#: ranks without images when K > 2.
CASES = {
    "toolbox_b50_partial": dict(n=130, batch=50, epochs=1, momentum=0.0),
    "b7_k_does_not_divide": dict(n=45, batch=7, epochs=2, momentum=0.0),
    "b2_ranks_without_images": dict(n=9, batch=2, epochs=1, momentum=0.0),
    "momentum_b20": dict(n=64, batch=20, epochs=2, momentum=0.9),
}


def case_data(n: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28))
    y = rng.integers(0, 10, n)
    return x, y, rng.random((23, 28, 28)), rng.integers(0, 10, 23)


def case_net() -> Network:
    """The toolbox's example network (6c5-s2-12c5-s2, 10 sigmoid outputs)."""
    return Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10, seed=11)


class Shares(Callback):
    """Records how many images this rank computed at every step (after the distributed callback narrowed them)."""

    def __init__(self):
        self.sizes = []

    def on_batch_end(self, loop):
        self.sizes.append(len(loop.indices))


def train_case(name: str, comm=None):
    """(net, state, shares) of case ``name``, single-process when ``comm`` is None."""
    c = CASES[name]
    x, y, xt, yt = case_data(c["n"])
    net = case_net()
    opt = SGD(lr=0.5, momentum=c["momentum"]) if c["momentum"] else None
    shares = Shares()
    state = fit(net, x, y, epochs=c["epochs"], batch_size=c["batch"], alpha=1.0, optimizer=opt, seed=7,
                x_test=xt, y_test=yt, comm=comm, callbacks=[shares])
    return net, state, shares.sizes


def equivalence(out: Path) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    for name in CASES:
        net, state, sizes = train_case(name, comm)
        all_sizes = comm.gather(sizes, root=0)
        if comm.rank == 0:
            np.savez(out / f"{name}.npz", rL=np.array(state.rL), L=np.array(state.L),
                     test_error=np.array(state.test_error), sizes=np.array(all_sizes),
                     **{k: v for k, v in net.parameters().items()})


def mismatch(out: Path) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    x, y, _, _ = case_data(20)
    if comm.rank == 1:
        x = x.copy()
        x[3, 4, 5] += 1e-9  # the smallest of differences
    try:
        fit(case_net(), x, y, batch_size=5, seed=7, comm=comm)
    except ValueError as exc:
        (out / f"error{comm.rank}.json").write_text(json.dumps({"type": type(exc).__name__, "text": str(exc)}))


def threads(out: Path) -> None:
    """Each rank's engine threads when the user set none, and the cores it may run on."""
    import os

    from mpi4py import MPI

    from convprop.training.mpi import set_threads

    comm = MPI.COMM_WORLD
    os.environ.pop("CONVPROP_THREADS", None)
    set_threads(comm)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    (out / f"threads{comm.rank}.json").write_text(json.dumps({"threads": int(os.environ["CONVPROP_THREADS"]),
                                                                "usable": usable, "cores": os.cpu_count()}))


def settings(out: Path) -> None:
    """The Open MPI settings world() leaves in each rank's environment (before MPI starts)."""
    import os

    from convprop.training.mpi import world

    comm = world()
    names = ["OMPI_MCA_mpi_yield_when_idle", "OMPI_MCA_btl_sm_eager_limit", "OMPI_MCA_btl_sm_max_send_size",
             "OMPI_MCA_btl_sm_rndv_eager_limit"]
    (out / f"settings{comm.rank}.json").write_text(json.dumps({name: os.environ.get(name) for name in names}))


if __name__ == "__main__":
    scenario, out = sys.argv[1], Path(sys.argv[2])
    {"equivalence": equivalence, "mismatch": mismatch, "threads": threads, "settings": settings}[scenario](out)
