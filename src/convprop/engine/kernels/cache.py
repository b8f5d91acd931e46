"""One freshness stamp for the cached code of every kernel module, not one per file.

Numba's disk cache (``cache=True``) keys a function's compiled code on a hash
of the function's own source file. A kernel that calls kernels of another
module has their code compiled into its own, so after an edit of that other
module (say the input gradient's kernel in ``conv.py``) the caller (the
one-call training step in ``stack.py``) kept loading the old code: the two
paths of the engine then disagreed, silently. Here the kernels' cache
locators add a hash of all of this package's sources to the stamp, so an edit
of any kernel module recompiles every kernel. An installed release never
changes its files; this is for anyone who edits them.
"""

from __future__ import annotations

import functools
import hashlib
import os

#: The folder of the kernel modules: only functions defined in its files get the shared stamp.
KERNELS_DIR = os.path.dirname(os.path.abspath(__file__))


def in_kernels_dir(path: str) -> bool:
    """Whether the source file ``path`` is one of the kernel modules (not a file elsewhere)."""
    return os.path.dirname(os.path.abspath(path)) == KERNELS_DIR


@functools.lru_cache(maxsize=8)
def _hash_files(key: tuple) -> str:
    digest = hashlib.sha256()
    for name, _mtime, _size in key:
        digest.update(name.encode())
        with open(os.path.join(KERNELS_DIR, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def sources_stamp() -> str:
    """A SHA-256 of every ``.py`` file of the kernels package (names and contents), re-read when one changes."""
    key = []
    for name in sorted(os.listdir(KERNELS_DIR)):
        if name.endswith(".py") and not name.startswith("."):  # not an editor's lock link (.#conv.py)
            try:
                st = os.stat(os.path.join(KERNELS_DIR, name))
            except OSError:
                continue
            key.append((name, st.st_mtime_ns, st.st_size))
    return _hash_files(tuple(key))


def _stamped(base: type) -> type:
    """``base`` (a Numba cache locator) for the kernels' files only, with :func:`sources_stamp` in its stamp."""

    class KernelsLocator(base):
        def get_source_stamp(self):
            return (super().get_source_stamp(), sources_stamp())

        @classmethod
        def from_function(cls, py_func, py_file):
            if not in_kernels_dir(py_file):
                return None
            return super().from_function(py_func, py_file)

    KernelsLocator.__name__ = KernelsLocator.__qualname__ = f"Kernels{base.__name__.lstrip('_')}"
    return KernelsLocator


def install() -> bool:
    """Put the kernels' locators first in Numba's list (once); False where this Numba has no such list."""
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    names = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
    bases = [getattr(caching, name, None) or getattr(caching, "_" + name, None) for name in names]
    if impl is None or None in bases or not isinstance(getattr(impl, "_locator_classes", None), list):
        return False
    if not any(getattr(c, "__name__", "").startswith("Kernels") for c in impl._locator_classes):
        impl._locator_classes[:0] = [_stamped(base) for base in bases]
    return True
