"""An independent autograd oracle: the same networks in PyTorch give the same numbers."""

import numpy as np
import pytest

from conftest import random_batch
from convprop import Conv, Input, Network, Subsample
from convprop import train
from convprop.engine.layers import Subsample as SubsampleLayer

# Every test here runs on both engines: the NumPy reference and the compiled kernels.
pytestmark = pytest.mark.usefixtures("engine")

torch = pytest.importorskip("torch")

NETS = {
    "dlt-example": ([Input(28, 28), Conv(6, 5), Subsample(2), Conv(12, 5), Subsample(2)], 10),
    "non-square": ([Input(13, 20), Conv(3, (2, 5)), Conv(4, 3), Subsample(2)], 4),
    "last-conv": ([Input(10, 12), Conv(1, 3), Subsample(2), Conv(3, 2)], 3),
    "colour": ([Input(12, 12, 3), Conv(4, 3), Subsample(2), Conv(2, 3)], 5),
}
TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}


class TorchTwin(torch.nn.Module):
    """The network written with torch.nn, sharing convprop's weights."""

    def __init__(self, net: Network, dtype):
        super().__init__()
        self.net = net
        self.params = torch.nn.ParameterDict(
            {k.replace(".", "_"): torch.nn.Parameter(torch.tensor(v, dtype=dtype)) for k, v in net.parameters().items()}
        )

    def forward(self, x):
        a = x.permute(0, 3, 1, 2)  # NHWC → NCHW
        for i, layer in enumerate(self.net.layers[1:], start=1):
            if isinstance(layer, SubsampleLayer):
                a = torch.nn.functional.avg_pool2d(a, layer.scale)
            else:
                w, b = self.params[f"conv{i}_weight"], self.params[f"conv{i}_bias"]
                a = torch.sigmoid(torch.nn.functional.conv2d(a, w, b))  # conv2d is a correlation
        fv = a.permute(0, 2, 3, 1).reshape(a.shape[0], -1)  # convprop's NHWC feature vector
        return torch.sigmoid(fv @ self.params["output_weight"].T + self.params["output_bias"])


def _torch_dtype(dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def _inputs(net, x):
    arr = np.asarray(x, dtype=net.dtype)
    return arr[..., None] if arr.ndim == 3 else arr


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NETS)
def test_outputs_loss_and_gradients_match_torch(name, dtype):
    layers, n_out = NETS[name]
    net = Network(layers, n_outputs=n_out, dtype=dtype, seed=3)
    x, y = random_batch(net, 7, seed=4)
    o = net.forward(x)
    loss = net.backward(y)
    grads = net.gradients()
    assert o.dtype == dtype and all(g.dtype == dtype for g in grads.values())

    twin = TorchTwin(net, _torch_dtype(dtype))
    xt = torch.tensor(_inputs(net, x))
    yt = torch.tensor(np.asarray(y, dtype=dtype))
    ot = twin(xt)
    lt = 0.5 * ((ot - yt) ** 2).sum() / xt.shape[0]
    lt.backward()

    np.testing.assert_allclose(o, ot.detach().numpy(), **TOL[dtype])
    assert loss == pytest.approx(lt.item(), rel=TOL[dtype]["rtol"])
    for k, g in grads.items():
        tg = twin.params[k.replace(".", "_")].grad.numpy()
        scale = np.abs(tg).max()
        np.testing.assert_allclose(g, tg, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["rtol"] * scale, err_msg=k)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weights_after_20_sgd_steps_match_torch(dtype):
    layers, n_out = NETS["dlt-example"]
    net = Network(layers, n_outputs=n_out, dtype=dtype, seed=5)
    x, labels = random_batch(net, 100, seed=6, labels=True)
    twin = TorchTwin(net, _torch_dtype(dtype))
    opt = torch.optim.SGD(twin.parameters(), lr=1.0)
    order = np.random.default_rng(7).permutation(100)
    history = train(net, x, labels, epochs=4, batch_size=20, alpha=1.0, order=order)  # 20 steps
    assert len(history.L) == 20
    xt = torch.tensor(_inputs(net, x))
    yt = torch.nn.functional.one_hot(torch.tensor(labels), n_out).to(_torch_dtype(dtype))
    torch_losses = []
    for _epoch in range(4):
        for start in range(0, 100, 20):
            idx = torch.tensor(order[start : start + 20])
            opt.zero_grad()
            o = twin(xt[idx])
            loss = 0.5 * ((o - yt[idx]) ** 2).sum() / len(idx)
            loss.backward()
            opt.step()
            torch_losses.append(loss.item())
    tol = dict(rtol=1e-11, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(history.L, torch_losses, **tol)
    for k, v in net.parameters().items():
        np.testing.assert_allclose(v, twin.params[k.replace(".", "_")].detach().numpy(), err_msg=k, **tol)
