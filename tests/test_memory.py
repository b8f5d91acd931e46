"""engine.memory: freed work arrays stay in the heap, so a training step faults no pages in."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

STEPS = """
import resource, numpy as np
from convprop import Conv, Input, Network, Subsample
from convprop._validation import check_images, check_targets
net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10, seed=0)
x, _ = check_images(np.random.default_rng(0).random((50, 28, 28)), net.image_shape, net.dtype)
t = check_targets(np.arange(50) % 10, 50, 10, net.dtype)
for _ in range(20):
    net.train_batch(x, t); net.step(0.1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    net.train_batch(x, t); net.step(0.1)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 200)
"""


def _run(code, **env):
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "CONVPROP_THREADS": "1", **env},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_set_once_unless_told_not_to():
    code = "from convprop.engine import memory; print(memory.keep_freed_arrays(), memory.keep_freed_arrays())"
    assert _run(code) == ["True", "False"]
    assert _run(code, CONVPROP_MALLOC="system") == ["False", "False"]


def test_a_training_step_faults_no_pages_in():
    """150–370 minor page faults per 50-image step before (10 % of a float64 step); now none."""
    assert float(_run(STEPS)[0]) < 10
    assert float(_run(STEPS, CONVPROP_MALLOC="system")[0]) > 50  # the test sees the difference
