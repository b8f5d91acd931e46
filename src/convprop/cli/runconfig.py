"""The settings of a ``convprop train`` run: the flags checked before anything is loaded, and the
``config`` a checkpoint carries checked (types, and agreement with its network) before resuming."""

from __future__ import annotations

from .._validation import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Interval, check_param
from ..errors import ConvpropError
from ._common import DATASETS
from ._data import IMAGES

#: Settings a checkpoint of the CLI must hold, with their types.
REQUIRED = {"dataset": str, "layers": str, "batch_size": int, "alpha": (int, float), "dtype": str, "seed": int}
#: Seeds NumPy's generators and the checkpoint's JSON take.
SEED = Interval(int, 0, 2**63, closed="left", name="an integer in [0, 2**63)")
#: Settings added over time, with the value a checkpoint without them means.
DEFAULTS = {"optimizer": "sgd", "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}


def check_arguments(args) -> None:
    """Every number and spec among ``train``'s flags, checked before any file is read or created.

    Raises
    ------
    ConvpropError
        Naming the flag and what it accepts.
    """
    for flag, value, constraint in (("--epochs", args.epochs, POSITIVE_INT),
                                    ("--batch-size", args.batch_size, POSITIVE_INT),
                                    ("--alpha", args.alpha, POSITIVE),
                                    ("--momentum", args.momentum, Interval(float, 0, 1, closed="left")),
                                    ("--weight-decay", args.weight_decay, NON_NEGATIVE),
                                    ("--seed", args.seed, SEED)):
        if value is not None:  # not given: the default (or the checkpoint's)
            check_param(flag, value, constraint)
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
