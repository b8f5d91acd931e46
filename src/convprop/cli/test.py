"""``convprop test``: the test error of a saved model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_data_arguments, class_names, data_dir_for, load_split, model_file, say


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``test`` to the sub-commands."""
    e = sub.add_parser("test", help="test error of a saved model")
    e.add_argument("model", help="model.npz / checkpoint.npz or a run directory")
    add_data_arguments(e)
    e.add_argument("--plots", metavar="DIR", help="also write confusion.png and misclassified.png here")
    e.set_defaults(func=run)
    return e


def run(args) -> int:
    """Run ``convprop test``; returns the exit status."""
    from ..training.evaluate import evaluate
    from ..formats.model import load_model

    path = model_file(args.model)
    net = load_model(path)
    extra = net.extra
    dataset = args.dataset or extra.get("dataset", "mnist")
    data_dir = data_dir_for(args, extra) if dataset == extra.get("dataset") else args.data_dir
    images, x, y = load_split(dataset, "test", data_dir, net.dtype, args.quiet)
    result = evaluate(net, x, y)
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
