"""The kernels' own LLVM optimisation: two full passes with loop vectorisation, as ``NUMBA_OPT=max``.

Numba optimises a function's module in two rounds: a cheap one (level 0, no loop
vectorisation) to inline and prune reference counts, then the full one (level 3). Compiled so,
on its own, the inner loop of the 5×5 convolution (:func:`.conv._taps5x5_2x2`) stays scalar: its
shifted input views still look to LLVM's loop vectoriser like pointers the loop's stores might
change ("unsafe indirect dependence"). The copy of it linked into its caller is optimised once
more there, and vectorised. A process that compiled the kernels itself kept calling the first
copy: on an AMD Zen 3 machine the first process trained 2–2.7× slower than every later one,
which loads the cache (the 12c5 forward at 25 images, float32: 1,185–1,290 against 185–189 µs;
``benchmarks/same_code.py``). With the cheap round at level 3 and vectorising, the loop is
vectorised wherever it is compiled (``NUMBA_OPT=max``'s setting, for these kernels only: a
``numba:compile`` listener sets it while a kernel of this package compiles, and puts Numba's
own back after; other code the process compiles is left as it was).

The arithmetic is the same: the kernels' ``fastmath`` flags decide which sums may be reordered
(``rjit``'s reductions, whose order is the compiler's, fixed on a given machine).
"""

from __future__ import annotations

from .cache import in_kernels_dir

_installed = False


def _codegen():
    """Numba's CPU code generator, if it still keeps the two settings of its cheap round; else None."""
    from numba.core.registry import cpu_target

    codegen = cpu_target.target_context.codegen()
    return codegen if hasattr(codegen, "_loopvect") and hasattr(codegen, "_opt_level") else None


def _is_kernel(event) -> bool:
    dispatcher = (event.data or {}).get("dispatcher")
    func = getattr(dispatcher, "py_func", None)
    code = getattr(func, "__code__", None)
    return code is not None and in_kernels_dir(code.co_filename)


def install() -> bool:
    """Register the listener (once); False where this Numba has no such settings to raise."""
    global _installed
    if _installed:
        return True
    from numba.core import event

    codegen = _codegen()
    if codegen is None:
        return False

    class RaiseForKernels(event.Listener):
        """Level 3 and loop vectorisation in the cheap round while a kernel (and what it calls) compiles."""

        def __init__(self):
            self.depth, self.saved = 0, None

        def on_start(self, ev):
            if self.depth or _is_kernel(ev):
                if self.depth == 0:
                    self.saved = codegen._loopvect, codegen._opt_level
                    codegen._loopvect, codegen._opt_level = True, 3
                self.depth += 1

        def on_end(self, ev):
            if self.depth:
                self.depth -= 1
                if self.depth == 0:
                    codegen._loopvect, codegen._opt_level = self.saved

    event.register("numba:compile", RaiseForKernels())
    _installed = True
    return True
