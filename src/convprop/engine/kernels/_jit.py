"""The Numba decorators of the layers' kernels, bit casts for a vectorisable exp, atomic loads and stores.

``cache=True`` writes compiled code beside the sources (or in Numba's user
cache when that is read-only), so only the first run on a machine compiles;
an edit of any kernel module makes every kernel compile again (:mod:`.cache`).
``fastmath`` is limited to FMA contraction (``contract``): no reassociation,
so every sum is taken in the order the code writes it, except in :data:`rjit`.
``error_model="numpy"``: a float division by zero gives inf / nan instead of
raising, which would stop LLVM from vectorising any loop that divides.
"""

from __future__ import annotations

import os

# As convprop.engine.backend.quiet_numba: no colorama, whose exit handler writes "\x1b[0m" to a
# terminal stdout (set before Numba is first imported, when these kernels are imported directly).
os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")

from llvmlite import ir  # noqa: E402
from numba import njit, types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from . import cache, optlevel  # noqa: E402

cache.install()  # before any kernel is compiled or loaded: one freshness stamp for all kernel files
optlevel.install()  # and every kernel compiled with loops vectorised in both of Numba's rounds

#: Kernels (and the helpers they call). Each top-level kernel computes the output rows
#: lo ≤ t < hi of its work, so that :func:`convprop.engine.parallel.run_rows` can share
#: the rows out over threads (``nogil``): serial functions compile and load from the
#: cache several times faster than Numba's ``parallel=True`` ones.
jit = njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
#: Kernels whose sums may be reassociated so that they vectorise (the order is then the
#: compiler's, fixed for a given machine; it never depends on the thread count).
rjit = njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})
#: Kernels without any ``fastmath``: every product and sum rounded as NumPy rounds it (no fused
#: multiply-add), for updates that must give NumPy's bits, and for plain copies.
plain = njit(cache=True, nogil=True, error_model="numpy")
#: Kernels whose body is typed into each caller (Numba IR inlining) instead of being compiled
#: on their own and linked: the map layers' backward pass, which only the one-call training
#: step calls in a training run and which a first run would otherwise also compile, optimise
#: and generate code for by itself (about 1 s).
ijit = njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, inline="always")


@intrinsic
def i64_as_f64(typingctx, x):
    """The float64 whose bits are the int64 ``x`` (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def f64_as_i64(typingctx, x):
    """The int64 whose bits are the float64 ``x`` (no conversion)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def i32_as_f32(typingctx, x):
    """The float32 whose bits are the int32 ``x`` (no conversion)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def load_acquire(typingctx, arr, i):
    """``arr[i]`` (int64) read with acquire ordering: a load the compiler may not hoist out of a loop."""
    sig = types.int64(arr, types.intp)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        return builder.load_atomic(ptr, ordering="acquire", align=8)

    return sig, codegen


@intrinsic
def store_release(typingctx, arr, i, value):
    """``arr[i] = value`` (int64) with release ordering: every write before it is visible first."""
    sig = types.void(arr, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        builder.store_atomic(args[2], ptr, ordering="release", align=8)
        return context.get_dummy_value()

    return sig, codegen
