import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def random_batch(net, n, seed=0, labels=False):
    """Images in [0, 1) and targets (random reals, or labels) for ``net``."""
    rng = np.random.default_rng(seed)
    h, w, c = net.image_shape
    x = rng.random((n, h, w) if c == 1 else (n, h, w, c))
    y = rng.integers(0, net.n_outputs, n) if labels else rng.random((n, net.n_outputs))
    return x, y


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the project")
    return SHARED
