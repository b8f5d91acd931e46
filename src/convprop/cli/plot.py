"""``convprop plot``: (re)draw a run's plots from its checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_data_arguments, data_dir_for, load_split, model_file
from .report import all_plots


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``plot`` to the sub-commands."""
    q = sub.add_parser("plot", help="(re)draw a run's plots from its checkpoint")
    q.add_argument("run", help="run directory or checkpoint.npz")
    add_data_arguments(q)
    q.add_argument("--out", metavar="DIR", help="where to write the PNGs (default <run>/plots)")
    q.set_defaults(func=run)
    return q


def run(args) -> int:
    """Run ``convprop plot``; returns the exit status."""
    from ..formats.checkpoint import load_checkpoint

    path = model_file(args.run)
    if path.name == "model.npz" and path.with_name("checkpoint.npz").is_file():
        path = path.with_name("checkpoint.npz")
    net, state = load_checkpoint(path)
    extra = net.extra
    dataset = args.dataset or extra.get("dataset", "mnist")
    data_dir = data_dir_for(args, extra) if dataset == extra.get("dataset") else args.data_dir
    images, x, y = load_split(dataset, "test", data_dir, net.dtype, args.quiet)
    out = Path(args.out) if args.out else path.parent / "plots"
    bs = state.config.get("batch_size")
    per_epoch = len(state.L) // state.epoch if state.epoch and not state.batch else None
    paths = all_plots(net, state, extra, images, x, y, out, batches_per_epoch=per_epoch if bs else None)
    for p in paths:
        print(p)
    return 0
