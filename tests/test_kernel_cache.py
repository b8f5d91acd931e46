"""The compiled kernels' disk cache: an edit of one kernel module recompiles the kernels that call into it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from convprop.engine import backend

pytestmark = pytest.mark.skipif(not backend.available(), reason="Numba is not installed")

SRC = Path(__file__).resolve().parents[1] / "src" / "convprop"

SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from convprop.engine.kernels import dense
assert dense.__file__.startswith(sys.argv[1]), dense.__file__
a = np.empty((1, 2))
dense.forward(np.array([[-1.0, 2.0]]), np.ones((1, 1)), np.zeros(1), 2, 0.0, a)  # code 2: ReLU
print(a.tolist())
"""


def _run(root: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}  # the copy's own __pycache__
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(root)], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_edit_of_a_called_kernel_recompiles_its_callers(tmp_path):
    """dense.forward has activation.apply_ compiled into it; Numba alone keys its cache on dense.py
    only, so after an edit of activation.py the old ReLU came back from the cache."""
    shutil.copytree(SRC, tmp_path / "convprop", ignore=shutil.ignore_patterns("__pycache__"))
    assert _run(tmp_path) == "[[0.0, 2.0]]"
    assert _run(tmp_path) == "[[0.0, 2.0]]"  # from the cache now
    activation = tmp_path / "convprop" / "engine" / "kernels" / "activation.py"
    text = activation.read_text()
    relu = "z[m] = zero if v < zero else v"
    assert relu in text
    activation.write_text(text.replace(relu, "z[m] = v + v"))
    assert _run(tmp_path) == "[[-2.0, 4.0]]"


def test_every_kernel_shares_one_stamp_of_all_kernel_sources():
    from numba.core import caching

    from convprop.engine.kernels import cache, dense, stack

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    assert cache.install() and impl._locator_classes[0].__name__.startswith("Kernels")
    stamps = [f._cache._impl.locator.get_source_stamp() for f in (dense.forward, stack.train)]
    assert all(s[1] == cache.sources_stamp() for s in stamps)
