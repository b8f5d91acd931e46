"""The training loop (cnntrain): epochs, mini-batches, SGD, the smoothed loss rL."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_images, check_targets, positive_int
from ..errors import ConvpropError
from ..engine.network import Network
from ..engine.parallel import blas_limit
from ..engine.optim import Optimizer


@dataclass
class History:
    """What a training run leaves behind.

    Attributes
    ----------
    rL : list of float
        The toolbox's smoothed loss: ``rL[0]`` is the first batch's loss, then
        one entry per batch, ``rL[t+1] = 0.99·rL[t] + 0.01·L[t]``
        (length = number of batches + 1, exactly as cnntrain keeps it).
    L : list of float
        The loss of every batch, before its update.
    epoch_seconds : list of float
        Wall time of each epoch.
    """

    rL: list[float] = field(default_factory=list)
    L: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)


#: Called after every batch as callback(epoch, batch, n_batches, L, rL).
BatchCallback = Callable[[int, int, int, float, float], None]


def batch_orders(
    n: int, epochs: int, shuffle: bool, seed: int | np.random.Generator | None, order: np.ndarray | None
) -> np.ndarray:
    """The sample order of every epoch, shape (epochs, n).

    A fresh random permutation per epoch (from ``seed``) when ``shuffle``;
    0..n−1 when not; or the given ``order``, one permutation of shape (n,)
    used every epoch or one per epoch of shape (epochs, n).
    """
    if order is not None:
        orders = np.asarray(order)
        if orders.ndim == 1:
            orders = np.broadcast_to(orders, (epochs, orders.shape[0]))
        if orders.shape != (epochs, n) or orders.dtype.kind not in "iu":
            raise ConvpropError(
                f"order must be a permutation of 0..{n - 1}, shape ({n},) or ({epochs}, {n}); "
                f"got shape {np.shape(order)} of dtype {np.asarray(order).dtype}"
            )
        if not all(np.array_equal(np.sort(row), np.arange(n)) for row in orders):
            raise ConvpropError(f"order must be a permutation of 0..{n - 1}")
        return orders
    if not shuffle:
        return np.broadcast_to(np.arange(n), (epochs, n))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(epochs)])


def train(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 1,
    batch_size: int = 50,
    alpha: float = 1.0,
    shuffle: bool = True,
    seed: int | np.random.Generator | None = None,
    order: np.ndarray | None = None,
    drop_last: bool = False,
    callback: BatchCallback | None = None,
    optimizer: Optimizer | None = None,
) -> History:
    """Train ``net`` in place with plain mini-batch SGD, as cnntrain does.

    Parameters
    ----------
    net : Network
    x : array_like, shape (N, H, W) or (N, H, W, C)
        Training images (e.g. MNIST pixels / 255).
    y : array_like, shape (N,) integer labels or (N, n_outputs) targets
    epochs : int
    batch_size : int
    alpha : float
        SGD step.
    shuffle : bool
        A fresh random permutation per epoch (default), else the given order.
    seed : int, Generator or None
        Source of the permutations.
    order : array_like of int, shape (N,) or (epochs, N), optional
        Explicit sample order(s); overrides ``shuffle`` and ``seed``.
    drop_last : bool
        Skip a last partial batch instead of training on it.
    callback : callable, optional
        ``callback(epoch, batch, n_batches, L, rL)`` after every batch.
    optimizer : convprop.optim.Optimizer, optional
        Updates the parameters after every batch (``optimizer.step(net)``) and
        counts epochs for its learning-rate schedule; ``alpha`` is then unused.
        None (default): the toolbox's plain SGD, ``net.step(alpha)``.

    Returns
    -------
    History
        Per-batch losses and the smoothed loss ``rL``.
    """
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    alpha = float(alpha)
    if not np.isfinite(alpha) or alpha <= 0:
        raise ConvpropError(f"alpha must be a positive finite number, got {alpha}")
    maps, _ = check_images(x, net.image_shape, net.dtype, "training images")
    n = maps.shape[0]
    targets = check_targets(y, n, net.n_outputs, net.dtype, "training targets")
    orders = batch_orders(n, epochs, shuffle, seed, order)
    stop = n - n % batch_size if drop_last else n
    if stop == 0:
        raise ConvpropError(f"no complete batch of {batch_size} in {n} images (drop_last=True)")
    n_batches = -(-stop // batch_size)
    history = History()
    with blas_limit():
        for epoch in range(epochs):
            start_time = time.perf_counter()
            for b, start in enumerate(range(0, stop, batch_size)):
                idx = orders[epoch, start : start + batch_size]
                net.forward_batch(maps[idx])
                loss = net.backward_batch(targets[idx])
                if optimizer is None:
                    net.step(alpha)
                else:
                    optimizer.step(net)
                if not history.rL:
                    history.rL.append(loss)
                history.rL.append(0.99 * history.rL[-1] + 0.01 * loss)
                history.L.append(loss)
                if callback is not None:
                    callback(epoch, b, n_batches, loss, history.rL[-1])
            if optimizer is not None:
                optimizer.end_epoch()
            history.epoch_seconds.append(time.perf_counter() - start_time)
    return history
