"""Layer specs as text: ``6c5-s2-12c5-s2`` ↔ a list of layers.

Grammar (tokens joined by ``-``):

* ``<maps>c<k>`` or ``<maps>c<kh>x<kw>`` — :class:`~convprop.layers.Conv` with
  ``maps`` output maps and a k×k (kh×kw) kernel;
* ``s<scale>`` — :class:`~convprop.layers.Subsample` (mean pooling by ``scale``).

:attr:`Network.spec <convprop.network.Network.spec>` adds the input size in
front and the outputs at the end (``28x28-6c5-s2-12c5-s2-10o``);
:func:`parse_network_spec` reads that longer form too.
"""

from __future__ import annotations

import re

from .errors import ConvpropError
from .layers import Conv, Input, Layer, Subsample

_CONV = re.compile(r"(\d+)c(\d+)(?:x(\d+))?")
_POOL = re.compile(r"s(\d+)")
_INPUT = re.compile(r"(\d+)x(\d+)(?:x(\d+))?")
_OUTPUT = re.compile(r"(\d+)o")


def _positive(text: str, what: str, token: str, spec: str) -> int:
    value = int(text)
    if value <= 0:
        raise ConvpropError(f"layer spec {spec!r}: {what} in {token!r} must be positive")
    return value


def parse_layers(spec: str) -> list[Layer]:
    """The layers named by ``spec``, e.g. ``"6c5-s2-12c5-s2"``.

    Parameters
    ----------
    spec : str
        Tokens ``<maps>c<kernel>`` / ``<maps>c<kh>x<kw>`` and ``s<scale>``
        joined by ``-`` (spaces are ignored).

    Returns
    -------
    list of Layer
        Conv and Subsample layers, without the Input.

    Raises
    ------
    ConvpropError
        For an empty spec, an unknown token or a zero size.
    """
    if not isinstance(spec, str):
        raise ConvpropError(f"layer spec must be a string such as '6c5-s2-12c5-s2', got {spec!r}")
    text = spec.replace(" ", "").lower()
    if not text:
        raise ConvpropError("layer spec is empty; expected e.g. '6c5-s2-12c5-s2'")
    layers: list[Layer] = []
    for token in text.split("-"):
        if m := _CONV.fullmatch(token):
            maps = _positive(m[1], "the number of maps", token, spec)
            kh = _positive(m[2], "the kernel size", token, spec)
            kw = _positive(m[3], "the kernel width", token, spec) if m[3] else kh
            layers.append(Conv(maps, (kh, kw) if kw != kh else kh))
        elif m := _POOL.fullmatch(token):
            layers.append(Subsample(_positive(m[1], "the scale", token, spec)))
        else:
            raise ConvpropError(
                f"layer spec {spec!r}: cannot read {token!r}; use '<maps>c<kernel>' (e.g. 6c5) "
                f"or 's<scale>' (e.g. s2), joined by '-'"
            )
    return layers


def format_layers(layers) -> str:
    """The spec of Conv / Subsample layers (an Input is skipped): inverse of :func:`parse_layers`."""
    tokens = []
    for layer in layers:
        if isinstance(layer, Input):
            continue
        if not isinstance(layer, (Conv, Subsample)):
            raise ConvpropError(f"no spec token for layer {layer!r}")
        tokens.append(layer.spec())
    return "-".join(tokens)


def parse_network_spec(spec: str) -> tuple[tuple[int, int, int] | None, list[Layer], int | None]:
    """Read ``[HxW[xC]-]layers[-<K>o]``: (input shape or None, layers, n_outputs or None)."""
    if not isinstance(spec, str):
        raise ConvpropError(f"network spec must be a string, got {spec!r}")
    tokens = spec.replace(" ", "").lower().split("-")
    shape = n_outputs = None
    if tokens and (m := _INPUT.fullmatch(tokens[0])):
        shape = tuple(_positive(v, "the input size", tokens[0], spec) for v in (m[1], m[2], m[3] or "1"))
        tokens = tokens[1:]
    if tokens and (m := _OUTPUT.fullmatch(tokens[-1])):
        n_outputs = _positive(m[1], "the number of outputs", tokens[-1], spec)
        tokens = tokens[:-1]
    return shape, parse_layers("-".join(tokens)), n_outputs
