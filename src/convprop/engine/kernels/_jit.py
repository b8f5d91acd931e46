"""The one Numba decorator the kernels use, and bit casts for a vectorisable exp.

``cache=True`` writes compiled code beside the sources (or in Numba's user
cache when that is read-only), so only the first run on a machine compiles.
``fastmath`` is limited to FMA contraction (``contract``): no reassociation,
so every sum is taken in the order the code writes it, except in :data:`rjit`.
``error_model="numpy"``: a float division by zero gives inf / nan instead of
raising, which would stop LLVM from vectorising any loop that divides.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

#: Serial kernels (elementwise passes run inside a parallel one).
jit = njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
#: Kernels whose outer loop is a ``prange``.
pjit = njit(cache=True, nogil=True, error_model="numpy", parallel=True, fastmath={"contract"})
#: Parallel kernels whose sums may be reassociated so that they vectorise (the order is
#: then the compiler's, fixed for a given machine; it never depends on the thread count).
rjit = njit(cache=True, nogil=True, error_model="numpy", parallel=True, fastmath={"contract", "reassoc"})
#: Serial kernels inlined into their callers.
ijit = njit(cache=True, nogil=True, error_model="numpy", inline="always", fastmath={"contract"})


@intrinsic
def i64_as_f64(typingctx, x):
    """The float64 whose bits are the int64 ``x`` (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def i32_as_f32(typingctx, x):
    """The float32 whose bits are the int32 ``x`` (no conversion)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen
