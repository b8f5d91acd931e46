"""The kernels compile with loop vectorisation in both of Numba's optimisation rounds, other code as Numba sets it."""

import platform
import re
import types

import numpy as np
import pytest

from convprop.engine import backend

pytestmark = pytest.mark.skipif(not backend.available(), reason="Numba is not installed")


def _settings():
    from convprop.engine.kernels import optlevel

    codegen = optlevel._codegen()
    return codegen._loopvect, codegen._opt_level


class _Recorder:
    """Records the cheap round's settings at the start of every compilation (after optlevel's listener)."""

    def __init__(self):
        from numba.core import event

        class Listener(event.Listener):
            def on_start(inner, ev):
                self.seen.append((ev.data["dispatcher"].py_func.__name__, _settings()))

            def on_end(inner, ev):
                pass

        self.seen, self.listener = [], Listener()


def _elsewhere(func):
    """``func`` as if defined outside the kernels' folder (same code and globals)."""
    code = func.__code__.replace(co_filename="/elsewhere/not_a_kernel.py")
    return types.FunctionType(code, func.__globals__, func.__name__ + "_elsewhere", func.__defaults__)


def _taps_args(dtype):
    rng = np.random.default_rng(0)
    n, length, width = 3, 12, 18
    rows = [rng.random(width + 4 * n).astype(dtype) for _ in range(6)]
    outs = [np.zeros(length, dtype) for _ in range(4)]
    return (*outs, *rows, rng.random((5, 5)).astype(dtype), rng.random((5, 5)).astype(dtype), n, length)


def _fresh_asm(func, *args, fastmath=True):
    """The x86 assembly of ``func`` (a kernel's Python function) compiled afresh, without the cache, for
    the types of ``args``: with the kernels' ``jit`` options, or ``plain``'s (no fastmath)."""
    from numba import njit

    options = {"fastmath": {"contract"}} if fastmath else {}
    fresh = njit(cache=False, nogil=True, error_model="numpy", **options)(func)
    fresh(*args)
    return "\n".join(fresh.inspect_asm().values())


def test_a_kernel_compiles_at_the_raised_level_and_other_code_at_numbas():
    from numba import njit
    from numba.core import event

    from convprop.engine.kernels import _jit, conv, optlevel  # noqa: F401 - _jit installs the listener

    assert optlevel.install()
    before = _settings()
    recorder = _Recorder()
    with event.install_listener("numba:compile", recorder.listener):
        kernel = njit(cache=False, error_model="numpy", fastmath={"contract"})(conv._taps5x5_2x2.py_func)
        other = njit(cache=False, error_model="numpy", fastmath={"contract"})(_elsewhere(conv._taps5x5_2x2.py_func))
        args = _taps_args(np.float64)
        kernel(*args)
        after_kernel = _settings()
        other(*_taps_args(np.float64))
    names = dict(recorder.seen)
    assert names["_taps5x5_2x2"] == (True, 3)  # raised while the kernel (and what it calls) compiled
    assert names["_taps5x5_2x2_elsewhere"] == before  # Numba's own for code outside the kernels
    assert after_kernel == before and _settings() == before  # put back after each
    # the same numbers either way
    a, b = _taps_args(np.float64), _taps_args(np.float64)
    kernel(*a)
    other(*b)
    assert all(np.array_equal(x, y) for x, y in zip(a[:4], b[:4]))


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="reads x86 assembly")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_5x5_loop_is_vectorised_when_compiled_on_its_own(dtype):
    """Compiled on its own (not inlined into its caller) the 5×5 pair's loop was scalar: a process that
    compiled the kernels called that copy and trained 2-2.7x slower (benchmarks/same_code.py)."""
    from convprop.engine.kernels import conv

    asm = _fresh_asm(conv._taps5x5_2x2.py_func, *_taps_args(dtype))
    suffix = "ps" if dtype == np.float32 else "pd"
    packed = re.findall(rf"\bv?(?:fmadd\d*|mul|add){suffix}\b", asm)
    assert len(packed) >= 50  # the loop's 100 multiply-adds, a vector at a time


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="reads x86 assembly")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adams_loop_is_vectorised(dtype):
    """Adam's update in one call (kernels.arrays.adam) read its flags from their array inside the loop;
    for all LLVM knew the loop's stores could change them, and it ran one element at a time (4 ns an
    element, 258 µs a step for the LeNet-style network's 62k float32 parameters; 39 µs vectorised).
    Packed square roots and divisions are the vectorised loop's (test_optim checks the bits)."""
    from convprop.engine.kernels import arrays

    rng = np.random.default_rng(0)
    p, g, m, v = ((rng.random(100).astype(dtype),) for _ in range(4))
    asm = _fresh_asm(arrays.adam.py_func, p, g, m, v, np.array([0.9, 0.1, 0.999, 0.001, 0.5, 1e-8, 1e-3, 0.0]),
                     np.zeros(2, dtype=np.int64), fastmath=False)
    suffix = "ps" if dtype == np.float32 else "pd"
    assert re.search(rf"\bv?sqrt{suffix}\b", asm) and re.search(rf"\bv?div{suffix}\b", asm)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="reads x86 assembly")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_poolings_loop_is_vectorised(dtype):
    """Max pooling compared float32 numbers and selected uint8 positions in one loop: LLVM compared a
    vector at a time but took every lane out of its vector to store it (100 lane extractions float32,
    32 float64), 330 µs for 6×28×28 maps of 25 images in float32; with the positions kept in int32 the
    loop stays in vectors (0 and 4 extractions; 77 µs). test_layers_pool checks the numbers against the
    NumPy engine's."""
    from convprop.engine.kernels import pool

    a = np.random.default_rng(0).random((2, 8, 8, 9)).astype(dtype)
    out, arg = np.empty((2, 4, 4, 9), dtype), np.empty((2, 4, 4, 9), np.uint8)
    asm = _fresh_asm(pool.max_pool.py_func, a, 2, out, arg, 0, 8)
    assert len(re.findall(r"\b(?:vpextr\w|vmovmsk\w+|vextract\w+)\b", asm)) <= 8


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="reads x86 assembly")
def test_the_float64_sigmoid_makes_no_float_to_int64_conversions():
    """The float64 sigmoid's 2ⁿ came from int64(n): x86 has no vector instruction for that before
    AVX-512, so LLVM converted one lane at a time (cvttsd2si into a 64-bit register; 2.4 ns an
    element, 413 µs for the 6×24×24 maps of 50 images). 2ⁿ now comes from the bits of n + 2⁵² + 1023,
    shifted (258 µs; the same bits)."""
    from convprop.engine.kernels import activation

    asm = _fresh_asm(activation.sigmoid_.py_func, np.linspace(-5.0, 5.0, 64))
    assert not re.search(r"\bv?cvttsd2si\w*\s+%xmm\d+,\s*%r", asm)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="reads x86 assembly")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_is_vectorised_and_calls_no_libm(dtype):
    """The tanh activation called libm's tanh / tanhf for each element (19 ns an element in float32, 7×
    NumPy's np.tanh); it is now a series and the sigmoid's exp in one loop, a vector at a time.
    test_engines checks its accuracy."""
    from convprop.engine.kernels import activation

    z = np.linspace(-1.0, 1.0, 64).astype(dtype)
    assert not re.search(r"\$tanhf?\b", _fresh_asm(activation.apply_.py_func, z, activation.TANH, 0.0))
    asm = _fresh_asm(activation.tanh_.py_func, z)
    assert re.search(rf"\bvdivp{'s' if dtype == np.float32 else 'd'}\b", asm)
