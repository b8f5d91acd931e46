"""A run directory (``convprop train --out DIR``): one process at a time, one run at a time.

* **Lock.** :meth:`RunDir.acquire` takes an advisory ``flock`` on ``DIR/.lock`` (holding the
  owner's pid) for as long as the process lives; the kernel releases it on any exit, SIGKILL
  included, so a lock file left by a dead process is stale and simply taken over. A second
  process asking for the same directory is refused at once, naming the owner.
* **Writable, early.** Creating the lock file proves the directory can be written before any
  data is loaded or any epoch is trained.
* **Crash leftovers.** The temporary files of writes a killed process left behind
  (``.<name>.<random>.tmp``, see :mod:`convprop._files`) are removed on the next start.
* **One run.** A directory that already holds a run (``model.npz``, ``checkpoint.npz`` or
  ``summary.json``) is refused unless the new run resumes it or ``--force`` replaces it; replacing
  removes the old run's files and plots first, so nothing stale is left beside the new run.
* **Tidy failure.** If the command fails and the directory did not exist before, it is removed
  again, so a refused or failed start leaves no empty directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from pathlib import Path

from .._files import remove_leftovers
from ..errors import ConvpropError

#: What a run leaves in its directory (the plots go to ``plots/``).
RUN_FILES = ("model.npz", "checkpoint.npz", "summary.json", "metrics.csv")
LOCK = ".lock"


class RunDir:
    """The run directory ``path``, owned by this process once :meth:`acquire` returns.

    Use as a context manager: ``with RunDir(out).acquire(force=..., resume=...) as run: ...``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._created = False

    def holds_run(self) -> list[str]:
        """The names of the run files already in the directory."""
        return [name for name in RUN_FILES if (self.path / name).exists()]

    def acquire(self, *, force: bool = False, resume: bool = False) -> "RunDir":
        """Create (if needed), lock and clean the directory; refuse one holding another run.

        Raises
        ------
        ConvpropError
            The directory cannot be created or written, another process holds it, or it holds
            a run and neither ``resume`` nor ``force`` was given.
        """
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConvpropError(f"{self.path}: cannot create the run directory ({exc.strerror or exc})") from None
        try:
            self._lock()
            existing = self.holds_run()
            if existing and not (resume or force):
                raise ConvpropError(
                    f"{self.path} already holds a run ({', '.join(existing)}); continue it with "
                    f"--resume {self.path} --epochs N, replace it with --force, or choose another --out")
            remove_leftovers(self.path)
            remove_leftovers(self.path / "plots")
            if force and not resume:
                self._clear()
        except BaseException:
            self.release(failed=True)
            raise
        return self

    def _lock(self) -> None:
        lock = self.path / LOCK
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise ConvpropError(f"{self.path}: cannot write in the run directory ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConvpropError(f"{self.path} is in use by another convprop process (pid {owner}); "
                                    "wait for it to finish or choose another --out") from None
            raise ConvpropError(f"{self.path}: cannot lock the run directory ({exc.strerror or exc})") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise ConvpropError(f"{self.path}: cannot write in the run directory ({exc.strerror or exc})") from None
        self._fd = fd

    def _clear(self) -> None:
        """Remove the previous run's files and plots (``--force``)."""
        try:
            for name in RUN_FILES:
                with contextlib.suppress(FileNotFoundError):
                    (self.path / name).unlink()
            if (self.path / "plots").is_dir():
                shutil.rmtree(self.path / "plots")
        except OSError as exc:
            raise ConvpropError(f"{self.path}: cannot remove the previous run ({exc.strerror or exc})") from None

    def release(self, failed: bool = False) -> None:
        """Unlock; after a failure, remove the directory again if this process created it and it is empty."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                if failed and self._created:
                    (self.path / LOCK).unlink()
            os.close(self._fd)
            self._fd = None
        if failed and self._created:
            with contextlib.suppress(OSError):
                self.path.rmdir()  # only if empty

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release(failed=exc_type is not None)
