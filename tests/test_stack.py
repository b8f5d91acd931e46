"""The map layers as one compiled call per direction (convprop.engine.stack) against the layer-by-layer path."""

import copy

import numpy as np
import pytest

import convprop
from conftest import random_batch
from convprop import Conv, Dense, Input, MaxPool, Network, Subsample
from convprop.engine import backend, parallel

pytestmark = pytest.mark.skipif(not backend.available(), reason="Numba is not installed")


@pytest.fixture(autouse=True)
def _compiled_one_thread():
    convprop.set_engine("numba")
    convprop.set_num_threads(1)
    yield
    convprop.set_engine(None)
    convprop.set_num_threads(None)


NETWORKS = {
    "toolbox": lambda dtype: Network([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)],
                                     n_outputs=10, dtype=dtype, seed=0),
    "every kind": lambda dtype: Network(
        [Input(17, 16, 2), Conv(3, 3, "relu", padding="same"), MaxPool(2, crop=True), Conv(5, (2, 3), "tanh", stride=2),
         Conv(4, (1, 2), "leaky_relu", padding=1), Subsample(2), Dense(6, "relu")],
        n_outputs=3, output="softmax", dtype=dtype, seed=1),
    "pooling first": lambda dtype: Network([Input(8, 8), Subsample(2), Conv(2, 3, "identity"), MaxPool(2)],
                                           n_outputs=2, dtype=dtype, seed=2),
    "lenet": lambda dtype: Network(
        [Input(12, 12), Conv(3, 5, "relu", padding=2), MaxPool(2), Conv(4, 3, "relu"), MaxPool(2),
         Dense(7, "relu"), Dense(5, "tanh")], n_outputs=3, output="softmax", dtype=dtype, seed=3),
    "dense sigmoid": lambda dtype: Network([Input(9, 9), Conv(2, 4), Subsample(2), Dense(4, "leaky_relu")],
                                           n_outputs=2, dtype=dtype, seed=4),
}


def _pass(net, x, y, layer_by_layer):
    if layer_by_layer:  # a layer with a forward of its own ends the one-call run: here, before any layer
        for layer in net.layers[1:]:
            layer.forward = layer.forward
    o = net.forward(x).copy()
    loss = net.backward(y)
    maps = [a.copy() for a in net.activations]
    deltas = [layer.d.copy() for layer in net.layers[1:]]
    pieces = [[p.copy() for p in layer.pieces()] for layer in net.layers[1:]]
    return o, loss, maps, deltas, pieces, {k: g.copy() for k, g in net.gradients().items()}


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n", [1, 7, 60])
def test_one_call_gives_the_layers_numbers_bit_for_bit(name, dtype, n):
    one, layered = NETWORKS[name](dtype), NETWORKS[name](dtype)
    x, y = random_batch(one, n, seed=n, labels=True)
    assert one._stack() is not None
    a, b = _pass(one, x, y, False), _pass(layered, x, y, True)
    assert one._stacked >= 2 and layered._stacked == 0
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    for got, want in zip(a[2:5], b[2:5]):
        for u, v in zip(got, want):
            np.testing.assert_array_equal(u, v)
    assert a[5].keys() == b[5].keys()
    for k in a[5]:
        np.testing.assert_array_equal(a[5][k], b[5][k], err_msg=k)


def test_training_steps_and_state_follow_each_pass():
    """Several steps (the parameters change in place between them), a change of batch size, and
    replicas that keep their arrays from pass to pass: the same numbers as the layer path."""
    convprop.set_num_threads(2)
    nets = [NETWORKS["toolbox"]("float64") for _ in range(2)]
    for layer in nets[1].layers[1:]:
        layer.forward = layer.forward
    for n in (40, 40, 33, 40):
        x, y = random_batch(nets[0], n, seed=n, labels=True)
        results = []
        for net in nets:
            loss = net.train_batch(*net_inputs(net, x, y))
            results.append((loss, {k: g.copy() for k, g in net.gradients().items()}, [a.copy() for a in net.activations]))
            net.step(0.5)
        assert results[0][0] == pytest.approx(results[1][0], rel=1e-13)
        for k in results[0][1]:
            np.testing.assert_allclose(results[0][1][k], results[1][1][k], rtol=1e-12, atol=1e-15, err_msg=k)
        for u, v in zip(results[0][2], results[1][2]):
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-15)
    assert nets[0]._slices and all(t._stack().reuse for t in nets[0]._slices)


def net_inputs(net, x, y):
    from convprop._validation import check_images, check_targets

    maps, _ = check_images(x, net.image_shape, net.dtype)
    return maps, check_targets(y, maps.shape[0], net.n_outputs, net.dtype)


def test_no_run_without_a_convolution_or_with_a_wrapped_layer():
    net = Network([Input(8, 8), Subsample(2), Dense(3)], n_outputs=2, seed=0)
    assert net._stack() is None
    net = NETWORKS["toolbox"]("float64")
    assert len(net._stack().run) == 4
    net.layers[3].forward = net.layers[3].forward  # timing wrappers and the like are called
    assert len(net._stack().run) == 2
    assert parallel.n_threads() == 1


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["toolbox", "every kind"])
def test_rows_give_the_gathered_batchs_numbers(threads, name):
    """train_batch(x, y, rows): each slice takes its own images; the same bits as x[rows], y[rows]."""
    convprop.set_num_threads(threads)
    nets = [NETWORKS[name]("float64") for _ in range(2)]
    x, y = random_batch(nets[0], 90, seed=4, labels=True)
    maps, targets = net_inputs(nets[0], x, y)
    rows = np.random.default_rng(0).permutation(90)[:37]
    losses = [nets[0].train_batch(maps, targets, rows=rows), nets[1].train_batch(maps[rows], targets[rows])]
    assert losses[0] == losses[1]
    np.testing.assert_array_equal(nets[0].o, nets[1].o)
    for k, g in nets[0].gradients().items():
        np.testing.assert_array_equal(g, nets[1].gradients()[k], err_msg=k)


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_call_training_step_gives_the_layers_numbers_bit_for_bit(name, dtype):
    """train_batch in one compiled call (map layers, dense layers, output, loss) against the layers' own
    forward and backward: outputs, loss, every activation, delta and gradient, bit for bit."""
    one, layered = NETWORKS[name](dtype), NETWORKS[name](dtype)
    for layer in layered.layers[1:]:
        layer.forward = layer.forward
    x, y = random_batch(one, 23, seed=5, labels=True)
    losses = [net.train_batch(*net_inputs(net, x, y)) for net in (one, layered)]
    assert one._stacked >= 2 and layered._stacked == 0
    assert one._stack().covers(one.layers, one.output)
    assert losses[0] == losses[1]
    np.testing.assert_array_equal(one.o, layered.o)
    for u, v in zip(one.activations, layered.activations, strict=True):
        np.testing.assert_array_equal(u, v)
    for a, b in zip(one.layers[1:], layered.layers[1:]):
        np.testing.assert_array_equal(a.d, b.d)
    np.testing.assert_array_equal(one.output.d, layered.output.d)
    grads = one.gradients()
    assert grads.keys() == layered.gradients().keys()
    for k, g in grads.items():
        np.testing.assert_array_equal(g, layered.gradients()[k], err_msg=k)


def test_a_users_activation_is_computed_not_skipped():
    """An Activation of the user's own (no compiled kernel) runs through its own forward and backward
    on the compiled engine too, in a convolution and a dense layer: the NumPy engine's numbers."""
    from convprop.engine.activations import Activation

    class Square(Activation):
        name = "square"

        def forward(self, z, out=None):
            return np.multiply(z, z, out=out)

        def backward(self, delta, a):
            return delta * 2 * np.sqrt(a)

    def run(engine):
        convprop.set_engine(engine)
        net = Network([Input(8, 8), Conv(2, 3, Square()), Subsample(2), Dense(3, Square())], n_outputs=2, seed=0)
        x, y = random_batch(net, 6, seed=1)
        loss = net.train_batch(*net_inputs(net, x, y))
        return net, loss, net.o.copy(), {k: g.copy() for k, g in net.gradients().items()}

    net, *got = run("numba")
    assert net._stack() is None  # the convolution ends the one-call run
    want = run("numpy")[1:]
    assert got[0] == pytest.approx(want[0], rel=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    for k in want[2]:
        np.testing.assert_allclose(got[2][k], want[2][k], rtol=1e-10, atol=1e-14, err_msg=k)


def _engines_agree(make, steps=1, change=None):
    """make() on each engine, train_batch `steps` times (change(net) between them): the same numbers."""
    out = []
    for engine in ("numba", "numpy"):
        convprop.set_engine(engine)
        net = make()
        x, y = random_batch(net, 6, seed=1)
        for i in range(steps):
            if change is not None and i:
                change(net)
            loss = net.train_batch(*net_inputs(net, x, y))
        out.append((loss, net.o.copy(), {k: g.copy() for k, g in net.gradients().items()}))
    (l1, o1, g1), (l2, o2, g2) = out
    assert l1 == pytest.approx(l2, rel=1e-12)
    np.testing.assert_allclose(o1, o2, rtol=1e-12)
    for k in g2:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-9, atol=1e-14, err_msg=k)


def test_a_subclass_of_a_built_in_activation_computes_its_own_function():
    """Capped(Tanh) inherits Tanh's kernel number, not its function: its layers take the NumPy path."""
    from convprop.engine.activations import Tanh

    class Capped(Tanh):
        def forward(self, z, out=None):
            return np.minimum(np.tanh(z, out=out), 0.5, out=out)

        def backward(self, delta, a):
            return delta * (1 - a * a) * (a < 0.5)

    assert not Capped().has_kernel and Tanh().has_kernel
    _engines_agree(lambda: Network([Input(8, 8), Conv(2, 3, Capped()), Subsample(2), Dense(3, Capped())],
                                   n_outputs=2, seed=0))


def test_an_activation_swapped_after_a_pass_is_used():
    from convprop.engine.activations import LeakyReLU

    def swap(net):
        net.layers[1].activation = LeakyReLU(0.3)
        net.layers[3].activation.slope = 0.2  # in place, too

    _engines_agree(lambda: Network([Input(10, 10), Conv(2, 3, "relu"), Subsample(2), Conv(3, 2, LeakyReLU(0.1))],
                                   n_outputs=2, seed=0), steps=2, change=swap)


def test_parameters_in_another_layout_take_the_layer_path():
    """A Fortran-ordered weight (a user's assignment) cannot join the kernels' tuples of C arrays."""
    def make():
        net = Network([Input(12, 12), Conv(2, 5, "relu"), MaxPool(2), Dense(5, "relu")], n_outputs=3,
                      output="softmax", seed=2)
        for layer in (net.layers[3], net.output, net.layers[1]):
            layer.params["weight"] = np.asfortranarray(layer.params["weight"])
        return net

    _engines_agree(make)


def _step_results(net, x, y):
    loss = net.train_batch(*net_inputs(net, x, y))
    arrays = [net.o, *net.gradients().values(), *net.activations, *(layer.d for layer in net.layers[1:])]
    return loss, [a.copy() for a in arrays]


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_steps_that_reuse_their_arrays_give_fresh_steps_numbers_bit_for_bit(name, dtype):
    """Within reusing_step_arrays, a one-thread step runs in the last one's arrays (the same objects
    hold its gradients), also across a parameter replaced by a new array and a change of batch
    size; every number is that of steps in arrays of their own. On leaving, the arrays are let go."""
    kept, fresh = NETWORKS[name](dtype), NETWORKS[name](dtype)
    seen = []
    with kept.reusing_step_arrays():
        for i, n in enumerate((40, 40, 33, 33, 40)):
            x, y = random_batch(kept, n, seed=n + i, labels=True)
            if i == 3:  # a user's new parameter array between two steps: the step binds it
                for net in (kept, fresh):
                    net.output.params["weight"] = net.output.params["weight"] * 0.5
            a, b = _step_results(kept, x, y), _step_results(fresh, x, y)
            assert a[0] == b[0]
            for got, want in zip(a[1], b[1], strict=True):
                np.testing.assert_array_equal(got, want)
            seen.append((id(kept.gradients()["output.weight"]), id(fresh.gradients()["output.weight"])))
            for net in (kept, fresh):
                net.step(0.5)
    assert seen[1][0] == seen[0][0] and seen[4][0] != seen[3][0]  # kept for a batch size, new for another
    assert seen[1][1] != seen[0][1] or seen[2][1] != seen[1][1]  # fresh arrays (an address may come back)
    assert "step" not in kept._stack()._kept and not kept._reuse_step


def test_the_training_loop_reuses_step_arrays_within_an_epoch_only():
    """fit on one thread: the same weights as steps in arrays of their own; after training the
    network keeps no step's arrays beyond what its layers hold."""
    from convprop import train

    nets = [NETWORKS["toolbox"]("float64") for _ in range(2)]
    x, labels = random_batch(nets[0], 130, seed=9, labels=True)
    order = np.stack([np.random.default_rng(e).permutation(130) for e in range(2)])
    train(nets[0], x, labels, epochs=2, batch_size=50, alpha=1.0, order=order)
    maps, targets = net_inputs(nets[1], x, labels)
    for perm in order:
        for start in range(0, 130, 50):
            nets[1].train_batch(maps, targets, rows=perm[start:start + 50])
            nets[1].step(1.0)
    for k, p in nets[0].parameters().items():
        np.testing.assert_array_equal(p, nets[1].parameters()[k], err_msg=k)
    assert "step" not in nets[0]._stack()._kept


@pytest.mark.parametrize("threads", [1, 2])
def test_read_only_data_and_orders_need_no_second_compiled_step(threads):
    """A read-only data set (np.load's mmap_mode) or fit's order (a read-only broadcast) would need the
    training kernel compiled a second time, for read-only arrays: the step takes writeable arrays
    instead, with the same numbers."""
    from convprop import train
    from convprop.engine.kernels import stack as kernels

    convprop.set_num_threads(threads)
    x, labels = random_batch(NETWORKS["toolbox"]("float64"), 120, seed=3, labels=True)
    locked = x.astype("float64")
    locked.flags.writeable = False
    order = np.random.default_rng(1).permutation(120)
    nets = [NETWORKS["toolbox"]("float64") for _ in range(2)]
    train(nets[0], locked, labels, epochs=2, batch_size=50, order=order)
    train(nets[1], np.array(locked), labels, epochs=2, batch_size=50, order=np.stack([order, order]))
    for k, p in nets[0].parameters().items():
        np.testing.assert_array_equal(p, nets[1].parameters()[k], err_msg=k)
    assert not any("readonly" in str(t) for sig in kernels.train.signatures for t in sig[:3])


def test_networks_of_other_depths_share_the_compiled_kernels():
    """Numba compiles a kernel once for each tuple length it is given: the kernels' tuples are filled up
    (engine/stack.py's ROOM), so networks with other numbers of map layers, convolutions and dense
    layers run on the forward, backward, training and crew kernels compiled for the first network (on
    1 and 2 threads), with the layer path's numbers (test_one_call_gives_the_layers_numbers_bit_for_bit)."""
    from convprop import train
    from convprop.engine.kernels import serve
    from convprop.engine.kernels import stack as kernels

    entries = {"forward": kernels.forward, "backward": kernels.backward, "train": kernels.train,
               "serve": serve.serve}

    deeper = {"deeper": lambda dtype: Network(  # 7 map layers, 4 convolutions, 3 fully connected
        [Input(24, 24), Conv(2, 3), Conv(3, 3, "relu"), MaxPool(2), Conv(3, 3, padding=1), Subsample(2),
         Conv(2, 2), MaxPool(2), Dense(5, "tanh"), Dense(4)], n_outputs=3, dtype=dtype, seed=5)}

    def run(name):
        for threads in (1, 2):
            convprop.set_num_threads(threads)
            net = {**NETWORKS, **deeper}[name]("float64")
            x, y = random_batch(net, 24, seed=5, labels=True)
            net.forward(x[:4])
            net.backward(y[:4])
            assert net._stacked >= 2 or threads > 1  # 2 threads: in the slices' replicas
            train(net, x, y, epochs=1, batch_size=12)

    for first, then in (("toolbox", ("pooling first", "lenet", "dense sigmoid")), ("every kind", ("deeper",))):
        run(first)  # ≤ 4 map layers, ≤ 2 convolutions, ≤ 3 fully connected; then 5–8, 3–4, ≤ 3
        compiled = {name: len(k.signatures) for name, k in entries.items()}
        for name in then:
            run(name)
            assert {name: len(k.signatures) for name, k in entries.items()} == compiled, name


@pytest.mark.parametrize("threads", [1, 2])
def test_rows_given_as_a_view_train_on_the_kernels_compiled_for_contiguous_rows(threads):
    """A reversed or strided view of rows is another array type to Numba: passed on as it is, it compiled
    the whole training step again (15-40 s, once per dtype and network size). The engine makes such rows
    contiguous first: no new signature, and the numbers of the same rows given contiguous, bit for bit
    (outside and within reusing_step_arrays, on 1 thread and in 2 slices)."""
    from convprop.engine.kernels import serve
    from convprop.engine.kernels import stack as kernels

    convprop.set_num_threads(threads)
    nets = [NETWORKS["toolbox"]("float64") for _ in range(2)]
    maps, targets = net_inputs(nets[0], *random_batch(nets[0], 90, seed=4, labels=True))
    nets[0].train_batch(maps, targets, rows=np.arange(45))  # the kernels for contiguous rows
    with nets[0].reusing_step_arrays():  # and the crew's compiled loop (2 threads)
        nets[0].train_batch(maps, targets, rows=np.arange(45))
    compiled = len(kernels.train.signatures), len(serve.serve.signatures)
    view = np.arange(90)[::-2]  # 45 rows, stride -2

    def same_as_contiguous(loss):
        assert loss == nets[1].train_batch(maps, targets, rows=view.copy())
        for k, g in nets[1].gradients().items():
            np.testing.assert_array_equal(nets[0].gradients()[k], g, err_msg=k)

    same_as_contiguous(nets[0].train_batch(maps, targets, rows=view))
    with nets[0].reusing_step_arrays():
        for _ in range(2):  # the second: the kept step's own path
            same_as_contiguous(nets[0].train_batch(maps, targets, rows=view))
    assert (len(kernels.train.signatures), len(serve.serve.signatures)) == compiled


def test_read_only_parameters_predict_on_the_one_call_path():
    """Parameters loaded read-only (a memory-mapped model) fill the kernels' tuples with read-only empty
    arrays: a tuple of one array type, which the kernels can index."""
    net = NETWORKS["lenet"]("float64")
    x, _ = random_batch(net, 5, seed=2)
    want = net.predict_proba(x)
    for p in net.parameters().values():
        p.flags.writeable = False
    np.testing.assert_array_equal(net.predict_proba(x), want)
    assert net._stack() is not None


@pytest.mark.parametrize("name", NETWORKS)
def test_a_kept_steps_gradients_are_runs_of_one_buffer(name):
    """A kept one-thread step's gradients are runs of one array, in the order of the parameters, with 2
    spare elements (the distributed hook sums it in place); an array replaced in ``grads`` ends that."""
    convprop.set_num_threads(1)
    net = NETWORKS[name]("float64")
    x, y = random_batch(net, 20, seed=1, labels=True)
    assert net._gradient_buffer() is None
    with net.reusing_step_arrays():
        net.train_batch(*net_inputs(net, x, y))
        buf = net._gradient_buffer()
        assert buf is not None and buf.dtype == np.float64
        grads = list(net.gradients().values())
        np.testing.assert_array_equal(buf[:-2], np.concatenate([g.reshape(-1) for g in grads]))
        assert all(np.shares_memory(g, buf) for g in grads) and buf.size == sum(g.size for g in grads) + 2
        net.output.grads["bias"] = net.output.grads["bias"].copy()
        assert net._gradient_buffer() is None
    assert net._gradient_buffer() is None


def _changes():
    """What a user's callback may do to a network between two steps: (name, change(net)), each
    applied alike to two networks (on a copy of the arrays it replaces)."""
    from convprop.engine.activations import LeakyReLU, Tanh

    def wrap(net):  # a timing wrapper, say: the same numbers, through the layer's own forward
        layer = net.layers[2]
        layer.forward = layer.forward

    def replace_layer(net):  # the same kind of layer, a new object
        net.layers[2] = copy.deepcopy(net.layers[2])

    def fortran(net):
        net.output.params["weight"] = np.asfortranarray(net.output.params["weight"])

    return [("nothing", lambda net: None),
            ("a parameter replaced", lambda net: net.layers[1].params.__setitem__("bias", net.layers[1].params["bias"] + 0.1)),
            ("an output parameter replaced", lambda net: net.output.params.__setitem__("weight", net.output.params["weight"] * 0.5)),
            ("a slope changed in place", lambda net: setattr(net.layers[1].activation, "slope", 0.3)),
            ("an activation swapped", lambda net: setattr(net.layers[3], "activation", Tanh())),
            ("the same activation anew", lambda net: setattr(net.layers[1], "activation", LeakyReLU(0.3))),
            ("a dense layer's activation swapped", lambda net: setattr(net.layers[4], "activation", LeakyReLU(0.2))),
            ("a layer replaced", replace_layer),
            ("a Fortran-ordered weight", fortran),
            ("a layer wrapped", wrap)]


def kept_net(dtype="float64"):
    """The network the kept-step tests change between steps (every change of :func:`_changes` applies)."""
    from convprop.engine.activations import LeakyReLU

    return Network([Input(12, 12), Conv(3, 3, LeakyReLU(0.1)), Subsample(2), Conv(4, 3, "sigmoid"), Dense(5, "relu")],
                   n_outputs=3, dtype=dtype, seed=5)


def each_change_then_two_steps(nets, kept_class, monkeypatch):
    """Within ``nets[0].reusing_step_arrays()``: each change of :func:`_changes` made to every net, then
    the rows of two steps (after the change, then with nothing changed; 17 images at first, else
    20 of 60). Yields (name, i, rows, answers): ``answers`` fills with what ``kept_class.still`` answers
    during the caller's step."""
    answers = []
    still = kept_class.still
    monkeypatch.setattr(kept_class, "still", lambda self, *a: answers.append(still(self, *a)) or answers[-1])
    order = np.random.default_rng(0).permutation(60)
    with nets[0].reusing_step_arrays():
        for name, change in _changes():
            for net in nets:
                change(net)
            for i in range(2):
                answers.clear()
                yield name, i, (order[i * 20:(i + 1) * 20] if name != "nothing" or i else order[:17]), answers


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_kept_step_runs_again_only_while_nothing_it_was_bound_to_changed(dtype, monkeypatch):
    """Within reusing_step_arrays, a one-thread step on rows of a data set runs the step it kept after one
    pass of checks (Step.still); after each change a user may make between steps it takes the full path
    instead, and every number stays that of steps in arrays of their own, bit for bit."""
    from convprop.engine import stack

    expected = {  # (after the change, the step after that): what Step.still answered
        "nothing": ([], [False]),  # no kept step yet; then another batch size
        "a layer wrapped": ([False], []),  # the run of map layers ends at it: a new run, which covers no step
        "the same activation anew": ([True], [True]),  # the kernels' arguments are the same
        "a Fortran-ordered weight": ([False], [False]),  # no one call takes it: the layers' path
    }
    kept, fresh = kept_net(dtype), kept_net(dtype)
    x, y = random_batch(kept, 60, seed=2, labels=True)
    maps, targets = net_inputs(kept, x, y)
    for name, i, rows, answers in each_change_then_two_steps((kept, fresh), stack.Step, monkeypatch):
        results = []
        for net in (kept, fresh):
            loss = net.train_batch(maps, targets, rows=rows)
            arrays = [net.o, *net.gradients().values(), *net.activations, *(layer.d for layer in net.layers[1:])]
            results.append((loss, [a.copy() for a in arrays]))
            net.step(0.5)
        assert results[0][0] == results[1][0], name
        for got, want in zip(results[0][1], results[1][1], strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)
        assert answers == expected.get(name, ([False], [True]))[i], (name, i, answers)
    assert not kept._reuse_step


def test_a_kept_step_follows_the_thread_count_and_the_engine():
    """A thread count or engine set between two steps is used by the next one (no kept step then)."""
    net, other = NETWORKS["toolbox"]("float64"), NETWORKS["toolbox"]("float64")
    x, y = random_batch(net, 40, seed=4, labels=True)
    maps, targets = net_inputs(net, x, y)
    rows = np.arange(40)
    with net.reusing_step_arrays():
        for threads, engine in ((1, "numba"), (1, "numba"), (2, "numba"), (1, "numpy"), (1, "numba")):
            convprop.set_num_threads(threads)
            convprop.set_engine(engine)
            loss = net.train_batch(maps, targets, rows=rows)
            assert (net._stacked > 0) == (threads == 1 and engine == "numba")
            assert (net._slices != []) == (threads == 2)
            want = other.train_batch(maps, targets, rows=rows)
            np.testing.assert_allclose(loss, want, rtol=1e-13)
            for net_ in (net, other):
                net_.step(1.0)


def test_an_array_put_in_grads_between_steps_does_not_stay_for_the_next():
    """A callback may replace a gradient array (clipping by replacement): within reusing_step_arrays the next
    step still leaves its own gradients in a fresh dict, as a step outside the block does."""
    nets = [kept_net(), kept_net()]
    x, y = random_batch(nets[0], 60, seed=2, labels=True)
    maps, targets = net_inputs(nets[0], x, y)
    losses = [[], []]
    with nets[0].reusing_step_arrays():
        for i, net in enumerate(nets):
            for s in range(3):
                losses[i].append(net.train_batch(maps, targets, rows=np.arange(s * 20, (s + 1) * 20)))
                net.output.grads["weight"] = np.clip(net.output.grads["weight"], -1e-3, 1e-3)
                net.step(0.5)
    assert losses[0] == losses[1]
    for k, p in nets[0].parameters().items():
        np.testing.assert_array_equal(p, nets[1].parameters()[k], err_msg=k)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_layer_unwrapped_joins_the_one_call_run_again(threads):
    """A layer wrapped for a while ends the run of map layers; unwrapped, it is in the run again and the
    step goes back to the one call (on one thread; on two, the slices' steps)."""
    convprop.set_num_threads(threads)
    net = NETWORKS["toolbox"]("float64")
    x, y = random_batch(net, 40, seed=4, labels=True)
    maps, targets = net_inputs(net, x, y)
    with net.reusing_step_arrays():
        for wrapped in (False, True, False):
            if wrapped:
                net.layers[3].forward = net.layers[3].forward
            else:
                vars(net.layers[3]).pop("forward", None)
            net.train_batch(maps, targets, rows=np.arange(40))
            assert len(net._stack().run) == (2 if wrapped else 4)
            if threads == 1:  # wrapped: the run's two layers in one call, the wrapped one on its own
                assert net._stacked == (2 if wrapped else 4)
            elif not wrapped:
                assert net._slices[0]._stacked == 4
            net.step(1.0)
