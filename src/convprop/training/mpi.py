"""The MPI world: is this process one of K launched by ``mpiexec`` / ``srun``, and its communicator.

mpi4py is optional (``pip install 'convprop[mpi]'``); this module imports it
only when a launcher started more than one process (or when asked to), so
``import convprop`` and single-process training never need it.

A launcher is recognised by the variables it sets in every process's
environment: ``OMPI_COMM_WORLD_SIZE`` (Open MPI's ``mpiexec``), ``PMI_SIZE``
(MPICH, Intel MPI, ``srun --mpi=pmi2``), ``MV2_COMM_WORLD_SIZE`` (MVAPICH),
``SLURM_STEP_NUM_TASKS`` with ``PMIX_RANK`` (``srun --mpi=pmix``).
``CONVPROP_DISTRIBUTED=0`` turns the detection off (each process trains
alone); ``CONVPROP_DISTRIBUTED=1`` uses ``MPI.COMM_WORLD`` whatever the
environment says.
"""

from __future__ import annotations

import os

import numpy as np

from .._validation import check_images
from ..errors import ConvpropError

#: (variable, condition variable or None): where launchers leave the number of processes.
_SIZE_VARIABLES = (("OMPI_COMM_WORLD_SIZE", None), ("PMI_SIZE", None), ("MV2_COMM_WORLD_SIZE", None),
                   ("SLURM_STEP_NUM_TASKS", "PMIX_RANK"))
_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")


#: Open MPI's shared-memory transport: messages up to 64 KiB sent at once (``world`` sets them unless the
#: user set any of the transport's variables).
_SHARED_MEMORY_EAGER = {"OMPI_MCA_btl_sm_eager_limit": "65536", "OMPI_MCA_btl_sm_max_send_size": "65536",
                        "OMPI_MCA_btl_sm_rndv_eager_limit": "65536"}


def launched_size(environ=None) -> int:
    """The number of processes a launcher started, from the environment (1 when none did)."""
    env = os.environ if environ is None else environ
    for name, needs in _SIZE_VARIABLES:
        if name in env and (needs is None or needs in env):
            try:
                return max(1, int(env[name]))
            except ValueError:
                continue
    return 1


def launched_rank(environ=None) -> int:
    """This process's rank according to the launcher's environment (0 when none started it)."""
    env = os.environ if environ is None else environ
    if launched_size(env) == 1:
        return 0
    for name in _RANK_VARIABLES:
        if env.get(name, "").isdigit():
            return int(env[name])
    return 0


def world():
    """``MPI.COMM_WORLD`` when this process is one of several launched together, else None.

    Raises
    ------
    ConvpropError
        When a launcher started several processes but mpi4py is missing, or
        mpi4py's MPI library is not the launcher's (each process would see a
        world of its own and train alone).
    """
    setting = os.environ.get("CONVPROP_DISTRIBUTED", "").strip().lower()
    if setting in ("0", "no", "off", "false"):
        return None
    size = launched_size()
    if size <= 1 and setting not in ("1", "yes", "on", "true"):
        return None
    # Open MPI spins while a rank waits for the others; on a machine whose cores are shared
    # (other jobs, or more ranks than cores) the spinning rank takes the time the others need.
    # Yielding costs a system call per poll: 2 ranks on a busy 2-core machine went from
    # 0.16-0.39x to 0.54-0.63x one process's images/s (benchmarks/README.md). Before MPI_Init.
    os.environ.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    # Between ranks of one machine Open MPI sends up to 4 KiB at once, larger messages in a
    # rendezvous that both ranks must progress (each poll of the step's non-blocking Allreduce).
    # The toolbox network's buffer is 31 KiB: sent at once, a rank's step waited 15-25 us less.
    # All three or none: a user's setting of the transport (or of its old name, vader) stands alone.
    if not any(name.startswith(("OMPI_MCA_btl_sm_", "OMPI_MCA_btl_vader_")) for name in os.environ):
        os.environ.update(_SHARED_MEMORY_EAGER)
    try:
        from mpi4py import MPI
    except ImportError:
        raise ConvpropError(f"started as one of {size} MPI processes, but mpi4py is not installed: "
                            "pip install 'convprop[mpi]' (or set CONVPROP_DISTRIBUTED=0 to train "
                            "each process alone)") from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() != size and size > 1:
        raise ConvpropError(f"the launcher started {size} processes but mpi4py's MPI sees {comm.Get_size()}: "
                            f"mpiexec is not from the MPI that mpi4py uses ({MPI.Get_library_version().split(',')[0]}); "
                            "use the mpiexec of that MPI (e.g. the virtual environment's bin/mpiexec)")
    return comm if comm.Get_size() > 1 else None


def threads_per_rank(comm) -> int:
    """Cores of this machine over the ranks sharing it (at least 1): each rank's engine threads."""
    from mpi4py import MPI

    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        sharing = local.Get_size()
    finally:
        local.Free()
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):  # a rank bound to some cores uses those
        cores = min(cores, len(os.sched_getaffinity(0)) * sharing)
    return max(1, cores // sharing)


def set_threads(comm) -> None:
    """Give each rank its share of the machine's cores (``CONVPROP_THREADS``), unless the user set it."""
    if "CONVPROP_THREADS" not in os.environ:
        os.environ["CONVPROP_THREADS"] = str(threads_per_rank(comm))


def wait_politely(request, spin: float = 2e-3, longest: float = 2e-4) -> None:
    """Wait for a non-blocking MPI request: poll, yielding the core, for ``spin`` s, then nap between polls.

    Each poll is followed by ``os.sched_yield()``: on an idle core that returns at once (a
    busy wait, which answers within microseconds when the other ranks arrive), on a shared
    core it lets the process that core also runs (another rank, another job) go first. After
    ``spin`` s the waiting rank sleeps between polls, naps from 20 µs doubling up to ``longest``
    s, so that a long wait (a rank far behind, evaluation) costs no CPU. A blocking collective
    spins without yielding: on a busy 2-core machine 2 ranks trained 2–2.5× slower with it; a
    sleep after every poll costs its timer's wake-up (≥ 50 µs on a virtual machine) on every
    step (benchmarks/README.md).
    """
    import time

    end = time.perf_counter() + spin
    while time.perf_counter() < end:
        if request.Test():
            return
        os.sched_yield()
    nap = 2e-5
    while not request.Test():
        time.sleep(nap)
        nap = min(2 * nap, longest)


def share(n: int, size: int, rank: int) -> tuple[int, int]:
    """``[start, stop)`` of ``rank``'s contiguous share of ``n`` items over ``size`` ranks.

    The first ``n mod size`` ranks get one item more; a rank gets none when
    ``n < size``.
    """
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def allgather_rows(comm, local: np.ndarray, n: int) -> np.ndarray:
    """Every rank's rows of ``local`` (its :func:`share` of ``n`` rows), in rank order, on every rank."""
    size = comm.Get_size()
    rows = [share(n, size, r) for r in range(size)]
    width = int(np.prod(local.shape[1:], dtype=np.int64))
    out = np.empty((n, *local.shape[1:]), dtype=local.dtype)
    counts = [(stop - start) * width for start, stop in rows]
    comm.Allgatherv(np.ascontiguousarray(local), [out, counts])
    return out


def sharded_predict_proba(net, x, comm) -> np.ndarray:
    """:meth:`Network.predict_proba` of ``x`` with the images shared out over the ranks; all get all rows.

    Parameters
    ----------
    net : Network
        The same weights on every rank.
    x : array_like, shape (N, H, W[, C])
        The same images on every rank.
    comm : mpi4py communicator

    Returns
    -------
    ndarray, shape (N, n_outputs)
    """
    maps, single = check_images(x, net.image_shape, net.dtype)
    if single:
        return net.predict_proba(x)
    n = maps.shape[0]
    start, stop = share(n, comm.Get_size(), comm.Get_rank())
    local = net.predict_proba(maps[start:stop]) if stop > start else np.empty((0, net.n_outputs), net.dtype)
    return allgather_rows(comm, local, n)


def sharded_predict(net, x, comm) -> np.ndarray:
    """Predicted classes of ``x``, computed in shares over the ranks (see :func:`sharded_predict_proba`)."""
    proba = sharded_predict_proba(net, x, comm)
    return np.argmax(proba, axis=-1)


__all__ = ["world", "launched_size", "launched_rank", "threads_per_rank", "set_threads", "wait_politely", "share",
           "allgather_rows", "sharded_predict_proba", "sharded_predict"]
