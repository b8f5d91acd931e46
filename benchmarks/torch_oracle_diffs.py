"""Largest differences between convprop and PyTorch autograd on the core test networks.

Prints, for float64 and float32, max |convprop − torch| / max |torch| over the
networks of tests/test_torch_oracle.py (outputs, loss, every gradient) — the
figures quoted for the core issue. Needs the test extra (torch==2.13.0):

    python3 benchmarks/torch_oracle_diffs.py
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import random_batch  # noqa: E402
from test_torch_oracle import NETS, TorchTwin, _inputs, _torch_dtype  # noqa: E402

from convprop import Network  # noqa: E402


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def main() -> None:
    for dtype in (np.float64, np.float32):
        worst = {"outputs": 0.0, "loss": 0.0, "gradients": 0.0}
        for layers, n_out in NETS.values():
            net = Network(layers, n_outputs=n_out, dtype=dtype, seed=3)
            x, y = random_batch(net, 7, seed=4)
            o = net.forward(x)
            loss = net.backward(y)
            twin = TorchTwin(net, _torch_dtype(dtype))
            to = twin(torch.tensor(_inputs(net, x)))
            tloss = 0.5 * ((to - torch.tensor(y, dtype=to.dtype)) ** 2).sum() / len(x)
            tloss.backward()
            worst["outputs"] = max(worst["outputs"], relative(o, to.detach().numpy()))
            worst["loss"] = max(worst["loss"], abs(loss - tloss.item()) / abs(tloss.item()))
            for name, grad in net.gradients().items():
                tgrad = twin.params[name.replace(".", "_")].grad.numpy()
                worst["gradients"] = max(worst["gradients"], relative(grad, tgrad))
        print(np.dtype(dtype).name, ", ".join(f"{k} {v:.2g}" for k, v in worst.items()))


if __name__ == "__main__":
    main()
