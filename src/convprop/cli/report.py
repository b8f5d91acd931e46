"""What ``convprop train`` leaves beside the model: summary.json, the summary table, the plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .._files import atomic_write_text
from ..training.callbacks import Callback
from ._common import class_names, run_optimizer


def write_summary(path: Path, config: dict, net, state, class_names: list[str] | None = None,
                  engines: list[str | None] | None = None) -> None:
    """summary.json: the run's settings, classes, test error and seconds per epoch (rewritten each epoch),
    and ``engines``: the engine that trained each epoch ("numba" or "numpy"; None for an epoch of an
    earlier invocation, before a resume)."""
    opt = run_optimizer(config)
    summary = {
        "dataset": config["dataset"], "network": net.spec, "dtype": net.dtype.name,
        "batch_size": config["batch_size"], "alpha": config["alpha"],
        "optimizer": repr(opt) if opt is not None else "sgd", "seed": config["seed"],
        "epochs": state.epoch, "test_error": state.test_error, "epoch_seconds": state.epoch_seconds,
        "final_rL": state.rL[-1],
    }
    if config.get("dataset") == "images":
        summary.update({k: config[k] for k in ("image_size", "color", "val_split") if k in config})
    if class_names is not None:
        summary["class_names"] = list(class_names)
    if engines is not None:
        summary["engines"] = list(engines)
    atomic_write_text(path, json.dumps(_finite(summary), indent=2, allow_nan=False) + "\n")


def earlier_engines(path: Path, epochs: int) -> list[str | None]:
    """The ``engines`` of the first ``epochs`` epochs in an earlier invocation's summary.json (a resumed
    run's), each "numba", "numpy" or None; all None when the file or its list is missing or malformed."""
    if not epochs:  # a fresh run: nothing to read
        return []
    try:
        found = json.loads(path.read_text(encoding="utf-8")).get("engines")
    except (OSError, ValueError, AttributeError):
        found = None
    if not isinstance(found, list) or not all(e in ("numba", "numpy", None) for e in found):
        found = []
    return (found + [None] * epochs)[:epochs]


def _finite(value):
    """``value`` with every NaN or infinite float replaced by None (null): summary.json stays JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class EpochReport(Callback):
    """After every epoch: rewrite summary.json and print the epoch's test error (above the progress bar).

    It also records the engine that trained each epoch (:attr:`engines`): a machine's first run
    changes engines mid-run (:mod:`convprop.cli.compiling`), and its numbers then differ by
    round-off from a run on one engine.
    """

    def __init__(self, path: Path, config: dict, quiet: bool, class_names: list[str] | None = None,
                 engines: list[str | None] = ()):
        self.path, self.config, self.quiet, self.class_names = path, config, quiet, class_names
        #: per epoch of the run (0-based): "numba" or "numpy"; None where unknown (``engines``: those of a
        #: resumed run's earlier epochs, :func:`earlier_engines`)
        self.engines: list[str | None] = list(engines)

    def on_epoch_end(self, loop) -> None:
        from ..engine import backend

        st = loop.state
        self.engines += [None] * (st.epoch - len(self.engines))
        self.engines[st.epoch - 1] = backend.engine()  # the engine changes at an epoch's start only
        if not loop.is_writer:
            return
        write_summary(self.path, self.config, loop.net, st, self.class_names, self.engines)
        if not self.quiet:
            from tqdm.auto import tqdm

            tqdm.write(f"epoch {st.epoch}: test error {100 * st.test_error[-1]:.2f} %, "
                       f"{st.epoch_seconds[-1]:.1f} s, rL {st.rL[-1]:.4f}")


def summary_table(state, first_new: int) -> str:
    rows = ["", " epoch | test error | time (s) | rL at end", "-------+------------+----------+----------"]
    n_batches = len(state.L) // max(state.epoch, 1) if state.epoch else 0
    for e, (err, sec) in enumerate(zip(state.test_error, state.epoch_seconds)):
        rl = state.rL[min((e + 1) * n_batches, len(state.rL) - 1)] if n_batches else float("nan")
        mark = "" if e >= first_new else "  (before resume)"
        rows.append(f" {e + 1:>5} | {100 * err:>8.2f} % | {sec:>8.1f} | {rl:.4f}{mark}")
    total = sum(state.epoch_seconds)
    rows.append(f" total |            | {total:>8.1f} | mean {total / max(len(state.epoch_seconds), 1):.1f} s/epoch")
    return "\n".join(rows)


def all_plots(net, state, extra, images, x_test, y_test, out: Path, batches_per_epoch=None,
              log_loss: bool = False) -> list[Path]:
    """The run's PNGs in ``out``: loss, metrics (per epoch), kernels, feature maps, confusion, misclassified."""
    from .. import plots
    from ..training.callbacks import metrics_rows

    names = class_names(extra, net.n_outputs)
    predicted = net.predict(x_test)
    paths = [plots.plot_loss(state.rL, out / "loss.png", batches_per_epoch=batches_per_epoch,
                             output=net.output_kind, log=log_loss)]
    if state.epoch:
        paths.append(plots.plot_metrics(metrics_rows(state), out / "metrics.png", output=net.output_kind))
    for name, _ in plots.conv_layers(net):
        paths.append(plots.plot_kernels(net, name, out / f"kernels_{name}.png"))
    paths.append(plots.plot_feature_maps(net, x_test[0], out / "feature_maps.png", class_names=names,
                                         label=int(y_test[0])))
    paths.append(plots.plot_confusion(y_test, predicted, out / "confusion.png", class_names=names))
    paths.append(plots.plot_misclassified(images, y_test, predicted, out / "misclassified.png", class_names=names))
    return paths