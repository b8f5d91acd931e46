"""The toolbox's initialisation (cnnsetup), drawn in the toolbox's order."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .layers import Conv, Dense
from .layout import ffw_from_dlt

if TYPE_CHECKING:
    from .network import Network


def _uniform(rng: np.random.Generator, shape: tuple[int, int], bound: float) -> np.ndarray:
    """(rand(shape) − 0.5)·2·bound, filled column-major like MATLAB's rand."""
    return (rng.random(shape[0] * shape[1]).reshape(shape, order="F") - 0.5) * 2 * bound


#: Weight initialisations that :class:`~convprop.network.Network` accepts as ``init``.
INITS = ("toolbox", "he")


def toolbox_init(net: "Network", rng: np.random.Generator, init: str = "toolbox") -> None:
    """Set every parameter as cnnsetup does.

    k{i}{j} = (rand(k) − 0.5)·2·sqrt(6/(fan_in + fan_out)), fan_in = inputmaps·k²,
    fan_out = outputmaps·k², drawn for j = 1..outputmaps, then i = 1..inputmaps;
    b{j} = 0; ffW = (rand(onum, fvnum) − 0.5)·2·sqrt(6/(onum + fvnum)); ffb = 0.
    Values are drawn in float64 and then cast to the network's dtype.

    Beyond the toolbox, the same scheme: a "correlation" Conv keeps the drawn
    kernel unflipped (its :attr:`~convprop.layers.Conv.kernels` are the drawn
    values in either mode); a Dense layer's weight (units, fan_in) is drawn
    like ffW, uniform in ±sqrt(6/(fan_in + units)), in layer order; an output
    on a Dense layer's vector takes ffW without the toolbox's column permutation.

    ``init="he"``: the hidden Conv and Dense layers take He's bound
    sqrt(6/fan_in) instead (uniform; variance 2/fan_in, suited to ReLU), drawn
    in the same order; the output layer keeps the toolbox's.
    """
    for layer in net.layers:
        if isinstance(layer, Conv):
            weight = layer.params["weight"]
            bound = _bound(layer, init)
            flip = slice(None, None, -1 if layer.mode == "convolution" else 1)
            for j in range(weight.shape[0]):
                for i in range(weight.shape[1]):
                    weight[j, i] = _uniform(rng, layer.kernelsize, bound)[flip, flip]
            layer.params["bias"][...] = 0
        elif isinstance(layer, Dense):
            weight = layer.params["weight"]
            weight[...] = _uniform(rng, weight.shape, _bound(layer, init))
            layer.params["bias"][...] = 0
    out = net.output.params
    n_out, n_feat = out["weight"].shape
    ffw = _uniform(rng, (n_out, n_feat), np.sqrt(6 / (n_out + n_feat)))
    out["weight"][...] = ffw_from_dlt(ffw, net.map_shape) if len(net.map_shape) == 3 else ffw
    out["bias"][...] = 0


def _bound(layer, init: str) -> float:
    """Half-width of the uniform draw: sqrt(6/(fan_in + fan_out)) (toolbox) or sqrt(6/fan_in) (He)."""
    return float(np.sqrt(6 / layer.fan_in if init == "he" else 6 / (layer.fan_in + layer.fan_out)))
