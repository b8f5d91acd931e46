"""The settings of a ``convprop train`` run: the flags checked before anything is loaded, and the
``config`` a checkpoint carries checked (types, and agreement with its network) before resuming."""

from __future__ import annotations

import math

from ..errors import ConvpropError
from ._common import DATASETS
from ._data import IMAGES

#: Settings a checkpoint of the CLI must hold, with their types.
REQUIRED = {"dataset": str, "layers": str, "batch_size": int, "alpha": (int, float), "dtype": str, "seed": int}
#: Settings added over time, with the value a checkpoint without them means.
DEFAULTS = {"optimizer": "sgd", "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}


def check_arguments(args) -> None:
    """Every number and spec among ``train``'s flags, checked before any file is read or created.

    Raises
    ------
    ConvpropError
        Naming the flag and what it accepts.
    """
    def bad(flag: str, value, what: str) -> ConvpropError:
        return ConvpropError(f"{flag} must be {what}, got {value!r}")

    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise bad(flag, value, "a positive integer")
    if args.alpha is not None and not (math.isfinite(args.alpha) and args.alpha > 0):
        raise bad("--alpha", args.alpha, "a positive finite number")
    if args.momentum is not None and not 0 <= args.momentum < 1:
        raise bad("--momentum", args.momentum, "in [0, 1)")
    if args.weight_decay is not None and not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        raise bad("--weight-decay", args.weight_decay, "a finite number >= 0")
    if args.seed is not None and not 0 <= args.seed < 2**63:
        raise bad("--seed", args.seed, "an integer >= 0")
    if args.layers is not None:
        from ..engine.spec import parse_layers

        parse_layers(args.layers)


def check_run_config(config: dict, net, where: str) -> dict:
    """A checkpoint's ``config``, complete and consistent with its network ``net``; or a ConvpropError.

    Returns
    -------
    dict
        ``config`` with the settings added over time filled in (:data:`DEFAULTS`, the output kind
        from the network).
    """
    from ..engine.spec import format_layers, parse_layers

    for key, kind in REQUIRED.items():
        value = config.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConvpropError(f"{where}: the run's config has no valid {key!r} ({value!r:.60}); "
                                "this checkpoint cannot be resumed by convprop train")
    config = {**DEFAULTS, "output": net.output_kind, **config}
    if config["dataset"] not in (*DATASETS, IMAGES) or config["batch_size"] < 1 or not config["alpha"] > 0:
        raise ConvpropError(f"{where}: the run's config is invalid (dataset {config['dataset']!r:.40}, "
                            f"batch_size {config['batch_size']}, alpha {config['alpha']})")
    try:
        layers = format_layers(parse_layers(config["layers"]))
    except ConvpropError as exc:
        raise ConvpropError(f"{where}: the run's config: {exc}") from None
    clash = [f"{key} {mine!r:.60} (network: {theirs!r})" for key, mine, theirs in (
        ("layers", layers, format_layers(net.layers)), ("dtype", config["dtype"], net.dtype.name),
        ("output", config["output"], net.output_kind)) if mine != theirs]
    if clash:
        raise ConvpropError(f"{where}: the run's config disagrees with the network it holds: {', '.join(clash)}")
    return config
