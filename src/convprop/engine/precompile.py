"""The compiled engine's first run on a machine: its kernels compile in a background process.

Compiling the kernels takes 15 s to 3 minutes the first time, by machine (then Numba's disk cache
loads them in under a second). ``convprop train`` does not make a first run
wait for that: when the kernels a run needs have not been compiled on this
machine yet (no *marker* for them, :func:`is_warm`), it starts a child process
that compiles them into the cache (:func:`start`, the child runs :func:`main`),
trains on the NumPy engine meanwhile, and takes the compiled engine from the
first epoch that starts after the child finished (the CLI's ``EngineSwitch``).
The child writes the marker last, so a marker means every kernel is cached.

Such a first run is not reproducible bit for bit: the two engines agree to
round-off (float64 ≤ 1e-12 relative), and the epoch at which it changes engines
depends on how long the compiling takes. ``CONVPROP_COMPILE=foreground``
compiles in the run itself, as the Python API always does. A child that fails
leaves a ``.failed`` mark beside the marker: the runs after it compile in the
run, where an error is reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from ..errors import ConvpropError

#: The children started by this process (kept, so that none is collected while it runs).
_children: list[subprocess.Popen] = []


def background_wanted() -> bool:
    """``CONVPROP_COMPILE``: "background" (the default) or "foreground"."""
    value = os.environ.get("CONVPROP_COMPILE", "background").strip().lower() or "background"
    if value not in ("background", "foreground"):
        raise ConvpropError(f"CONVPROP_COMPILE must be background or foreground, got {value!r}")
    return value == "background"


def _numba_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numba")
    except PackageNotFoundError:
        return "?"


def _kernels_dir() -> Path:
    return Path(__file__).resolve().parent / "kernels"


def marker(settings: dict) -> Path:
    """The marker file of a run's kernels: named by a hash of the kernels' sources, Numba's and
    Python's versions, the cache's place and the run's settings (layers, dtype, output, optimiser,
    threads), in Numba's cache folder for the kernels when it is writable."""
    from .kernels.cache import sources_stamp

    cache_dir = os.environ.get("NUMBA_CACHE_DIR", "")
    key = json.dumps([sources_stamp(), _numba_version(), sys.version, cache_dir, settings], sort_keys=True)
    name = f"convprop-compiled-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"
    user_dir = Path(os.path.expanduser("~")) / ".cache" / "convprop"
    for folder in (Path(cache_dir) if cache_dir else None, _kernels_dir() / "__pycache__", user_dir):
        if folder is not None and _writable(folder):
            return folder / name
    return user_dir / name


def _writable(folder: Path) -> bool:
    """Whether a file can be made in ``folder`` (made if need be): tried, not guessed from the mode."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def is_warm(settings: dict) -> bool:
    """Whether the kernels for ``settings`` were compiled on this machine (their marker exists)."""
    return marker(settings).is_file()


def has_failed(settings: dict) -> bool:
    """Whether a child failed to compile the kernels for ``settings`` here (then runs compile in the
    run itself, where an error is reported)."""
    return marker(settings).with_suffix(".failed").is_file()


def is_cold(settings: dict) -> bool:
    """Neither :func:`is_warm` nor :func:`has_failed` (one look-up of the marker for both)."""
    mark = marker(settings)
    return not mark.is_file() and not mark.with_suffix(".failed").is_file()


def _leave_mark(settings: dict, ok: bool) -> None:
    """The marker (``ok``), or the ``.failed`` mark beside it, written atomically."""
    from .._files import atomic_write_text

    mark = marker(settings)
    atomic_write_text(mark if ok else mark.with_suffix(".failed"), json.dumps(settings) + "\n")


def start(settings: dict) -> subprocess.Popen | None:
    """Start the child that compiles the kernels for ``settings`` (detached: it outlives a Ctrl-C and
    the command, at a low priority, its output discarded); None when it cannot be started."""
    env = dict(os.environ, CONVPROP_ENGINE="numba")
    if os.name == "nt":
        detached = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS
                    | subprocess.BELOW_NORMAL_PRIORITY_CLASS}
    else:
        detached = {"start_new_session": True}
    try:
        child = subprocess.Popen([sys.executable, "-m", "convprop.engine.precompile", json.dumps(settings)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=env, **detached)
    except OSError:
        return None
    _children.append(child)
    return child


def compile_for(settings: dict) -> bool:
    """Compile (or load) every kernel a run with ``settings`` calls, then write its marker; whether it did.

    Parameters
    ----------
    settings : dict
        ``layers`` (a spec), ``dtype``, ``output``, ``optimizer`` (None for plain SGD, else the
        arguments of :func:`convprop.engine.optim.make_optimizer`), ``threads``.
    """
    import numpy as np

    from . import warmup
    from .optim import make_optimizer
    from .spec import parse_layers

    from .parallel import set_num_threads

    set_num_threads(settings["threads"])
    layers = parse_layers(settings["layers"], allow_empty=True)
    side = warmup.smallest_input(layers)
    optimizer = make_optimizer(**settings["optimizer"]) if settings["optimizer"] else None
    ok = side is not None and warmup.run(layers, np.dtype(settings["dtype"]), settings["output"], side, optimizer)
    _leave_mark(settings, ok)
    return ok


def main(argv: list[str]) -> int:
    """The child's entry point: ``python -m convprop.engine.precompile SETTINGS_JSON`` (status 1: failed)."""
    if hasattr(os, "nice"):
        os.nice(10)  # the run that started it comes first
    settings = json.loads(argv[0])
    try:
        return 0 if compile_for(settings) else 1
    except Exception:  # noqa: BLE001 - any failure: the runs after this one compile in the run and report it
        _leave_mark(settings, False)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
