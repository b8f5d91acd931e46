"""Compiled kernels (Numba) for the layers' forward and backward passes.

Each module holds the maths of one kind of layer as ``@njit`` functions on the
engine's batch-last maps ``(C, H, W, N)``; the layers call them when the
compiled engine is selected (see :mod:`convprop.engine.backend`), and the
NumPy functions of :mod:`convprop.engine.ops` stay the reference they are
tested against. Every kernel computes a range of output rows, lo ≤ t < hi, and
releases the GIL. Batches are cut into slices over threads
(:mod:`convprop.engine.slices`); a batch too small to cut has each kernel's rows
shared out instead (:func:`convprop.engine.parallel.run_rows`), each output
element computed by one thread in a fixed order, whatever the thread count.

Importing this package imports Numba; :mod:`convprop.engine.backend` does so
only when the compiled engine is used.
"""
