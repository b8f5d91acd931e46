"""Files, safely: one regular-file check and one translation of OS errors for every reader,
atomic writes (a temporary file beside the target, then ``os.replace``) for every writer.

* :func:`open_regular` opens a file for reading without ever blocking: a FIFO, a socket, a device
  or a directory given where a file is expected is refused at once (a FIFO would otherwise block
  the reader forever), and so is a missing or unreadable file, in one line naming the file.
* :func:`file_errors` turns the OS errors of reading a file into such one-line ConvpropErrors.
* :func:`atomic_write` makes sure readers never see half a file; its OS errors (a full disk, a
  read-only directory) become a ConvpropError naming the file. Its temporary files are named
  ``.<name>.<random>.tmp`` (:data:`TMP_PATTERN`), so that a crash's leftovers can be found and
  removed (:func:`remove_leftovers`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import ConvpropError

#: Names of the temporary files :func:`atomic_write` leaves if the process is killed mid-write:
#: ``.<name>.<8 random characters><suffix>``.
TMP_PATTERN = re.compile(r"\..+\.[a-z0-9_]{8}\.(tmp|part|png)")
#: OS errors of writing the file itself (as opposed to, say, a network error while producing it).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM}


@contextlib.contextmanager
def file_errors(where: str, kind: str) -> Iterator[None]:
    """Turn the OS errors of opening and reading ``where`` (a ``kind`` file) into one-line ConvpropErrors."""
    try:
        yield
    except FileNotFoundError:
        raise ConvpropError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ConvpropError(f"{where} is a directory, not a {kind} file") from None
    except OSError as exc:
        raise ConvpropError(f"{where}: cannot read it ({exc.strerror or exc})") from None


def _what(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def open_regular(path: str | os.PathLike, kind: str) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file; never blocks.

    Parameters
    ----------
    path : str or path-like
    kind : str
        What the file should be (".npz", "IDX", "image" …), for the messages.

    Returns
    -------
    file object
        Opened in blocking mode, positioned at the start; the caller closes it.

    Raises
    ------
    ConvpropError
        Missing or unreadable file, or not a regular file (a directory, FIFO, socket, device).
    """
    where = str(path)
    with file_errors(where, kind):
        # O_NONBLOCK: opening a FIFO that no process writes to would block forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConvpropError(f"{where} is a {_what(mode)}, not a regular file (a {kind} file is expected)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed :func:`atomic_write` left in ``folder``; return them."""
    gone = []
    for tmp in Path(folder).glob(".*"):
        with contextlib.suppress(OSError):
            if TMP_PATTERN.fullmatch(tmp.name) and tmp.is_file() and not tmp.is_symlink():
                tmp.unlink()
                gone.append(tmp)
    return gone


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """Open a temporary binary file in ``path``'s directory; on success rename it to ``path``.

    On any error the temporary file is removed and ``path`` is left as it was: readers never
    see a half-written file. An OS error (full disk, read-only or missing directory) becomes a
    one-line ConvpropError naming ``path``.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise ConvpropError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.close(fd)
        with open(tmp, "wb") as f:  # f.name is the temporary file's path
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno not in _WRITE_ERRNOS:
            raise
        raise ConvpropError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (power loss, not only a killed process); best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))
