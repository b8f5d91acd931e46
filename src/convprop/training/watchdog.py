"""A bound on how long a process waits for the others in a collective (a lost rank never hangs a job).

MPI collectives block until every rank takes part: when one rank dies and
the launcher does not end the job (Open MPI's ``mpiexec`` does, in about
0.3 s, naming the rank; some launchers and a stopped or wedged rank do not),
the others would wait forever. A :class:`Watchdog` thread watches each wait
announced with :meth:`Watchdog.waiting` (or :meth:`~Watchdog.begin` and
:meth:`~Watchdog.end`, for a wait taken every step); one that lasts longer than
``timeout`` seconds ends the process with a message and exit status 70, and
the launcher then ends the job.

Before giving up, the ranks that are still alive tell each other so (a
message on a private duplicate of the communicator): the message names the
ranks that did not answer, the lost ones.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Exit status of a process the watchdog ends (EX_SOFTWARE).
EXIT_STATUS = 70
#: Seconds the live ranks wait for each other's "alive" message before naming the lost ones.
ROLL_CALL_SECONDS = 3.0
_TAG = 7077


class Watchdog:
    """Ends this process when a collective wait lasts longer than ``timeout`` seconds.

    Parameters
    ----------
    comm : mpi4py communicator
        The run's communicator (a duplicate is used for the roll call).
    timeout : float
        Seconds.
    exit : callable, optional
        ``exit(status)``; :func:`os._exit` by default (the main thread is stuck in MPI).
    """

    def __init__(self, comm, timeout: float, exit=os._exit):
        self.comm, self.timeout, self._exit = comm.Dup(), float(timeout), exit
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._what: str | Callable[[], str] | None = None
        self._since = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="convprop-watchdog", daemon=True)
        self._thread.start()

    @contextmanager
    def waiting(self, what: str | Callable[[], str]) -> Iterator[None]:
        """Announce a collective wait (``what`` names it in the message; see :meth:`begin`)."""
        self.begin(what)
        try:
            yield
        finally:
            self.end()

    def begin(self, what: str | Callable[[], str]) -> None:
        """A collective wait starts: ``what`` names it, or gives its name when called (only if it is reported)."""
        self._since, self._what = time.monotonic(), what

    def end(self) -> None:
        """The wait announced by :meth:`begin` is over."""
        self._what = None

    def close(self) -> None:
        """Stop watching (the thread ends within a second)."""
        self._done.set()

    def _watch(self) -> None:
        tick = min(1.0, self.timeout / 4)
        while not self._done.wait(tick):
            what = self._what
            if what is not None and time.monotonic() - self._since > self.timeout:
                what = what() if callable(what) else what
                lost = self._roll_call()
                who = (f"rank(s) {', '.join(map(str, lost))} did not answer (lost)" if lost
                       else "no rank could be named as lost")
                sys.stderr.write(f"convprop: rank {self.rank}: no progress in {what} for {self.timeout:g} s; "
                                 f"{who}; ending this process (status {EXIT_STATUS}) so that the job ends\n")
                sys.stderr.flush()
                self._exit(EXIT_STATUS)
                return

    def _roll_call(self) -> list[int]:
        """The ranks that do not say they are alive within :data:`ROLL_CALL_SECONDS`."""
        import numpy as np
        from mpi4py import MPI

        if MPI.Query_thread() != MPI.THREAD_MULTIPLE:  # the main thread is inside MPI: no second caller
            return []
        others = [r for r in range(self.size) if r != self.rank]
        mine = np.array([self.rank], dtype=np.int64)
        sends = [self.comm.Isend(mine, dest=r, tag=_TAG) for r in others]
        boxes = {r: np.empty(1, dtype=np.int64) for r in others}
        recvs = {r: self.comm.Irecv(boxes[r], source=r, tag=_TAG) for r in others}
        deadline = time.monotonic() + ROLL_CALL_SECONDS
        waiting = set(others)
        while waiting and time.monotonic() < deadline:
            waiting = {r for r in waiting if not recvs[r].Test()}
            time.sleep(0.05)
        del sends  # never waited for: the process ends next
        return sorted(waiting)


__all__ = ["Watchdog", "EXIT_STATUS"]
