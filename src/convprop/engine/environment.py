"""The engine's environment variables, read at every call in one dictionary lookup.

A training step asks for its thread count and engine (``CONVPROP_THREADS``,
``CONVPROP_ENGINE``) five or six times. ``os.environ.get`` is five Python-level
calls (the mapping encodes the name and decodes the value): 0.6 µs each, and
4–5 µs each on the caches a step's kernels have just cooled, 9–12 µs of a
one-thread step in the training loop (measured).

CPython's ``os.environ`` keeps what it maps in a plain dictionary, ``os.environ._data``
(bytes to bytes on POSIX), which every change made through ``os.environ`` updates
(``monkeypatch.setenv`` included; ``os.putenv`` alone changes neither). :func:`getenv`
looks the encoded name up there and decodes a value only when it is another object than the
last one read; wherever that dictionary is not there as described (Windows, another
implementation, a replaced ``os.environ``), it asks ``os.environ`` itself. Either way it returns
what ``os.environ.get(name)`` returns.
"""

from __future__ import annotations

import os

#: name → (its key in os.environ._data, the last raw value read, that value decoded)
_last: dict[str, tuple[bytes, object, str | None]] = {}


def getenv(name: str) -> str | None:
    """``os.environ.get(name)``, read now."""
    environ = os.environ
    data = getattr(environ, "_data", None) if os.name == "posix" and type(environ) is os._Environ else None
    if type(data) is not dict:
        return environ.get(name)
    last = _last.get(name)
    if last is None:
        last = _last[name] = (os.fsencode(name), None, None)
    raw = data.get(last[0])
    if raw is last[1]:
        return last[2]
    value = None if raw is None else os.fsdecode(raw)
    _last[name] = (last[0], raw, value)
    return value


__all__ = ["getenv"]
