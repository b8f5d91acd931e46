"""The ``convprop`` command: train, test, predict, gradcheck, plot.

Every error is one line on stderr with exit status 2; Ctrl-C during training
saves a checkpoint and exits with status 130.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import ConvpropError
from .formats.npz import model_file

DEFAULT_LAYERS = "6c5-s2-12c5-s2"
DATASETS = ("mnist", "fashion-mnist")
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}
#: Settings that define a run; a resumed run must not change them.
RUN_SETTINGS = ("dataset", "layers", "output", "batch_size", "alpha", "optimizer", "momentum", "nesterov",
                "weight_decay", "dtype", "seed")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _say(args, *text) -> None:
    if not getattr(args, "quiet", False):
        print(*text, flush=True)


# ------------------------------------------------------------------ data


def _load(dataset: str, split: str, data_dir: str | None, dtype, quiet: bool):
    from .datasets import images_to_float, load_dataset

    # An explicit directory is read as it is; only the default look-up may download.
    images, labels = load_dataset(dataset, split=split, path=data_dir, download=data_dir is None,
                                  progress=not quiet)
    return images, images_to_float(images, dtype), np.asarray(labels)


def _data_dir(args, extra: dict) -> str | None:
    """--data-dir, else the directory the model was trained from (if it still exists), else None."""
    if args.data_dir:
        return str(Path(args.data_dir).resolve())
    hint = extra.get("data_dir")
    return hint if isinstance(hint, str) and Path(hint).is_dir() else None


def _class_names(extra: dict, n: int) -> list[str]:
    names = extra.get("class_names")
    if isinstance(names, list) and len(names) == n:
        return [str(c) for c in names]
    return [str(i) for i in range(n)]


# ------------------------------------------------------------------ train


def cmd_train(args) -> int:
    from .formats.npz import load_checkpoint, save_model
    from .engine.layers import Input
    from .engine.network import Network
    from .training.session import fit, new_state
    from .engine.spec import format_layers, parse_layers

    given = {k: getattr(args, k) for k in RUN_SETTINGS if getattr(args, k) is not None}
    if args.resume:
        ckpt = model_file(args.resume)
        if ckpt.name == "model.npz":
            ckpt = ckpt.with_name("checkpoint.npz")
        net, state, extra = load_checkpoint(ckpt)
        config = state.config
        clash = [f"--{k.replace('_', '-')} {v} (checkpoint: {config.get(k)})"
                 for k, v in given.items() if k in config and _norm(k, v) != config.get(k)]
        if clash:
            raise ConvpropError(f"--resume keeps the run's settings; these differ: {', '.join(clash)}")
        if args.epochs is None:
            raise ConvpropError(f"--resume needs --epochs N, the total number of epochs (done: {state.epoch})")
        if args.epochs <= state.epoch:  # mid-epoch, epoch state.epoch + 1 is still to finish
            done = f"{state.epoch} epochs" + (f" and {state.batch} batches" if state.batch else "")
            raise ConvpropError(f"the checkpoint has done {done}; ask for more with --epochs")
        out = Path(args.out) if args.out else ckpt.parent
    else:
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
        state = new_state(config["seed"], config)
        out = Path(args.out or f"runs/{config['dataset']}")
        extra = {"dataset": config["dataset"], "class_names": CLASS_NAMES[config["dataset"]]}
        net = None
    epochs = args.epochs if args.epochs is not None else 1
    dtype = np.dtype(config["dtype"])
    data_dir = _data_dir(args, extra)
    if data_dir is not None:
        extra["data_dir"] = data_dir  # a hint for test / plot / resume
    _, x_train, y_train = _load(config["dataset"], "train", data_dir, dtype, args.quiet)
    test_images, x_test, y_test = _load(config["dataset"], "test", data_dir, dtype, args.quiet)
    if net is None:
        h, w = x_train.shape[1:3]
        c = x_train.shape[3] if x_train.ndim == 4 else 1
        net = Network([Input(h, w, c), *parse_layers(config["layers"])], n_outputs=10, dtype=dtype,
                      seed=config["seed"], output=config["output"])
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.npz"
    if not args.resume and checkpoint.exists():
        _say(args, f"note: starting a new run; {out}/ already holds one, which will be replaced")
    _say(args, f"convprop train: {config['dataset']} ({len(x_train)} train / {len(x_test)} test images), "
               f"network {net.spec}, {dtype.name}, batch {config['batch_size']}, alpha {config['alpha']:g}"
               f"{'' if _optimizer(config) is None else ' (' + repr(_optimizer(config)) + ')'}, "
               f"seed {config['seed']}, {epochs} epoch(s)"
               + ((f", resuming epoch {state.epoch + 1} after batch {state.batch}" if state.batch
                   else f", resuming after epoch {state.epoch}") if args.resume else "")
               + f" -> {out}/")
    first_new = state.epoch

    def report(epoch, st):
        _write_summary(out / "summary.json", config, net, st)
        if not args.quiet:
            from tqdm.auto import tqdm

            tqdm.write(f"epoch {epoch + 1}: test error {100 * st.test_error[-1]:.2f} %, "
                       f"{st.epoch_seconds[-1]:.1f} s, rL {st.rL[-1]:.4f}")

    state = fit(net, x_train, y_train, epochs=epochs, batch_size=config["batch_size"], alpha=config["alpha"],
                optimizer=_optimizer(config), state=state, checkpoint=checkpoint, x_test=x_test, y_test=y_test, extra=extra,
                progress=not args.quiet, on_epoch_end=report)
    save_model(out / "model.npz", net, extra)
    _write_summary(out / "summary.json", config, net, state)
    if not args.no_plots:
        paths = _all_plots(net, state, extra, test_images, x_test, y_test, out / "plots",
                           batches_per_epoch=-(-len(x_train) // config["batch_size"]))
        _say(args, f"plots: {', '.join(str(p) for p in paths)}")
    _say(args, _summary_table(state, first_new))
    err = state.test_error[-1]
    wrong = int(round(err * len(y_test)))
    print(f"test error after {state.epoch} epoch(s): {100 * err:.2f} % ({wrong}/{len(y_test)} wrong); "
          f"model: {out / 'model.npz'}")
    return 0


def _optimizer(config: dict):
    """None for the toolbox's plain SGD (net.step(alpha)), else the run's optimiser."""
    from .engine.optim import make_optimizer

    name = config.get("optimizer", "sgd")
    momentum, nesterov = config.get("momentum", 0.0), config.get("nesterov", False)
    decay = config.get("weight_decay", 0.0)
    if name == "sgd" and not (momentum or nesterov or decay):
        return None
    return make_optimizer(name, config["alpha"], momentum=momentum, nesterov=nesterov, weight_decay=decay)


def _write_summary(path: Path, config: dict, net, state) -> None:
    """summary.json: the run's settings, test error and seconds per epoch (rewritten each epoch)."""
    summary = {
        "dataset": config["dataset"], "network": net.spec, "dtype": net.dtype.name,
        "batch_size": config["batch_size"], "alpha": config["alpha"],
        "optimizer": repr(_optimizer(config)) if _optimizer(config) is not None else "sgd", "seed": config["seed"],
        "epochs": state.epoch, "test_error": state.test_error, "epoch_seconds": state.epoch_seconds,
        "final_rL": state.rL[-1],
    }
    _atomic_text(path, json.dumps(summary, indent=2) + "\n")


def _norm(key: str, value):
    if key == "layers":
        from .engine.spec import format_layers, parse_layers

        return format_layers(parse_layers(value))
    return float(value) if key in ("alpha", "momentum", "weight_decay") else value


def _summary_table(state, first_new: int) -> str:
    rows = ["", " epoch | test error | time (s) | rL at end", "-------+------------+----------+----------"]
    n_batches = len(state.L) // max(state.epoch, 1) if state.epoch else 0
    for e, (err, sec) in enumerate(zip(state.test_error, state.epoch_seconds)):
        rl = state.rL[min((e + 1) * n_batches, len(state.rL) - 1)] if n_batches else float("nan")
        mark = "" if e >= first_new else "  (before resume)"
        rows.append(f" {e + 1:>5} | {100 * err:>8.2f} % | {sec:>8.1f} | {rl:.4f}{mark}")
    total = sum(state.epoch_seconds)
    rows.append(f" total |            | {total:>8.1f} | mean {total / max(len(state.epoch_seconds), 1):.1f} s/epoch")
    return "\n".join(rows)


def _atomic_text(path: Path, text: str) -> None:
    from ._files import atomic_write_text

    atomic_write_text(path, text)


def _all_plots(net, state, extra, images, x_test, y_test, out: Path, batches_per_epoch=None) -> list[Path]:
    from . import plots

    names = _class_names(extra, net.n_outputs)
    predicted = net.predict(x_test)
    paths = [plots.plot_loss(state.rL, out / "loss.png", batches_per_epoch=batches_per_epoch,
                             output=net.output_kind)]
    for name, _ in plots.conv_layers(net):
        paths.append(plots.plot_kernels(net, name, out / f"kernels_{name}.png"))
    paths.append(plots.plot_feature_maps(net, x_test[0], out / "feature_maps.png", class_names=names,
                                         label=int(y_test[0])))
    paths.append(plots.plot_confusion(y_test, predicted, out / "confusion.png", class_names=names))
    paths.append(plots.plot_misclassified(images, y_test, predicted, out / "misclassified.png", class_names=names))
    return paths


# ------------------------------------------------------------------ test / plot


def cmd_test(args) -> int:
    from .training.evaluate import evaluate
    from .formats.npz import load_model

    path = model_file(args.model)
    net, extra = load_model(path)
    dataset = args.dataset or extra.get("dataset", "mnist")
    data_dir = _data_dir(args, extra) if dataset == extra.get("dataset") else args.data_dir
    images, x, y = _load(dataset, "test", data_dir, net.dtype, args.quiet)
    result = evaluate(net, x, y)
    if args.plots:
        from . import plots

        names = _class_names(extra, net.n_outputs)
        out = Path(args.plots)
        p1 = plots.plot_confusion(y, result.predicted, out / "confusion.png", class_names=names)
        p2 = plots.plot_misclassified(images, y, result.predicted, out / "misclassified.png", class_names=names)
        _say(args, f"plots: {p1}, {p2}")
    print(f"test error: {100 * result.error:.2f} % ({result.wrong.size}/{len(y)} wrong) on {dataset} test, "
          f"model {path}")
    return 0


def cmd_plot(args) -> int:
    from .formats.npz import load_checkpoint

    path = model_file(args.run)
    if path.name == "model.npz" and path.with_name("checkpoint.npz").is_file():
        path = path.with_name("checkpoint.npz")
    net, state, extra = load_checkpoint(path)
    dataset = args.dataset or extra.get("dataset", "mnist")
    data_dir = _data_dir(args, extra) if dataset == extra.get("dataset") else args.data_dir
    images, x, y = _load(dataset, "test", data_dir, net.dtype, args.quiet)
    out = Path(args.out) if args.out else path.parent / "plots"
    bs = state.config.get("batch_size")
    per_epoch = len(state.L) // state.epoch if state.epoch and not state.batch else None
    paths = _all_plots(net, state, extra, images, x, y, out, batches_per_epoch=per_epoch if bs else None)
    for p in paths:
        print(p)
    return 0


# ------------------------------------------------------------------ predict


#: Formats ``predict`` decodes: plain raster formats only. (Pillow would otherwise also open EPS
#: by running Ghostscript on the file, and a dozen rarer formats.)
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
#: Largest image ``predict`` decodes, in pixels (checked from the header, before decoding):
#: far above any input a classic CNN takes, far below a decompression bomb.
MAX_IMAGE_PIXELS = 1 << 24


def _read_image(path: Path, shape: tuple[int, int, int], invert: bool) -> np.ndarray:
    """One image file → (H, W) or (H, W, 3) floats in [0, 1], resized to the model's input.

    Every failure is a one-line ConvpropError: not an image, a format outside IMAGE_FORMATS,
    too many pixels, or a corrupt or truncated file (whatever Pillow raised).
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    h, w, c = shape
    if c not in (1, 3):
        raise ConvpropError(f"the model takes {c} input maps; only 1 (grey) or 3 (RGB) can be read from images")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as im:
                width, height = im.size
                if width < 1 or height < 1 or width * height > MAX_IMAGE_PIXELS:
                    raise ConvpropError(f"{path}: {im.format} image of {width}x{height} pixels; predict"
                                        f" reads images of 1 to {MAX_IMAGE_PIXELS} pixels")
                if im.format == "JPEG":  # decode a big photo at 1/2 … 1/8 scale straight away
                    im.draft("L" if c == 1 else "RGB", (4 * w, 4 * h))
                im = im.convert("L" if c == 1 else "RGB")
                if im.size != (w, h):
                    # reducing_gap: shrink by whole factors first (box filter), so that a
                    # 1×16,777,216 image does not make a 28×16,777,216 intermediate (found by
                    # fuzz/fuzz_image.py: > 1 GB); small images resize exactly as before.
                    im = im.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
                arr = np.asarray(im, dtype=np.float64) / 255.0
    except UnidentifiedImageError:
        raise ConvpropError(f"{path}: not an image file convprop reads ({', '.join(IMAGE_FORMATS)})") from None
    except ConvpropError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ConvpropError(f"{path}: too many pixels to decode ({str(exc).splitlines()[0]})") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError, struct.error,
            ZeroDivisionError, OverflowError, MemoryError) as exc:  # Pillow's ways of saying "corrupt"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConvpropError(f"{path}: corrupt or truncated image ({message})") from None
    if arr.shape != ((h, w) if c == 1 else (h, w, 3)):
        raise ConvpropError(f"{path}: decoded to shape {arr.shape}, expected {(h, w)}")
    return 1.0 - arr if invert else arr


def _is_idx(path: Path) -> bool:
    """An IDX file, raw (0, 0, type code, ndim) or gzip'd, told by its first bytes, not its name."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ConvpropError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return head[:2] == b"\x1f\x8b" or (len(head) == 4 and head[:2] == b"\0\0" and head[2] in (8, 9, 11, 12, 13, 14))


def cmd_predict(args) -> int:
    from .formats.npz import load_model

    net, extra = load_model(model_file(args.model))
    names = _class_names(extra, net.n_outputs)
    h, w, c = net.image_shape
    rows: list[tuple[str, np.ndarray]] = []
    for f in map(Path, args.inputs):
        if not f.exists():
            raise ConvpropError(f"{f}: no such file")
        if _is_idx(f):
            from .datasets import read_idx

            arr = np.asarray(read_idx(f))
            if arr.ndim == (2 if c == 1 else 3):
                arr = arr[None]
            if arr.shape[1:] != ((h, w) if c == 1 else (h, w, c)):
                raise ConvpropError(f"{f}: holds an array of shape {arr.shape}, not images of {h}x{w}"
                                    + (f"x{c}" if c != 1 else "") + " as the model takes")
            x = arr.astype(np.float64) / 255.0
            if args.invert:
                x = 1.0 - x
            rows += [(f"{f}[{i}]", x[i]) for i in range(len(x))]
        else:
            rows.append((str(f), _read_image(f, net.image_shape, args.invert)))
    x = np.stack([r[1] for r in rows])
    proba = net.predict_proba(x.astype(net.dtype))
    pred = np.argmax(proba, axis=1)
    shown = rows if args.limit <= 0 else rows[: args.limit]
    for (name, _), k, p in zip(shown, pred, proba):
        print(f"{name}: {names[k]} (output {p[k]:.3f})")
    if len(shown) < len(rows):
        counts = np.bincount(pred, minlength=net.n_outputs)
        print(f"... {len(rows) - len(shown)} more; predicted counts over all {len(rows)}: "
              + ", ".join(f"{names[i]}: {n}" for i, n in enumerate(counts)))
    return 0


# ------------------------------------------------------------------ gradcheck


def cmd_gradcheck(args) -> int:
    from .training.gradcheck import gradcheck
    from .formats.npz import load_model
    from .engine.layers import Input
    from .engine.network import Network
    from .engine.spec import parse_layers

    if args.model:
        net, _ = load_model(model_file(args.model))
    else:
        net = Network([Input(args.size, args.size), *parse_layers(args.layers)], n_outputs=args.outputs,
                      seed=args.seed)
    rng = np.random.default_rng(args.seed)
    h, w, c = net.image_shape
    x = rng.random((args.images, h, w) if c == 1 else (args.images, h, w, c))
    y = rng.integers(0, net.n_outputs, args.images)
    t0 = time.perf_counter()
    report = gradcheck(net, x, y, epsilon=args.epsilon, tolerance=args.tolerance)
    print(f"network {net.spec}, {args.images} random images, {time.perf_counter() - t0:.1f} s")
    print(report)
    return 0 if report.passed else 1


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="convprop", description="Classic CNNs with hand-derived backprop (DeepLearnToolbox port).")
    p.add_argument("--version", action="version", version=f"convprop {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def data_args(q, default_dataset=None):
        q.add_argument("--dataset", choices=DATASETS, default=default_dataset,
                       help="dataset (default: mnist, or the one the model was trained on)")
        q.add_argument("--data-dir", metavar="DIR",
                       help="directory with the four IDX .gz files, read as it is (default: the data "
                            "package's look-up, which may download to the cache)")
        q.add_argument("--quiet", "-q", action="store_true", help="print only the result")

    t = sub.add_parser("train", help="train a network (checkpoint each epoch, plots at the end)")
    data_args(t)
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
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/<dataset>)")
    t.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (file or run directory)")
    t.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("test", help="test error of a saved model")
    e.add_argument("model", help="model.npz / checkpoint.npz or a run directory")
    data_args(e)
    e.add_argument("--plots", metavar="DIR", help="also write confusion.png and misclassified.png here")
    e.set_defaults(func=cmd_test)

    r = sub.add_parser("predict", help="classify PNG/JPEG images or the images of an IDX file")
    r.add_argument("model", help="model.npz / checkpoint.npz or a run directory")
    r.add_argument("inputs", nargs="+", metavar="FILE", help="image files (PNG, JPEG …) or IDX files")
    r.add_argument("--invert", action="store_true", help="invert images (dark digit on light paper)")
    r.add_argument("--limit", type=int, default=20, help="print at most N lines (0: all; default 20)")
    r.set_defaults(func=cmd_predict)

    g = sub.add_parser("gradcheck", help="compare backprop with finite differences")
    g.add_argument("--layers", default="2c5-s2-3c5-s2", metavar="SPEC", help="default 2c5-s2-3c5-s2")
    g.add_argument("--size", type=int, default=28, help="image height and width (default 28)")
    g.add_argument("--outputs", type=int, default=10, help="number of outputs (default 10)")
    g.add_argument("--model", help="check this saved model instead")
    g.add_argument("--images", type=int, default=5, help="number of random images (default 5)")
    g.add_argument("--epsilon", type=float, default=1e-4)
    g.add_argument("--tolerance", type=float, default=1e-8)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_gradcheck)

    q = sub.add_parser("plot", help="(re)draw a run's plots from its checkpoint")
    q.add_argument("run", help="run directory or checkpoint.npz")
    data_args(q)
    q.add_argument("--out", metavar="DIR", help="where to write the PNGs (default <run>/plots)")
    q.set_defaults(func=cmd_plot)

    from .training.explain import add_explain_command

    add_explain_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from .training.session import Interrupted

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Interrupted as exc:
        st = exc.state
        where = f"epoch {st.epoch + 1}, batch {st.batch}" if st.batch else f"the end of epoch {st.epoch}"
        if exc.checkpoint is not None:
            hint = f"checkpoint saved to {exc.checkpoint}; resume with: convprop train --resume {exc.checkpoint}"
            hint += f" --epochs {args.epochs}" if getattr(args, "epochs", None) else " --epochs N"
        else:
            hint = "no checkpoint was saved"
        print(f"convprop: interrupted at {where}; {hint}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("convprop: interrupted", file=sys.stderr)
        return 130
    except (ConvpropError, OSError, MemoryError, ImportError, ValueError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
            text = f"{exc.filename}: {text}"
        hint = "; try a smaller --alpha" if type(exc).__name__ == "Diverged" else ""
        print(f"convprop {args.command}: error: {text}{hint}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, with a way to see more
        if os.environ.get("CONVPROP_DEBUG"):
            raise
        text = " ".join(str(exc).split())
        print(f"convprop {args.command}: internal error: {type(exc).__name__}: {text} "
              f"(set CONVPROP_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2
