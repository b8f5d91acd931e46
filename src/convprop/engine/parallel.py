"""Threads: how many the layers use, and a cap on BLAS's own.

The thread count k is, in order of precedence: :func:`set_num_threads`, the
environment variable ``CONVPROP_THREADS``, else every core this process may run
on (``os.sched_getaffinity``), as PyTorch does. The compiled engine cuts a batch
into k slices that k threads push through the whole network
(:mod:`convprop.engine.slices`, with :func:`run_tasks`); a batch too small to
cut (under 2·MIN_SLICE images) has each kernel's output rows shared over the k
threads instead (:func:`run_rows`). The NumPy engine shares each convolution's
row blocks over k threads (:func:`map_blocks`). ``CONVPROP_BLAS_THREADS=m``
(default 1) caps the BLAS library's threads while convprop trains or predicts
(:func:`blas_limit`): the GEMMs of a small CNN are thin (6 or 12 output maps), a
second BLAS thread gains nothing on them (see benchmarks/README.md), and on a
machine whose other core is busy OpenBLAS's spinning threads made training up
to 8× slower.

Compiled kernels, NumPy copies and BLAS calls release the GIL, so the threads
run in parallel. On the compiled engine the k − 1 other threads are a
:class:`Crew`: between jobs they spin without the GIL for a few milliseconds
(then sleep), because waking a sleeping thread took 30–120 µs on the
development machine, twice per training step; a job whose tasks announce
their kernels (:func:`start_signal`) is posted without the GIL, so that no
thread ever waits for a GIL another one holds; and the training loop's steps on
one data set are *bound* jobs (:meth:`Crew.run_bound`), whose slices the crew
threads run from a compiled loop, without Python or the GIL between steps. Results are the same bits run after run for a given k; between
thread counts they differ by round-off only (the slices' gradients are summed
in another order; the row-sharing of :func:`run_rows` gives the same bits for
every k).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import TypeVar

import numpy as np

from ..errors import ConvpropError
from .environment import getenv

T = TypeVar("T")
_pools: dict[int, ThreadPoolExecutor] = {}
# A forked child (multiprocessing's default start method on Linux) inherits the pools but not
# their threads: work submitted there would wait forever. The child starts with no pools.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pools.clear)


#: Per thread: whether it runs a task of :func:`run_tasks` (its layers then use one thread).
_local = threading.local()

#: Thread count set by :func:`set_num_threads` (None: the environment / every core).
_count: int | None = None


def _env_count(name: str, default: Callable[[], int] = lambda: 1) -> int:
    """The positive integer in environment variable ``name``, else ``default()``."""
    raw = getenv(name)
    if raw is None:
        return default()
    try:
        k = int(raw)
    except ValueError:
        raise ConvpropError(f"{name} must be a positive integer, got {raw!r}") from None
    if k < 1:
        raise ConvpropError(f"{name} must be a positive integer, got {raw!r}")
    return k


#: (process id, time.monotonic() of the reading, cores): :func:`cores`' last reading
_cores: tuple[int, float, int] = (0, 0.0, 1)


def cores() -> int:
    """Number of cores this process may run on (its CPU affinity), read again after a second.

    Every training step asks (the default thread count); the system call took 9–10 µs of a
    step's Python on the caches the kernels had just cooled.
    """
    global _cores
    pid, when, count = _cores
    now = time.monotonic()
    if pid != os.getpid() or now - when > 1.0:
        try:
            count = max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):  # not Linux
            count = max(1, os.cpu_count() or 1)
        _cores = (os.getpid(), now, count)
    return count


def n_threads() -> int:
    """The layers' thread count: :func:`set_num_threads`, else ``CONVPROP_THREADS``, else :func:`cores`.

    The environment variable is read at every call. Inside a task of :func:`run_tasks`: 1.
    """
    if getattr(_local, "inside", False):
        return 1
    return _count if _count is not None else _env_count("CONVPROP_THREADS", cores)


def set_num_threads(k: int | None) -> None:
    """Use ``k`` threads in every layer from now on (None: back to ``CONVPROP_THREADS`` / every core).

    For a given k, results are bit-identical from run to run; between thread
    counts they differ by round-off only (see :mod:`convprop.engine.slices`).
    """
    global _count
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ConvpropError(f"the thread count must be a positive integer or None, got {k!r}")
    _count = k


def get_num_threads() -> int:
    """The thread count the layers use now (see :func:`n_threads`)."""
    return n_threads()


@contextmanager
def blas_limit() -> Iterator[None]:
    """Cap BLAS at ``CONVPROP_BLAS_THREADS`` threads (default 1) inside the ``with`` block.

    The cap reaches the BLAS libraries convprop calls: NumPy's, and on the compiled engine
    SciPy's, which its dense kernels call (``np.dot`` in Numba), loaded here first if need be.
    """
    global _capped
    with _blas_controller().limit(limits=_env_count("CONVPROP_BLAS_THREADS"), user_api="blas"):
        _capped += 1
        try:
            yield
        finally:
            _capped -= 1


#: :func:`blas_limit` blocks open (BLAS is capped while there is one); threadpoolctl's controllers
#: by whether SciPy's BLAS is among their libraries (finding the libraries took 0.3 ms a block,
#: setting the cap with a controller found before 10 µs).
_capped = 0
_controllers: dict = {}


def _blas_controller():
    from threadpoolctl import ThreadpoolController

    from . import backend

    scipy_too = backend.engine() == "numba"
    if scipy_too:
        import scipy.linalg.cython_blas  # noqa: F401
    controller = _controllers.get(scipy_too)
    if controller is None:
        controller = _controllers[scipy_too] = ThreadpoolController()
    return controller


def _blas_capped():
    """:func:`blas_limit`, unless a block of it is open already (the training loop's, prediction's)."""
    return nullcontext() if _capped else blas_limit()


#: Work (multiply-adds or elements passed over) below which a kernel call stays on one
#: thread: handing a range to a pool thread costs 10–25 µs, about this much work.
MIN_WORK_PER_THREAD = 250_000

#: Multiply-adds below which a convolution kernel call stays on one thread: a hand-off
#: and the wait for the slower thread cost 50–300 µs on a shared machine, about this much
#: work (measured: sharing a 10-image batch's convolutions over 2 threads made a training
#: step 1.4× slower).
MIN_MACS_PER_THREAD = 4_000_000


def run_rows(kernel: Callable[..., None], rows: int, *args, work: int | None = None,
             per_thread: int | None = None) -> None:
    """Call ``kernel(*args, lo, hi)`` on contiguous ranges of ``rows`` rows, over the layers' threads.

    ``work`` (elements passed over, or multiply-adds with ``per_thread`` =
    :data:`MIN_MACS_PER_THREAD`) limits the threads to one per ``per_thread``
    units of work (default :data:`MIN_WORK_PER_THREAD`); None: no limit.

    The compiled kernels release the GIL, so the ranges run in parallel. The rows
    are cut into 2k ranges that the calling thread and k − 1 pool threads take in
    turn, so a thread that the OS delays (another process on its core) holds up
    at most one small range. Every row is computed by exactly one call, whatever
    the split and whichever thread, so results do not depend on the thread count.
    """
    k = min(threads_for(work, per_thread), rows)
    if k <= 1:
        kernel(*args, 0, rows)
        return
    parts = min(rows, 2 * k)
    bounds = [rows * i // parts for i in range(parts + 1)]
    _share(lambda i: kernel(*args, bounds[i], bounds[i + 1]), parts, k)


def threads_for(work: int | None, per_thread: int | None = None) -> int:
    """The threads a kernel call of ``work`` units shares its rows over (:func:`run_rows`' rule)."""
    if work is None:
        return n_threads()
    return min(n_threads(), work // (MIN_WORK_PER_THREAD if per_thread is None else per_thread))


def run_tasks(task: Callable[[int], T], count: int, announced: bool = False) -> list[T]:
    """``[task(0), …, task(count − 1)]``, the tasks shared over up to ``count`` threads (the caller's too).

    Inside a task :func:`n_threads` is 1, so the layers it runs do not share their
    rows out again (see :mod:`convprop.engine.slices`). ``announced``: each task soon
    enters a kernel that calls :func:`start_signal`'s store; the calling thread waits for
    that before it takes a task itself, so that it never waits for the GIL a starting
    task's Python holds (a wake-up of 30–120 µs).
    """
    results: list = [None] * count

    def one(i: int) -> None:
        outer = getattr(_local, "inside", False)
        _local.inside = True
        try:
            results[i] = task(i)
        finally:
            _local.inside = outer

    k = min(n_threads(), count)
    if k <= 1:
        for i in range(count):
            one(i)
    else:
        with _blas_capped():  # k slices each calling a BLAS of k threads: k² threads on k cores
            _share(one, count, k, announced)
    return results


_NO_SIGNAL = np.zeros(1, dtype=np.int64)


def start_signal() -> tuple[np.ndarray, int, int]:
    """(array, index, value): a kernel that a :class:`Crew` thread's task enters stores value at
    array[index] first, telling the thread that handed the task over that this one no longer
    holds the GIL (elsewhere: a scratch array)."""
    return getattr(_local, "signal", None) or (_NO_SIGNAL, 0, 0)


def inside_task() -> bool:
    """Whether this thread is running one of :func:`run_tasks`' tasks."""
    return getattr(_local, "inside", False)


def run_bound(serve: Callable[[np.ndarray, int, int], int], own: Callable[[], T], count: int,
              token: int) -> tuple[bool, T | None]:
    """``own()`` on this thread while ``count`` − 1 :class:`Crew` threads serve a bound job (:meth:`Crew.run_bound`).

    Returns (True, own's result); (False, None) without running anything when there is no crew of
    ``count`` − 1 threads to take it (the NumPy engine, fewer threads, another thread using it): the
    caller then shares its work some other way (:func:`run_tasks`).
    """
    crew = _crew(count - 1) if 1 < count <= n_threads() else None
    if crew is None or not crew.busy.acquire(blocking=False):
        return False, None
    try:
        with _blas_capped():  # as run_tasks
            return True, crew.run_bound(token, serve, own)
    finally:
        crew.busy.release()


#: The tokens of :meth:`Crew.run_bound` (next() is atomic under the GIL).
new_token = itertools.count(1).__next__


def unbind() -> None:
    """:meth:`Crew.unbind` for every crew: no thread of this process serves a bound job after this."""
    for crew in list(_crews.values()):
        crew.unbind()


def _share(call: Callable[[int], None], parts: int, k: int, announced: bool = False) -> None:
    """``call(i)`` for i < parts by the calling thread and k − 1 other threads, taking tickets in turn.

    The other threads are a :class:`Crew` (spinning between jobs) when the compiled engine is
    there and no other thread is using it, else the thread pool.
    """
    crew = _crew(k - 1)
    if crew is not None and crew.busy.acquire(blocking=False):
        try:
            crew.run(call, parts, announced)
        finally:
            crew.busy.release()
        return
    _share_pool(call, parts, k)


def _share_pool(call: Callable[[int], None], parts: int, k: int) -> None:
    """:func:`_share` on the thread pool: its threads sleep between jobs."""
    finished = itertools.count(1)  # next() is atomic under the GIL
    done = threading.Event()
    errors: list[BaseException] = []

    def finish() -> None:
        if next(finished) == parts:
            done.set()

    take = _taker(call, parts, errors, finish)
    pool = _pool(k - 1)
    for _ in range(k - 1):
        pool.submit(_in_callers_errstate(take))
    take()
    # Wait for the parts, not for the pool threads: one that the OS has not woken yet
    # finds no part left when it does, and nobody waits for it.
    done.wait()
    if errors:
        raise errors[0]


def _taker(call: Callable[[int], None], parts: int, errors: list[BaseException],
           finished: Callable[[], object] | None = None) -> Callable[[], int]:
    """``take()`` for the threads that share ``parts``: each calls ``call(i)`` for the next ticket i
    until none is left, and returns how many it took. A part's error goes to ``errors`` (the caller
    re-raises it); ``finished()`` runs after each part."""
    ticket = itertools.count()  # next() is atomic under the GIL

    def take() -> int:
        done = 0
        for i in iter(ticket.__next__, None):
            if i >= parts:
                return done
            try:
                call(i)
            except BaseException as exc:  # re-raised in the calling thread
                errors.append(exc)
            done += 1
            if finished is not None:
                finished()

    return take


#: How long a crew thread spins for the next job, and the caller for the parts, in polls of the
#: shared flags, each followed by a sched_yield (0.15 µs on an idle core: a few ms), before they
#: sleep instead.
SPIN_POLLS = 20_000
#: How long the caller of an ``announced`` job waits for the crew's parts to start (about 0.2 ms).
START_POLLS = 1_500
_crews: dict[int, "Crew"] = {}
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_crews.clear)


class Crew:
    """``workers`` threads that take the parts of the jobs of :func:`_share` with its caller.

    Between jobs they spin (without the GIL, yielding the core after each poll:
    :mod:`convprop.engine.kernels.spin`) for :data:`SPIN_POLLS` polls, then sleep: a
    training step hands its slices over every few hundred µs, and a sleeping thread took
    30–120 µs to be woken on the development machine (a virtual machine), at the start of
    each step and again at its end. The caller also spins while it waits for the crew's parts.
    """

    def __init__(self, workers: int) -> None:
        from .kernels import spin

        self._spin, self.workers = spin, workers
        #: flags[0], flags[1]: the generation of the last job and its token (:meth:`run_bound`; 0: none);
        #: flags[8·s], flags[8·s + 1], flags[8·s + 2]: the generation thread s finished last, how many
        #: parts of it it took, and the generation whose part it announced (:func:`start_signal`) (one
        #: cache line each).
        self.flags = np.zeros(8 * (workers + 1), dtype=np.int64)
        #: (generation, take, serve) of the job posted last: ``take()`` takes its parts in turn (serve
        #: None), or ``serve(flags, slot, generation)`` runs thread ``slot``'s part of a bound job.
        self.job: tuple[int, Callable[[], int], Callable[[np.ndarray, int, int], int] | None] | None = None
        self.busy = threading.Lock()  # one caller at a time; others use the pool
        self.token = 0  # of the last bound job (run_bound), until unbind
        self._failed: dict[int, BaseException] = {}  # a bound job's error, by generation
        self._wake = threading.Condition()
        self._sleepers = 0
        for slot in range(1, workers + 1):
            threading.Thread(target=self._serve, args=(slot,), name=f"convprop-crew-{slot}", daemon=True).start()

    def run(self, call: Callable[[int], None], parts: int, announced: bool = False) -> None:
        """``call(i)`` for i < parts, shared by the calling thread and the crew; re-raises the first error.

        ``announced``: wait (a while at most) until every crew thread's part has entered its kernel
        (:func:`start_signal`) before taking a part here.
        """
        errors: list[BaseException] = []
        take = _taker(call, parts, errors)
        gen = int(self.flags[0]) + 1
        self.job = (gen, _in_callers_errstate(take), None)  # set before its generation is posted
        if announced and not self._sleepers:
            # posted without the GIL, which the crew then finds free, and held again only once
            # the crew's parts have entered their kernels: no thread waits for the GIL
            self.flags[1] = 0  # not a bound job: a thread serving one returns to take this one
            self._spin.post_and_wait_for_start(self.flags, self.workers, gen, START_POLLS)
        else:
            self._post(gen)
        own = take()
        while not self._spin.wait_for_parts(self.flags, self.workers, gen, own, parts, SPIN_POLLS):
            time.sleep(2e-4)  # a crew thread far behind (its core busy with another process)
        # Done: a crew thread that comes to this job late finds no part, as it would have found no
        # ticket; the job's closure (and the batch, often a whole data set, it refers to) goes now.
        self.job = (gen, _no_part, None)
        if errors:
            raise errors[0]

    def run_bound(self, token: int, serve: Callable[[np.ndarray, int, int], int], own: Callable[[], T]) -> T:
        """``own()`` here while each crew thread s runs ``serve(flags, s, generation)``; returns what ``own`` does.

        ``serve`` is a compiled loop (:func:`convprop.engine.kernels.serve.serve`): it runs thread s's
        part of this job, then, with no Python between them, that of each next job posted with the
        same ``token`` (> 0), until a job with another token comes or none comes for a while; it
        returns the generation of the last job it ran. So a crew thread starts its part of the next
        step of the same binding about 1 µs after the post, and never holds the GIL: ``own`` starts
        at once, without waiting for the crew to take its part first.
        """
        gen = int(self.flags[0]) + 1
        self.job = (gen, _no_part, self._guarded(serve))  # for a thread that is not serving this token
        self.token = token
        self._post(gen, token)
        try:
            return own()
        finally:
            while not self._spin.wait_for_parts(self.flags, self.workers, gen, 1, self.workers + 1, SPIN_POLLS):
                time.sleep(2e-4)
            self.job = (gen, _no_part, None)
            failed = self._failed.pop(gen, None)
            if failed is not None:
                raise failed

    def _post(self, gen: int, token: int = 0) -> None:
        """Post generation ``gen`` (:attr:`job` set already) with its ``token`` (0: a job each thread takes
        through Python, which a thread serving a bound job returns to), waking sleeping threads."""
        self.flags[1] = token
        self._spin.post(self.flags, gen)  # released: after the job and its token
        if self._sleepers:
            with self._wake:
                self._wake.notify_all()

    def _guarded(self, serve: Callable[[np.ndarray, int, int], int]) -> Callable[[np.ndarray, int, int], int]:
        """``serve``, an error in it kept for the caller of the job it failed in (:meth:`run_bound`). That job
        counts as run: its part is published as done, and its caller stops waiting and raises the error."""

        def run(flags: np.ndarray, slot: int, gen: int) -> int:
            try:
                return serve(flags, slot, gen)
            except BaseException as exc:
                failed = max(gen, int(flags[8 * slot + 3]))  # a later job of the same token, or this one
                self._failed[failed] = exc
                return failed

        return run

    def unbind(self) -> None:
        """Have the crew threads leave the compiled loop of the last bound job (:meth:`run_bound`), and let
        go of its arrays, before this returns (else they would keep them until the loop stops waiting
        for a next job: a few ms)."""
        # Busy: another job is on the crew (a bound loop then ends at its post), or this thread is running
        # one of its tasks (waiting for the lock would wait for ever); either way no thread serves a token.
        if not self.token or not self.busy.acquire(blocking=False):
            return
        try:
            self.token = 0
            gen = int(self.flags[0]) + 1
            self.job = (gen, _no_part, None)  # a job with no part: a thread serving returns to take it
            self._post(gen)
            while any(self.flags[8 * s] < gen for s in range(1, self.workers + 1)):
                time.sleep(5e-5)  # each thread has taken it, having let go of the bound job's closure
        finally:
            self.busy.release()

    def _serve(self, slot: int) -> None:
        seen = count = 0
        limit = SPIN_POLLS
        while True:
            gen = self._spin.publish_and_wait(self.flags, slot, seen, count, seen, limit)
            limit = SPIN_POLLS
            if gen == seen:  # nothing for a while: sleep until the next job
                with self._wake:
                    self._sleepers += 1
                    while int(self.flags[0]) <= seen:  # the job seen may have been taken before it was posted
                        self._wake.wait()
                    self._sleepers -= 1
            # the job posted last, which may be newer than the generation seen: its parts are
            # counted under its own generation
            seen, take, serve = self.job
            if serve is not None:  # a bound job: this thread's part, and those of the next ones
                seen, count, serve = serve(self.flags, slot, seen), 1, None
                # it waited for a next job already: none posted since, sleep without spinning again
                limit = 0 if int(self.flags[0]) == seen else SPIN_POLLS
                continue
            _local.signal = (self.flags, 8 * slot + 2, seen)
            try:
                count = take()
            finally:
                _local.signal = take = None  # nor is the job kept alive here while this thread waits


def _no_part() -> int:
    return 0


def _crew(workers: int) -> Crew | None:
    """The crew of ``workers`` threads (made on first use), or None without the compiled engine."""
    from . import backend

    crew = _crews.get(workers)
    if crew is None and workers >= 1 and backend.available():
        crew = _crews[workers] = Crew(workers)
    return crew


def _pool(k: int) -> ThreadPoolExecutor:
    pool = _pools.get(k)
    if pool is None:
        pool = _pools[k] = ThreadPoolExecutor(max_workers=k, thread_name_prefix="convprop")
    return pool


def map_blocks(work: Callable[[int, Sequence[tuple[int, int]]], T], blocks: Sequence[tuple[int, int]]) -> list[T]:
    """Run ``work(slot, blocks_of_slot)`` for each thread slot; block i goes to slot i mod k.

    Returns the results in slot order (one slot, in this thread, when k = 1 or
    there is a single block).
    """
    k = min(n_threads(), len(blocks))
    if k <= 1:
        return [work(0, blocks)]
    pool = _pool(k)
    futures = [pool.submit(_in_callers_errstate(work), slot, blocks[slot::k]) for slot in range(k)]
    return [f.result() for f in futures]


def _in_callers_errstate(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` to run on a pool thread under the calling thread's NumPy error settings (they are per
    thread: the training loop's ``np.errstate`` would not reach the pool's threads otherwise)."""
    errstate = np.geterr()

    def run(*args):
        with np.errstate(**errstate):
            return fn(*args)

    return run
