"""The sliced training step bound once (convprop.engine.sliced) against the replicas' own train_batch.

With k > 1 threads, a network that one compiled call trains (map layers, dense layers, an
output layer) runs each slice as a :class:`convprop.engine.stack.Step` bound to its replica's
arrays. The numbers must be those of the replicas' ``train_batch`` bit for bit, every layer's
state included, and whatever changes between steps (a replaced activation or parameter array,
new data, another batch size, a prediction pass) must reach the next step.
"""

import contextlib

import numpy as np
import pytest

import convprop
from conftest import random_batch, wait_until
from convprop.engine import backend, parallel, slices
from test_stack import NETWORKS, net_inputs

pytestmark = [pytest.mark.skipif(not backend.available(), reason="Numba is not installed"),
              pytest.mark.usefixtures("compiled_engine")]


def _state(net):
    """Everything a training step leaves that a user can read, copied."""
    return (net.L, net.o.copy(), net.e.copy(), [a.copy() for a in net.activations],
            [layer.d.copy() for layer in net.layers[1:]] + [net.output.d.copy()],
            [p.copy() for layer in net.layers for p in layer.pieces()],
            {k: g.copy() for k, g in net.gradients().items()})


def _assert_same_bits(got, want):
    assert got[0] == want[0]
    for a, b in zip(got[1:3], want[1:3]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got[3] + got[4] + got[5], want[3] + want[4] + want[5], strict=True):
        np.testing.assert_array_equal(a, b)
    assert got[6].keys() == want[6].keys()
    for k in want[6]:
        np.testing.assert_array_equal(got[6][k], want[6][k], err_msg=k)


def _served(net, served):
    """The training loop's block (the crew serving its slices from a compiled loop), or none."""
    return net.reusing_step_arrays() if served else contextlib.nullcontext()


@pytest.mark.parametrize("name", ["toolbox", "every kind", "lenet", "dense sigmoid"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("served", [False, True], ids=["tasks", "served"])
def test_bound_steps_give_the_replicas_numbers_bit_for_bit(name, dtype, threads, served):
    """Three SGD steps (a sliced prediction pass between the first two, the last batch smaller) through
    the bound steps and through each replica's train_batch: the same bits, state included. Served:
    inside the training loop's block, where the crew threads run their slices in a compiled loop
    (the prediction pass a job of another kind in between)."""
    convprop.set_num_threads(threads)
    fast, slow = NETWORKS[name](dtype), NETWORKS[name](dtype)
    x, y = random_batch(fast, 60, seed=7, labels=True)
    maps, targets = net_inputs(fast, x, y)
    for step, rows in enumerate([np.arange(0, 40), np.arange(40, 60)[::-1], np.arange(3, 28)]):
        k = slices.count(len(rows))  # 20 images: two slices of 10
        with _served(fast, served):
            fast.train_batch(maps, targets, rows)
            if served:
                assert parallel._crews[k - 1].token  # its slices were served
        assert fast._sliced is not None and len(fast._slices) == k == (threads if len(rows) > 20 else 2)
        slow._new_pass(len(rows))
        slow._forward_slices(maps, k, targets, rows)
        _assert_same_bits(_state(fast), _state(slow))
        for net in (fast, slow):
            net.step(0.5)
            if step == 0:
                net.forward(x[:30])  # the replicas' forward pass leaves other arrays in their layers


def _changes():
    from convprop.engine.activations import LeakyReLU, Tanh

    def conv_activation(net):
        net.layers[1].activation = Tanh()

    def dense_activation(net):
        net.layers[-1].activation = LeakyReLU(0.2)

    def slope_in_place(net):
        net.layers[-1].activation.slope = 0.05

    def weight_array(net):
        net.layers[1].params["weight"] = net.layers[1].params["weight"] * 1.5

    def output_weight_array(net):
        net.output.params["weight"] = net.output.params["weight"][::-1].copy()

    return [conv_activation, dense_activation, slope_in_place, weight_array, output_weight_array]


@pytest.mark.parametrize("change", _changes(), ids=lambda f: f.__name__)
@pytest.mark.parametrize("served", [False, True], ids=["tasks", "served"])
def test_a_change_between_steps_reaches_every_slice(change, served):
    """After a step on two threads, the network is changed as a user may: the next two-thread step
    computes the changed network (the one-thread numbers, to round-off)."""
    def make():
        from convprop import Conv, Dense, Input, MaxPool, Network
        from convprop.engine.activations import LeakyReLU

        return Network([Input(12, 12), Conv(3, 5, "relu", padding=2), MaxPool(2), Conv(4, 3), MaxPool(2),
                        Dense(7, LeakyReLU(0.3))], n_outputs=3, output="softmax", seed=3)

    net = make()
    x, y = random_batch(net, 40, seed=2, labels=True)
    maps, targets = net_inputs(net, x, y)
    convprop.set_num_threads(2)
    with _served(net, served):
        net.train_batch(maps, targets)
        change(net)
        got = net.train_batch(maps, targets), {k: g.copy() for k, g in net.gradients().items()}
        assert len(net._slices) == 2
    convprop.set_num_threads(1)
    want = net.train_batch(maps, targets), net.gradients()
    assert got[0] == pytest.approx(want[0], rel=1e-13)
    for k, g in want[1].items():
        assert np.abs(got[1][k] - g).max() <= 1e-12 * np.abs(g).max(), k


@pytest.mark.parametrize("served", [False, True], ids=["tasks", "served"])
def test_new_data_and_data_changed_in_place_are_read(served):
    """The bound step reads the images and targets at each call: a new array, or the same one
    rewritten, gives the numbers of a network that sees that data first."""
    make = NETWORKS["toolbox"]
    convprop.set_num_threads(2)
    net, fresh = make("float64"), make("float64")
    x, y = random_batch(net, 32, seed=0, labels=True)
    maps, targets = net_inputs(net, x, y)
    with _served(net, served):
        net.train_batch(maps, targets)
        for new in (maps[::-1].copy(), None, "targets"):
            if new is None:  # the same array, rewritten
                new = maps
                new[:] = new[:, ::-1]
            elif isinstance(new, str):  # new targets only
                new, targets = maps, targets[::-1].copy()
            assert net.train_batch(new, targets) == fresh.train_batch(new, targets)
            for k, g in fresh.gradients().items():
                np.testing.assert_array_equal(net.gradients()[k], g, err_msg=k)


def test_the_bound_steps_hold_no_data_and_go_with_release():
    """Training data given to a two-thread step is not kept alive by it; release() (which predict_proba
    calls) drops the replicas and their bound steps."""
    import gc
    import weakref

    convprop.set_num_threads(2)
    net = NETWORKS["toolbox"]("float64")
    x, y = random_batch(net, 32, seed=0, labels=True)
    maps, targets = net_inputs(net, x, y)
    net.train_batch(maps, targets)
    assert net._sliced is not None
    gone = weakref.ref(maps), weakref.ref(targets)
    del maps, targets
    gc.collect()
    assert gone[0]() is None and gone[1]() is None
    net.predict_proba(x)
    assert net._sliced is None and net._twins == [] and net._kept_stack is None


def test_released_steps_are_freed_at_once():
    """No reference cycle holds a released replica's arrays until the garbage collector's next full
    pass (a 100-epoch CLI run grew by 12 MiB per epoch, each evaluation's release leaving them)."""
    import gc
    import weakref

    convprop.set_num_threads(2)
    net = NETWORKS["lenet"]("float32")
    x, y = random_batch(net, 32, seed=0, labels=True)
    net.train_batch(*net_inputs(net, x, y))
    gone = [weakref.ref(a) for step in net._sliced.steps for a in (step, *step.maps)] + \
        [weakref.ref(twin) for twin in net._twins]
    gc.disable()
    try:
        net.release()
        assert all(r() is None for r in gone)
    finally:
        gc.enable()


def test_served_slices_let_go_of_the_data_when_the_block_ends():
    """Inside the training loop's block the crew threads run their slices in a compiled loop that
    holds the data set; leaving the block ends that loop at once: no thread serves a token, and
    the data set goes as soon as its last reference does (no reference cycle, no waiting)."""
    import gc
    import weakref

    convprop.set_num_threads(2)
    net = NETWORKS["toolbox"]("float64")
    x, y = random_batch(net, 64, seed=1, labels=True)
    maps, targets = net_inputs(net, x, y)
    crew = parallel._crew(1)
    with net.reusing_step_arrays():
        for start in (0, 32):
            net.train_batch(maps, targets, rows=np.arange(start, start + 32))
        assert crew.token and crew.flags[1] == crew.token
    assert crew.token == 0 and crew.job[2] is None
    gone = weakref.ref(maps), weakref.ref(targets)
    gc.disable()
    try:
        del maps, targets
        assert gone[0]() is None and gone[1]() is None
    finally:
        gc.enable()


def test_an_error_in_the_served_loop_reaches_the_caller_and_the_crew_goes_on(monkeypatch):
    """The crew thread's compiled loop failing to start: the step raises the error in the calling
    thread (which does not wait for ever), and the next steps and jobs run."""
    import convprop.engine.kernels.serve as served

    convprop.set_num_threads(2)
    net, fresh = NETWORKS["toolbox"]("float64"), NETWORKS["toolbox"]("float64")
    x, y = random_batch(net, 32, seed=4, labels=True)
    maps, targets = net_inputs(net, x, y)

    def broken(*args):
        raise RuntimeError("the crew's loop failed")

    with monkeypatch.context() as patch:
        patch.setattr(served, "serve", broken)
        with net.reusing_step_arrays(), pytest.raises(RuntimeError, match="the crew's loop failed"):
            net.train_batch(maps, targets)
    assert parallel.run_tasks(lambda i: i + 1, 2) == [1, 2]
    with net.reusing_step_arrays():
        assert net.train_batch(maps, targets) == fresh.train_batch(maps, targets)
    for k, g in fresh.gradients().items():
        np.testing.assert_array_equal(net.gradients()[k], g, err_msg=k)


def test_a_crew_asleep_between_served_steps_is_woken(monkeypatch):
    """A served loop that stops waiting (a long pause between steps: the crew thread goes to sleep)
    is entered again by the next step, with the numbers of steps in a row."""
    import time

    monkeypatch.setattr(parallel, "SPIN_POLLS", 1000)  # gives up at once
    convprop.set_num_threads(2)
    net, fresh = NETWORKS["lenet"]("float32"), NETWORKS["lenet"]("float32")
    x, y = random_batch(net, 48, seed=5, labels=True)
    maps, targets = net_inputs(net, x, y)
    crew = parallel._crew(1)
    with net.reusing_step_arrays():
        for start in (0, 16, 32, 0):
            rows = np.arange(start, start + 16)
            time.sleep(0.02)  # the crew thread is asleep now (on a loaded machine, a while later)
            assert start == 0 or wait_until(lambda: crew._sleepers == 1)
            assert net.train_batch(maps, targets, rows) == fresh.train_batch(maps, targets, rows)
            for k, g in fresh.gradients().items():
                np.testing.assert_array_equal(net.gradients()[k], g, err_msg=k)
            net.step(0.1)
            fresh.step(0.1)


def test_an_error_in_a_later_served_step_reaches_that_steps_caller(monkeypatch):
    """A failure inside the crew's loop on a step after the first one it served (a MemoryError from an
    allocation, say) is raised by that step's train_batch, not lost; the next steps run."""
    import time

    import convprop.engine.kernels.serve as served
    from convprop.engine.kernels.spin import post  # noqa: F401  (the loop's real kernels are loaded)
    from convprop.engine.kernels.stack import train

    def failing_on_the_second(flags, slot, token, gen, lo, hi, losses, limit, x, y, rows, *step):
        """The compiled loop's protocol in Python, failing on its second job."""
        for job in range(2):
            flags[8 * slot + 3] = gen
            if job == 1:
                raise MemoryError("the crew's slice failed")
            losses[slot] = train(x, y, rows, lo, *step, flags, 8 * slot + 2, gen)
            flags[8 * slot + 1], flags[8 * slot] = 1, gen
            posted = gen
            for _ in range(100_000):
                posted = int(flags[0])
                if posted > gen:
                    break
                time.sleep(0)
            if posted <= gen or flags[1] != token:
                return gen
            gen = posted
        return gen

    convprop.set_num_threads(2)
    net, fresh = NETWORKS["toolbox"]("float64"), NETWORKS["toolbox"]("float64")
    x, y = random_batch(net, 96, seed=6, labels=True)
    maps, targets = net_inputs(net, x, y)
    want = [fresh.train_batch(maps, targets, np.arange(start, start + 32)) for start in (0, 64)]
    monkeypatch.setattr(served, "serve", failing_on_the_second)
    with net.reusing_step_arrays():  # no other job in between: the loop goes on to its second job
        assert net.train_batch(maps, targets, np.arange(0, 32)) == want[0]
        with pytest.raises(MemoryError, match="the crew's slice failed"):
            net.train_batch(maps, targets, np.arange(32, 64))
        monkeypatch.undo()
        assert net.train_batch(maps, targets, np.arange(64, 96)) == want[1]
    assert parallel._crews[1]._failed == {}


def test_gradients_read_after_the_block_are_not_overwritten_later():
    """Within the block the slices' joined gradients are kept arrays, overwritten by the next step; after
    it, what a user reads stays as it was."""
    convprop.set_num_threads(2)
    net = NETWORKS["toolbox"]("float64")
    x, y = random_batch(net, 64, seed=8, labels=True)
    maps, targets = net_inputs(net, x, y)
    with net.reusing_step_arrays():
        net.train_batch(maps, targets, np.arange(0, 32))
    kept = net.gradients()["output.weight"]
    value = kept.copy()
    with net.reusing_step_arrays():
        net.train_batch(maps, targets, np.arange(32, 64))
    np.testing.assert_array_equal(kept, value)
    assert not np.array_equal(net.gradients()["output.weight"], value)


def test_unbind_from_inside_a_task_does_not_wait_for_itself():
    """Ending a block inside a task of run_tasks (the crew busy with that very job) returns at once."""
    import threading

    convprop.set_num_threads(2)
    net = NETWORKS["toolbox"]("float64")
    x, y = random_batch(net, 32, seed=9, labels=True)
    maps, targets = net_inputs(net, x, y)
    crew = parallel._crew(1)
    done = []

    def job():
        with net.reusing_step_arrays():
            net.train_batch(maps, targets)
            parallel.run_tasks(lambda i: parallel.unbind(), 2)
        done.append(True)

    worker = threading.Thread(target=job, daemon=True)
    worker.start()
    worker.join(60)
    assert done and crew.token == 0


def test_kept_slices_run_again_only_while_nothing_they_were_bound_to_changed(monkeypatch):
    """Within reusing_step_arrays on two threads, a step on rows of a data set runs the slices it kept
    after one pass of checks (SlicedStep.still); after each change a user may make between steps it
    takes the full path instead, and every number stays the replicas' own train_batch's, bit for bit."""
    from convprop.engine import sliced
    from test_stack import each_change_then_two_steps, kept_net

    expected = {  # (after the change, the step after that): what SlicedStep.still answered
        "nothing": ([], [False]),  # no kept slices yet; then another batch size
        "a Fortran-ordered weight": ([False], [False]),  # no one call takes it: the replicas' layers
        "a layer wrapped": ([False], [False]),  # likewise
    }
    convprop.set_num_threads(2)
    kept, slow = kept_net(), kept_net()
    x, y = random_batch(kept, 60, seed=2, labels=True)
    maps, targets = net_inputs(kept, x, y)
    for name, i, rows, answers in each_change_then_two_steps((kept, slow), sliced.SlicedStep, monkeypatch):
        kept.train_batch(maps, targets, rows)
        slow._new_pass(len(rows))
        slow._forward_slices(maps, 2, targets, rows)
        _assert_same_bits(_state(kept), _state(slow))
        assert answers == expected.get(name, ([False], [True]))[i], (name, i, answers)
        for net in (kept, slow):
            net.step(0.5)


def test_kept_slices_are_the_replicas_the_network_keeps():
    """A pass of another slice count between steps makes new replicas: the next step makes its own again
    (a new plan), as the full path does, with the replicas' own numbers."""
    convprop.set_num_threads(3)
    fast, slow = NETWORKS["toolbox"]("float64"), NETWORKS["toolbox"]("float64")
    x, y = random_batch(fast, 60, seed=7, labels=True)
    maps, targets = net_inputs(fast, x, y)
    with fast.reusing_step_arrays():
        for step in range(3):
            fast.train_batch(maps, targets, np.arange(24))
            assert fast._slices == fast._twins and fast._sliced.twins == fast._twins and len(fast._twins) == 3
            slow._new_pass(24)
            slow._forward_slices(maps, 3, targets, np.arange(24))
            _assert_same_bits(_state(fast), _state(slow))
            for net in (fast, slow):
                net.step(0.5)
                net.forward(x[:16])  # two slices: two new replicas
