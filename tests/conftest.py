import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# `convprop train` compiles the kernels of a machine's first run in a background process
# (convprop.engine.precompile); the tests compile in the run, so that no child process outlives a
# test. tests/test_precompile.py tests the background mode.
os.environ.setdefault("CONVPROP_COMPILE", "foreground")

# A shell starts a background job (``cmd &`` without job control, ``nohup``) with Ctrl-C ignored, and
# Python keeps SIGINT ignored then. The Ctrl-C tests (tests/test_newcomer.py, tests/test_session.py)
# send real SIGINTs to this process and to the commands it starts, which inherit an ignored signal:
# give them a process where Ctrl-C does what it does at a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """Under pytest-xdist (the suite's default, ``-n auto``), when the whole suite runs: compile the kernels
    most tests call once, float64 and float32 at once, before the workers start (tests/warm_kernels.py)."""
    config = session.config
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", 0) \
            or config.args_source is not pytest.Config.ArgsSource.TESTPATHS:
        return
    import subprocess
    import time

    start = time.perf_counter()
    script = Path(__file__).with_name("warm_kernels.py")
    children = [subprocess.Popen([sys.executable, str(script), dtype], stdout=subprocess.PIPE, text=True)
                for dtype in ("float64", "float32")]
    said = []
    for child in children:
        try:
            said.append(child.communicate(timeout=900)[0].strip())
        except subprocess.TimeoutExpired:  # left to the workers, which compile what they call
            child.kill()
            said.append(f"{child.args[-1]}: stopped after 900 s")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"kernels compiled for the workers in {time.perf_counter() - start:.0f} s "
                            f"({', '.join(s for s in said if s) or 'no compiled engine'})")


def random_batch(net, n, seed=0, labels=False):
    """Images in [0, 1) and targets (random reals, or labels) for ``net``."""
    rng = np.random.default_rng(seed)
    h, w, c = net.image_shape
    x = rng.random((n, h, w) if c == 1 else (n, h, w, c))
    y = rng.integers(0, net.n_outputs, n) if labels else rng.random((n, net.n_outputs))
    return x, y


def wait_until(condition, seconds=10.0, poll=0.02):
    """Whether ``condition()`` came true within ``seconds`` (polled): for a thread's state that an idle
    machine reaches in milliseconds and a loaded one (the suite's other worker) later."""
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the project")
    return SHARED


@pytest.fixture(params=["numpy", "numba"])
def engine(request, monkeypatch):
    """Run a test on each engine: the NumPy reference and the compiled (Numba) kernels.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("engine")``; every
    other test runs on the default engine (Numba when installed).
    """
    from convprop.engine import backend

    if request.param == "numba" and not backend.available():
        pytest.skip("Numba is not installed")
    monkeypatch.setenv("CONVPROP_ENGINE", request.param)
    return request.param


@pytest.fixture
def compiled_engine():
    """Run a test on the compiled engine (Numba) only; the thread count it sets is reset after."""
    import convprop

    convprop.set_engine("numba")
    yield
    convprop.set_engine(None)
    convprop.set_num_threads(None)


@pytest.fixture
def numpy_engine(monkeypatch):
    """Run a test on the NumPy engine only (for tests of its own fast paths)."""
    monkeypatch.setenv("CONVPROP_ENGINE", "numpy")
