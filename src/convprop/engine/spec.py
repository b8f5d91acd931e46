"""Layer specs as text: ``6c5-s2-12c5-s2`` ↔ a list of layers.

Grammar (tokens joined by ``-``)::

    conv   := <maps> c <kh> [x <kw>] [act] [p <n> | ps] [/ <stride>]
    pool   := s <scale>              Subsample (the toolbox's mean pooling)
            | m <scale> [c]          MaxPool (c: crop=True)
    dense  := <units> f [act]        Dense
    act    := (nothing): sigmoid | r: relu | t: tanh | i: identity
            | l: leaky ReLU, slope 0.01 | l<slope>, e.g. l0.2

* ``<maps>c<k>`` or ``<maps>c<kh>x<kw>`` — :class:`~convprop.layers.Conv` with
  ``maps`` output maps and a k×k (kh×kw) kernel: the toolbox's sigmoid 'valid'
  convolution. ``cc`` instead of ``c`` sets ``mode="correlation"``; ``p<n>``
  pads n zeros on every side, ``ps`` is ``padding="same"``; ``/<s>`` is the
  stride. ``6c5rps`` is ``Conv(6, 5, "relu", padding="same")``, ``8c3x2t/2``
  is ``Conv(8, (3, 2), "tanh", stride=2)``.
* ``s<scale>`` — :class:`~convprop.layers.Subsample` (mean pooling by ``scale``).
* ``m<scale>`` — :class:`~convprop.layers.MaxPool`; ``m<scale>c`` crops sizes
  that do not divide.
* ``<units>f`` — :class:`~convprop.layers.Dense`, e.g. ``120fr`` (ReLU).

Every layer's ``spec()`` gives its token back. :attr:`Network.spec
<convprop.network.Network.spec>` adds the input size in front and the
outputs at the end (``28x28-6c5-s2-12c5-s2-10o``; ``-10sm`` for softmax
outputs); :func:`parse_network_spec` reads that longer form too.
"""

from __future__ import annotations

import re

from . import activations
from ..errors import ConvpropError
from .layers import Conv, Dense, Input, Layer, MaxPool, Subsample

_ACT = r"(?P<act>[rti]|l(?P<slope>\d*\.\d+|\d+)?)?"
_CONV = re.compile(r"(\d+)(cc?)(\d+)(?:x(\d+))?" + _ACT + r"(?:p(?P<pad>\d+|s))?(?:/(?P<stride>\d+))?")
_POOL = re.compile(r"s(\d+)")
_MAXPOOL = re.compile(r"m(\d+)(c)?")
_DENSE = re.compile(r"(\d+)f" + _ACT)
_INPUT = re.compile(r"(\d+)x(\d+)(?:x(\d+))?")
_OUTPUT = re.compile(r"(\d+)(o|sm)")


def _positive(text: str, what: str, token: str, spec: str) -> int:
    try:
        value = int(text)
    except ValueError:  # more digits than Python converts (found by fuzz/fuzz_checkpoint.py)
        raise ConvpropError(f"layer spec {spec!r:.60}: {what} in {token!r:.40} is not a usable number") from None
    if value <= 0:
        raise ConvpropError(f"layer spec {spec!r}: {what} in {token!r} must be positive")
    return value


def parse_layers(spec: str, *, allow_empty: bool = False) -> list[Layer]:
    """The layers named by ``spec``, e.g. ``"6c5-s2-12c5-s2"``.

    Parameters
    ----------
    spec : str
        Tokens ``<maps>c<kernel>`` / ``<maps>c<kh>x<kw>`` (with optional
        activation, padding and stride), ``s<scale>``, ``m<scale>`` and
        ``<units>f`` joined by ``-`` (spaces are ignored); see the module's
        grammar.
    allow_empty : bool
        Whether ``""`` may stand for no hidden layer at all (the estimator's
        output layer on the pixels); else an empty spec is an error.

    Returns
    -------
    list of Layer
        Conv, Subsample, MaxPool and Dense layers, without the Input.

    Raises
    ------
    ConvpropError
        For an empty spec, an unknown token or a zero size.
    """
    if not isinstance(spec, str):
        raise ConvpropError(f"layer spec must be a string such as '6c5-s2-12c5-s2', got {spec!r}")
    text = spec.replace(" ", "").lower()
    if not text:
        if allow_empty:
            return []
        raise ConvpropError("layer spec is empty; expected e.g. '6c5-s2-12c5-s2'")
    layers: list[Layer] = []
    for token in text.split("-"):
        layer = parse_token(token, spec)
        if layer is None:
            raise ConvpropError(
                f"layer spec {spec!r}: cannot read {token!r}; use '<maps>c<kernel>' (e.g. 6c5, 6c5rps/2), "
                f"'s<scale>' (e.g. s2), 'm<scale>' (e.g. m2) or '<units>f' (e.g. 120fr), joined by '-'"
            )
        layers.append(layer)
    return layers


def parse_token(token: str, spec: str = "") -> Layer | None:
    """The layer of one (lower-case) token, or None when the token is not in the grammar."""
    spec = spec or token
    if m := _CONV.fullmatch(token):
        maps = _positive(m[1], "the number of maps", token, spec)
        kh = _positive(m[3], "the kernel size", token, spec)
        kw = _positive(m[4], "the kernel width", token, spec) if m[4] else kh
        pad = m["pad"]
        return Conv(
            maps,
            (kh, kw) if kw != kh else kh,
            _activation(m["act"], m["slope"], token, spec),
            padding="valid" if pad is None else "same" if pad == "s" else int(pad),
            stride=_positive(m["stride"], "the stride", token, spec) if m["stride"] else 1,
            mode="correlation" if m[2] == "cc" else "convolution",
        )
    if m := _POOL.fullmatch(token):
        return Subsample(_positive(m[1], "the scale", token, spec))
    if m := _MAXPOOL.fullmatch(token):
        return MaxPool(_positive(m[1], "the scale", token, spec), crop=bool(m[2]))
    if m := _DENSE.fullmatch(token):
        return Dense(_positive(m[1], "the number of units", token, spec), _activation(m["act"], m["slope"], token, spec))
    return None


def _activation(code: str | None, slope: str | None, token: str, spec: str) -> activations.Activation:
    try:
        return activations.from_code((code or "")[:1], slope)
    except ConvpropError as exc:
        raise ConvpropError(f"layer spec {spec!r}: {token!r}: {exc}") from None


def format_layers(layers) -> str:
    """The spec of Conv / Subsample / MaxPool / Dense layers (an Input is skipped): inverse of :func:`parse_layers`."""
    tokens = []
    for layer in layers:
        if isinstance(layer, Input):
            continue
        if not isinstance(layer, (Conv, Subsample, MaxPool, Dense)):
            raise ConvpropError(f"no spec token for layer {layer!r}")
        tokens.append(layer.spec())
    return "-".join(tokens)


def parse_network_spec(spec: str) -> tuple[tuple[int, int, int] | None, list[Layer], int | None]:
    """Read ``[HxW[xC]-]layers[-<K>o|-<K>sm]``: (input shape or None, layers, n_outputs or None).

    The output kind (``o`` sigmoid, ``sm`` softmax) is :func:`output_kind`'s.
    """
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


def output_kind(spec: str) -> str:
    """"softmax" when a network spec ends in ``-<K>sm``, else "sigmoid" (the toolbox's ``-<K>o``)."""
    m = _OUTPUT.fullmatch(spec.replace(" ", "").lower().split("-")[-1])
    return "softmax" if m and m[2] == "sm" else "sigmoid"
