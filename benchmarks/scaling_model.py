"""A model of data-parallel training beyond one machine (docs/scaling.md), with this machine's points.

Time per step on K nodes with global batch B (each node computes B/K images, then one ring
Allreduce of the P parameters' gradients, 8 bytes each in float64):

    t(K, B) = c·B/K + f + 2·(K−1)/K · 8P/β + 2·(K−1)·α          (K > 1; t(1, B) = c·B + f)

c: compute seconds per image (forward + backward), f: the per-step fixed cost (Python, the update),
β: link bandwidth, α: per-message latency. Speed-up S = t(1, B) / t(K, B), efficiency E = S / K.
The compute-only bound (no communication at all) is E = (c·B + f) / (c·B + K·f).

``--measure`` times c and f on this machine (one process, one thread,
least squares on steps of 1 to 50 images; CPU time, so that other jobs on the machine do not
count) for the toolbox network and the LeNet-style one and stores them in
``scaling_measured.json``; without it the stored values are used. Prints the tables of
docs/scaling.md and writes ``scaling_model.json``.

    PYTHONPATH=$PWD/src python3 benchmarks/scaling_model.py --measure
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NETWORKS = {
    "toolbox": ("6c5-s2-12c5-s2", "sigmoid"),
    "lenet": ("6c5rps-m2-16c5r-m2-120fr-84fr", "softmax"),
}
#: link → (bandwidth in bytes/s, per-message latency in s): 10 GbE over TCP, 25 GbE, 100 Gb/s InfiniBand/RoCE.
LINKS = {"10 Gb/s": (10e9 / 8, 25e-6), "25 Gb/s": (25e9 / 8, 10e-6), "100 Gb/s": (100e9 / 8, 2e-6)}
NODES = (2, 4, 8, 16, 32, 64, 128, 256, 512)
BATCHES = (50, 200, 1000)


def measure(name: str) -> dict:
    """c (s/image), f (s/step) and P for one network, from steps of 1 to 50 images (least squares).

    Larger steps cost more per image on this machine (B = 200: ~1.4x B = 50's, the maps leave
    the cache), so the model, fitted where a scaled-out rank works, flatters B/K > 50 a little.
    """
    import numpy as np

    from convprop import Input, Network, fit
    from convprop.engine.spec import parse_layers

    layers, output = NETWORKS[name]
    net = Network([Input(28, 28), *parse_layers(layers)], n_outputs=10, seed=0, output=output)
    rng = np.random.default_rng(0)
    sizes, seconds = [], []
    for b in (1, 2, 5, 10, 25, 50) * 3:  # a rank's share B/K when scaled out: 50 and less
        n = b * max(4, 2000 // b)
        x, y = rng.random((n, 28, 28)), rng.integers(0, 10, n)
        t0 = time.process_time()  # CPU time: what the step costs, whatever else the machine runs
        fit(net, x, y, epochs=1, batch_size=b, alpha=0.01, seed=0)
        sizes.append(b)
        seconds.append((time.process_time() - t0) / (n // b))
    slope, intercept = np.polyfit(sizes, seconds, 1)
    params = sum(a.size for a in net.parameters().values())
    return {"layers": layers, "c_s_per_image": float(slope), "f_s_per_step": float(max(intercept, 0.0)),
            "parameters": int(params)}


def step_time(m: dict, k: int, b: int, bandwidth: float, latency: float) -> float:
    compute = m["c_s_per_image"] * b / k + m["f_s_per_step"]
    if k == 1:
        return compute
    nbytes = 8 * m["parameters"]
    return compute + 2 * (k - 1) / k * nbytes / bandwidth + 2 * (k - 1) * latency


def efficiency(m: dict, k: int, b: int, link: str) -> float:
    bw, lat = LINKS[link]
    return step_time(m, 1, b, bw, lat) / (k * step_time(m, k, b, bw, lat))


def last_above(m: dict, b: int, link: str, target: float = 0.8) -> int | None:
    """The largest K in NODES (with K ≤ B) whose efficiency is at least ``target`` (None: not even 2)."""
    good = [k for k in NODES if k <= b and efficiency(m, k, b, link) >= target]
    return max(good) if good else None


def batch_for(m: dict, k: int, link: str, target: float = 0.8) -> int | None:
    """The smallest global batch B (≥ K) for efficiency ≥ target on K nodes (None: no B up to 10⁷)."""
    lo, hi = k, 10_000_000
    if efficiency(m, k, hi, link) < target:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if efficiency(m, k, mid, link) < target else (lo, mid)
    return lo


def tables(measured: dict) -> dict:
    out = {}
    for name, m in measured["networks"].items():
        rows = {}
        for link in LINKS:
            rows[link] = {
                "efficiency": {str(b): {str(k): round(efficiency(m, k, b, link), 3) for k in NODES if k <= b}
                               for b in BATCHES},
                "last_nodes_at_80pct": {str(b): last_above(m, b, link) for b in BATCHES},
                "batch_for_80pct": {str(k): batch_for(m, k, link) for k in NODES},
            }
        out[name] = {"model_inputs": m, "links": rows}
    return out


def print_markdown(result: dict) -> None:
    for name, r in result.items():
        m = r["model_inputs"]
        print(f"\n### {name}: {m['layers']}, {m['parameters']} parameters ({8 * m['parameters'] / 1024:.1f} KiB), "
              f"c = {1e6 * m['c_s_per_image']:.0f} µs/image, f = {1e6 * m['f_s_per_step']:.0f} µs/step\n")
        print("| link | global batch | " + " | ".join(f"K={k}" for k in NODES) + " | last K ≥ 80 % |")
        print("| --- | --- | " + " | ".join("---" for _ in NODES) + " | --- |")
        for link, rows in r["links"].items():
            for b in BATCHES:
                effs = rows["efficiency"][str(b)]
                cells = [f"{100 * effs[str(k)]:.0f} %" if str(k) in effs else "–" for k in NODES]
                print(f"| {link} | {b} | " + " | ".join(cells) + f" | {rows['last_nodes_at_80pct'][str(b)]} |")
        print("\nSmallest global batch for ≥ 80 % efficiency:\n")
        print("| link | " + " | ".join(f"K={k}" for k in NODES) + " |")
        print("| --- | " + " | ".join("---" for _ in NODES) + " |")
        for link, rows in r["links"].items():
            cells = [str(rows["batch_for_80pct"][str(k)] or "none") for k in NODES]
            print(f"| {link} | " + " | ".join(cells) + " |")


def this_machine(measured: dict) -> dict:
    """K = 2 ranks on this machine (shared memory: β ≈ 10 GB/s, α ≈ 1 µs): the model's speed-up,
    and the measured one from mpi_throughput.json if it is there."""
    m = measured["networks"]["toolbox"]
    points = {}
    stored = HERE / "mpi_throughput.json"
    tp = json.loads(stored.read_text()) if stored.exists() else {"batches": {}}
    for b in (50, 200):
        model = step_time(m, 1, b, 10e9, 1e-6) / step_time(m, 2, b, 10e9, 1e-6)
        row = tp["batches"].get(str(b), {})
        points[str(b)] = {"model_speedup": round(model, 3), "measured_speedup": row.get("ratio"),
                          "measured_cpu_time_speedup": row.get("cpu_time_ratio")}
    return points


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--measure", action="store_true", help="time c and f on this machine first")
    args = p.parse_args()
    stored = HERE / "scaling_measured.json"
    if args.measure:
        import os

        os.environ.setdefault("CONVPROP_THREADS", "1")
        load = os.getloadavg()[0]
        measured = {"load_average_before": load, "networks": {n: measure(n) for n in NETWORKS}}
        stored.write_text(json.dumps(measured, indent=2) + "\n")
    measured = json.loads(stored.read_text())
    result = tables(measured)
    here = this_machine(measured)
    (HERE / "scaling_model.json").write_text(json.dumps({"model": result, "this_machine_k2": here}, indent=2) + "\n")
    print_markdown(result)
    print("\nThis machine, toolbox network, 2 ranks (shared memory):\n")
    print("| global batch | model speed-up | measured speed-up (wall clock) | measured (CPU time) |")
    print("| --- | --- | --- | --- |")
    for b, p in here.items():
        got, cpu = (("–" if v is None else f"{v:.2f}") for v in (p["measured_speedup"], p["measured_cpu_time_speedup"]))
        print(f"| {b} | {p['model_speedup']:.2f} | {got} | {cpu} |")


if __name__ == "__main__":
    main()
