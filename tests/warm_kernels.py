"""Compile the compiled engine's kernels into Numba's disk cache before the test workers start.

``python tests/warm_kernels.py DTYPE`` pushes a few images through the networks most tests train
(the toolbox's, the LeNet-style one with Adam, one of every layer kind) with :func:`convprop.engine.warmup.run`, which
compiles (or loads) every kernel a training run calls. ``tests/conftest.py`` runs it once per dtype,
the two at once, when the whole suite runs on several workers (pytest-xdist): otherwise every
worker would compile the same kernels itself, and compiling is most of what the suite's first
minutes do. Nothing here is asserted: a kernel that fails to compile fails the tests that call it.
"""

from __future__ import annotations

import sys
import time

import numpy as np

#: (layers, output, optimizer arguments or None): the networks whose kernels are compiled. The third
#: is tests/test_stack.py's "every kind" (5 map layers: the step compiled for 5 to 8 of them).
NETWORKS = [
    ("6c5-s2-12c5-s2", "sigmoid", None),
    ("6c5rps-m2-16c5r-m2-120fr-84fr", "softmax", {"name": "adam", "lr": 0.001}),
    ("3c3rps-m2c-5c2x3t/2-4c1x2lp1-s2-6fr", "softmax", None),
]


def main(dtype: str) -> int:
    from convprop.engine import backend, warmup
    from convprop.engine.optim import make_optimizer
    from convprop.engine.spec import parse_layers

    if backend.engine() != "numba":
        return 0
    start = time.perf_counter()
    ok = True
    for spec, output, optimizer in NETWORKS:
        layers = parse_layers(spec)
        side = warmup.smallest_input(layers)
        ok &= warmup.run(layers, np.dtype(dtype), output, side, optimizer and make_optimizer(**optimizer))
    print(f"{dtype}: {time.perf_counter() - start:.0f} s{'' if ok else ' (a network failed: its tests will say why)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
