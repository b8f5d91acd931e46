"""Optimisers against torch.optim, schedules against torch's schedulers, state round trips."""

import copy
import json

import numpy as np
import pytest

import convprop

from conftest import random_batch
from convprop import Conv, ConvpropError, Input, Network, Subsample
from convprop import train
from convprop.engine.optim import SGD, Adam, AdamW, CosineLR, ExponentialLR, StepLR

torch = pytest.importorskip("torch")
from test_torch_oracle import TorchTwin  # noqa: E402  (needs torch)

LAYERS = [Input(12, 12), Conv(3, 3), Subsample(2), Conv(4, 3)]
N_OUT = 5

# (convprop optimiser, torch optimiser factory) pairs, each run for 10 steps.
CASES = {
    "sgd": (lambda: SGD(0.7), lambda p: torch.optim.SGD(p, lr=0.7)),
    "sgd-momentum": (lambda: SGD(0.5, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9)),
    "sgd-nesterov-wd": (
        lambda: SGD(0.5, momentum=0.8, nesterov=True, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.8, nesterov=True, weight_decay=0.01),
    ),
    "sgd-wd": (lambda: SGD(0.5, weight_decay=0.05), lambda p: torch.optim.SGD(p, lr=0.5, weight_decay=0.05)),
    "adam": (lambda: Adam(0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    "adam-l2": (
        lambda: Adam(0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    ),
    "adamw": (lambda: AdamW(0.01, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
}


def _run_both(make_ours, make_torch, steps=10):
    net = Network(LAYERS, n_outputs=N_OUT, seed=1)
    twin = TorchTwin(net, torch.float64)
    opt_t = make_torch(twin.parameters())
    opt = make_ours()
    x, y = random_batch(net, 8 * steps, seed=2, labels=True)
    yt = torch.nn.functional.one_hot(torch.tensor(y), N_OUT).double()
    xt = torch.tensor(x[..., None])
    for s in range(steps):
        sl = slice(8 * s, 8 * s + 8)
        net.forward(x[sl])
        net.backward(y[sl])
        opt.step(net)
        opt_t.zero_grad()
        o = twin(xt[sl])
        (0.5 * ((o - yt[sl]) ** 2).sum() / 8).backward()
        opt_t.step()
    diffs = {
        k: float(np.abs(v - twin.params[k.replace(".", "_")].detach().numpy()).max()) for k, v in net.parameters().items()
    }
    return net, opt, diffs


@pytest.mark.parametrize("case", CASES)
def test_ten_steps_match_torch_optim_float64(case):
    net0 = Network(LAYERS, n_outputs=N_OUT, seed=1)
    net, _, diffs = _run_both(*CASES[case])
    moved = max(float(np.abs(v - net0.parameters()[k]).max()) for k, v in net.parameters().items())
    assert moved > 1e-3  # the parameters really changed
    assert max(diffs.values()) < 1e-12, diffs


def test_plain_sgd_is_the_toolbox_step_bit_for_bit():
    a = Network(LAYERS, n_outputs=N_OUT, seed=3)
    b = Network(LAYERS, n_outputs=N_OUT, seed=3)
    x, y = random_batch(a, 60, seed=4, labels=True)
    ha = train(a, x, y, epochs=2, batch_size=10, alpha=0.9, seed=5)
    hb = train(b, x, y, epochs=2, batch_size=10, alpha=123.0, seed=5, optimizer=SGD(0.9))
    assert ha.L == hb.L and ha.rL == hb.rL
    for k, v in a.parameters().items():
        assert np.array_equal(v, b.parameters()[k]), k


def test_float32_state_and_updates_stay_float32():
    net = Network(LAYERS, n_outputs=N_OUT, dtype=np.float32, seed=0)
    x, y = random_batch(net, 20, seed=1, labels=True)
    opt = Adam(0.01)
    train(net, x, y, epochs=1, batch_size=10, optimizer=opt)
    assert all(v.dtype == np.float32 for v in net.parameters().values())
    assert all(v.dtype == np.float32 for bufs in opt.state.values() for v in bufs.values())


@pytest.mark.parametrize(
    "ours, make_torch",
    [
        (StepLR(0.5, step_size=3, gamma=0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, gamma=0.5)),
        (ExponentialLR(0.5, gamma=0.9), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)),
        (CosineLR(0.5, T_max=7, eta_min=0.01), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, eta_min=0.01)),
    ],
)
def test_schedules_match_torch_schedulers(ours, make_torch):
    opt_t = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    sched = make_torch(opt_t)
    theirs = []
    for _ in range(8):
        theirs.append(sched.get_last_lr()[0])
        opt_t.step()
        sched.step()
    np.testing.assert_allclose([ours(e) for e in range(8)], theirs, rtol=1e-12)


def test_train_advances_the_schedule_per_epoch():
    net = Network(LAYERS, n_outputs=N_OUT, seed=0)
    x, y = random_batch(net, 20, seed=1, labels=True)
    seen = []
    opt = SGD(StepLR(1.0, step_size=1, gamma=0.5))
    train(net, x, y, epochs=3, batch_size=10, optimizer=opt, callback=lambda e, b, nb, L, rL: seen.append(opt.lr))
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert opt.epoch == 3 and opt.t == 6
    opt2 = SGD(lambda epoch: 0.1 / (1 + epoch))  # any callable epoch -> lr
    assert opt2.lr == 0.1
    opt2.end_epoch()
    assert opt2.lr == 0.05


def test_state_dict_round_trip_continues_identically(tmp_path):
    make_ours, make_torch = CASES["sgd-nesterov-wd"]
    net, opt, _ = _run_both(make_ours, make_torch, steps=3)
    sd = opt.state_dict()
    # Saved without pickle: arrays in an .npz, the rest as JSON.
    arrays = {f"{slot}/{k}": v for slot, bufs in sd["state"].items() for k, v in bufs.items()}
    np.savez(tmp_path / "opt.npz", **arrays)
    meta = json.dumps({k: v for k, v in sd.items() if k != "state"})
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        state = {slot: {} for slot in sd["state"]}
        for key in f.files:
            slot, name = key.split("/", 1)
            state[slot][name] = f[key]
    restored = make_ours()
    restored.load_state_dict({**json.loads(meta), "state": state})
    net2 = Network(LAYERS, n_outputs=N_OUT, seed=1)
    for k, v in net.parameters().items():
        net2.parameters()[k][...] = v
    x, y = random_batch(net, 8, seed=9, labels=True)
    for n, o in ((net, opt), (net2, restored)):
        n.forward(x)
        n.backward(y)
        o.step(n)
    for k, v in net.parameters().items():
        assert np.array_equal(v, net2.parameters()[k]), k
    assert restored.t == opt.t == 4
    with pytest.raises(ConvpropError, match="Adam"):
        Adam().load_state_dict(sd)
    other = Network([Input(12, 12), Conv(2, 3), Subsample(2), Conv(4, 3)], n_outputs=N_OUT, seed=1)
    other.forward(x)
    other.backward(y)
    with pytest.raises(ConvpropError, match="another network"):
        restored.step(other)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SGD(0),
        lambda: SGD(0.1, momentum=1.0),
        lambda: SGD(0.1, nesterov=True),
        lambda: SGD(float("nan")),
        lambda: Adam(0.1, betas=(0.9,)),
        lambda: Adam(0.1, eps=0),
        lambda: StepLR(0.1, step_size=0),
        lambda: CosineLR(0.1, T_max=2.5),
    ],
)
def test_bad_hyperparameters_raise(make):
    with pytest.raises(ConvpropError):
        make()


class _Params:
    """Parameters and gradients without a network (what an optimiser's step reads)."""

    def __init__(self, dtype, seed):
        rng = np.random.default_rng(seed)
        shapes = {"conv1.weight": (6, 1, 5, 5), "conv1.bias": (6,), "output.weight": (10, 192), "output.bias": (10,)}
        self.params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.rng = rng

    def parameters(self):
        return self.params

    def gradients(self):
        return self.grads

    def new_gradients(self):
        for g in self.grads.values():
            g[...] = self.rng.standard_normal(g.shape) * 0.1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("make", [lambda: Adam(0.01), lambda: Adam(0.02, weight_decay=0.1),
                                  lambda: AdamW(0.01, weight_decay=0.3)], ids=["adam", "adam-l2", "adamw"])
def test_adam_in_one_compiled_call_is_numpys_bit_for_bit(dtype, make):
    """The compiled engine's Adam (kernels.arrays.adam, one call for all parameters) rounds every
    product and sum as the NumPy expressions of Adam._update: the same parameters and state."""
    from convprop.engine import backend

    if not backend.available():
        pytest.skip("Numba is not installed")
    got = {}
    for engine in ("numba", "numpy"):
        convprop.set_engine(engine)
        try:
            net, opt = _Params(dtype, seed=7), make()
            calls = []
            opt._update = lambda *a, _u=opt._update: (calls.append(1), _u(*a))
            for _ in range(5):
                net.new_gradients()
                opt.step(net)
        finally:
            convprop.set_engine(None)
        assert (len(calls) == 0) == (engine == "numba")  # the compiled engine took the one call
        got[engine] = (net.params, opt.state)
    for k, v in got["numba"][0].items():
        np.testing.assert_array_equal(v, got["numpy"][0][k], err_msg=k)
        assert v.dtype == np.dtype(dtype)
    for slot, bufs in got["numba"][1].items():
        for k, v in bufs.items():
            np.testing.assert_array_equal(v, got["numpy"][1][slot][k], err_msg=f"{slot} {k}")


@pytest.mark.parametrize("case", ["sgd-momentum", "adam", "adamw"])
def test_the_arrays_kept_from_step_to_step_follow_every_change(case):
    """An optimiser keeps a network's parameter, gradient and state arrays from one step to the next
    while they are the same objects: a parameter replaced, gradients in new arrays, the state emptied
    or replaced in place, loaded from a checkpoint, or a copy of the optimiser all give the numbers of
    an optimiser that keeps nothing."""
    make = CASES[case][0]
    nets = [Network(LAYERS, n_outputs=N_OUT, seed=1) for _ in range(2)]
    opts = [make(), make()]
    x, y = random_batch(nets[0], 20, seed=3, labels=True)
    for step in range(6):
        for net, opt in zip(nets, opts):
            net.forward(x)
            net.backward(y)
            if step == 2:  # a user's new parameter array
                net.layers[1].params["weight"] = net.layers[1].params["weight"].copy()
            if step == 3:  # a callback resetting the state in place: one slot emptied, one array replaced
                slots = list(opt.state.values())
                slots[0].clear()
                for name in list(slots[-1]):
                    slots[-1][name] = slots[-1][name] * 0.5
            if step == 4:  # the state of another optimiser's checkpoint, then a copy that goes on
                other = make()
                other.load_state_dict(opt.state_dict())
                opt.load_state_dict(other.state_dict())
            opt.step(net)
            if opt is opts[1]:  # the second keeps nothing
                opt._kept = None
        for k, p in nets[0].parameters().items():
            np.testing.assert_array_equal(p, nets[1].parameters()[k], err_msg=f"step {step}: {k}")
    assert opts[0]._kept is not None
    twin = copy.deepcopy(opts[0])
    assert twin._kept is None and twin._flats == {}
