"""A short coverage-guided fuzz run of every loader (the long campaign: fuzz/README.md).

Each target runs in its own process for ``RUNS`` inputs (at most ``MAX_SECONDS``), starting from
seeds generated from valid files; any exception other than ConvpropError, a hang (10 s) or a
resident size over 1 GiB fails the test, and the log names the crashing input.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris: wheels for "
                                      "Linux x86-64; the fuzz tests need it)")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import run  # noqa: E402

RUNS = 1500
MAX_SECONDS = 15


@pytest.mark.parametrize("target", run.TARGETS)
def test_short_fuzz_run(target, tmp_path):
    result = run.run_target(target, RUNS, rss_mb=2048, timeout=10, work=tmp_path, max_time=MAX_SECONDS, as_mb=1024)
    if "skipped" in result:
        pytest.skip(f"{target}: {result['skipped']}")
    log = Path(result["log"]).read_text(errors="replace")
    assert result["rc"] == 0 and not result["crashes"], log[-4000:]
    assert result["runs"] and result["runs"] >= min(RUNS, 200), log[-2000:]
    assert result["cov"] and result["cov"] > 50  # the target really ran the loader
