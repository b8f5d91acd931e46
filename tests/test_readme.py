"""Every ```python and ```bash block of README.md, run as written (issue 14, item 9).

Each block runs in a fresh directory (``work/``, beside a ``shared`` link to ../shared, so that
``../shared/data/mnist`` means what it means in the repository), unless the line before its fence
is ``<!-- readme-test: same directory as the block above -->``. ``$CONVPROP_DATA`` points at the
MNIST files (``load_mnist()`` finds them without a download) and downloads are turned off.
Python blocks run with ``python -c``; bash blocks command by command, ``convprop`` being
``python -m convprop``. A few commands are not run, each for the reason in :data:`NOT_RUN`.
Files that commands name as the user's own (``digit.png``, ``other.jpg``, ``x.npy``) are made
first from MNIST test images; so are the MATLAB network ``cnn.mat`` and the ``test_x``, ``test_y``
that the MATLAB block takes as given (:data:`GIVEN`).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SAME_DIR = "<!-- readme-test: same directory as the block above -->"
FASHION = Path("/usr/share/datasets/fashion-mnist")

#: Commands not run, and why (a prefix of the command → the reason).
NOT_RUN = {
    "python3 -m pip install": "installs the package: the tests run in an environment where it is installed",
    "mpiexec": "needs mpi4py and Open MPI (the mpi extra)" if importlib.util.find_spec("mpi4py") is None else None,
    "python3 -m pytest": "runs this test suite itself",
    "convprop train --dataset fashion-mnist": "needs Debian's dataset-fashion-mnist"
                                              + ("" if not FASHION.is_dir() else " (installed: run)"),
}
#: What a block takes as the user's own, made before it runs (a line of the block → Python code).
GIVEN = {
    'cnn = load_mat("cnn.mat")': """
import numpy as np
from convprop import dlt
from convprop.datasets import load_mnist
_x, _y = load_mnist("test")
test_x, test_y = np.moveaxis(_x[:500], 0, -1) / 255, np.eye(10)[_y[:500]].T   # the user's data, toolbox layout
_net = {"layers": [{"type": "i"}, {"type": "c", "outputmaps": 6, "kernelsize": 5}, {"type": "s", "scale": 2}]}
dlt.save_mat(dlt.cnnsetup(_net, test_x, test_y, seed=0), "cnn.mat")            # the user's MATLAB network
""",
}
#: What a block prints (a line of the block → text its output must contain).
EXPECTED = {
    'print(f"test error {100 * result.error:.2f} %")': "test error 11.06 %",
    "print(er)": "0.1106",
    "print(type(cnn).__name__, type(net).__name__)   # dict Network": "dict Network",
    "convprop train --data-dir ../shared/data/mnist --out runs/mnist-1epoch": "11.06 % (1106/10000 wrong)",
    "convprop predict runs/digits digits/7/7.png": "digits/7/7.png: 7 (output",
    "--batch-size 20 --epochs 10 --out runs/digits": "2.51 % (9/359 wrong)",
    "--layers 6c5-s2-12c5-s2 --epochs 1 --out runs/mnist-1epoch": "11.06 % (1106/10000 wrong)",
}


def blocks() -> list[tuple[int, str, str, bool]]:
    """(line, language, code, same directory as the block before) of every python / bash block."""
    lines = README.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        m = re.fullmatch(r"```(python|bash)", lines[i].strip())
        if m:
            end = lines.index("```", i + 1)
            found.append((i + 1, m[1], "\n".join(lines[i + 1:end]) + "\n", i > 0 and lines[i - 1].strip() == SAME_DIR))
            i = end
        i += 1
    return found


BLOCKS = blocks()


def commands(code: str) -> list[str]:
    """A bash block's commands: continuation lines joined, comments and blank lines dropped, `&&` split."""
    text = code.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        out += [c.strip() for c in line.split("&&") if c.strip()]
    return out


def _reason(command: str) -> str | None:
    for prefix, reason in NOT_RUN.items():
        if command.startswith(prefix) and not (prefix.endswith("fashion-mnist") and FASHION.is_dir()):
            return reason
    return None


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    if argv[0] == "convprop":
        return [sys.executable, "-m", "convprop", *argv[1:]]
    if argv[0] == "python3":
        return [sys.executable, *argv[1:]]
    return argv


@pytest.fixture(scope="module")
def env(tmp_path_factory, shared):
    import convprop

    home = tmp_path_factory.mktemp("readme")
    src = str(Path(convprop.__file__).resolve().parents[1])  # the convprop these tests import, from any directory
    path = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
    # As root (CI), Open MPI's mpiexec wants --allow-run-as-root, which the README says to add: the
    # environment variables that stand for it.
    root = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"} if os.geteuid() == 0 else {}
    return {**os.environ, "CONVPROP_DATA": str(shared / "data" / "mnist"), "CONVPROP_CACHE": str(home / "cache"),
            "CONVPROP_MIRRORS": "http://127.0.0.1:9", "MPLBACKEND": "Agg", "PYTHONPATH": path, **root}


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory, shared):
    """The directory each block runs in (blocks marked SAME_DIR share their predecessor's)."""
    dirs, current = {}, None
    for line, _, _, same in BLOCKS:
        if current is None or not same:
            base = tmp_path_factory.mktemp(f"block{line}")
            (base / "shared").symlink_to(shared)
            current = base / "work"
            current.mkdir()
            _users_files(current, shared)
        dirs[line] = current
    return dirs


def _users_files(work: Path, shared: Path) -> None:
    """digit.png, other.jpg and x.npy: what the README's predict and explain lines call the user's files."""
    from PIL import Image

    from convprop.datasets import load_mnist

    x, _ = load_mnist("test", path=shared / "data" / "mnist", download=False, progress=False)
    Image.fromarray(x[0]).save(work / "digit.png")
    Image.fromarray(np.stack([x[1]] * 3, axis=-1)).resize((280, 280)).save(work / "other.jpg")
    np.save(work / "x.npy", x[:3])


#: Numbers a block prints that float32 rounding on another CPU may move a little (line → (low, high) in %).
RANGES = {"# 9.83 % after 10,000 images": (8.0, 12.0)}


def _check(code: str, output: str) -> None:
    for line, expected in EXPECTED.items():
        if line in code:
            assert expected in output, (line, output[-3000:])
    for line, (low, high) in RANGES.items():
        if line in code:
            value = float(re.findall(r"(\d+\.\d+) %", output)[-1])
            assert low <= value <= high, (line, output[-3000:])


_RAN: set[int] = set()


@pytest.mark.parametrize("line, lang, code, same", BLOCKS, ids=[f"README.md:{b[0]}-{b[1]}" for b in BLOCKS])
def test_readme_block_runs_as_written(line, lang, code, same, env, workdirs):
    k = [b[0] for b in BLOCKS].index(line)
    first = k
    while BLOCKS[first][3]:
        first -= 1
    for before in BLOCKS[first:k]:  # what this block builds on, when run on its own (pytest -k)
        if before[0] not in _RAN:
            _run_block(*before[:3], env, workdirs)
    _run_block(line, lang, code, env, workdirs)


def _run_block(line, lang, code, env, workdirs):
    _RAN.add(line)
    cwd = workdirs[line]
    if lang == "python":
        given = "".join(prelude for line, prelude in GIVEN.items() if line in code)
        done = subprocess.run([sys.executable, "-c", given + code], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        _check(code, done.stdout)
        return
    ran = []
    for command in commands(code):
        if _reason(command):
            continue
        done = subprocess.run(_argv(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (command, done.stderr[-3000:])
        _check(command, done.stdout)
        ran.append(command)
    assert ran, "every command of the block was left out"


def test_the_harness_sees_every_block():
    text = README.read_text()
    assert len(BLOCKS) == text.count("```python") + text.count("```bash") >= 12
    assert [c for c in commands(BLOCKS[0][2])] == [
        "python3 -m pip install -e .", "python3 -m convprop train --data-dir ../shared/data/mnist --out runs/mnist-1epoch",
        'python3 -m pip install -e ".[test]"', "python3 -m pytest"]
