"""``convprop train``: train a network, checkpoint every epoch, plot at the end."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import ConvpropError
from . import compiling
from ._common import CLASS_NAMES, run_optimizer, add_data_arguments, data_dir_for, model_file, say
from ._data import IMAGES, add_image_arguments, check_data_dir, load_run_data, own_images
from .report import EpochReport, all_plots, earlier_engines, summary_table, write_summary
from .runconfig import check_arguments, check_run_config
from .rundir import RunDir

DEFAULT_LAYERS = "6c5-s2-12c5-s2"
#: Settings that define a run; a resumed run must not change them.
RUN_SETTINGS = ("dataset", "layers", "output", "batch_size", "alpha", "optimizer", "momentum", "nesterov",
                "weight_decay", "dtype", "seed")


TRAIN_DESCRIPTION = """\
Train a network on MNIST, Fashion-MNIST or your own images, with the toolbox's settings by default
(6c5-s2-12c5-s2, sigmoid outputs, SGD alpha 1, batch 50, seed 0). Shows a progress bar and the test
error after each epoch; writes model.npz, checkpoint.npz, summary.json, metrics.csv and plots/ to the
run directory (--out). Ctrl-C saves a checkpoint; --resume continues it bit for bit."""
TRAIN_EXAMPLES = """\
examples:
  convprop train --data-dir ../shared/data/mnist --out runs/mnist-1epoch
  convprop train --dataset fashion-mnist --epochs 5
  convprop train --data-dir ../shared/data/mnist --layers 6c5rps-m2-16c5r-m2-120fr-84fr --output softmax \\
      --optimizer adam --alpha 0.001 --epochs 3 --dtype float32 --out runs/lenet
  convprop train --data-dir photos/ --image-size 32 --color rgb --layers 8c3rps-m2-16c3rps-m2-64fr \\
      --output softmax --optimizer adam --alpha 0.001 --epochs 10     # photos/<class>/*.jpg
  convprop train --resume runs/mnist-1epoch --epochs 10"""


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``train`` to the sub-commands."""
    t = sub.add_parser("train", help="train a network (checkpoint each epoch, plots at the end)",
                       description=TRAIN_DESCRIPTION, epilog=TRAIN_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(t)
    add_image_arguments(t)
    t.add_argument("--layers", metavar="SPEC",
                   help=f"layer spec (default {DEFAULT_LAYERS}): <maps>c<kernel>[r|t|i|l][p<n>|ps][/<stride>], "
                        "s<scale>, m<scale>, <units>f[r|t|i|l] (e.g. 6c5rps-m2-16c5r-m2-120fr)")
    t.add_argument("--output", choices=("sigmoid", "softmax"),
                   help="output units: sigmoid on ½Σ(o−y)² (the toolbox's, default) or softmax on cross-entropy")
    t.add_argument("--epochs", type=int, metavar="N", help="total number of epochs (default 1)")
    t.add_argument("--batch-size", type=int, metavar="N", help="mini-batch size (default 50)")
    t.add_argument("--alpha", type=float, help="step size / learning rate (default 1.0, the toolbox's)")
    t.add_argument("--optimizer", choices=("sgd", "adam", "adamw"),
                   help="update rule (default sgd: the toolbox's p -= alpha*grad)")
    t.add_argument("--momentum", type=float, help="SGD momentum (default 0)")
    t.add_argument("--nesterov", action="store_const", const=True, help="Nesterov momentum (SGD)")
    t.add_argument("--weight-decay", type=float, help="L2 weight decay (decoupled for adamw; default 0)")
    t.add_argument("--dtype", choices=("float64", "float32"), help="default float64")
    t.add_argument("--seed", type=int, help="initialisation and permutation seed (default 0)")
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/<dataset>); refused if it holds "
                   "another run, unless --resume or --force")
    t.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (file or run directory)")
    t.add_argument("--force", action="store_true", help="replace the run already in --out (its files and plots)")
    t.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    t.add_argument("--mpi-timeout", type=float, metavar="S",
                   help="under mpiexec: seconds a rank waits for the others before ending the job (default 300)")
    t.set_defaults(func=run)
    return t


def _norm(key: str, value):
    if key == "layers":
        from ..engine.spec import format_layers, parse_layers

        return format_layers(parse_layers(value))
    return float(value) if key in ("alpha", "momentum", "weight_decay") else value


def _resumed_run(args, given: dict):
    """(net, state, extra, config, out) of the checkpoint named by --resume, checked against the flags."""
    from ..formats.checkpoint import load_checkpoint

    ckpt = model_file(args.resume)
    if ckpt.name == "model.npz":
        ckpt = ckpt.with_name("checkpoint.npz")
    net, state = load_checkpoint(ckpt)
    extra = net.extra
    config = check_run_config(state.config, net, str(ckpt))
    clash = [f"--{k.replace('_', '-')} {v} (checkpoint: {config.get(k)})"
             for k, v in given.items() if k in config and _norm(k, v) != config.get(k)]
    if clash:
        raise ConvpropError(f"--resume keeps the run's settings; these differ: {', '.join(clash)}")
    if args.epochs is None:
        raise ConvpropError(f"--resume needs --epochs N, the total number of epochs (done: {state.epoch})")
    if args.epochs < state.epoch or (args.epochs == state.epoch and state.batch):  # epoch + 1 unfinished
        done = f"{state.epoch} epochs" + (f" and {state.batch} batches" if state.batch else "")
        raise ConvpropError(f"the checkpoint has done {done}; ask for more with --epochs")
    return net, state, extra, config, Path(args.out) if args.out else ckpt.parent


def _new_run(args, given: dict):
    """(None, state, extra, config, out) of a fresh run from the flags and their defaults."""
    from ..engine.spec import format_layers, parse_layers
    from ..formats.checkpoint import TrainingState

    if given.get("dataset") and own_images(args.data_dir):
        raise ConvpropError(f"--data-dir {args.data_dir} holds image folders, not {given['dataset']} IDX files: "
                            "leave out --dataset")
    config = {
        "dataset": given.get("dataset") or (IMAGES if own_images(args.data_dir) else "mnist"),
        "layers": format_layers(parse_layers(given.get("layers", DEFAULT_LAYERS))),
        "output": given.get("output", "sigmoid"),
        "batch_size": given.get("batch_size", 50),
        "alpha": float(given.get("alpha", 1.0)),
        "optimizer": given.get("optimizer", "sgd"),
        "momentum": float(given.get("momentum", 0.0)),
        "nesterov": bool(given.get("nesterov", False)),
        "weight_decay": float(given.get("weight_decay", 0.0)),
        "dtype": given.get("dtype", "float64"),
        "seed": given.get("seed", 0),
    }
    run_optimizer(config)  # a bad combination (adam with --momentum) fails now, not after the data loads
    state = TrainingState.new(config["seed"], config)
    extra = {"dataset": config["dataset"], "class_names": CLASS_NAMES.get(config["dataset"])}
    name = Path(args.data_dir).resolve().stem if config["dataset"] == IMAGES else config["dataset"]
    return None, state, extra, config, Path(args.out or f"runs/{name}")


def _network(config: dict, x_train: np.ndarray, n_outputs: int):
    from ..engine.layers import Input
    from ..engine.network import Network
    from ..engine.spec import parse_layers

    h, w = x_train.shape[1:3]
    c = x_train.shape[3] if x_train.ndim == 4 else 1
    return Network([Input(h, w, c), *parse_layers(config["layers"])], n_outputs=n_outputs, dtype=np.dtype(config["dtype"]),
                   seed=config["seed"], output=config["output"])


def _banner(args, config, net, state, data, epochs, out, parallel=None) -> str:
    opt = run_optimizer(config)
    resumed = ""
    if args.resume:
        resumed = (f", resuming epoch {state.epoch + 1} after batch {state.batch}" if state.batch
                   else f", resuming after epoch {state.epoch}")
    return (f"convprop train: {data.description} ({len(data.y_train)} train / {len(data.y_test)} test images), "
            f"network {net.spec}, {net.dtype.name}, batch {config['batch_size']}, alpha {config['alpha']:g}"
            f"{'' if opt is None else ' (' + repr(opt) + ')'}, seed {config['seed']}, {epochs} epoch(s)"
            f"{resumed}{'' if parallel is None else f', on {parallel.size} MPI processes'} -> {out}/")


def _parallel(args):
    """The DataParallel callback when started by mpiexec / srun with several processes, else None."""
    from ..training.mpi import world

    comm = world()
    if comm is None:
        return None
    from ..training.distributed import DEFAULT_TIMEOUT, DataParallel

    if comm.Get_rank() != 0:
        args.quiet, args.no_plots = True, True  # rank 0 alone prints, draws progress and writes files
    timeout = args.mpi_timeout if args.mpi_timeout is not None else DEFAULT_TIMEOUT
    return DataParallel(comm, timeout=timeout if timeout > 0 else None)


def _load_data(parallel, load):
    """``load()``; under MPI rank 0 first (it may download or decode), then the others."""
    first = parallel is None or parallel.rank == 0
    if not first:
        parallel.comm.Barrier()
    data = load()
    if first and parallel is not None:
        parallel.comm.Barrier()
    return data


def run(args) -> int:
    """Run ``convprop train`` for parsed arguments; returns the exit status."""
    from ..formats.model import save_model

    parallel = _parallel(args)
    check_arguments(args)
    check_data_dir(args.data_dir)
    given = {k: getattr(args, k) for k in RUN_SETTINGS if getattr(args, k) is not None}
    net, state, extra, config, out = _resumed_run(args, given) if args.resume else _new_run(args, given)
    finished = bool(args.resume) and state.epoch and not state.batch and args.epochs == state.epoch
    if parallel is not None and parallel.rank != 0:  # rank 0 alone owns the run directory
        return 0 if finished else _train(args, net, state, extra, config, out, parallel, [])
    # Locked, writable, cleaned of a crash's leftovers and refused if it holds another run: all
    # before any data is loaded.
    with RunDir(out).acquire(force=args.force, resume=bool(args.resume)):
        engines = earlier_engines(out / "summary.json", state.epoch)  # a resumed run's earlier epochs
        if args.resume and state.epoch and not state.batch:  # the summary may lag the checkpoint after a crash
            write_summary(out / "summary.json", config, net, state, engines=engines)
            if finished:  # only the final files are missing
                save_model(net, out / "model.npz", extra)
                print(f"the checkpoint has done all {state.epoch} epochs; model: {out / 'model.npz'} "
                      "(rewritten from the checkpoint)")
                return 0
        return _train(args, net, state, extra, config, out, parallel, engines)


def _train(args, net, state, extra, config, out, parallel, engines) -> int:
    from ..engine import backend

    # a machine's first run of these layers: their kernels compile in a background process (None: not that)
    child = compiling.begin(args, config, np.dtype(config["dtype"]), parallel)
    try:
        return _fit_and_report(args, net, state, extra, config, out, parallel, child, engines)
    finally:
        if child is not None:
            backend.set_engine(None)


def _fit_and_report(args, net, state, extra, config, out, parallel, child, engines) -> int:
    """Load the data, train, then write the model, the summary and the plots (``engines``: those of a
    resumed run's earlier epochs, as :class:`.report.EpochReport` takes them)."""
    from ..engine import warmup
    from ..engine.spec import parse_layers
    from ..formats.model import save_model
    from ..training.budget import check_batch
    from ..training.callbacks import MetricsLog
    from ..training.loop import fit

    epochs = args.epochs if args.epochs is not None else 1
    dtype = np.dtype(config["dtype"])
    data_dir = data_dir_for(args, extra)
    if data_dir is not None:
        extra["data_dir"] = data_dir  # a hint for test / plot / resume
    if child is None:  # the compiled kernels compile (first run on a machine) or load while the data are read
        warmup.start(parse_layers(config["layers"]), dtype, config["output"], run_optimizer(config))
    data = _load_data(parallel, lambda: load_run_data(args, config, state, extra, dtype, data_dir))
    extra["class_names"] = data.class_names
    x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    net = net if net is not None else _network(config, x_train, len(data.class_names))
    check_batch(net, config["batch_size"], len(x_train))
    checkpoint = out / "checkpoint.npz"
    say(args, _banner(args, config, net, state, data, epochs, out, parallel))
    first_new = state.epoch
    summary = out / "summary.json"
    report = EpochReport(summary, config, args.quiet, data.class_names, engines)
    state = fit(net, x_train, y_train, epochs=epochs, batch_size=config["batch_size"], alpha=config["alpha"],
                optimizer=run_optimizer(config), state=state, checkpoint=checkpoint, x_test=x_test, y_test=y_test,
                extra=extra, progress=not args.quiet,
                callbacks=[report, MetricsLog(out / "metrics.csv"),
                           *([compiling.EngineSwitch(child, args)] if child is not None else [])], comm=parallel)
    if parallel is not None and parallel.rank != 0:
        return 0
    save_model(net, out / "model.npz", extra)
    write_summary(summary, config, net, state, data.class_names, report.engines)
    if not args.no_plots:
        paths = all_plots(net, state, extra, data.images, x_test, y_test, out / "plots",
                          batches_per_epoch=-(-len(x_train) // config["batch_size"]))
        say(args, f"plots: {', '.join(str(p) for p in paths)}")
    say(args, summary_table(state, first_new))
    err = state.test_error[-1]
    wrong = int(round(err * len(y_test)))
    print(f"test error after {state.epoch} epoch(s): {100 * err:.2f} % ({wrong}/{len(y_test)} wrong); "
          f"model: {out / 'model.npz'}")
    return 0
