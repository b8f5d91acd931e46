"""Training-step time of the LeNet-style network (examples/lenet.py) in convprop and in PyTorch.

Same architecture, float32, batch 50, Adam, one thread each (OPENBLAS_NUM_THREADS=1 and
torch.set_num_threads(1) are set here); random 28×28 images. Prints the time per batch and the
implied time per 60,000-image epoch.

    python3 benchmarks/lenet_vs_torch.py [--batches 200]
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from lenet import lenet  # noqa: E402

from convprop import train  # noqa: E402
from convprop.engine.optim import Adam  # noqa: E402


def convprop_seconds(x, y, batches, batch):
    net = lenet(np.float32, 0)
    opt = Adam(1e-3)
    train(net, x[: 5 * batch], y[: 5 * batch], batch_size=batch, optimizer=opt)  # warm-up
    t0 = time.perf_counter()
    train(net, x[: batches * batch], y[: batches * batch], batch_size=batch, optimizer=opt, shuffle=False)
    return (time.perf_counter() - t0) / batches


def torch_seconds(x, y, batches, batch):
    import torch

    torch.set_num_threads(1)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding="same"), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    xt, yt = torch.tensor(x[:, None]), torch.tensor(y)

    def steps(n):
        for b in range(n):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[b * batch : (b + 1) * batch]), yt[b * batch : (b + 1) * batch])
            loss.backward()
            opt.step()

    steps(5)
    t0 = time.perf_counter()
    steps(batches)
    return (time.perf_counter() - t0) / batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.batches * args.batch_size
    x = rng.random((n, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, n)
    for name, fn in [("convprop", convprop_seconds), ("torch", torch_seconds)]:
        s = fn(x, y, args.batches, args.batch_size)
        print(f"{name:9s} {1000 * s:7.2f} ms/batch  ≈ {s * 60000 / args.batch_size:6.1f} s per 60,000-image epoch",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
