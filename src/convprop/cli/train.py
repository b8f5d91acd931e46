"""``convprop train``: train a network, checkpoint every epoch, plot at the end."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import ConvpropError
from ._common import CLASS_NAMES, run_optimizer, add_data_arguments, data_dir_for, load_split, model_file, say
from .report import EpochReport, all_plots, summary_table, write_summary
from .runconfig import check_arguments, check_run_config
from .rundir import RunDir

DEFAULT_LAYERS = "6c5-s2-12c5-s2"
#: Settings that define a run; a resumed run must not change them.
RUN_SETTINGS = ("dataset", "layers", "output", "batch_size", "alpha", "optimizer", "momentum", "nesterov",
                "weight_decay", "dtype", "seed")


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``train`` to the sub-commands."""
    t = sub.add_parser("train", help="train a network (checkpoint each epoch, plots at the end)")
    add_data_arguments(t)
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

    config = {
        "dataset": given.get("dataset", "mnist"),
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
    extra = {"dataset": config["dataset"], "class_names": CLASS_NAMES[config["dataset"]]}
    return None, state, extra, config, Path(args.out or f"runs/{config['dataset']}")


def _network(config: dict, x_train: np.ndarray):
    from ..engine.layers import Input
    from ..engine.network import Network
    from ..engine.spec import parse_layers

    h, w = x_train.shape[1:3]
    c = x_train.shape[3] if x_train.ndim == 4 else 1
    return Network([Input(h, w, c), *parse_layers(config["layers"])], n_outputs=10, dtype=np.dtype(config["dtype"]),
                   seed=config["seed"], output=config["output"])


def _banner(args, config, net, state, n_train, n_test, epochs, out) -> str:
    opt = run_optimizer(config)
    resumed = ""
    if args.resume:
        resumed = (f", resuming epoch {state.epoch + 1} after batch {state.batch}" if state.batch
                   else f", resuming after epoch {state.epoch}")
    return (f"convprop train: {config['dataset']} ({n_train} train / {n_test} test images), "
            f"network {net.spec}, {net.dtype.name}, batch {config['batch_size']}, alpha {config['alpha']:g}"
            f"{'' if opt is None else ' (' + repr(opt) + ')'}, seed {config['seed']}, {epochs} epoch(s)"
            f"{resumed} -> {out}/")


def run(args) -> int:
    """Run ``convprop train`` for parsed arguments; returns the exit status."""
    from ..formats.model import save_model

    check_arguments(args)
    given = {k: getattr(args, k) for k in RUN_SETTINGS if getattr(args, k) is not None}
    net, state, extra, config, out = _resumed_run(args, given) if args.resume else _new_run(args, given)
    # Locked, writable, cleaned of a crash's leftovers and refused if it holds another run: all
    # before any data is loaded.
    with RunDir(out).acquire(force=args.force, resume=bool(args.resume)):
        if args.resume and state.epoch and not state.batch:
            write_summary(out / "summary.json", config, net, state)  # may lag the checkpoint after a crash
            if args.epochs == state.epoch:  # finished: only the final files are missing
                save_model(net, out / "model.npz", extra)
                print(f"the checkpoint has done all {state.epoch} epochs; model: {out / 'model.npz'} "
                      "(rewritten from the checkpoint)")
                return 0
        return _train(args, net, state, extra, config, out)


def _train(args, net, state, extra, config, out) -> int:
    from ..formats.model import save_model
    from ..training.budget import check_batch
    from ..training.loop import fit

    epochs = args.epochs if args.epochs is not None else 1
    dtype = np.dtype(config["dtype"])
    data_dir = data_dir_for(args, extra)
    if data_dir is not None:
        extra["data_dir"] = data_dir  # a hint for test / plot / resume
    _, x_train, y_train = load_split(config["dataset"], "train", data_dir, dtype, args.quiet)
    test_images, x_test, y_test = load_split(config["dataset"], "test", data_dir, dtype, args.quiet)
    net = net if net is not None else _network(config, x_train)
    check_batch(net, config["batch_size"], len(x_train))
    checkpoint = out / "checkpoint.npz"
    say(args, _banner(args, config, net, state, len(x_train), len(x_test), epochs, out))
    first_new = state.epoch
    state = fit(net, x_train, y_train, epochs=epochs, batch_size=config["batch_size"], alpha=config["alpha"],
                optimizer=run_optimizer(config), state=state, checkpoint=checkpoint, x_test=x_test, y_test=y_test,
                extra=extra, progress=not args.quiet,
                callbacks=[EpochReport(out / "summary.json", config, args.quiet)])
    save_model(net, out / "model.npz", extra)
    write_summary(out / "summary.json", config, net, state)
    if not args.no_plots:
        paths = all_plots(net, state, extra, test_images, x_test, y_test, out / "plots",
                          batches_per_epoch=-(-len(x_train) // config["batch_size"]))
        say(args, f"plots: {', '.join(str(p) for p in paths)}")
    say(args, summary_table(state, first_new))
    err = state.test_error[-1]
    wrong = int(round(err * len(y_test)))
    print(f"test error after {state.epoch} epoch(s): {100 * err:.2f} % ({wrong}/{len(y_test)} wrong); "
          f"model: {out / 'model.npz'}")
    return 0
