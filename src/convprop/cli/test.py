"""``convprop test``: the test error of a saved model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..formats.model import load_model
from ..training.evaluate import evaluate
from ._common import add_model_command, class_names, model_file, mpi_world, say, speaks
from ._data import load_test_split


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``test`` to the sub-commands."""
    return add_model_command(sub, "test", "test error of a saved model", run,
                             ("model", "model.npz / checkpoint.npz or a run directory"),
                             ("--plots", "also write confusion.png and misclassified.png here"))


def run(args) -> int:
    """Run ``convprop test``; returns the exit status."""
    comm = mpi_world()  # under mpiexec: each rank classifies its share of the images, rank 0 speaks
    args.quiet = args.quiet or not speaks(comm)
    path = model_file(args.model)
    net = load_model(path)
    extra = net.extra
    dataset, images, x, y = load_test_split(args, net.extra, net)
    if comm is None:
        result = evaluate(net, x, y)
    else:
        from functools import partial

        from ..training.mpi import sharded_predict

        result = evaluate(net, x, y, predict=partial(sharded_predict, net, comm=comm))
    if not speaks(comm):
        return 0
    if args.plots:
        from .. import plots

        names = class_names(extra, net.n_outputs)
        out = Path(args.plots)
        p1 = plots.plot_confusion(y, result.predicted, out / "confusion.png", class_names=names)
        p2 = plots.plot_misclassified(images, y, result.predicted, out / "misclassified.png", class_names=names)
        say(args, f"plots: {p1}, {p2}")
    print(f"test error: {100 * result.error:.2f} % ({result.wrong.size}/{len(y)} wrong) on {dataset} test, "
          f"model {path}")
    return 0
