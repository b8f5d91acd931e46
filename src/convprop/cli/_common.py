"""What the commands share: the argument parser class, messages, data loading, model look-up."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from ..errors import ConvpropError

DATASETS = ("mnist", "fashion-mnist")
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def say(args, *text) -> None:
    if not getattr(args, "quiet", False):
        print(*text, flush=True)


def load_split(dataset: str, split: str, data_dir: str | None, dtype, quiet: bool):
    from ..datasets import images_to_float, load_dataset

    # An explicit directory is read as it is; only the default look-up may download.
    images, labels = load_dataset(dataset, split=split, path=data_dir, download=data_dir is None,
                                  progress=not quiet)
    return images, images_to_float(images, dtype), np.asarray(labels)


def data_dir_for(args, extra: dict) -> str | None:
    """--data-dir, else the directory the model was trained from (if it still exists), else None."""
    if args.data_dir:
        return str(Path(args.data_dir).resolve())
    hint = extra.get("data_dir")
    return hint if isinstance(hint, str) and Path(hint).is_dir() else None


def class_names(extra: dict, n: int) -> list[str]:
    names = extra.get("class_names")
    if isinstance(names, list) and len(names) == n:
        return [str(c) for c in names]
    return [str(i) for i in range(n)]


def model_file(path: str | os.PathLike) -> Path:
    """The model file a user named: the file itself, or a run directory's model.npz / checkpoint.npz."""
    p = Path(path)
    if p.is_dir():
        for name in ("model.npz", "checkpoint.npz"):
            if (p / name).is_file():
                return p / name
        raise ConvpropError(f"{p}: no model.npz or checkpoint.npz in this directory")
    return p


def add_data_arguments(q: argparse.ArgumentParser, default_dataset: str | None = None) -> None:
    """--dataset, --data-dir and --quiet, as train, test and plot take them."""
    q.add_argument("--dataset", choices=DATASETS, default=default_dataset,
                   help="dataset (default: mnist, or the one the model was trained on)")
    q.add_argument("--data-dir", metavar="DIR",
                   help="directory with the four IDX .gz files, read as it is (default: the data "
                        "package's look-up, which may download to the cache)")
    q.add_argument("--quiet", "-q", action="store_true", help="print only the result")


def optimizer_settings(config: dict) -> dict | None:
    """None for the toolbox's plain SGD (net.step(alpha)), else the arguments of ``make_optimizer``."""
    name = config.get("optimizer", "sgd")
    momentum, nesterov = config.get("momentum", 0.0), config.get("nesterov", False)
    decay = config.get("weight_decay", 0.0)
    if name == "sgd" and not (momentum or nesterov or decay):
        return None
    return {"name": name, "lr": config["alpha"], "momentum": momentum, "nesterov": nesterov, "weight_decay": decay}


def run_optimizer(config: dict):
    """None for the toolbox's plain SGD (net.step(alpha)), else the run's optimiser."""
    from ..engine.optim import make_optimizer

    settings = optimizer_settings(config)
    return None if settings is None else make_optimizer(**settings)


def add_command(sub, name: str, help: str, description: str, examples: list[str]) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` shows a description and example command lines."""
    return sub.add_parser(name, help=help, description=description,
                          epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_model_command(sub, name: str, help: str, run, target: tuple[str, str],
                      option: tuple[str, str]) -> argparse.ArgumentParser:
    """A sub-command that reads a saved model (or run) and a data set.

    ``convprop <name> TARGET [--data flags] [--OPTION DIR]``, with ``target`` and ``option``
    given as (name, help).
    """
    q = sub.add_parser(name, help=help)
    q.add_argument(target[0], help=target[1])
    add_data_arguments(q)
    q.add_argument(option[0], metavar="DIR", help=option[1])
    q.set_defaults(func=run)
    return q


def mpi_world():
    """The MPI communicator when ``mpiexec`` / ``srun`` started several processes, else None.

    Only rank 0 prints: the others' ``args.quiet`` is set by the callers that take it.
    """
    from ..training.mpi import world

    return world()


def speaks(comm) -> bool:
    """Whether this process prints and writes: always, but under MPI only rank 0."""
    return comm is None or comm.Get_rank() == 0
