"""A scikit-learn classifier on convprop networks (needs scikit-learn: ``pip install 'convprop[sklearn]'``).

>>> from convprop.sklearn import CNNClassifier
>>> clf = CNNClassifier("6c5-s2-12c5-s2", max_iter=1, random_state=0)   # doctest: +SKIP
>>> clf.fit(X_train, y_train).score(X_test, y_test)                   # doctest: +SKIP

``X`` is either flat, (n_samples, n_features) as scikit-learn expects (then
each row is an image in row-major order, of shape ``image_shape``), or
images (n_samples, H, W) / (n_samples, H, W, C). It works inside
:class:`~sklearn.pipeline.Pipeline` (with flat X) and
:class:`~sklearn.model_selection.GridSearchCV`.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"convprop.sklearn needs scikit-learn >= 1.6: pip install 'convprop[sklearn]' ({exc})") from exc

from ._validation import (BOOL, NON_NEGATIVE, POSITIVE, POSITIVE_INT, InstanceOf, Interval, Options,
                          check_params)
from .errors import ConvpropError
from .engine.layers import Input, Layer
from .engine.network import OUTPUTS, Network
from .engine.optim import OPTIMIZERS, Optimizer, make_optimizer
from .engine.spec import parse_layers
from .training.loop import train

def _hidden_layers(layers: str | Sequence[Layer]) -> list[Layer]:
    if isinstance(layers, str):
        return parse_layers(layers, allow_empty=True)
    layers = list(layers)
    if not all(isinstance(layer, Layer) and not isinstance(layer, Input) for layer in layers):
        raise ConvpropError("layers must be a spec string or a list of layers (without Input)")
    return layers


def _flatten_images(X):
    """(n, H, W[, C]) arrays → (n, H·W·C) and their image shape; anything else unchanged."""
    ndim = getattr(X, "ndim", None)
    if ndim is None and isinstance(X, (list, tuple)):
        try:
            ndim = np.ndim(X)
        except ValueError:
            return X, None
    if ndim is not None and ndim >= 3:
        arr = np.asarray(X)
        if arr.ndim > 4:
            raise ConvpropError(f"X must be (n, features), (n, H, W) or (n, H, W, C); got shape {arr.shape}")
        shape = arr.shape[1:] + ((1,) if arr.ndim == 3 else ())
        return arr.reshape(arr.shape[0], -1), shape
    return X, None


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """Convolutional network classifier: convprop's CNN behind scikit-learn's API.

    The network is the toolbox's: sigmoid convolutions, mean-pooling
    subsampling, a fully connected sigmoid output unit per class, trained on
    the loss ½·Σ(o − y)² against one-hot targets. The defaults are the
    toolbox's example (``6c5-s2-12c5-s2``, one epoch, batches of 50, plain
    SGD with alpha 1).

    Parameters
    ----------
    layers : str or list of Layer, default "6c5-s2-12c5-s2"
        Hidden layers: a spec (``<maps>c<kernel>``, ``s<scale>``, joined by
        ``-``; ``""`` for none; see :func:`convprop.engine.spec.parse_layers` for ReLU, padding,
        stride, max pooling and dense layers, e.g. ``"6c5rps-m2-16c5r-m2-120fr"``)
        or a list of layer objects (``Conv``, ``Subsample``, ``MaxPool``, ``Dense``).
    output : {"sigmoid", "softmax"}, default "sigmoid"
        The toolbox's sigmoid outputs on ½·Σ(o − y)², or softmax outputs on
        the cross-entropy.
    image_shape : (H, W) or (H, W, C), optional
        Shape of each image when X is flat. None: taken from X when it is
        (n, H, W[, C]); for flat X, a square H = W = √n_features when that is
        an integer, else one row (1, n_features).
    max_iter : int, default 1
        Epochs (passes over the data) in :meth:`fit` (:meth:`partial_fit` does one).
    batch_size : int, default 50
    learning_rate_init : float, default 1.0
        The step size (the toolbox's ``alpha``; around 1e-3 for Adam).
    solver : {"sgd", "adam", "adamw"} or convprop.engine.optim.Optimizer, default "sgd"
        The update rule. An Optimizer instance is copied at each :meth:`fit`
        and used as is (``learning_rate_init``, ``momentum``,
        ``nesterovs_momentum``, ``alpha`` unused).
    momentum : float, default 0
        SGD momentum.
    nesterovs_momentum : bool, default False
        Nesterov momentum for SGD.
    alpha : float, default 0
        Strength of the L2 penalty (scikit-learn's ``alpha``): weight decay for
        "sgd" and "adam", decoupled decay for "adamw".
    dtype : float32, float64 or None, default None
        Type of the network; None follows X (float32 X → float32, anything
        else → float64).
    shuffle : bool, default True
        A fresh random order every epoch.
    random_state : int, RandomState or None
        Seeds the initialisation and the shuffling.
    verbose : bool, default False
        Print the mean loss after every epoch.
    epochs, optimizer, nesterov, weight_decay : deprecated
        convprop 0.1's names of ``max_iter``, ``solver``, ``nesterovs_momentum``
        and ``alpha``; still accepted, with a FutureWarning, until 0.3. (In 0.1
        ``alpha`` was the step; it is now the L2 penalty, as in scikit-learn.)

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        The labels seen (any sortable labels, strings included); output unit
        k stands for ``classes_[k]``.
    n_features_in_ : int
        Number of values per sample (H·W·C).
    feature_names_in_ : ndarray of str
        Column names, when X was a DataFrame with string column names.
    image_shape_ : (H, W, C)
    network_ : convprop.Network
        The trained network.
    optimizer_ : convprop.optim.Optimizer
        The optimiser and its state (it carries over across :meth:`partial_fit` calls).
    loss_curve_ : list of float
        Mean loss over the batches of each epoch.
    n_iter_ : int
        Epochs trained.
    t_ : int
        Batches (parameter updates) trained.

    Notes
    -----
    With the default sigmoid output, :meth:`predict_proba` divides the
    network's outputs by their sum so that each row sums to 1. The outputs
    are trained one against the rest on a squared error, so these are scores
    normalised to a distribution, not calibrated probabilities (with
    ``output="softmax"`` they are the softmax outputs, trained on the
    cross-entropy). :meth:`predict` is the class of the largest output, the
    same as the argmax of :meth:`predict_proba`.
    """

    def __init__(
        self,
        layers: str | Sequence[Layer] = "6c5-s2-12c5-s2",
        *,
        output: str = "sigmoid",
        image_shape: tuple[int, ...] | None = None,
        max_iter: int = 1,
        batch_size: int = 50,
        learning_rate_init: float = 1.0,
        solver: str | Optimizer = "sgd",
        momentum: float = 0.0,
        nesterovs_momentum: bool = False,
        alpha: float = 0.0,
        dtype=None,
        shuffle: bool = True,
        random_state=None,
        verbose: bool = False,
        epochs="deprecated",
        optimizer="deprecated",
        nesterov="deprecated",
        weight_decay="deprecated",
    ) -> None:
        self.layers = layers
        self.output = output
        self.image_shape = image_shape
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.solver = solver
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.alpha = alpha
        self.dtype = dtype
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.epochs = epochs
        self.optimizer = optimizer
        self.nesterov = nesterov
        self.weight_decay = weight_decay

    #: What each parameter may be (checked at fit, as scikit-learn does).
    _parameter_constraints = {
        "output": [Options(*OUTPUTS)],
        "max_iter": [POSITIVE_INT],
        "batch_size": [POSITIVE_INT],
        "learning_rate_init": [POSITIVE],
        "solver": [Options(*OPTIMIZERS), InstanceOf(Optimizer, name="a convprop Optimizer")],
        "momentum": [Interval(float, 0, 1, closed="left")],
        "nesterovs_momentum": [BOOL],
        "alpha": [NON_NEGATIVE],
        "shuffle": [BOOL],
    }
    #: convprop 0.1's names, accepted with a FutureWarning until 0.3.
    _renamed = {"epochs": "max_iter", "optimizer": "solver", "nesterov": "nesterovs_momentum", "weight_decay": "alpha"}

    def _settings(self) -> dict:
        """The parameters checked against :attr:`_parameter_constraints`, old names applied."""
        values = {name: getattr(self, name) for name in self._parameter_constraints}
        old_names = [old for old in self._renamed if not (isinstance(getattr(self, old), str)
                                                          and getattr(self, old) == "deprecated")]
        if old_names and self.alpha != 0:  # 0.1 code: alpha was the step then
            warnings.warn(f"CNNClassifier with 0.1's parameter names: alpha={self.alpha!r} is taken as the step "
                          "(learning_rate_init), as in 0.1; from 0.3 alpha is only the L2 penalty",
                          FutureWarning, stacklevel=3)
            values["learning_rate_init"], values["alpha"] = self.alpha, 0.0
        elif self.alpha != 0 and self.learning_rate_init == 1.0:
            warnings.warn("alpha is the L2 penalty since convprop 0.2, as in scikit-learn (it was the step in "
                          "0.1); the step is learning_rate_init", FutureWarning, stacklevel=3)
        for old in old_names:
            warnings.warn(f"CNNClassifier({old}=...) is deprecated and will be removed in convprop 0.3; "
                          f"use {self._renamed[old]}=...", FutureWarning, stacklevel=3)
            values[self._renamed[old]] = getattr(self, old)
        if isinstance(values["solver"], str):
            values["solver"] = values["solver"].lower()
        return check_params(values, self._parameter_constraints)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y) -> "CNNClassifier":
        """Build a new network and train it for ``epochs`` epochs.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features), (n_samples, H, W) or (n_samples, H, W, C)
        y : array_like, shape (n_samples,)
            Class labels.

        Returns
        -------
        self
        """
        settings = self._settings()
        X, y = self._validate(X, y, reset=True)
        self._initialise(X, np.unique(y), settings)
        y_enc = np.searchsorted(self.classes_, y)
        for _ in range(settings["max_iter"]):
            self._one_epoch(X, y_enc, settings)
        return self

    def partial_fit(self, X, y, classes=None) -> "CNNClassifier":
        """Train for one epoch on (X, y), keeping the network and optimiser state.

        Parameters
        ----------
        X : array_like, as in :meth:`fit`
        y : array_like, shape (n_samples,)
        classes : array_like, optional
            Every class that will ever be seen; needed on the first call
            when y does not show them all (defaults to ``np.unique(y)``).

        Returns
        -------
        self
        """
        settings = self._settings()
        first = not hasattr(self, "network_")
        X, y = self._validate(X, y, reset=first)
        if first:
            self._initialise(X, np.unique(y) if classes is None else np.unique(np.asarray(classes)), settings)
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ConvpropError(f"classes={classes!r} differs from the classes of the first partial_fit {self.classes_!r}")
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ConvpropError(f"y contains labels not in classes_: {unknown[:5]!r}")
        self._one_epoch(X, np.searchsorted(self.classes_, y), settings)
        return self

    def _validate(self, X, y, reset: bool):
        X, shape = _flatten_images(X)
        X, y = validate_data(self, X, y, reset=reset, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        if reset:
            self._image_shape_from_X = shape
        elif shape is not None and shape != self.image_shape_:
            raise ConvpropError(f"X has images of shape {shape}; the network was fitted on {self.image_shape_}")
        return X, y

    def _resolve_image_shape(self, n_features: int) -> tuple[int, int, int]:
        from_x = self._image_shape_from_X
        if self.image_shape is not None:
            shape = tuple(int(v) for v in self.image_shape)
            shape = shape + (1,) if len(shape) == 2 else shape
            if len(shape) != 3 or math.prod(shape) != n_features:
                raise ConvpropError(f"image_shape {self.image_shape!r} does not hold the {n_features} features of X")
            if from_x is not None and from_x != shape:
                raise ConvpropError(f"image_shape {self.image_shape!r} disagrees with X's images {from_x}")
            return shape
        if from_x is not None:
            return from_x
        side = math.isqrt(n_features)
        return (side, side, 1) if side * side == n_features else (1, n_features, 1)

    def _initialise(self, X: np.ndarray, classes: np.ndarray, settings: dict) -> None:
        if classes.shape[0] < 2:
            raise ConvpropError(f"CNNClassifier needs samples of at least 2 classes; got 1 class ({classes[0]!r})")
        self.classes_ = classes
        self.image_shape_ = self._resolve_image_shape(X.shape[1])
        dtype = self.dtype if self.dtype is not None else X.dtype
        rs = check_random_state(self.random_state)
        init_seed, shuffle_seed = rs.randint(0, 2**31 - 1, size=2)
        self.network_ = Network(
            [Input(*self.image_shape_), *_hidden_layers(self.layers)],
            n_outputs=classes.shape[0],
            dtype=dtype,
            seed=int(init_seed),
            output=settings["output"],
        )
        self.optimizer_ = self._make_optimizer(settings)
        self._shuffle_rng = np.random.default_rng(int(shuffle_seed))
        self.loss_curve_: list[float] = []
        self.n_iter_ = 0
        self.t_ = 0

    @staticmethod
    def _make_optimizer(settings: dict) -> Optimizer:
        solver = settings["solver"]
        if isinstance(solver, Optimizer):
            return copy.deepcopy(solver)
        sgd = solver == "sgd"  # momentum / nesterov mean nothing to Adam: ignored, as documented
        return make_optimizer(solver, settings["learning_rate_init"], momentum=settings["momentum"] if sgd else 0.0,
                              nesterov=settings["nesterovs_momentum"] if sgd else False,
                              weight_decay=settings["alpha"])

    def _images(self, X: np.ndarray) -> np.ndarray:
        h, w, c = self.image_shape_
        return X.reshape((X.shape[0], h, w) if c == 1 else (X.shape[0], h, w, c))

    def _one_epoch(self, X: np.ndarray, y_enc: np.ndarray, settings: dict) -> None:
        history = train(self.network_, self._images(X), y_enc, epochs=1, batch_size=settings["batch_size"],
                        shuffle=settings["shuffle"], seed=self._shuffle_rng, optimizer=self.optimizer_)
        self.loss_curve_.append(float(np.mean(history.L)))
        self.n_iter_ += 1
        self.t_ += len(history.L)
        if self.verbose:
            print(f"Epoch {self.n_iter_}, loss = {self.loss_curve_[-1]:.6f}")

    # ---------------------------------------------------------------- inference

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self)
        X, shape = _flatten_images(X)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        if shape is not None and shape != self.image_shape_:
            raise ConvpropError(f"X has images of shape {shape}; the network was fitted on {self.image_shape_}")
        return self.network_.predict_proba(self._images(X))

    def predict_proba(self, X) -> np.ndarray:
        """The sigmoid outputs normalised to sum to 1 per row (not calibrated probabilities);
        with ``output="softmax"``, the softmax outputs themselves.

        Returns
        -------
        ndarray, shape (n_samples, n_classes), of the network's dtype
        """
        o = self._outputs(X)
        if self.network_.output_kind == "softmax":
            return o
        total = o.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            proba = np.where(total > 0, o / total, 1.0 / o.shape[1])
        return proba.astype(o.dtype, copy=False)

    def predict(self, X) -> np.ndarray:
        """The class of the largest output, shape (n_samples,)."""
        o = self._outputs(X)
        return self.classes_[np.argmax(o, axis=1)]


__all__ = ["CNNClassifier"]
