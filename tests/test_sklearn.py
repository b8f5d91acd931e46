"""CNNClassifier: scikit-learn's estimator checks, Pipeline, GridSearchCV, and learning on MNIST."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from convprop import Conv, ConvpropError, Subsample  # noqa: E402
from convprop.engine.optim import SGD, StepLR  # noqa: E402
from convprop.engine.spec import parse_layers  # noqa: E402
from convprop.sklearn import CNNClassifier  # noqa: E402
from mnist_idx import load_mnist  # noqa: E402

# scikit-learn's checks feed tabular data of 1 to 10 features, i.e. images of
# 1×F pixels (or 2×2, 3×3): the toolbox's default 6c5-s2-12c5-s2 needs at
# least 16×16 images, so the checks run on instances whose layers fit any
# image size (1×1 kernels, scale-1 subsampling, or no hidden layer). Every
# check passes; none is marked as an expected failure.
CHECKED = [
    CNNClassifier("3c1", max_iter=20, batch_size=10, solver="adam", learning_rate_init=0.05, random_state=0),
    CNNClassifier("2c1-s1", max_iter=20, batch_size=10, learning_rate_init=0.05, momentum=0.9, nesterovs_momentum=True, dtype="float32", random_state=0),
    CNNClassifier("", max_iter=30, batch_size=10, random_state=0),  # plain SGD, alpha 1: the toolbox's update
]


@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def mnist(shared):
    x, y = load_mnist(shared, "train", 2000)
    xt, yt = load_mnist(shared, "test", 500)
    return x.reshape(2000, -1).astype(np.float32), y, xt.reshape(500, -1).astype(np.float32), yt


def test_learns_mnist_from_flat_float32_pixels(mnist):
    x, y, xt, yt = mnist
    clf = CNNClassifier("4c5-s4", max_iter=3, batch_size=10, solver="adam", learning_rate_init=0.01, random_state=0)
    clf.fit(x, y)
    assert clf.image_shape_ == (28, 28, 1)  # inferred square
    assert clf.network_.spec == "28x28-4c5-s4-10o"
    assert clf.network_.dtype == np.float32  # follows X
    assert clf.n_features_in_ == 784 and clf.n_iter_ == 3 and clf.t_ == 600
    assert np.array_equal(clf.classes_, np.arange(10))
    assert len(clf.loss_curve_) == 3 and clf.loss_curve_[2] < clf.loss_curve_[0] - 0.1
    error = 1 - clf.score(xt, yt)
    assert error < 0.20  # measured 14.8 % (chance: 90 %) after 3 epochs on 2000 images
    proba = clf.predict_proba(xt)
    assert proba.dtype == np.float32 and np.allclose(proba.sum(axis=1), 1, atol=1e-6)
    o = clf.network_.predict_proba(xt.reshape(-1, 28, 28))
    np.testing.assert_allclose(proba, o / o.sum(axis=1, keepdims=True), rtol=1e-6)
    # Images in (n, H, W) give the same predictions as flat rows.
    assert np.array_equal(clf.predict(xt.reshape(-1, 28, 28)), clf.predict(xt))


def test_pipeline_and_grid_search(mnist):
    x, y, xt, yt = mnist[0][:600], mnist[1][:600], mnist[2], mnist[3]
    labels = np.array(list("abcdefghij"))  # string classes
    base = CNNClassifier("4c5-s4", batch_size=10, solver="adam", random_state=0)
    pipe = make_pipeline(StandardScaler(), base)
    grid = GridSearchCV(pipe, {"cnnclassifier__max_iter": [1, 3], "cnnclassifier__learning_rate_init": [0.001, 0.01]}, cv=2)
    grid.fit(x, labels[y])
    assert set(grid.best_params_) == {"cnnclassifier__max_iter", "cnnclassifier__learning_rate_init"}
    assert grid.cv_results_["mean_test_score"].shape == (4,)
    # measured mean CV accuracies: 8 % and 29 % (alpha 0.001), 16 % and 49 % (alpha 0.01), 1 and 3 epochs
    assert grid.best_params_ == {"cnnclassifier__learning_rate_init": 0.01, "cnnclassifier__max_iter": 3}
    pred = grid.predict(xt)
    assert pred.dtype.kind == "U" and set(pred) <= set(labels)
    assert np.mean(pred != labels[yt]) < 0.4  # measured 29.4 % on 500 test images (chance: 90 %)
    # The pipeline is the scaler then the classifier.
    best = grid.best_estimator_
    scaled = best.named_steps["standardscaler"].transform(xt)
    assert np.array_equal(best.named_steps["cnnclassifier"].predict(scaled), pred)


def test_partial_fit_continues_and_equals_fit_epoch_by_epoch(mnist):
    x, y = mnist[0][:300], mnist[1][:300]
    kw = dict(layers="3c5-s4", batch_size=25, learning_rate_init=1.0, momentum=0.5, random_state=3)
    a = CNNClassifier(max_iter=2, **kw).fit(x, y)
    b = CNNClassifier(**kw)
    b.partial_fit(x, y, classes=np.arange(10)).partial_fit(x, y)
    assert b.n_iter_ == 2 and b.optimizer_.t == 24
    assert a.loss_curve_ == b.loss_curve_
    for k, v in a.network_.parameters().items():
        assert np.array_equal(v, b.network_.parameters()[k]), k
    with pytest.raises(ValueError, match="not in classes_"):
        CNNClassifier(**kw).partial_fit(x[:20], y[:20], classes=[0, 1]).partial_fit(x[:20], y[:20])
    with pytest.raises(ValueError, match="features"):
        b.partial_fit(x[:, :100], y)


def test_default_network_is_the_toolbox_example_and_sgd_is_the_toolbox_update(mnist):
    from convprop import Input, Network
    from convprop import train

    x, y = mnist[0][:100], mnist[1][:100]
    clf = CNNClassifier(random_state=0, shuffle=False).fit(x, y)
    assert clf.network_.spec == "28x28-6c5-s2-12c5-s2-10o" and clf.network_.dtype == np.float32
    # The same network trained by convprop.training.train with the toolbox's update.
    net = Network([Input(28, 28), *parse_layers("6c5-s2-12c5-s2")], 10, dtype=np.float32, seed=0)
    init = CNNClassifier(random_state=0)  # the same initial weights (private helpers)
    init._validate(x, y, reset=True)
    init._initialise(x, np.arange(10), init._settings())
    for k, v in init.network_.parameters().items():
        net.parameters()[k][...] = v
    train(net, x.reshape(-1, 28, 28), y, epochs=1, batch_size=50, alpha=1.0, shuffle=False)
    for k, v in clf.network_.parameters().items():
        assert np.array_equal(v, net.parameters()[k]), k


def test_images_shapes_dtype_and_optimizer_instances():
    rng = np.random.default_rng(0)
    x = rng.random((40, 6, 8, 2))
    y = rng.integers(0, 3, 40)
    clf = CNNClassifier([Conv(2, 3), Subsample(2)], max_iter=2, batch_size=8, random_state=0,
                        solver=SGD(StepLR(0.5, step_size=1, gamma=0.5), momentum=0.9))
    clf.fit(x, y)
    assert clf.image_shape_ == (6, 8, 2) and clf.n_features_in_ == 96 and clf.network_.dtype == np.float64
    assert clf.optimizer_.epoch == 2 and clf.solver.epoch == 0  # the parameter is copied, not trained
    assert np.array_equal(clf.predict(x), clf.predict(x.reshape(40, -1)))
    with pytest.raises(ValueError, match="images of shape"):
        clf.predict(x.reshape(40, 8, 6, 2))
    flat = CNNClassifier("2c3", image_shape=(6, 8, 2), max_iter=1, random_state=0).fit(x.reshape(40, -1), y)
    assert flat.image_shape_ == (6, 8, 2)
    row = CNNClassifier("", max_iter=1, random_state=0).fit(x.reshape(40, -1)[:, :10], y)
    assert row.image_shape_ == (1, 10, 1)  # not a square: one row
    with pytest.raises(ValueError, match="does not hold"):
        CNNClassifier("", image_shape=(5, 5)).fit(x.reshape(40, -1), y)
    with pytest.raises(ValueError, match="solver"):
        CNNClassifier("", solver="rmsprop").fit(x, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        CNNClassifier("").fit(x, np.zeros(40))


def test_parse_layers():
    layers = parse_layers("6c5-s2-12c3x2-s4")
    assert [type(layer).__name__ for layer in layers] == ["Conv", "Subsample", "Conv", "Subsample"]
    assert (layers[0].outputmaps, layers[0].kernelsize, layers[1].scale) == (6, (5, 5), 2)
    assert layers[2].kernelsize == (3, 2) and layers[3].scale == 4
    assert parse_layers("", allow_empty=True) == []  # one parser (engine.spec) for the CLI and the estimator
    for bad in ["6c", "c5", "s", "6x5", "6c5--s2x"]:
        with pytest.raises(ConvpropError, match="cannot read"):
            parse_layers(bad)


def test_old_parameter_names_still_work_with_a_future_warning():
    """convprop 0.1's names (epochs, optimizer, nesterov, weight_decay) map to scikit-learn's, with a warning."""
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 6, 6)), np.arange(40) % 3
    new = CNNClassifier("2c3", max_iter=2, solver="sgd", momentum=0.5, nesterovs_momentum=True, alpha=1e-3,
                        learning_rate_init=0.5, batch_size=8, random_state=0).fit(x, y)
    with pytest.warns(FutureWarning, match="epochs=.*deprecated.*max_iter"):
        old = CNNClassifier("2c3", epochs=2, optimizer="sgd", momentum=0.5, nesterov=True, weight_decay=1e-3,
                            learning_rate_init=0.5, batch_size=8, random_state=0).fit(x, y)
    for name, arr in new.network_.parameters().items():
        np.testing.assert_array_equal(arr, old.network_.parameters()[name])
    assert old.n_iter_ == 2
    # 0.1 code, recognised by its old names, keeps 0.1's meaning of alpha (the step) for one release
    with pytest.warns(FutureWarning, match="alpha=0.5 is taken as the step"):
        old = CNNClassifier("2c3", epochs=2, optimizer="sgd", momentum=0.5, nesterov=True, weight_decay=1e-3,
                            alpha=0.5, batch_size=8, random_state=0).fit(x, y)
    for name, arr in new.network_.parameters().items():
        np.testing.assert_array_equal(arr, old.network_.parameters()[name])
    # new code that sets alpha alone is told what alpha means now
    with pytest.warns(FutureWarning, match="alpha is the L2 penalty"):
        CNNClassifier("2c3", alpha=1e-3, max_iter=1, random_state=0).fit(x, y)


def test_parameter_constraints_give_one_message_format():
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 6, 6)), np.arange(40) % 3
    for kw, message in [({"max_iter": 0}, "max_iter must be a positive integer, got 0"),
                        ({"learning_rate_init": -1.0}, "learning_rate_init must be a positive finite number"),
                        ({"alpha": -0.1}, "alpha must be a non-negative finite number, got -0.1"),
                        ({"momentum": 1.0}, r"momentum must be a finite number in \[0, 1\), got 1.0"),
                        ({"output": "tanh"}, "output must be one of sigmoid, softmax, got 'tanh'")]:
        with pytest.raises(ConvpropError, match=message):
            CNNClassifier("2c3", **kw).fit(x, y)
