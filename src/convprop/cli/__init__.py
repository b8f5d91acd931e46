"""The ``convprop`` command: one module per sub-command.

Every error is one line on stderr with exit status 2; Ctrl-C during training
saves a checkpoint and exits with status 130, and at any other moment prints
``convprop: interrupted`` and exits with status 130. The sub-commands (and
NumPy) are imported inside :func:`main`, so that a Ctrl-C while they load is
handled too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..errors import ConvpropError, Diverged, Interrupted

#: The sub-command modules, in the order ``--help`` lists them.
COMMANDS = ("train", "test", "predict", "gradcheck", "plot", "explain")


def build_parser() -> argparse.ArgumentParser:
    """The ``convprop`` parser with every sub-command."""
    import importlib

    from .. import __version__
    from ._common import Parser

    p = Parser(prog="convprop", description="Classic CNNs with hand-derived backprop (DeepLearnToolbox port).")
    p.add_argument("--version", action="version", version=f"convprop {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        importlib.import_module(f"{__name__}.{command}").add_parser(sub)
    return p


def _interrupted(exc: Interrupted, args) -> int:
    st = exc.state
    where = f"epoch {st.epoch + 1}, batch {st.batch}" if st.batch else f"the end of epoch {st.epoch}"
    if exc.checkpoint is not None:
        hint = f"checkpoint saved to {exc.checkpoint}; resume with: convprop train --resume {exc.checkpoint}"
        hint += f" --epochs {args.epochs}" if getattr(args, "epochs", None) else " --epochs N"
    else:
        hint = "no checkpoint was saved"
    print(f"convprop: interrupted at {where}; {hint}", file=sys.stderr)
    return 130


def _error(exc: BaseException, args) -> int:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    hint = "; try a smaller --alpha" if isinstance(exc, Diverged) else ""
    from ..training.mpi import launched_rank

    rank = launched_rank()
    who = f" (rank {rank})" if rank else ""
    print(f"convprop {args.command}{who}: error: {text}{hint}", file=sys.stderr)
    return 2


def _said_by_rank_0(exc: BaseException) -> bool:
    """Under mpiexec with several ranks: whether ``exc`` happened alike on every rank, so that rank 0
    alone reports it (an agreed stop, a divergence seen in the summed loss, a failed start-up check)."""
    from ..training.mpi import launched_rank

    alike = isinstance(exc, (Interrupted, Diverged)) or getattr(exc, "everywhere", False)
    return alike and launched_rank() != 0


class LostInterrupt:
    """The command's SIGINT handler: KeyboardInterrupt, as Python's own, remembered until handled.

    A KeyboardInterrupt can vanish on its way up. CPython loses one raised while a weakref
    callback or ``__del__`` runs (an import's module-lock clean-up, say): it reports it as
    "unraisable" and goes on; that report comes to :meth:`unraisable`, which keeps it off the
    terminal. And one raised while a C extension initialises comes out as an ImportError
    ("PyCapsule_Import could not import module ..."), which a ``try: import _speedups
    except ImportError`` fallback swallows, or which ends the command as if it were broken.
    So each Ctrl-C sets :attr:`ctrl_c_pending` as it raises. The training loop takes a pending
    Ctrl-C over when it starts (it stops after its first batch, as for a Ctrl-C during
    training, and clears the flag); :func:`main` ends the command with ``convprop:
    interrupted`` and status 130 when it returns or fails with the flag still set.

    Attributes
    ----------
    ctrl_c_pending : bool
        A Ctrl-C was pressed and no training loop has taken it over.
    """

    def __init__(self) -> None:
        self.ctrl_c_pending = False
        self._previous_hook: Callable[[Any], object] = sys.unraisablehook

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.ctrl_c_pending = True
        raise KeyboardInterrupt

    def unraisable(self, report: Any) -> None:
        """``sys.unraisablehook`` while installed: a lost KeyboardInterrupt is noted, others passed on."""
        if isinstance(report.exc_value, KeyboardInterrupt):
            self.ctrl_c_pending = True
        else:
            self._previous_hook(report)

    @contextmanager
    def installed(self) -> Iterator["LostInterrupt"]:
        """This handler and hook for the block (main thread only, when Ctrl-C has Python's default handler)."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield self
            return
        self._previous_hook, sys.unraisablehook = sys.unraisablehook, self.unraisable
        try:
            signal.signal(signal.SIGINT, self)
            try:
                yield self
            finally:
                if signal.getsignal(signal.SIGINT) is self:
                    signal.signal(signal.SIGINT, signal.default_int_handler)
        finally:
            sys.unraisablehook = self._previous_hook


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    watch = LostInterrupt()
    try:
        with watch.installed():
            status = _main(argv)
    except KeyboardInterrupt:  # while the sub-commands (NumPy …) were being imported, or before
        watch.ctrl_c_pending = True
    except BaseException:  # noqa: BLE001 - an error that a Ctrl-C caused (an import's ImportError, say)
        if not watch.ctrl_c_pending:
            raise
    if watch.ctrl_c_pending:  # a Ctrl-C that no training loop took over
        print("convprop: interrupted", file=sys.stderr)
        return 130
    return status


def _pending() -> bool:
    """Whether the command's handler saw a Ctrl-C that nothing has taken over (see :class:`LostInterrupt`)."""
    import signal

    return getattr(signal.getsignal(signal.SIGINT), "ctrl_c_pending", False) is True


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Interrupted as exc:
        return 130 if _said_by_rank_0(exc) else _interrupted(exc, args)
    except KeyboardInterrupt:
        if not _pending():  # else main says it
            print("convprop: interrupted", file=sys.stderr)
        return 130
    except (ConvpropError, Diverged, OSError, MemoryError, ImportError) as exc:
        if _pending():  # an error that a Ctrl-C caused: main says it was interrupted
            return 130
        return 2 if _said_by_rank_0(exc) else _error(exc, args)
    except Exception as exc:  # a bug: still one line, with a way to see more
        if _pending():
            return 130
        if os.environ.get("CONVPROP_DEBUG"):
            raise
        text = " ".join(str(exc).split())
        print(f"convprop {args.command}: internal error: {type(exc).__name__}: {text} "
              f"(set CONVPROP_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2
