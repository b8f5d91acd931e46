"""The ``convprop`` command: one module per sub-command.

Every error is one line on stderr with exit status 2; Ctrl-C during training
saves a checkpoint and exits with status 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import ConvpropError, Diverged, Interrupted
from . import explain, gradcheck, plot, predict, test, train
from ._common import Parser

COMMANDS = (train, test, predict, gradcheck, plot, explain)


def build_parser() -> argparse.ArgumentParser:
    """The ``convprop`` parser with every sub-command."""
    from .. import __version__

    p = Parser(prog="convprop", description="Classic CNNs with hand-derived backprop (DeepLearnToolbox port).")
    p.add_argument("--version", action="version", version=f"convprop {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Interrupted as exc:
        return 130 if _said_by_rank_0(exc) else _interrupted(exc, args)
    except KeyboardInterrupt:
        print("convprop: interrupted", file=sys.stderr)
        return 130
    except (ConvpropError, Diverged, OSError, MemoryError, ImportError) as exc:
        return 2 if _said_by_rank_0(exc) else _error(exc, args)
    except Exception as exc:  # a bug: still one line, with a way to see more
        if os.environ.get("CONVPROP_DEBUG"):
            raise
        text = " ".join(str(exc).split())
        print(f"convprop {args.command}: internal error: {type(exc).__name__}: {text} "
              f"(set CONVPROP_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2
