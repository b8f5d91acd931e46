"""Figures as PNG files (matplotlib, Agg canvas; no display needed).

Every function draws one figure of a fixed size in pixels (see :data:`SIZES`),
writes it atomically and returns its path.

============== ============ ===================================================
figure         pixels (w×h) what
============== ============ ===================================================
loss           900 × 500    smoothed loss rL per batch (the toolbox's plot(cnn.rL))
metrics        900 × 500    test error and mean training loss per epoch (metrics.csv)
kernels        900 × ≤700   the kernels of one conv layer: input map × output map
feature_maps   1200 × 900   one image through the network, a row per layer
confusion      800 × 720    confusion matrix of true against predicted classes
misclassified  1000 × 1000  up to 25 misclassified images, predicted / true
============== ============ ===================================================
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._files import atomic_write
from .errors import ConvpropError
from .engine.layers import Conv
from .engine.network import Network

#: Size in pixels (width, height) of each figure.
SIZES: dict[str, tuple[int, int]] = {
    "loss": (900, 500),
    "metrics": (900, 500),
    "kernels": (900, 700),
    "feature_maps": (1200, 900),
    "confusion": (800, 720),
    "misclassified": (1000, 1000),
}
_DPI = 100


def _figure(kind: str, size: tuple[int, int] | None = None, layout: str | None = "constrained"):
    """An Agg figure of ``kind``'s size. Grids of many small pictures pass ``layout=None`` and place
    them with fixed margins: the constrained layout's solver costs about 0.1 s per 5 axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    w, h = size or SIZES[kind]
    fig = Figure(figsize=(w / _DPI, h / _DPI), dpi=_DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, suffix=".png") as f:
        fig.savefig(f, format="png", dpi=_DPI)
    return path


def _names(class_names: Sequence[str] | None, n: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(n)]
    if len(class_names) != n:
        raise ConvpropError(f"{len(class_names)} class names given for {n} classes")
    return [str(c) for c in class_names]


#: y-axis labels of :func:`plot_loss` by output kind.
LOSS_LABELS = {"sigmoid": "smoothed loss ½·Σ(o − y)²/N", "softmax": "smoothed loss −Σ y·log o / N"}


def plot_loss(rL: Sequence[float], path: str | os.PathLike, *, batches_per_epoch: int | None = None,
              title: str = "Training loss", output: str = "sigmoid", log: bool = False) -> Path:
    """The smoothed loss rL against the batch number (900×500 px).

    Parameters
    ----------
    rL : sequence of float
        ``History.rL``: rL[0] is the first loss, then one value per batch.
    path : path-like
    batches_per_epoch : int, optional
        Adds an epoch axis on top (and a dotted line at each boundary, up to 20 epochs).
    output : {"sigmoid", "softmax"}
        The network's output kind, which names the loss on the y axis.
    log : bool
        A logarithmic y axis (losses that fall by orders of magnitude).
    """
    rL = np.asarray(rL, dtype=np.float64)
    if rL.ndim != 1 or rL.size == 0:
        raise ConvpropError("the loss curve needs a non-empty 1-D rL history")
    fig = _figure("loss")
    ax = fig.add_subplot()
    ax.plot(np.arange(rL.size), rL, color="tab:blue", lw=1.5, label="rL (0.99·rL + 0.01·L)")
    if batches_per_epoch:
        bpe = float(batches_per_epoch)
        if (rL.size - 1) / bpe <= 20:  # a dotted line at each epoch boundary, when they are few
            for e in range(batches_per_epoch, rL.size, batches_per_epoch):
                ax.axvline(e, color="0.6", ls=":", lw=1)
        top = ax.secondary_xaxis("top", functions=(lambda b: b / bpe, lambda e: e * bpe))
        top.set_xlabel("epoch")
    ax.set_xlabel("batch")
    ax.set_ylabel(LOSS_LABELS.get(output, "smoothed loss"))
    if log and rL.min() > 0:
        ax.set_yscale("log")
    n = rL.size - 1
    ax.set_title(f"{title}: {rL[0]:.4f} → {rL[-1]:.4f} over {n} batch{'' if n == 1 else 'es'}")
    ax.grid(True, alpha=0.3)
    ax.set_xlim(0, max(rL.size - 1, 1))
    ax.legend(loc="upper right")
    return _save(fig, path)


def plot_metrics(rows: Sequence[Sequence], path: str | os.PathLike, *, output: str = "sigmoid") -> Path:
    """Test error (%) and mean training loss per epoch, side by side (900×500 px).

    Parameters
    ----------
    rows : sequence of rows
        ``metrics.csv``'s rows (:func:`convprop.training.callbacks.metrics_rows`): epoch, rL,
        mean loss, test error (a fraction, or "" when not measured), seconds.
    path : path-like
    output : {"sigmoid", "softmax"}
        Names the loss.
    """
    if not rows:
        raise ConvpropError("the metrics plot needs at least one finished epoch")
    epochs = np.array([r[0] for r in rows], dtype=np.int64)
    tested = [(r[0], 100 * float(r[3])) for r in rows if r[3] != ""]
    fig = _figure("metrics")
    left, right = fig.subplots(1, 2)
    if tested:
        e, err = zip(*tested)
        left.plot(e, err, "o-", color="tab:red")
        left.set_title(f"Test error: {err[-1]:.2f} % after epoch {e[-1]} (best {min(err):.2f} %)")
    else:
        left.text(0.5, 0.5, "no test error measured", ha="center", va="center", transform=left.transAxes)
    left.set_ylabel("test error (%)")
    losses = [(r[0], float(r[2])) for r in rows if r[2] != ""]
    if losses:
        right.plot(*zip(*losses), "o-", color="tab:blue")
    right.set_ylabel(LOSS_LABELS.get(output, "loss").replace("smoothed", "mean"))
    right.set_title("Mean training loss per epoch")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.set_xticks(epochs if len(epochs) <= 20 else ax.get_xticks())
    return _save(fig, path)


def conv_layers(net: Network) -> list[tuple[str, Conv]]:
    """(name, layer) of every conv layer, named as in :meth:`Network.parameters`."""
    return [(name, layer) for name, layer in net.named_layers() if isinstance(layer, Conv)]


def kernel_figure_size(n_in: int, n_out: int, kernel: tuple[int, int]) -> tuple[int, int]:
    """(width, height) in pixels of :func:`plot_kernels`' figure: 900 wide, as tall as the
    grid of n_in × n_out kernels needs (at most 700), so that the kernels fill the canvas."""
    w, h = SIZES["kernels"]
    kh, kw = kernel
    cell = min((w - 160) / (n_out * kw), (h - 70) / (n_in * kh))  # pixels per kernel pixel
    return w, int(min(h, max(220, n_in * kh * cell + 70)))


def plot_kernels(net: Network, layer: str, path: str | os.PathLike) -> Path:
    """The kernels of conv layer ``layer`` (e.g. ``"conv1"``) as a grid (900 × up to 700 px:
    see :func:`kernel_figure_size`).

    Row i is input map i, column j output map j; each kernel is shown as the
    toolbox's true-convolution kernel k{i}{j}, on one colour scale centred on 0
    for the whole layer (red positive, blue negative).
    """
    layers = dict(conv_layers(net))
    if layer not in layers:
        raise ConvpropError(f"no conv layer {layer!r}; the network has {sorted(layers) or 'none'}")
    k = np.asarray(layers[layer].kernels, dtype=np.float64)  # (inputmaps, outputmaps, kh, kw)
    n_in, n_out, kh, kw = k.shape
    vmax = float(np.abs(k).max()) or 1.0
    fig = _figure("kernels", kernel_figure_size(n_in, n_out, layers[layer].kernelsize))
    ax = fig.subplots()
    # One picture of the whole grid (a single image draws and lays out in a fraction of the time of
    # n_in × n_out axes): each kernel pixel 4 × 4, kernels 1 apart (NaN: drawn as the background).
    up, gh, gw = 4, 4 * kh + 1, 4 * kw + 1
    mosaic = np.full((n_in * gh - 1, n_out * gw - 1), np.nan)
    for i in range(n_in):
        for j in range(n_out):
            mosaic[i * gh:i * gh + up * kh, j * gw:j * gw + up * kw] = np.kron(k[i, j], np.ones((up, up)))
    image = ax.imshow(mosaic, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_xticks([j * gw + (up * kw - 1) / 2 for j in range(n_out)], [f"out {j + 1}" for j in range(n_out)],
                  fontsize=8)
    ax.set_yticks([i * gh + (up * kh - 1) / 2 for i in range(n_in)], [f"in {i + 1}" for i in range(n_in)],
                  fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.suptitle(f"{layer}: {n_in}×{n_out} kernels of {kh}×{kw} (rows: input maps, columns: output maps)")
    fig.colorbar(image, ax=ax, shrink=0.9, label="weight")
    return _save(fig, path)


def plot_feature_maps(net: Network, image: np.ndarray, path: str | os.PathLike, *,
                      class_names: Sequence[str] | None = None, label: int | None = None,
                      max_maps: int = 12) -> Path:
    """One image through the network, a row per layer, then the outputs (1200×900 px).

    Parameters
    ----------
    net : Network
    image : array_like, shape (H, W) or (H, W, C)
    path : path-like
    class_names : sequence of str, optional
    label : int, optional
        The true class, shown in the title.
    max_maps : int
        At most this many maps are shown per layer.
    """
    proba = net.forward(np.asarray(image)[None])[0]
    names = ["input"] + [f"{type(l).__name__.lower()}{i}  {l.spec()}" for i, l in enumerate(net.layers) if i]
    # (H, W, C) per layer with maps; Dense layers' vectors are not pictures and are left out
    acts, names = zip(*[(a[0], name) for a, name in zip(net.activations, names) if a.ndim == 4])
    classes = _names(class_names, net.n_outputs)
    cols = min(max(a.shape[-1] for a in acts), max_maps)
    fig = _figure("feature_maps", layout=None)
    grid = fig.add_gridspec(len(acts) + 1, cols, height_ratios=[1] * len(acts) + [1.2], left=0.11, right=0.99,
                            bottom=0.05, top=0.93, wspace=0.08, hspace=0.25)
    for r, (a, name) in enumerate(zip(acts, names)):
        h, w = a.shape[:2]
        for c in range(cols):
            ax = fig.add_subplot(grid[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c < a.shape[-1]:
                ax.imshow(a[..., c], cmap="gray" if r == 0 else "viridis", interpolation="nearest")
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(f"{name}\n{a.shape[-1]} × {h}×{w}".replace("  ", "\n"), fontsize=8)
        if a.shape[-1] > cols:
            ax.set_title(f"(+{a.shape[-1] - cols} more)", fontsize=7)
    ax = fig.add_subplot(grid[len(acts), :])
    pred = int(np.argmax(proba))
    colors = ["tab:green" if i == pred else "tab:gray" for i in range(net.n_outputs)]
    ax.bar(np.arange(net.n_outputs), proba, color=colors)
    ax.set_xticks(np.arange(net.n_outputs), classes, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("output o")
    truth = f", true {classes[label]}" if label is not None else ""
    fig.suptitle(f"Feature maps: predicted {classes[pred]} ({proba[pred]:.2f}){truth} "
                 f"(each map on its own colour scale)")
    return _save(fig, path)


def plot_confusion(true: np.ndarray, predicted: np.ndarray, path: str | os.PathLike, *,
                   class_names: Sequence[str] | None = None, n_classes: int | None = None) -> Path:
    """Confusion matrix, counts in each cell (800×720 px); rows true, columns predicted."""
    true = np.asarray(true, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if true.shape != predicted.shape or true.ndim != 1 or true.size == 0:
        raise ConvpropError("true and predicted labels must be non-empty 1-D arrays of the same length")
    k = n_classes or (len(class_names) if class_names is not None else int(max(true.max(), predicted.max())) + 1)
    classes = _names(class_names, k)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (true, predicted), 1)
    fig = _figure("confusion")
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues", interpolation="nearest")
    threshold = cm.max() / 2
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > threshold else "black")
    ax.set_xticks(np.arange(k), classes, rotation=45 if max(map(len, classes)) > 2 else 0,
                  ha="right" if max(map(len, classes)) > 2 else "center")
    ax.set_yticks(np.arange(k), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    error = 1 - np.trace(cm) / cm.sum()
    ax.set_title(f"Confusion matrix: {cm.sum()} images, error {100 * error:.2f} %")
    fig.colorbar(im, ax=ax, shrink=0.8, label="images")
    return _save(fig, path)


def plot_misclassified(images: np.ndarray, true: np.ndarray, predicted: np.ndarray,
                       path: str | os.PathLike, *, class_names: Sequence[str] | None = None,
                       max_images: int = 25) -> Path:
    """A grid of the first ``max_images`` misclassified images (1000×1000 px).

    Parameters
    ----------
    images : array_like, shape (N, H, W) or (N, H, W, C)
        All test images (the wrong ones are picked out here).
    true, predicted : array_like of int, shape (N,)
    """
    images = np.asarray(images)
    true = np.asarray(true)
    predicted = np.asarray(predicted)
    if not (images.shape[0] == true.shape[0] == predicted.shape[0]):
        raise ConvpropError("images, true and predicted labels must have the same length")
    wrong = np.flatnonzero(true != predicted)
    k = int(max(true.max(), predicted.max())) + 1 if class_names is None else len(class_names)
    classes = _names(class_names, k)
    show = wrong[:max_images]
    side = max(1, int(np.ceil(np.sqrt(max(len(show), 1)))))
    fig = _figure("misclassified", layout=None)
    axes = fig.subplots(side, side, squeeze=False,
                        gridspec_kw=dict(left=0.02, right=0.98, bottom=0.02, top=0.9, wspace=0.1, hspace=0.45))
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, show):
        img = images[i]
        ax.imshow(img if img.ndim == 2 else img[..., :3].squeeze(), cmap="gray", interpolation="nearest")
        ax.set_title(f"#{i}: pred {classes[predicted[i]]}\ntrue {classes[true[i]]}", fontsize=9,
                     color="tab:red")
    fig.suptitle(f"Misclassified: {len(show)} of {len(wrong)} wrong out of {len(true)} images")
    if not len(show):
        axes[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    return _save(fig, path)
