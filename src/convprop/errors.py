"""The library's exceptions: one for bad input, two for training that cannot go on.

* :class:`ConvpropError` — convprop was given something it cannot use (an
  array of the wrong shape, a corrupt file, a bad setting). It derives from
  :class:`ValueError`, so ``except ValueError`` catches it too.
* :class:`Diverged` — training produced NaN / inf, or a runaway loss. The
  input was valid; the run was not. Not a ValueError.
* :class:`Interrupted` — training was stopped by Ctrl-C (or SIGTERM) after a
  clean save. A :class:`KeyboardInterrupt`, as Python users expect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ConvpropError(ValueError):
    """Raised for every problem convprop detects in its input."""


class Diverged(RuntimeError):
    """Training produced a NaN or infinite loss or parameter, or a runaway loss.

    Attributes
    ----------
    epoch, batch : int
        Where (1-based).
    what : str
        ``"loss"`` or the names of the non-finite parameters, comma-separated.
    checkpoint : Path or None
        The last good checkpoint of the run, if one was written.
    """

    def __init__(self, message: str, epoch: int, batch: int, what: str, checkpoint: Path | None):
        super().__init__(message)
        self.epoch, self.batch, self.what, self.checkpoint = epoch, batch, what, checkpoint


class Interrupted(KeyboardInterrupt):
    """Training was stopped by Ctrl-C; ``checkpoint`` is where it can resume from (or None).

    Attributes
    ----------
    checkpoint : Path or None
    state : TrainingState
        Where the run stood (see :class:`convprop.formats.checkpoint.TrainingState`).
    """

    def __init__(self, checkpoint: Path | None, state: Any):
        where = f"epoch {state.epoch + 1}, batch {state.batch}" if state.batch else f"the end of epoch {state.epoch}"
        super().__init__(f"training interrupted at {where}")
        self.checkpoint = checkpoint
        self.state = state
