"""``convprop gradcheck``: backprop against finite differences on random images."""

from __future__ import annotations

import argparse
import time

import numpy as np

from ._common import add_command, model_file


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``gradcheck`` to the sub-commands."""
    g = add_command(
        sub, "gradcheck", "compare backprop with finite differences",
        "Compare every backprop gradient entry with the central difference (L(θ+ε) − L(θ−ε))/2ε on "
                    "random images, as the toolbox's cnnnumgradcheck. Where a step crosses a ReLU kink or a "
                    "max-pool tie (the loss has no derivative there) a smaller step is used, and entries that "
                    "cross one at every step are left out and counted. Exit status 0 when it passes, 1 when not.",
        ["convprop gradcheck --layers 2c5-s2-3c5-s2 --images 5", "convprop gradcheck --layers 6c5r-m2 --images 2",
         "convprop gradcheck --model runs/mnist-1epoch"])
    g.add_argument("--layers", default="2c5-s2-3c5-s2", metavar="SPEC", help="layer spec (default 2c5-s2-3c5-s2)")
    g.add_argument("--size", type=int, default=28, help="image height and width (default 28)")
    g.add_argument("--outputs", type=int, default=10, help="number of outputs (default 10)")
    g.add_argument("--model", help="check this saved model (file or run directory) instead")
    g.add_argument("--images", type=int, default=5, help="number of random images (default 5)")
    g.add_argument("--epsilon", type=float, default=1e-4, metavar="EPS",
                   help="finite-difference step ε (default 1e-4; divided by 10, 100, 1000 where it crosses a kink)")
    g.add_argument("--tolerance", type=float, default=1e-8, metavar="TOL",
                   help="largest |numerical − backprop| difference that passes (default 1e-8, the toolbox's)")
    g.add_argument("--seed", type=int, default=0, help="seed of the network's weights and the random images (default 0)")
    g.set_defaults(func=run)
    return g


def run(args) -> int:
    """Run ``convprop gradcheck``; returns 0 when the check passes, 1 when it fails."""
    from ..training.gradcheck import gradcheck
    from ..formats.model import load_model
    from ..engine.layers import Input
    from ..engine.network import Network
    from ..engine.spec import parse_layers

    if args.model:
        net = load_model(model_file(args.model))
    else:
        net = Network([Input(args.size, args.size), *parse_layers(args.layers)], n_outputs=args.outputs,
                      seed=args.seed)
    rng = np.random.default_rng(args.seed)
    h, w, c = net.image_shape
    x = rng.random((args.images, h, w) if c == 1 else (args.images, h, w, c))
    y = rng.integers(0, net.n_outputs, args.images)
    entries = sum(p.size for p in net.parameters().values())
    print(f"network {net.spec}, {args.images} random images: {entries} parameter entries, "
          f"two passes each", flush=True)
    t0 = time.perf_counter()
    report = gradcheck(net, x, y, epsilon=args.epsilon, tolerance=args.tolerance, progress=True)
    print(report)
    print(f"checked in {time.perf_counter() - t0:.1f} s")
    return 0 if report.passed else 1
