"""A LeNet-style network beyond the toolbox: ReLU convolutions, max pooling, dense layers, softmax.

    6c5rps-m2-16c5r-m2-120fr-84fr-10sm  (Conv(6, 5, relu, padding='same') - MaxPool(2) - Conv(16, 5, relu)
    - MaxPool(2) - Dense(120, relu) - Dense(84, relu) - softmax + cross-entropy), trained with Adam.

Trains on MNIST and/or Fashion-MNIST and prints, after every epoch, the mean
training loss, the test error and the epoch's time. The data come from
``--data-dir`` / ``--fashion-dir``, ``$CONVPROP_DATA``, the user cache, Debian's
Fashion-MNIST package or a download (see the README's *Data* section).

    python3 examples/lenet.py [--dataset mnist|fashion|both] [--epochs 3] [--dtype float32]

Without ``--dataset``, it trains on MNIST, then on Fashion-MNIST if that can be found
or downloaded (else it says so and skips it: exit status 0). ``--dataset fashion``
or ``both`` make a missing Fashion-MNIST an error (exit status 1).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from convprop import Conv, Dense, Input, MaxPool, Network

from convprop import evaluate

from convprop import train
from convprop.datasets import images_to_float, load_fashion_mnist, load_mnist
from convprop.errors import ConvpropError
from convprop.engine.optim import Adam


def lenet(dtype, seed: int) -> Network:
    return Network(
        [Input(28, 28), Conv(6, 5, "relu", padding="same"), MaxPool(2), Conv(16, 5, "relu"), MaxPool(2),
         Dense(120, "relu"), Dense(84, "relu")],
        n_outputs=10, output="softmax", dtype=dtype, seed=seed,
    )


def run(name: str, loader, data_dir, args) -> dict:
    x, y = loader("train", path=data_dir)
    xt, yt = loader("test", path=data_dir)
    x, xt = images_to_float(x, args.dtype), images_to_float(xt, args.dtype)
    if args.train_size:
        x, y = x[: args.train_size], y[: args.train_size]
    net = lenet(args.dtype, args.seed)
    opt = Adam(args.lr)
    rng = np.random.default_rng(args.seed)
    print(f"{name}: {net.spec}, {sum(p.size for p in net.parameters().values())} parameters, "
          f"{x.shape[0]} training images, Adam lr {args.lr}, batch {args.batch_size}, {np.dtype(args.dtype).name}",
          flush=True)
    epochs = []
    for epoch in range(1, args.epochs + 1):
        history = train(net, x, y.astype(np.intp), epochs=1, batch_size=args.batch_size, seed=rng, optimizer=opt)
        t0 = time.perf_counter()
        error = evaluate(net, xt, yt.astype(np.intp)).error
        test_seconds = time.perf_counter() - t0
        row = dict(epoch=epoch, train_loss=float(np.mean(history.L)), test_error=error,
                   train_seconds=history.epoch_seconds[0], test_seconds=test_seconds)
        epochs.append(row)
        print(f"{name} epoch {epoch}: loss {row['train_loss']:.4f}, test error {100 * error:.2f} %, "
              f"train {row['train_seconds']:.1f} s, test {test_seconds:.1f} s", flush=True)
    return dict(dataset=name, spec=net.spec, epochs=epochs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
    parser.add_argument("--dataset", choices=["mnist", "fashion", "both"],
                        help="default: MNIST, then Fashion-MNIST when it can be found (skipped, with a note, if not)")
    parser.add_argument("--data-dir", type=Path, default=shared if shared.is_dir() else None, help="MNIST IDX files")
    parser.add_argument("--fashion-dir", type=Path, default=None, help="Fashion-MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--train-size", type=int, default=0, help="use only the first N training images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    runs = []
    try:
        if args.dataset in (None, "mnist", "both"):
            runs.append(run("MNIST", load_mnist, args.data_dir, args))
        if args.dataset in ("fashion", "both"):
            runs.append(run("Fashion-MNIST", load_fashion_mnist, args.fashion_dir, args))
    except ConvpropError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.dataset is None:
        try:
            runs.append(run("Fashion-MNIST", load_fashion_mnist, args.fashion_dir, args))
        except ConvpropError as exc:
            print(f"Fashion-MNIST skipped (--dataset both makes this an error): {exc}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
