"""The spinning crew that shares a batch's slices (convprop.engine.parallel.Crew)."""

import os
import threading
import time

import numpy as np
import pytest

import convprop
from conftest import wait_until
from convprop.engine import backend, parallel

pytestmark = pytest.mark.skipif(not backend.available(), reason="Numba is not installed")


@pytest.fixture(scope="module", autouse=True)
def _crew_compiled():
    """The crew's spin kernels compiled before any test: in a process that compiles them (an empty
    cache, as in CI), the crew thread's first wait is a compilation of seconds, during which jobs
    went to the thread pool and the thread did not go to sleep (seen on a 2-core AMD machine)."""
    convprop.set_num_threads(2)
    try:
        deadline = time.monotonic() + 300
        parallel.run_tasks(lambda i: i, 2)
        crew = parallel._crews[1]
        while not 0 < crew.flags[0] == crew.flags[8] and time.monotonic() < deadline:
            parallel.run_tasks(lambda i: i, 2)  # until the crew's thread has served the last job
            time.sleep(0.01)
    finally:
        convprop.set_num_threads(None)


@pytest.fixture(autouse=True)
def _two_threads():
    convprop.set_num_threads(2)
    yield
    convprop.set_num_threads(None)


def test_tasks_run_on_the_crew_and_give_their_results_in_order():
    names = parallel.run_tasks(lambda i: (i, threading.current_thread().name), 6)
    assert [i for i, _ in names] == list(range(6))
    crew = parallel._crews[1]
    assert {name for _, name in names} <= {threading.current_thread().name, "convprop-crew-1"}
    for _ in range(200):  # many jobs in a row: every one complete
        assert parallel.run_tasks(lambda i: i * i, 2) == [0, 1]
    assert crew.flags[0] >= 201


def test_an_error_in_a_task_reaches_the_caller_and_the_crew_goes_on():
    def task(i):
        if i == 1:
            raise ValueError("slice 1 failed")
        return i

    for _ in range(20):
        with pytest.raises(ValueError, match="slice 1 failed"):
            parallel.run_tasks(task, 2)
    assert parallel.run_tasks(lambda i: i + 1, 2) == [1, 2]


def test_a_sleeping_crew_is_woken(monkeypatch):
    monkeypatch.setattr(parallel, "SPIN_POLLS", 1000)  # gives up spinning at once, then sleeps
    parallel.run_tasks(lambda i: i, 2)
    crew = parallel._crews[1]
    for _ in range(10):
        time.sleep(0.02)  # the crew thread is asleep now (on a loaded machine, a while later)
        assert wait_until(lambda: crew._sleepers == 1)
        seen = []
        parallel.run_tasks(lambda i: seen.append(threading.current_thread().name), 4)
        assert len(seen) == 4


def test_announced_tasks_that_never_announce_still_run():
    """run_tasks(..., announced=True) waits a while at most for a task's kernel to announce itself."""
    t0 = time.perf_counter()
    for _ in range(50):
        assert parallel.run_tasks(lambda i: 10 * i, 2, announced=True) == [0, 10]
    assert time.perf_counter() - t0 < 5


def test_two_callers_at_once_share_the_crew_or_the_pool():
    results, errors = [], []

    def caller(k):
        try:
            for _ in range(100):
                results.append(parallel.run_tasks(lambda i: (k, i), 2))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(results) == 300
    assert all(r in ([(k, 0), (k, 1)] for k in range(3)) for r in results)


def test_training_in_a_forked_child_makes_its_own_crew():
    from convprop import Conv, Input, Network, Subsample

    net = Network([Input(12, 12), Conv(2, 3), Subsample(2)], n_outputs=2, seed=0)
    x = np.random.default_rng(0).random((32, 12, 12))
    parallel.run_tasks(lambda i: i, 2)  # the parent's crew exists
    pid = os.fork()
    if pid == 0:  # child: its crew's threads were not copied; a new one must serve
        try:
            code = 0 if net.predict(x).shape == (32,) and parallel.run_tasks(lambda i: i, 2) == [0, 1] else 1
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
