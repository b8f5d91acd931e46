"""``convprop predict``: classify image files or the images of IDX files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..datasets.images import read_image
from ..errors import ConvpropError
from ..formats.idx import looks_like_idx, read_idx
from ._common import class_names, model_file, mpi_world, speaks


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``predict`` to the sub-commands."""
    r = sub.add_parser("predict", help="classify PNG/JPEG images or the images of an IDX file")
    r.add_argument("model", help="model.npz / checkpoint.npz or a run directory")
    r.add_argument("inputs", nargs="+", metavar="FILE", help="image files (PNG, JPEG …) or IDX files")
    r.add_argument("--invert", action="store_true", help="invert images (dark digit on light paper)")
    r.add_argument("--limit", type=int, default=20, help="print at most N lines (0: all; default 20)")
    r.set_defaults(func=run)
    return r


def run(args) -> int:
    """Run ``convprop predict``; returns the exit status."""
    from ..formats.model import load_model

    net = load_model(model_file(args.model))
    names = class_names(net.extra, net.n_outputs)
    h, w, c = net.image_shape
    rows: list[tuple[str, np.ndarray]] = []
    for f in map(Path, args.inputs):
        if not f.exists():
            raise ConvpropError(f"{f}: no such file")
        if looks_like_idx(f):

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
            rows.append((str(f), read_image(f, net.image_shape, args.invert)))
    x = np.stack([r[1] for r in rows])
    comm = mpi_world()  # under mpiexec: each rank classifies its share of the images
    if comm is None:
        proba = net.predict_proba(x.astype(net.dtype))
    else:
        from ..training.mpi import sharded_predict_proba

        proba = sharded_predict_proba(net, x.astype(net.dtype), comm)
        if not speaks(comm):
            return 0
    pred = np.argmax(proba, axis=1)
    shown = rows if args.limit <= 0 else rows[: args.limit]
    for (name, _), k, p in zip(shown, pred, proba):
        print(f"{name}: {names[k]} (output {p[k]:.3f})")
    if len(shown) < len(rows):
        counts = np.bincount(pred, minlength=net.n_outputs)
        print(f"... {len(rows) - len(shown)} more; predicted counts over all {len(rows)}: "
              + ", ".join(f"{names[i]}: {n}" for i, n in enumerate(counts)))
    return 0
