"""``convprop explain``: one input followed layer by layer (see :mod:`convprop.training.explain`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from ..engine.layers import Conv, Input, Subsample
from ..engine.network import Network
from ..errors import ConvpropError
from ..training.explain import __doc__ as explain_doc
from ..training.explain import explanation
from ._common import model_file



def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="a convprop model (.npz or a run directory) or a toolbox network "
                        "saved as .mat (MATLAB/Octave -v7 or convprop.dlt.save_mat); default: the toolbox's example network, freshly initialised")
    parser.add_argument("--input", metavar="FILE", help="images: .npy (N×H×W or one H×W) or .mat "
                        "(toolbox layout H×W×N); default: a random image")
    parser.add_argument("--var", metavar="NAME", help="variable in the .mat input (default: test_x, x, or the only 3-D array)")
    parser.add_argument("--index", type=int, default=0, help="which image of the input file (0-based; default 0)")
    parser.add_argument("--label", type=int, help="target class (default: the predicted class)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the default network and image")
    parser.add_argument("--epsilon", type=float, default=1e-4, help="finite-difference step (default 1e-4; divided "
                        "by 10, 100, 1000 where it crosses a ReLU kink or a max-pool tie)")
    parser.add_argument("--no-gradcheck", action="store_true", help="skip the gradient check")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``explain`` to an argparse sub-command set; it dispatches to :func:`run`.

    Parameters
    ----------
    subparsers : the object returned by ``ArgumentParser.add_subparsers()``

    Returns
    -------
    argparse.ArgumentParser
        The new sub-parser (``func`` defaults to :func:`run`).
    """
    parser = subparsers.add_parser(
        "explain", help="shapes and numbers of activations, deltas and gradients, layer by layer, for one input",
        description=explain_doc.splitlines()[0],
    )
    _add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _real_images(value, where: str) -> np.ndarray:
    """``value`` if it holds images (2-D or 3-D real numbers; uint8 kept for the note on pixels), else a
    one-line ConvpropError."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        kind = (f"a {type(value).__name__}" if not isinstance(value, np.ndarray)
                else {"O": "a cell array", "V": "a struct", "U": "text", "S": "text", "c": "complex numbers"}
                .get(value.dtype.kind, f"dtype {value.dtype}"))
        raise ConvpropError(f"{where} holds {kind}, not images (real numbers, H×W or H×W×N)")
    if value.ndim not in (2, 3):
        raise ConvpropError(f"{where} has shape {value.shape}, not images (H×W or H×W×N)")
    return value


def _load_images(path: Path, var: str | None) -> np.ndarray:
    """Images as (N, H, W) from .npy (N×H×W or H×W) or .mat (toolbox H×W×N)."""
    if path.suffix == ".npy":
        from ..formats._npz import read_npy

        arr = _real_images(read_npy(path), str(path))  # header checked against the file size; no pickles
        return arr[None] if arr.ndim == 2 else arr
    if path.suffix == ".mat":
        from ..formats.mat import read_mat

        contents = read_mat(path)  # structure checked before scipy.io.loadmat sees it
        if var is None:
            arrays = [k for k, v in contents.items() if isinstance(v, np.ndarray) and v.ndim == 3 and v.dtype.kind in "fiu"]
            var = next((k for k in ("test_x", "x") if k in contents), arrays[0] if len(arrays) == 1 else None)
            if var is None:
                raise ConvpropError(f"{path}: say which variable holds the images with --var ({', '.join(contents)})")
        if var not in contents:
            raise ConvpropError(f"{path} has no variable {var!r}")
        arr = _real_images(contents[var], f"{path}: variable {var!r}")
        return np.moveaxis(arr, -1, 0) if arr.ndim == 3 else arr[None]
    raise ConvpropError(f"--input must be a .npy or .mat file, got {path.name}")


def _as_pixels(image: np.ndarray, name: str, out: TextIO) -> np.ndarray:
    """uint8 pixels (0–255) as the [0, 1] floats networks are trained on, saying so."""
    if image.dtype == np.uint8:
        print(f"note: {name} holds uint8 pixels (0-255): divided by 255, as the training images were", file=out)
        return image / 255.0
    return image


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``explain`` for parsed arguments (see :func:`add_parser`); returns the exit code:
    0, or 1 when the gradient check fails (as ``convprop gradcheck``)."""
    out = out if out is not None else sys.stdout
    if args.model and Path(args.model).suffix.lower() == ".mat":
        from ..formats.matlab import load_mat

        net = load_mat(args.model)
    elif args.model:
        from ..formats.model import load_model

        net = load_model(model_file(args.model))
    else:
        net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10,
                      seed=args.seed)
    if args.input:
        images = _load_images(Path(args.input), args.var)
        if not 0 <= args.index < images.shape[0]:
            raise ConvpropError(f"--index {args.index} is out of range: {args.input} holds {images.shape[0]} images")
        x = _as_pixels(images[args.index], args.input, out)
    else:
        x = np.random.default_rng(args.seed).random(net.image_shape[:2])
    if args.label is not None and not 0 <= args.label < net.n_outputs:
        raise ConvpropError(f"--label must be in 0..{net.n_outputs - 1}, got {args.label}")
    result = explanation(net, x, args.label, check=not args.no_gradcheck, epsilon=args.epsilon, progress=True)
    print(result, file=out)
    return 0 if result.check is None or result.check.passed else 1
