"""``convprop train`` on a machine whose kernels are not compiled yet: train on, compile aside.

See :mod:`convprop.engine.precompile`: the kernels compile in a child process
while the NumPy engine trains; the compiled engine takes over from the first
epoch that starts after the child finished.
"""

from __future__ import annotations

import contextlib
import subprocess

from ..engine import backend, parallel, precompile
from ..training.callbacks import Callback
from ._common import optimizer_settings, say


def settings(config: dict, dtype) -> dict:
    """What the run's kernels depend on: its layers, dtype, output, optimiser and thread count."""
    return {"layers": config["layers"], "dtype": str(dtype), "output": config["output"],
            "optimizer": optimizer_settings(config), "threads": parallel.n_threads()}


def begin(args, config: dict, dtype, comm) -> subprocess.Popen | None:
    """Start compiling in the background and select the NumPy engine, when that is what this run
    needs (the compiled engine by default, its kernels not compiled here yet, one process, and
    ``CONVPROP_COMPILE`` not "foreground"); else None. After a child failed, runs compile in the run."""
    if not precompile.background_wanted() or comm is not None or backend.chosen() or not backend.available():
        return None
    wanted = settings(config, dtype)
    if not precompile.is_cold(wanted):
        return None
    child = precompile.start(wanted)
    if child is None:
        return None
    backend.set_engine("numpy")
    say(args, "note: first run of these layers on this machine: their compiled kernels are being built "
              "in the background (once: 15 s to 3 min, by machine); the NumPy engine trains until they are ready "
              "(same results to round-off; CONVPROP_COMPILE=foreground waits for them instead)")
    return child


class EngineSwitch(Callback):
    """Takes the compiled engine from the first epoch after the background compilation finished."""

    def __init__(self, child: subprocess.Popen, args) -> None:
        self.child, self.args = child, args
        self._cap = contextlib.ExitStack()

    def on_epoch_begin(self, loop) -> None:
        if self.child is None or self.child.poll() is None:
            return
        ok, self.child = self.child.returncode == 0, None
        if ok:
            backend.set_engine(None)
            loop.net.release()  # the NumPy engine's work arrays
            # the loop capped the BLAS libraries loaded when it started; the compiled dense kernels'
            # (SciPy's) comes with the compiled engine, so it is capped now
            self._cap.enter_context(parallel.blas_limit())
            self._say(f"note: compiled kernels ready: epoch {loop.epoch + 1} on uses them")
        else:
            self._say("note: compiling the kernels failed; the NumPy engine trains on (the next run "
                      "compiles them in the run and reports why)")

    def on_train_end(self, loop) -> None:
        self._cap.close()

    def on_interrupt(self, loop) -> None:
        self._cap.close()

    def _say(self, text: str) -> None:
        if not getattr(self.args, "quiet", False):
            from tqdm.auto import tqdm

            tqdm.write(text)  # above the progress bar
