"""Working memory of a training batch, estimated from the layer shapes before anything is allocated.

One batch's forward pass keeps every layer's maps for the backward pass; the backward pass adds a
delta of each and some temporaries. The estimate is :data:`TRAIN_FACTOR` times the values one
forward pass allocates per image (:attr:`convprop.engine.network.Network.plan`), times the
dtype's size, times the batch: for the toolbox's 28x28-6c5-s2-12c5-s2-10o network in float64
about 150 KB per image (a 60,000-image batch: 9 GB, as measured).
"""

from __future__ import annotations

import os

from ..errors import ConvpropError

#: Forward maps + deltas + temporaries, per forward value.
TRAIN_FACTOR = 3
#: Default cap on one batch's estimated working memory, in MiB; ``CONVPROP_MAX_BATCH_MB`` overrides it.
MAX_BATCH_MB = 2048


def batch_bytes(net, n: int) -> int:
    """Estimated working memory (bytes) of training ``net`` on a batch of ``n`` images."""
    return TRAIN_FACTOR * net.plan.values * net.dtype.itemsize * n


def max_batch_bytes() -> int:
    """The cap in bytes: ``CONVPROP_MAX_BATCH_MB`` if set (a positive number), else MAX_BATCH_MB."""
    text = os.environ.get("CONVPROP_MAX_BATCH_MB", "")
    try:
        mb = float(text) if text else MAX_BATCH_MB
    except ValueError:
        raise ConvpropError(f"CONVPROP_MAX_BATCH_MB must be a number of MiB, got {text!r}") from None
    if not mb > 0:
        raise ConvpropError(f"CONVPROP_MAX_BATCH_MB must be positive, got {text!r}")
    return int(mb * (1 << 20))


def check_batch(net, batch_size: int, n_images: int) -> None:
    """Refuse a batch whose estimated working memory exceeds the cap, saying the estimate and the way out.

    Raises
    ------
    ConvpropError
    """
    n = min(batch_size, n_images)
    need, cap = batch_bytes(net, n), max_batch_bytes()
    if need > cap:
        fits = max(1, cap // batch_bytes(net, 1))
        raise ConvpropError(
            f"--batch-size {batch_size}: one batch of {n} images would need about {need / 2**30:.1f} GiB of "
            f"working memory (estimated from the layer shapes of {net.spec}, {net.dtype.name}), more than the "
            f"{cap / 2**30:.1f} GiB cap; use --batch-size {fits} or less, or raise the cap with "
            f"CONVPROP_MAX_BATCH_MB")
