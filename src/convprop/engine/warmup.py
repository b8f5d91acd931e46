"""Compile the compiled engine's kernels in the background while the data loads.

The first run on a machine compiles the Numba kernels (about 20 s for the
toolbox network in float64 on the development machine: the one-call training
step links and optimises every kernel it calls again), then reads them from
Numba's disk cache (about 0.5 s). :func:`start` does that work on a second
thread as soon as the layers are known, before the data are read: it pushes one
image through a miniature of the network (the same layers and dtype on the
smallest input they accept; a few images more when the batch is cut into slices
over threads), which compiles (or loads) exactly the kernels, for exactly the
argument types, that training will call. :mod:`.precompile` runs the same work
in a child process for ``convprop train``'s first run on a machine. LLVM's optimisation and
code generation run without the GIL (llvmlite calls them through ctypes), so
they overlap with reading and decoding the data. Numba serialises compilation
with one lock: a training step that needs a kernel still being compiled waits
for it, never compiles it twice.

Nothing is shared with the real network, so results are unaffected; a
failure here is ignored (the real network meets the same error and reports it).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from . import backend, parallel, slices
from ..errors import ConvpropError

#: Largest side tried for the miniature's input.
MAX_SIDE = 512


#: Outputs of the miniature: the kernels' argument types do not depend on the count.
N_OUTPUTS = 2


def smallest_input(layers: Sequence, n_outputs: int = N_OUTPUTS, channels: int = 1) -> int | None:
    """The smallest square side the hidden ``layers`` accept (None when none up to MAX_SIDE does)."""
    from .layers import Input
    from .network import plan_network

    for side in range(1, MAX_SIDE + 1):
        try:
            plan_network([Input(side, side, channels), *layers], n_outputs)
        except ConvpropError:
            continue
        return side
    return None


def start(layers: Sequence, dtype, output: str = "sigmoid", optimizer=None) -> threading.Thread | None:
    """Compile (or load) the kernels the network of ``layers`` will use, on a daemon thread.

    Parameters
    ----------
    layers : sequence of Layer
        The hidden layers (no Input), as :func:`convprop.engine.spec.parse_layers` gives them.
    dtype : float32 or float64
    output : {"sigmoid", "softmax"}
    optimizer : Optimizer, optional
        The run's optimiser (None: the toolbox's plain SGD); a fresh copy of it updates the
        miniature once, so that its kernel compiles too.

    Returns
    -------
    threading.Thread or None
        The running thread; None when the NumPy engine is selected or the layers fit no input.
    """
    if backend.engine() != "numba":
        return None
    side = smallest_input(layers)
    if side is None:
        return None
    thread = threading.Thread(target=run, args=(list(layers), dtype, output, side, optimizer),
                              name="convprop-warm-up", daemon=True)
    thread.start()
    return thread


def run(layers: Sequence, dtype, output: str, side: int, optimizer=None) -> bool:
    """:func:`start`'s work, on the calling thread: whether it went through (a failure is left to
    the real network, which meets the same error and reports it)."""
    import copy

    from .layers import Input
    from .network import Network

    try:
        net = Network([Input(side, side), *layers], N_OUTPUTS, dtype=dtype, output=output, seed=0)
        x = np.full((1, side, side, 1), 0.5, dtype=net.dtype)
        targets = np.zeros((1, N_OUTPUTS), dtype=net.dtype)
        parallel.run_tasks(lambda _: net.train_batch(x, targets), 1)  # a task: one thread, no pool
        k = parallel.n_threads()
        if k > 1:  # a batch in slices: the hand-over to the other threads (their compiled loop, as in the
            # training loop's epoch) and the gradients' join
            many = np.full((k * slices.MIN_SLICE, side, side, 1), 0.5, dtype=net.dtype)
            with net.reusing_step_arrays():
                net.train_batch(many, np.zeros((len(many), N_OUTPUTS), dtype=net.dtype))
        # the update and the divergence guard's check, one kernel call each (not through
        # Network.step: that is the user's to wrap, and a call from here would count as theirs),
        # before the next pass lets go of the gradients
        if optimizer is None:
            net._sgd(0.0)
        else:  # a copy with no state: the run's own optimiser is left as it is
            fresh = copy.deepcopy(optimizer)
            fresh.state, fresh.t = {slot: {} for slot in fresh.state}, 0
            fresh.step(net)
        net.all_finite()
        # the evaluation's pass, outside a task: layer by layer when the layers share rows over
        # threads, else the map layers' forward kernel (its own entry, not the training step's)
        net.forward_batch(x)
    except Exception:  # noqa: BLE001 - the real network reports whatever this meets
        return False
    return True
