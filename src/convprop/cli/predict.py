"""``convprop predict``: classify image files, the images of IDX files, or .npy arrays.

Every conversion of an image (colour → grey, a resize, an alpha channel read as the
picture, 16-bit or floating-point pixels, uint8 arrays divided by 255) is shown next to
its prediction. A file that cannot be read is reported on stderr and the others are
still classified; the exit status is then 1 (2 when no file could be read).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..datasets.images import decode_image
from ..errors import ConvpropError
from ..formats.idx import looks_like_idx, read_idx
from ._common import class_names, model_file, mpi_world, speaks

Row = tuple[str, np.ndarray, list[str]]


def _limit(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--limit takes a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"--limit must be 0 (print all) or more, got {n}")
    return n


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``predict`` to the sub-commands."""
    r = sub.add_parser(
        "predict", help="classify images (PNG, JPEG …), the images of IDX files, or .npy arrays",
        description="Classify image files (PNG, JPEG, BMP, GIF, TIFF, WebP, PPM), the images of IDX files, or "
                    ".npy arrays (N×H×W[×C] or one H×W[×C]; uint8 is divided by 255). Images are converted to "
                    "the model's input (grey or RGB, its size); each conversion is shown. Files that cannot be "
                    "read are reported and skipped; the exit status is then 1 (2 when no file could be read).",
        epilog="examples:\n  convprop predict runs/mnist-1epoch digit.png photo.jpg\n"
               "  convprop predict runs/mnist-1epoch scan.png --invert      # dark ink on light paper\n"
               "  convprop predict runs/mnist-1epoch t10k-images-idx3-ubyte.gz --limit 5",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("model", help="model.npz / checkpoint.npz or a run directory")
    r.add_argument("inputs", nargs="+", metavar="FILE", help="image files, IDX files or .npy arrays")
    r.add_argument("--invert", action="store_true", help="invert images (dark digit on light paper)")
    r.add_argument("--limit", type=_limit, default=20, metavar="N", help="print at most N lines (0: all; default 20)")
    r.set_defaults(func=run)
    return r


def _array_rows(f: Path, arr: np.ndarray, shape: tuple[int, int, int], invert: bool) -> list[Row]:
    """The images of an IDX or .npy array: (N, H, W[, C]) or one (H, W[, C]); uint8 / 255."""
    h, w, c = shape
    if arr.ndim == (2 if c == 1 else 3):
        arr = arr[None]
    if arr.shape[1:] != ((h, w) if c == 1 else (h, w, c)):
        raise ConvpropError(f"{f}: holds an array of shape {arr.shape}, not images of {h}x{w}"
                            + (f"x{c}" if c != 1 else "") + " as the model takes")
    notes = []
    if arr.dtype == np.uint8:
        x, notes = arr / 255.0, ["uint8 pixels / 255"]
    elif arr.dtype.kind in "fiu":
        x = arr.astype(np.float64)
        if x.size and (x.min() < 0 or x.max() > 1):
            notes = [f"values in [{x.min():g}, {x.max():g}], not [0, 1]: used as they are"]
    else:
        raise ConvpropError(f"{f}: holds {arr.dtype} values, not pixels")
    if invert:
        x = 1.0 - x
    return [(f"{f}[{i}]", x[i], notes) for i in range(len(x))]


def _rows(f: Path, shape: tuple[int, int, int], invert: bool) -> list[Row]:
    if not f.exists():
        raise ConvpropError(f"{f}: no such file")
    if f.suffix.lower() == ".npy":
        from ..formats._npz import read_npy

        return _array_rows(f, read_npy(f), shape, invert)
    if looks_like_idx(f):
        return _array_rows(f, np.asarray(read_idx(f)), shape, invert)
    image, notes = decode_image(f, shape, invert)
    return [(str(f), image, notes)]


def run(args) -> int:
    """Run ``convprop predict``; returns 0, 1 when some files could not be read (the others are
    classified), 2 when none could."""
    from ..formats.model import load_model

    net = load_model(model_file(args.model))
    names = class_names(net.extra, net.n_outputs)
    rows: list[Row] = []
    errors: list[ConvpropError] = []
    for f in map(Path, args.inputs):
        try:
            rows += _rows(f, net.image_shape, args.invert)
        except ConvpropError as exc:
            errors.append(exc)
    if not rows and len(errors) == 1:
        raise errors[0]  # nothing to classify: the one-line error, status 2
    for exc in errors:
        print(f"convprop predict: error: {' '.join(str(exc).split())}", file=sys.stderr)
    if rows:
        _print(net, names, rows, args.limit)
    if errors:
        print(f"convprop predict: {len(errors)} of {len(args.inputs)} file(s) could not be read"
              + ("; the others are classified above" if rows else ""), file=sys.stderr)
    return 0 if not errors else 1 if rows else 2


def _print(net, names: list[str], rows: list[Row], limit: int) -> None:
    x = np.stack([r[1] for r in rows]).astype(net.dtype)
    comm = mpi_world()  # under mpiexec: each rank classifies its share of the images
    if comm is None:
        proba = net.predict_proba(x)
    else:
        from ..training.mpi import sharded_predict_proba

        proba = sharded_predict_proba(net, x, comm)
        if not speaks(comm):
            return
    pred = np.argmax(proba, axis=1)
    shown = rows if limit == 0 else rows[:limit]
    for (name, _, notes), k, p in zip(shown, pred, proba):
        said = f"  [{'; '.join(notes)}]" if notes else ""
        print(f"{name}: {names[k]} (output {p[k]:.3f}){said}")
    if len(shown) < len(rows):
        counts = np.bincount(pred, minlength=net.n_outputs)
        print(f"... {len(rows) - len(shown)} more; predicted counts over all {len(rows)}: "
              + ", ".join(f"{names[i]}: {n}" for i, n in enumerate(counts)))
