"""convprop vs PyTorch (CPU) on the DeepLearnToolbox example network, in one process.

The work: 28x28-6c5-s2-12c5-s2-10o (sigmoids everywhere, mean pooling), batch 50,
one training epoch (forward + backward + SGD step per batch) and inference over
10,000 images. Both libraries start from the same weights and see the same batch
order; repetitions alternate convprop / PyTorch so that machine load hits both.

Usage (from the project root)::

    PYTHONPATH=$PWD/src python3 benchmarks/bench.py                  # full epoch, 5 reps
    PYTHONPATH=$PWD/src python3 benchmarks/bench.py --train-images 6000 --reps 3   # quick

Three thread modes in one run (``--modes``): ``one`` (1 thread each), ``all``
(every core each) and ``default`` (each library's own default: convprop every
core, PyTorch ``torch.get_num_threads()`` at start). Per mode it prints medians,
min-max and the ratio convprop/PyTorch for float32 and float64, peak memory
(measured in child processes), FLOPs per epoch and convprop's GFLOP/s against a
sgemm/dgemm peak measured on the same number of threads, and the LeNet-style
network's float32 Adam epoch in both libraries; ``--profile`` adds per-layer
profiles of the NumPy and the compiled engine. Writes everything to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

# Thread counts are set per mode at run time (threadpoolctl for NumPy's BLAS, torch.set_num_threads,
# convprop.set_num_threads); BLAS libraries may use every core up to those limits.
import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import convprop  # noqa: E402
from convprop import Conv, Input, Network, Subsample, train  # noqa: E402
from convprop.engine import backend, parallel  # noqa: E402
from convprop.engine.optim import Adam  # noqa: E402

#: Each library's default thread count, read before anything changes it.
TORCH_DEFAULT_THREADS = torch.get_num_threads()
CORES = parallel.cores()
#: mode → (convprop threads (None: its default), torch threads, BLAS threads for the sgemm peak)
MODES = {
    "one": (1, 1, 1),
    "all": (CORES, CORES, CORES),
    "default": (None, TORCH_DEFAULT_THREADS, CORES),
}

LAYERS = [Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)]
BATCH = 50
TEST_IMAGES = 10_000


# ------------------------------------------------------------------ the work


def flops_per_image(train_step: bool) -> int:
    """Multiply-add FLOPs (2 per MAC) of the conv and dense products for one image.

    Training counts forward, weight gradient and input gradient (none for the
    first conv layer, whose input is the image). Elementwise work (sigmoids,
    pooling, SGD updates) is left out: it is O(activations), not O(MACs).
    """
    conv1 = 2 * 24 * 24 * (1 * 5 * 5) * 6
    conv2 = 2 * 8 * 8 * (6 * 5 * 5) * 12
    dense = 2 * 192 * 10
    if not train_step:
        return conv1 + conv2 + dense
    return 2 * conv1 + 3 * conv2 + 3 * dense


class TorchNet(torch.nn.Module):
    """The same network in torch.nn, NCHW, with convprop's weights copied in."""

    def __init__(self, net: Network, dtype: torch.dtype):
        super().__init__()
        p = net.parameters()
        t = lambda a: torch.nn.Parameter(torch.tensor(np.ascontiguousarray(a), dtype=dtype))  # noqa: E731
        self.w1, self.b1 = t(p["conv1.weight"]), t(p["conv1.bias"])
        self.w3, self.b3 = t(p["conv3.weight"]), t(p["conv3.bias"])
        h, w, c = net.map_shape
        # convprop flattens (H, W, C); torch flattens (C, H, W): permute the columns once.
        ffw = p["output.weight"].reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(p["output.weight"].shape[0], -1)
        self.wo, self.bo = t(ffw), t(p["output.bias"])

    def forward(self, x):
        a = torch.sigmoid(torch.nn.functional.conv2d(x, self.w1, self.b1))
        a = torch.nn.functional.avg_pool2d(a, 2)
        a = torch.sigmoid(torch.nn.functional.conv2d(a, self.w3, self.b3))
        a = torch.nn.functional.avg_pool2d(a, 2)
        return torch.sigmoid(torch.nn.functional.linear(a.flatten(1), self.wo, self.bo))


def torch_epoch(model, x, y, order, alpha):
    opt = torch.optim.SGD(model.parameters(), lr=alpha)
    for start in range(0, len(order), BATCH):
        idx = order[start : start + BATCH]
        opt.zero_grad(set_to_none=False)
        o = model(x[idx])
        loss = 0.5 * ((o - y[idx]) ** 2).sum() / len(idx)
        loss.backward()
        opt.step()
    return float(loss.detach())


def torch_predict(model, x):
    with torch.no_grad():
        return model(x)


# ------------------------------------------------------------------ measuring


def set_mode(mode: str) -> None:
    """Thread counts of one mode for convprop and PyTorch."""
    ours, theirs, _ = MODES[mode]
    convprop.set_num_threads(ours)
    torch.set_num_threads(theirs)


def gemm_peak(dtype, n=1536, reps=5, threads=1) -> float:
    """Best GFLOP/s of an n×n×n matrix product with NumPy's BLAS on ``threads`` threads."""
    with threadpool_limits(limits=threads, user_api="blas"):
        return _gemm_peak(dtype, n, reps)


def _gemm_peak(dtype, n, reps) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n)).astype(dtype), rng.random((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=c)
    best = min(_timed(lambda: np.matmul(a, b, out=c)) for _ in range(reps))
    return 2 * n**3 / best / 1e9


#: The clock of every timing: wall time, or with ``--clock thread`` the CPU time of the
#: calling thread (one thread each only: it leaves out the waits for a core on a loaded machine).
CLOCK = time.perf_counter


def _timed(fn) -> float:
    t0 = CLOCK()
    fn()
    return CLOCK() - t0


def summary(times: list[float]) -> dict:
    return {"median": float(np.median(times)), "min": float(min(times)), "max": float(max(times)), "all": times}


def data(n_train: int, seed: int = 0):
    """MNIST-sized synthetic data (speed does not depend on pixel values)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n_train, 28, 28))
    labels = rng.integers(0, 10, n_train)
    xt = rng.random((TEST_IMAGES, 28, 28))
    order = rng.permutation(n_train)
    return x, labels, xt, order


def run_pair(dtype_name: str, n_train: int, reps: int, alpha: float = 1.0) -> dict:
    dtype = np.dtype(dtype_name)
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    x, labels, xt, order = data(n_train)
    x, xt = x.astype(dtype), xt.astype(dtype)
    net0 = Network(LAYERS, n_outputs=10, dtype=dtype, seed=0)
    x_t = torch.tensor(x[:, None])  # NCHW, converted once outside the timings
    xt_t = torch.tensor(xt[:, None])
    y_t = torch.nn.functional.one_hot(torch.tensor(labels), 10).to(tdtype)
    order_t = torch.tensor(order)
    res = {"train": {"convprop": [], "torch": []}, "infer": {"convprop": [], "torch": []}}
    warm = net0.copy()  # compiles (or loads) the kernels outside the timings
    train(warm, x[:100], labels[:100], epochs=1, batch_size=BATCH, alpha=alpha)
    warm.predict_proba(xt[:100])
    for _ in range(reps):
        net = net0.copy()
        model = TorchNet(net0, tdtype)
        res["train"]["convprop"].append(_timed(lambda: train(net, x, labels, epochs=1, batch_size=BATCH, alpha=alpha, order=order)))
        res["train"]["torch"].append(_timed(lambda: torch_epoch(model, x_t, y_t, order_t, alpha)))
        res["infer"]["convprop"].append(_timed(lambda: net.predict_proba(xt)))
        res["infer"]["torch"].append(_timed(lambda: torch_predict(model, xt_t)))
    # Same numbers: after identical training both give the same outputs.
    diff = float(np.max(np.abs(net.predict_proba(xt[:500]) - torch_predict(model, xt_t[:500]).numpy())))
    out = {"max_abs_output_diff_after_training": diff}
    for kind in ("train", "infer"):
        c, t = summary(res[kind]["convprop"]), summary(res[kind]["torch"])
        ratios = [a / b for a, b in zip(res[kind]["convprop"], res[kind]["torch"])]
        out[kind] = {"convprop": c, "torch": t, "ratio_median": c["median"] / t["median"],
                     "ratio_per_rep": ratios}
    return out


def memory_child(lib: str, dtype_name: str, n_train: int) -> None:
    """Peak RSS growth of one training epoch + inference, above the RSS after set-up."""
    import resource

    dtype = np.dtype(dtype_name)
    x, labels, xt, order = data(n_train)
    x, xt = x.astype(dtype), xt.astype(dtype)
    net = Network(LAYERS, n_outputs=10, dtype=dtype, seed=0)
    if lib == "torch":
        tdtype = torch.float32 if dtype == np.float32 else torch.float64
        model = TorchNet(net, tdtype)
        x_t, xt_t = torch.tensor(x[:, None]), torch.tensor(xt[:, None])
        y_t = torch.nn.functional.one_hot(torch.tensor(labels), 10).to(tdtype)
        order_t = torch.tensor(order)
    # Set-up includes one batch of each (imports, compiled kernels loaded from the cache):
    # what is measured is the growth while an epoch runs.
    if lib == "torch":
        torch_epoch(TorchNet(net, tdtype), x_t[:BATCH], y_t[:BATCH], order_t[:BATCH] % BATCH, 1.0)
    else:
        train(net.copy(), x[:BATCH], labels[:BATCH], epochs=1, batch_size=BATCH)
        net.predict_proba(xt[:BATCH])
    base = _rss_now_kib()
    _reset_peak_rss()
    if lib == "torch":
        torch_epoch(model, x_t, y_t, order_t, 1.0)
        torch_predict(model, xt_t)
    else:
        train(net, x, labels, epochs=1, batch_size=BATCH, order=order)
        net.predict_proba(xt)
    peak = _status_kib("VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    print(json.dumps({"peak_rss_mib": peak / 1024, "setup_rss_mib": base / 1024,
                      "peak_above_setup_mib": max(peak - base, 0) / 1024}))


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _rss_now_kib() -> int:
    return _status_kib("VmRSS:")


def _reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def memory(dtype_name: str, n_train: int, mode: str) -> dict:
    out = {}
    for lib in ("convprop", "convprop-numpy", "torch"):
        cmd = [sys.executable, __file__, "--memory-child", lib, "--dtype", dtype_name,
               "--train-images", str(n_train), "--modes", mode]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[lib] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


# ------------------------------------------------------------------ LeNet-style network


def lenet_pair(n_train: int, reps: int) -> dict:
    """One float32 Adam training epoch of the LeNet-style network (examples/lenet.py) in both libraries."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
    from lenet import lenet

    nn = torch.nn
    x, labels, _, order = data(n_train)
    x = x.astype(np.float32)
    xt, yt, order_t = torch.tensor(x[:, None]), torch.tensor(labels), torch.tensor(order)

    def ours():
        net = lenet(np.float32, 0)
        train(net, x, labels, epochs=1, batch_size=BATCH, optimizer=Adam(1e-3), order=order)

    def theirs():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding="same"), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10),
        )
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        for start in range(0, len(order_t), BATCH):
            idx = order_t[start : start + BATCH]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()

    ours_warm = lenet(np.float32, 0)  # compiles (or loads) the kernels outside the timings
    train(ours_warm, x[:100], labels[:100], epochs=1, batch_size=BATCH, optimizer=Adam(1e-3))
    times = {"convprop": [], "torch": []}
    for _ in range(reps):
        times["convprop"].append(_timed(ours))
        times["torch"].append(_timed(theirs))
    c, t = summary(times["convprop"]), summary(times["torch"])
    return {"convprop": c, "torch": t, "ratio_median": c["median"] / t["median"]}


# ------------------------------------------------------------------ per-layer profile


def layer_profile(dtype_name: str, images: int) -> dict:
    """Seconds per 60,000-image epoch in every layer's forward / backward, the SGD step and the rest."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from profile_layers import profile

    return profile(dtype_name, images, clock=CLOCK)


# ------------------------------------------------------------------ main


def run_mode(mode: str, args, report: dict) -> None:
    set_mode(mode)
    scale = 60_000 / args.train_images  # timings are reported per full 60,000-image epoch
    out = report["modes"][mode] = {
        "convprop_threads": convprop.get_num_threads(), "torch_threads": torch.get_num_threads(),
        "engine": backend.engine(), "gemm_peak_gflops": {}, "results": {}}
    print(f"\n== mode {mode}: convprop {out['convprop_threads']} threads ({out['engine']}), "
          f"torch {out['torch_threads']}, load {os.getloadavg()[0]:.2f}", flush=True)
    for dt in args.dtypes.split(","):
        out["gemm_peak_gflops"][dt] = peak = gemm_peak(np.dtype(dt), threads=MODES[mode][2])
        r = run_pair(dt, args.train_images, args.reps)
        for kind, flops in (("train", report["work"]["train_flops_per_epoch"]), ("infer", report["work"]["infer_flops"])):
            if kind == "train":
                for lib in ("convprop", "torch"):
                    r[kind][lib]["per_epoch_median"] = r[kind][lib]["median"] * scale
            secs = r[kind]["convprop"]["median"] * (scale if kind == "train" else 1)
            r[kind]["convprop_gflops"] = flops / secs / 1e9
            r[kind]["flop_bound_factor"] = secs / (flops / (peak * 1e9))
        if not args.no_memory:
            r["memory"] = memory(dt, min(args.train_images, 12_000), mode)
        out["results"][dt] = r
    if not args.no_lenet:
        out["lenet_float32_train"] = r = lenet_pair(args.train_images, args.reps)
        for lib in ("convprop", "torch"):
            r[lib]["per_epoch_median"] = r[lib]["median"] * scale
    if args.profile and mode == "one":  # per layer: one thread (with k, a batch's slices overlap)
        out["profile"] = {eng: {} for eng in ("numpy", "numba")}
        for eng in ("numpy", "numba"):
            convprop.set_engine(eng)
            for dt in args.dtypes.split(","):
                out["profile"][eng][dt] = layer_profile(dt, min(args.train_images, 6000))
        convprop.set_engine(None)
    print_mode(mode, out, scale)


def print_mode(mode: str, out: dict, scale: float) -> None:
    print(f"{'dtype':8} {'work':6} {'convprop s':>18} {'torch s':>18} {'ratio':>6} {'GFLOP/s':>8} {'peak':>6} {'xbound':>7}")
    for dt, r in out["results"].items():
        for kind in ("train", "infer"):
            c, t = r[kind]["convprop"], r[kind]["torch"]
            f = scale if kind == "train" else 1
            print(f"{dt:8} {kind:6} {c['median'] * f:8.2f} ({c['min'] * f:.2f}-{c['max'] * f:.2f}) "
                  f"{t['median'] * f:8.2f} ({t['min'] * f:.2f}-{t['max'] * f:.2f}) {r[kind]['ratio_median']:6.2f} "
                  f"{r[kind]['convprop_gflops']:8.1f} {out['gemm_peak_gflops'][dt]:6.1f} {r[kind]['flop_bound_factor']:7.1f}")
        if "memory" in r:
            m = r["memory"]
            print(f"{dt:8} peak memory above set-up: convprop {m['convprop']['peak_above_setup_mib']:.1f} MiB "
                  f"(set-up {m['convprop']['setup_rss_mib']:.0f} MiB), torch {m['torch']['peak_above_setup_mib']:.1f} MiB "
                  f"(set-up {m['torch']['setup_rss_mib']:.0f} MiB); NumPy engine "
                  f"{m['convprop-numpy']['peak_above_setup_mib']:.1f} MiB (set-up {m['convprop-numpy']['setup_rss_mib']:.0f} MiB)")
        print(f"{dt:8} max |convprop - torch| outputs after training: {r['max_abs_output_diff_after_training']:.2e}")
    if "lenet_float32_train" in out:
        r = out["lenet_float32_train"]
        print(f"LeNet float32 Adam epoch: convprop {r['convprop']['per_epoch_median']:.2f} s, "
              f"torch {r['torch']['per_epoch_median']:.2f} s, ratio {r['ratio_median']:.2f}")
    for eng, per_dtype in out.get("profile", {}).items():
        for dt, prof in per_dtype.items():
            parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(prof["parts"].items(), key=lambda kv: -kv[1]))
            print(f"profile {eng} {dt}: {prof['epoch_s']:.2f} s per epoch: {parts}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--train-images", type=int, default=60_000)
    ap.add_argument("--modes", default="one,all,default",
                    help="thread modes: one (1 thread each), all (every core each), default (each library's own)")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results.json"))
    ap.add_argument("--memory-child", choices=["convprop", "convprop-numpy", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-lenet", action="store_true")
    ap.add_argument("--profile", action="store_true", help="per-layer profiles, NumPy and compiled engine")
    ap.add_argument("--clock", choices=["wall", "thread"], default="wall",
                    help="thread: CPU time of the calling thread (with --modes one only)")
    args = ap.parse_args()
    if args.clock == "thread":
        if args.modes != "one":
            ap.error("--clock thread measures one thread: use it with --modes one")
        global CLOCK
        CLOCK = time.thread_time
    if args.memory_child:
        set_mode(args.modes.split(",")[0])
        if args.memory_child == "convprop-numpy":
            convprop.set_engine("numpy")
        memory_child(args.memory_child, args.dtype, args.train_images)
        return

    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "cores": CORES,
                    "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                    "torch_default_threads": TORCH_DEFAULT_THREADS, "loadavg_start": os.getloadavg()},
        "work": {"network": "28x28-6c5-s2-12c5-s2-10o", "batch": BATCH, "train_images_timed": args.train_images,
                 "epoch_images": 60_000, "test_images": TEST_IMAGES, "reps": args.reps,
                 "train_flops_per_epoch": 60_000 * flops_per_image(True),
                 "infer_flops": TEST_IMAGES * flops_per_image(False)},
        "modes": {},
        "clock": args.clock,
    }
    print(f"convprop {convprop.__file__}\nload {os.getloadavg()}, cores {CORES}")
    print(f"FLOPs: training epoch {report['work']['train_flops_per_epoch'] / 1e9:.1f} G, "
          f"inference {report['work']['infer_flops'] / 1e9:.2f} G")
    for mode in args.modes.split(","):
        run_mode(mode, args, report)
        report["machine"]["loadavg_end"] = os.getloadavg()
        _write(report, args.out)  # after every mode: a long run stopped early keeps what it measured
    print(f"load at end {os.getloadavg()}\nwrote {args.out}")


def _write(report: dict, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
