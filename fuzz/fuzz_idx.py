"""atheris target: :func:`convprop.formats.idx.read_idx` (raw and gzip IDX files) and the streaming
reader :func:`convprop.formats.idx.iter_idx` that ``convprop predict`` uses.

Inputs starting with ``G`` are parameters for :func:`generators.idx` (gzip streams of up to 1 GiB
of zeros under headers of the fuzzer's choosing). The whole-file reader runs with a 64 MiB cap
(``max_bytes``) so that a legitimately big file stays inside the fuzzer's address-space limit.
"""

import atheris

import _harness  # noqa: F401  (puts src/ on sys.path)
import generators
import numpy  # noqa: F401  (not instrumented: only the reader is)

with atheris.instrument_imports(include=["convprop", "gzip"]):
    import gzip  # the gzip path of the reader is part of the target

    from convprop.formats import idx as _idx

CAP = 64 << 20
#: The streaming reader is followed for this many bytes (its later chunks repeat the first ones).
STREAMED = 4 << 20


def one_input(path: str) -> None:
    try:
        _idx.read_idx(path, max_bytes=CAP)
    finally:  # the streaming reader on every input too, in 1000-entry chunks, for STREAMED bytes
        shape, dtype, chunks = _idx.iter_idx(path, 1000)
        seen = 0
        for chunk in chunks:
            seen += chunk.nbytes
            if seen > STREAMED:
                chunks.close()
                break


if __name__ == "__main__":
    _harness.main(one_input, ".idx", generators.idx)
