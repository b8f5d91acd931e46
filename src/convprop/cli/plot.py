"""``convprop plot``: (re)draw a run's plots from its checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_model_command, model_file
from ._data import load_test_split
from .report import all_plots


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``plot`` to the sub-commands."""
    q = add_model_command(sub, "plot", "(re)draw a run's plots from its checkpoint", run,
                          ("run", "run directory or checkpoint.npz"),
                          ("--out", "where to write the PNGs (default <run>/plots)"))
    q.add_argument("--log-loss", action="store_true", help="logarithmic y axis for the loss curve")
    return q


def run(args) -> int:
    """Run ``convprop plot``; returns the exit status."""
    from ..formats.checkpoint import load_checkpoint

    path = model_file(args.run)
    if path.name == "model.npz" and path.with_name("checkpoint.npz").is_file():
        path = path.with_name("checkpoint.npz")
    net, state = load_checkpoint(path)
    _, images, x, y = load_test_split(args, net.extra, net)
    out = Path(args.out) if args.out else path.parent / "plots"
    bs = state.config.get("batch_size")
    per_epoch = len(state.L) // state.epoch if state.epoch and not state.batch else None
    paths = all_plots(net, state, net.extra, images, x, y, out, batches_per_epoch=per_epoch if bs else None,
                      log_loss=args.log_loss)
    for p in paths:
        print(p)
    return 0
