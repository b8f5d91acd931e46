"""CONVPROP_THREADS: the convolutions' row blocks over threads give the same numbers."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import random_batch
from convprop import Conv, ConvpropError, Input, Network, Subsample
from convprop.engine import backend

# Every test here runs on both engines: the NumPy reference and the compiled kernels.
pytestmark = pytest.mark.usefixtures("engine")


def _run(monkeypatch, threads):
    monkeypatch.setenv("CONVPROP_THREADS", str(threads))
    net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10, seed=2)
    x, y = random_batch(net, 20, seed=3, labels=True)
    o = net.forward(x).copy()
    net.backward(y)
    return o, {k: g.copy() for k, g in net.gradients().items()}


def test_threads_give_the_same_outputs_and_gradients(monkeypatch):
    o1, g1 = _run(monkeypatch, 1)
    o3, g3 = _run(monkeypatch, 3)
    np.testing.assert_array_equal(o3, o1)  # forward blocks are disjoint: bit-identical
    for k in g1:  # partial weight gradients are summed in another order
        np.testing.assert_allclose(g3[k], g1[k], rtol=1e-12, atol=1e-15, err_msg=k)


@pytest.mark.parametrize("value", ["0", "two"])
def test_bad_thread_count(monkeypatch, value):
    monkeypatch.setenv("CONVPROP_THREADS", value)
    net = Network([Input(8, 8), Conv(2, 3)], n_outputs=2, seed=0)
    with pytest.raises(ConvpropError, match="CONVPROP_THREADS must be a positive integer"):
        net.forward(np.zeros((2, 8, 8)))


def test_forked_child_does_not_hang_on_the_parents_pool(monkeypatch):
    """multiprocessing's fork start method copies the thread pool but not its threads: before
    the fix a child's first convolution waited forever."""
    import os
    import signal
    import time

    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork (POSIX)")
    monkeypatch.setenv("CONVPROP_THREADS", "2")
    net = Network([Input(12, 12), Conv(3, 5), Subsample(2)], n_outputs=4, seed=0)
    x = np.random.default_rng(0).random((32, 12, 12))
    expected = net.forward(x)  # the parent's pool now exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ok = np.array_equal(net.forward(x), expected)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 20
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in the convolution")
        time.sleep(0.02)
    assert os.read(read, 1) == b"1"
    os.close(read)


def test_blas_is_capped_while_training_and_predicting(monkeypatch):
    from threadpoolctl import threadpool_info

    from convprop import Conv, Input, Network, Subsample

    from convprop import train

    seen = []

    class Spy(Network):
        def forward_batch(self, maps):
            seen.append(max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1))
            return super().forward_batch(maps)

    net = Spy([Input(8, 8), Conv(2, 3), Subsample(2)], n_outputs=2, seed=0)
    x = np.random.default_rng(0).random((6, 8, 8))
    train(net, x, np.arange(6) % 2, epochs=1, batch_size=3)
    net.predict_proba(x)
    assert seen and set(seen) == {1}
    monkeypatch.setenv("CONVPROP_BLAS_THREADS", "zero")
    with pytest.raises(ConvpropError, match="CONVPROP_BLAS_THREADS must be a positive integer"):
        net.predict_proba(x)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="BLAS runs one thread anyway on one core")
def test_batch_slices_cap_blas_outside_training_too():
    """A user's own loop (net.forward / train_batch, no fit): k slices each calling a k-thread BLAS put
    k² threads on k cores (LeNet's step took 2× one thread's time on 2). The slices' tasks cap BLAS
    while they run and leave it as it was."""
    from threadpoolctl import threadpool_info

    from convprop.engine import parallel

    def blas_threads(_=None):
        return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)

    before = blas_threads()
    parallel.set_num_threads(2)
    try:
        assert parallel.run_tasks(blas_threads, 2) == [1, 1]
    finally:
        parallel.set_num_threads(None)
    assert blas_threads() == before


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="BLAS runs one thread anyway on one core")
def test_blas_cap_reaches_the_dense_kernels_blas_in_a_fresh_process():
    """The compiled dense kernels call SciPy's BLAS, a second library beside NumPy's: a training run
    that starts before anything loaded it still caps it (else two batch slices each ran a
    multi-threaded GEMM). In a fresh process, so that nothing earlier loaded it."""
    script = """
import numpy as np
from threadpoolctl import threadpool_info
import convprop
from convprop import Callback, Conv, Dense, Input, Network, train
convprop.set_engine("numba")
seen = []
class Spy(Callback):
    def on_batch_end(self, loop, *args, **kwargs):
        seen.extend((p["filepath"], p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas")
net = Network([Input(8, 8), Conv(2, 3), Dense(4)], n_outputs=2, seed=0)
x = np.random.default_rng(0).random((40, 8, 8))
train(net, x, np.arange(40) % 2, epochs=1, batch_size=20, callbacks=[Spy()])
assert seen and {n for _, n in seen} == {1}, seen
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CONVPROP_THREADS": "2"})
    assert done.returncode == 0, done.stdout + done.stderr


_LATE_CREW = r"""
import os, threading, time
import convprop
from convprop.engine import parallel
from convprop.engine.kernels import spin as real


class Spin:
    '''The spin kernels with two delays a loaded machine can give: the crew thread held up once
    right after it sees a new job, the caller held up between storing its next job and posting it.'''

    def __init__(self):
        self.armed = self.fired = False

    def __getattr__(self, name):
        return getattr(real, name)

    def publish_and_wait(self, flags, slot, done, count, seen, limit):
        gen = real.publish_and_wait(flags, slot, done, count, seen, limit)
        if self.armed and not self.fired and gen != seen:
            self.fired = True
            time.sleep(0.05)  # the caller meanwhile takes every part of this job and stores the next
        return gen

    def post_and_wait_for_start(self, flags, workers, gen, limit):
        if self.fired:
            time.sleep(0.2)  # the late crew thread meanwhile finds the next job, not yet posted
        return real.post_and_wait_for_start(flags, workers, gen, limit)


def task(i):
    real.announce(*parallel.start_signal())
    time.sleep(0.001)
    return i


convprop.set_engine("numba")
convprop.set_num_threads(2)
crew = parallel._crew(1)
crew._spin = Spin()
parallel.run_tasks(task, 2, announced=True)
crew._spin.armed = True
threading.Timer(30, lambda: (print("hang", flush=True), os._exit(3))).start()
for _ in range(3):
    assert parallel.run_tasks(task, 2, announced=True) == [0, 1]
print("done", crew._spin.fired, flush=True)
os._exit(0)
"""


@pytest.mark.skipif(not backend.available(), reason="Numba is not installed")
def test_a_crew_thread_that_takes_a_job_before_it_is_posted_does_not_hang_the_caller():
    """A crew thread late for one job may take the next before its generation is posted; it used to
    take it again once posted, find no part and publish 0 over the parts it had done: the caller
    then waited for them for ever (found by review; a two-thread run hung once on a loaded machine)."""
    run = subprocess.run([sys.executable, "-c", _LATE_CREW], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "done True", run.stdout + run.stderr
