"""``.mat`` files for the façade: toolbox structs in, toolbox structs out.

The file format, its checks and the Network-level functions live in
:mod:`convprop.formats.matlab`; here a file's network becomes the struct that
``cnnsetup`` makes (and a struct becomes a file) so that ``convprop.dlt``
speaks structs only.
"""

from __future__ import annotations

import os

from ..engine.network import Network
from ..formats import matlab
from . import structs
from .structs import Struct

__all__ = ["load_mat", "save_mat"]


def load_mat(
    path: str | os.PathLike, *, name: str | None = None, image_size: tuple[int, int] | None = None
) -> Struct:
    """Load a toolbox ``cnn`` struct from a MATLAB/Octave ``.mat`` file, as a façade struct.

    Parameters
    ----------
    path : str or path-like
        A file written by ``save(path, 'cnn', '-v7')`` in MATLAB or Octave, or
        by :func:`save_mat`.
    name : str, optional
        The variable to read (by default the only struct with a ``layers``
        field; ``cnn`` or ``net`` preferred).
    image_size : (int, int), optional
        Input height and width, for a file that does not tell them (see
        :func:`convprop.formats.matlab.load_mat`).

    Returns
    -------
    dict
        The struct that :func:`~convprop.dlt.cnnsetup` makes (``layers`` with
        ``type``, ``outputmaps``, ``kernelsize``, ``scale``, ``k``, ``b``;
        ``ffW``, ``ffb``), holding the file's parameters, checked, in
        float64, plus ``rL`` when the file has it. The last batch's state
        (``a``, ``d``, ``dk``, ``o``, …) is not read: run ``cnnff`` /
        ``cnnbp`` to make it again.

    Raises
    ------
    ConvpropError
        As :func:`convprop.formats.matlab.load_mat` (missing file, not a .mat
        file, v7.3, no valid toolbox network).

    Examples
    --------
    >>> cnn = load_mat("cnn.mat")                       # doctest: +SKIP
    >>> er, bad = cnntest(cnn, test_x, test_y)          # doctest: +SKIP
    """
    return structs.from_network(matlab.load_mat(path, name=name, image_size=image_size))


def save_mat(
    cnn: Struct | Network, path: str | os.PathLike, *, name: str = "cnn", image_size: tuple[int, int] | None = None
) -> None:
    """Save a façade struct as a toolbox ``cnn`` struct that MATLAB/Octave load and run with ``cnnff``.

    Parameters
    ----------
    cnn : dict or Network
        A struct of :mod:`convprop.dlt` (its ``layers``, ``k``, ``b``,
        ``ffW``, ``ffb`` and ``rL`` are written; the last batch's state is
        not). A :class:`~convprop.Network` is accepted too and saved as
        :func:`convprop.formats.matlab.save_mat` saves it.
    path : str or path-like
        Destination (``.mat`` is not appended); written atomically.
    name : str
        MATLAB variable name (default ``cnn``).
    image_size : (int, int), optional
        Input height and width, needed only for a struct without
        ``layers[0]["a"]`` (no cnnff yet) whose last maps are not square.
    """
    if isinstance(cnn, Network):
        matlab.save_mat(cnn, path, name=name)
        return
    cnn = structs.check_struct(cnn, "save_mat")
    net = structs.checked_network(cnn, None, given_size=image_size)
    rl = cnn.get("rL")
    if rl is not None:
        net.rL = structs.as_rl(rl)
    matlab.save_mat(net, path, name=name)
