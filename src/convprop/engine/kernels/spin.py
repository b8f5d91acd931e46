"""Waiting by spinning, without the GIL: the hand-off between a batch's slice threads.

A thread that sleeps on a lock or an event is woken by the OS, which took 30–120 µs
on the development machine (a virtual machine's idle core is halted). Between two
training steps a slice thread waits only a few hundred µs, so the threads of
:class:`convprop.engine.parallel.Crew` spin here for a while instead: reading a
shared int64 array with acquire loads, which the compiler may not hoist out of
the loop, and writing it with release stores, yielding the core after each read
(``sched_yield``: at once when nothing else is ready to run, and on a busy
machine the thread waited for, or another process, gets the core). Spinning is
bounded: after ``limit`` polls the waiter gives up and the caller sleeps instead.
"""

from __future__ import annotations

import os

from numba import types

from ._jit import jit, load_acquire, store_release

if os.name == "posix":
    #: The C library's sched_yield(): a waiting thread lets any other thread ready for its core run.
    _sched_yield = types.ExternalFunction("sched_yield", types.int32())

    @jit
    def pause():
        """Let any other thread ready for this core run (one poll's wait)."""
        _sched_yield()
else:  # no sched_yield: spin without yielding

    @jit
    def pause():
        """Nothing: no sched_yield here."""
        pass


@jit
def publish_and_wait(flags, slot, done, count, seen, limit):
    """Store ``done`` and ``count`` in the slot, then wait while flags[0] ≤ ``seen``.

    Generations only grow. A thread may take a job before its generation is posted (the caller
    stores the job, then posts it): it must then wait for a newer one, not run the same job again,
    which would find no part and publish a count of 0 over the parts it did, leaving the caller
    waiting for them for ever.

    Parameters
    ----------
    flags : (8·(k + 1),) int64, shared: flags[0] the generation of the job posted last;
        flags[8·s] and flags[8·s + 1] slot s's last finished generation and its parts done
    slot : int ≥ 1;  done, count : this slot's last generation and parts
    seen : the generation already taken;  limit : polls before giving up

    Returns
    -------
    The generation posted, newer than ``seen`` (``seen`` when the wait gave up).
    """
    store_release(flags, 8 * slot + 1, count)
    store_release(flags, 8 * slot, done)
    for _ in range(limit):
        gen = load_acquire(flags, 0)
        if gen > seen:
            return gen
        pause()
    return seen


@jit
def wait_for_parts(flags, workers, gen, own, parts, limit):
    """Wait until ``own`` plus the parts of the workers that finished generation ``gen`` make ``parts``.

    Returns whether they did within ``limit`` polls.
    """
    for _ in range(limit):
        total = own
        for s in range(1, workers + 1):
            if load_acquire(flags, 8 * s) == gen:
                total += load_acquire(flags, 8 * s + 1)
        if total >= parts:
            return True
        pause()
    return False


@jit
def post_and_wait_for_start(flags, workers, gen, limit):
    """Post generation ``gen`` (flags[0]), then wait until every worker has announced it at
    flags[8·s + 2] (see :func:`convprop.engine.parallel.start_signal`); whether they did within
    ``limit`` reads. Posting without the GIL: a worker that sees the post finds the GIL free."""
    store_release(flags, 0, gen)
    for _ in range(limit):
        started = True
        for s in range(1, workers + 1):
            if load_acquire(flags, 8 * s + 2) != gen:
                started = False
        if started:
            return True
        pause()
    return False


@jit
def post(flags, gen):
    """flags[0] = ``gen``, released: whatever was written before it (the job, its token at flags[1]) is
    seen first by a thread that reads the generation with an acquire load (a plain store from
    NumPy gives no such order on a weakly ordered CPU)."""
    store_release(flags, 0, gen)


@jit
def announce(signal, at, value):
    """signal[at] = value, released: the first thing a kernel does that others wait for."""
    store_release(signal, at, value)
