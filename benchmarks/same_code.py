"""The same compiled kernels at different speeds: in the process that compiled them, and by where arrays lie.

Two measurements of the compiled engine's forward convolution (the toolbox's 12c5 layer on
6 maps of 12x12, 25 images, float32, one thread), each in fresh processes:

* ``first`` / ``later``: a process that compiles the kernels into an empty Numba cache
  (``NUMBA_CACHE_DIR`` a new folder), then a process that loads them from that cache;
  both also train one 3,000-image epoch (batch 50) and report images per second.
* ``offsets``: the output maps placed at 0, 256, ... 3,840 bytes past a page boundary, the
  input maps at one (the loads of the input and the stores of the output then meet at other
  addresses modulo 4 KiB).

    PYTHONPATH=$PWD/src python3 benchmarks/same_code.py            # writes same_code.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _forward_us(x, z, repeat_s: float = 2.0) -> float:
    import numpy as np

    from convprop.engine.kernels import conv

    rng = np.random.default_rng(1)
    w, b = rng.random((12, 6, 5, 5)).astype(x.dtype), rng.random(12).astype(x.dtype)
    args = (x, w, b, 1, 4, x.dtype.type(0), z, 0, 48)  # identity activation: the convolution alone
    conv.forward(*args)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < repeat_s:
        conv.forward(*args)
        calls += 1
    return (time.perf_counter() - start) / calls * 1e6


def _placed(shape, dtype, offset: int):
    """An array of ``shape`` starting ``offset`` bytes past a page boundary."""
    import numpy as np

    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + 2 * 4096, dtype=np.uint8)
    start = (-raw.ctypes.data) % 4096 + offset
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def child(mode: str) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    if mode == "offsets":
        x = _placed((6, 12, 12, 25), np.float32, 0)
        x[...] = rng.random(x.shape)
        result = {str(off): _forward_us(x, _placed((12, 8, 8, 25), np.float32, off), 0.5)
                  for off in range(0, 4096, 256)}
    else:
        from convprop import Conv, Input, Network, Subsample, fit

        x = rng.random((6, 12, 12, 25)).astype(np.float32)
        result = {"forward_us": _forward_us(x, np.empty((12, 8, 8, 25), np.float32))}
        images, labels = rng.random((3000, 28, 28)), rng.integers(0, 10, 3000)
        net = Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], n_outputs=10,
                      seed=0, dtype="float32")
        fit(net.copy(), images[:100], labels[:100], epochs=1, batch_size=50, seed=1)
        start = time.perf_counter()
        fit(net, images, labels, epochs=1, batch_size=50, seed=1)
        result["train_images_per_s"] = len(images) / (time.perf_counter() - start)
    print(json.dumps(result))


def _run(mode: str, cache: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, CONVPROP_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--child", mode], env=env, capture_output=True, text=True,
                         check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    results = {"first": [], "later": [], "offsets": None}
    for _ in range(2):
        with tempfile.TemporaryDirectory() as cache:
            results["first"].append(_run("first", cache))
            results["later"].append(_run("later", cache))
            if results["offsets"] is None:
                results["offsets"] = _run("offsets", cache)
    for key in ("first", "later"):
        for r in results[key]:
            print(f"{key}: 12c5 forward {r['forward_us']:.0f} us, training {r['train_images_per_s']:.0f} images/s")
    print("offsets (bytes: us):", ", ".join(f"{k}: {v:.0f}" for k, v in results["offsets"].items()))
    (HERE / "same_code.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
