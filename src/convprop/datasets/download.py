"""Downloading dataset files from public mirrors, verified by SHA-256, written atomically.

Mirrors are base URLs serving ``<base>/<name>.gz``; ``$CONVPROP_MIRRORS`` (comma-separated,
``{name}`` is replaced by the dataset's name) replaces the built-in list.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import ConvpropError
from .._files import atomic_write
from .catalog import DatasetSpec, FileSpec

__all__ = ["mirrors_for", "download_file", "fetch_split"]

_CHUNK = 1 << 16
USER_AGENT = "convprop (Python urllib)"


class _Rejected(Exception):
    """A mirror answered but its file is wrong (checksum, size): try the next mirror."""


def mirrors_for(spec: DatasetSpec) -> list[str]:
    """Base URLs to try, in order: ``$CONVPROP_MIRRORS`` if set, else the catalogue's."""
    env = os.environ.get("CONVPROP_MIRRORS", "")
    bases = [b.strip() for b in env.split(",") if b.strip()] if env.strip() else spec.mirrors
    return [b.replace("{name}", spec.name).rstrip("/") for b in bases]


def _verify(path: Path, spec_file: FileSpec, gz_digest: str) -> None:
    """Check the downloaded file: publisher's .gz checksum, else its decompressed content's."""
    if spec_file.gz_sha256 is not None and gz_digest == spec_file.gz_sha256:
        return
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with (gzip.open if gz else open)(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
                size += len(block)
                if size > spec_file.size:
                    raise _Rejected(f"more than the expected {spec_file.size} bytes")
    except (OSError, EOFError, zlib.error) as exc:
        raise _Rejected(f"corrupt gzip data ({exc})") from None
    if size != spec_file.size or digest.hexdigest() != spec_file.sha256:
        raise _Rejected(f"SHA-256 mismatch (got {digest.hexdigest()[:12]}…, expected"
                        f" {spec_file.sha256[:12]}…)")


def _fetch(url: str, dest: Path, spec_file: FileSpec, timeout: float, progress: bool) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        digest, got = hashlib.sha256(), 0
        with atomic_write(dest, suffix=".part") as out, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024,
            desc=spec_file.gz_name, disable=not progress, leave=False,
        ) as bar:
            while block := response.read(_CHUNK):
                out.write(block)
                digest.update(block)
                got += len(block)
                bar.update(len(block))
                if got > 4 * spec_file.size + (1 << 20):
                    raise _Rejected("server sends far more data than the file holds")
            if total is not None and got != total:
                raise http.client.IncompleteRead(b"", total - got)
            out.flush()
            _verify(Path(out.name), spec_file, digest.hexdigest())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable ({exc.reason})"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection dropped mid-download"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, _Rejected):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def download_file(spec: DatasetSpec, spec_file: FileSpec, dest_dir: Path, *,
                  progress: bool = True, timeout: float = 30.0, attempts: int = 2) -> Path:
    """Download one file into ``dest_dir``, trying each mirror (``attempts`` times for
    transient network errors), verify its SHA-256 and rename it into place.

    Returns
    -------
    Path
        ``dest_dir / <stem>.gz``.

    Raises
    ------
    ConvpropError
        When every mirror fails; the message lists each URL with its failure and the
        environment variables that point convprop elsewhere.
    """
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvpropError(f"{dest_dir}: cannot create the cache directory"
                            f" ({exc.strerror or exc}); set CONVPROP_CACHE") from None
    dest = dest_dir / spec_file.gz_name
    failures = []
    for base in mirrors_for(spec):
        url = f"{base}/{spec_file.gz_name}"
        for _ in range(max(1, attempts)):
            try:
                _fetch(url, dest, spec_file, timeout, progress)
                return dest
            except ConvpropError:
                raise  # cannot write the cache: no mirror will fix that
            except (_Rejected, urllib.error.HTTPError, ValueError) as exc:
                failures.append(f"{url} ({_reason(exc)})")
                break  # the server answered: asking again would get the same file
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                failures.append(f"{url} ({_reason(exc)})")
    raise ConvpropError(
        f"could not download {spec.name} file {spec_file.gz_name}: tried "
        + "; ".join(dict.fromkeys(failures) or ["no mirrors (CONVPROP_MIRRORS is empty)"])
        + ". Set CONVPROP_MIRRORS to other base URLs, or put the files in a directory and name it"
        " (--data-dir on the command line, path= in Python) or set CONVPROP_DATA"
    )


def fetch_split(spec: DatasetSpec, split: str, dest_dir: Path, *, progress: bool = True,
                timeout: float = 30.0) -> tuple[Path, Path]:
    """Download what is missing of (images, labels) of ``split`` into ``dest_dir``."""
    paths = []
    for spec_file in spec.files[split]:
        existing = dest_dir / spec_file.gz_name
        paths.append(existing if existing.is_file()
                     else download_file(spec, spec_file, dest_dir, progress=progress,
                                        timeout=timeout))
    return paths[0], paths[1]
