"""Run the atheris fuzz targets one after another and print their figures.

Usage::

    PYTHONPATH=src python3 fuzz/run.py [--runs N] [--as-mb MB] [--time S] [--timeout S] [--work DIR] [TARGET ...]

For each target (``idx``, ``mat``, ``checkpoint``, ``image``; default: all whose loader exists),
the seeds from :mod:`make_seeds` go to ``WORK/seeds/<target>``, the growing corpus to
``WORK/corpus/<target>`` (kept between runs, so a later run continues where one stopped) and any
crashing input to ``WORK/crashes/<target>/``. Each input runs under the limits of
:mod:`_harness`: an address space of ``--as-mb`` MiB (RLIMIT_AS) and ``--time`` seconds plus
10 µs per byte of the file; libFuzzer stops a target at the first input that raises anything but
ConvpropError, breaks a limit, or hangs past ``--timeout`` seconds. The exit status is 1 if any
target found a crash.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import make_seeds  # noqa: E402

TARGETS = ("idx", "mat", "checkpoint", "image")
#: The module each target needs (some arrive with later branches).
MODULES = {"idx": "formats/idx.py", "mat": "formats/matlab.py", "checkpoint": "formats/checkpoint.py", "image": "datasets/images.py"}


def run_target(target: str, runs: int, rss_mb: int, timeout: int, work: Path,
               max_time: int | None = None, quiet: bool = True, as_mb: int = 1024,
               time_base: float = 3.0) -> dict:
    """Fuzz one target; return its figures (runs, seconds, cov, ft, corpus, crashes, rc)."""
    if not (HERE.parent / "src" / "convprop" / MODULES[target]).exists():
        return {"target": target, "skipped": "its loader is not in this checkout"}
    seeds = work / "seeds"
    counts = make_seeds.write_seeds(seeds, [target])
    if target not in counts:
        return {"target": target, "skipped": "its loader is not in this checkout"}
    corpus = work / "corpus" / target
    crashes = work / "crashes" / target
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(HERE / f"fuzz_{target}.py"), str(corpus), str(seeds / target),
           f"-runs={runs}", f"-rss_limit_mb={rss_mb}", f"-timeout={timeout}",
           f"-artifact_prefix={crashes}/", "-print_final_stats=1", "-max_len=4096"]
    if max_time:
        cmd.append(f"-max_total_time={max_time}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
        CONVPROP_FUZZ_AS_MB=str(as_mb), CONVPROP_FUZZ_TIME=str(time_base))
    log_path = work / f"{target}.log"
    start = time.monotonic()
    with open(log_path, "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    seconds = time.monotonic() - start
    text = log_path.read_text(errors="replace")
    stats = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/", text)
    done = re.search(r"stat::number_of_executed_units: (\d+)", text)
    result = {
        "target": target,
        "runs": int(done.group(1)) if done else None,
        "seconds": round(seconds, 1),
        "cov": int(stats[-1][0]) if stats else None,
        "ft": int(stats[-1][1]) if stats else None,
        "corpus": int(stats[-1][2]) if stats else None,
        "crashes": sorted(p.name for p in crashes.iterdir()),
        "rc": rc,
        "log": str(log_path),
    }
    if rc != 0 and not quiet:
        print(text[-3000:], file=sys.stderr)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", choices=TARGETS, default=[])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--rss-mb", type=int, default=2048, help="libFuzzer's resident-size limit")
    parser.add_argument("--as-mb", type=int, default=1024, help="address space per process (RLIMIT_AS)")
    parser.add_argument("--time", type=float, default=3.0, help="seconds per input, plus 10 µs per byte")
    parser.add_argument("--timeout", type=int, default=10, help="seconds per input")
    parser.add_argument("--max-time", type=int, default=None, help="seconds per target")
    parser.add_argument("--work", type=Path, default=Path("fuzz-work"))
    args = parser.parse_args(argv)
    failed = False
    for target in args.targets or TARGETS:
        r = run_target(target, args.runs, args.rss_mb, args.timeout, args.work, args.max_time,
                       quiet=False, as_mb=args.as_mb, time_base=args.time)
        if "skipped" in r:
            print(f"{target:11s} skipped: {r['skipped']}")
            continue
        failed |= r["rc"] != 0 or bool(r["crashes"])
        print(f"{target:11s} runs={r['runs']} time={r['seconds']}s cov={r['cov']} ft={r['ft']} "
              f"corpus={r['corpus']} crashes={len(r['crashes'])} rc={r['rc']} log={r['log']}",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
