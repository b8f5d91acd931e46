"""Test helpers for the layers beyond the toolbox: a PyTorch twin of any network and central differences."""

from __future__ import annotations

import os

import numpy as np

from convprop.engine import activations
from convprop.engine.layers import Conv, Dense, MaxPool, Subsample

#: Agreement asked of float64 results with PyTorch autograd (relative to each tensor's largest entry).
TORCH_TOL = 1e-10
#: Agreement asked of central differences (relative to each tensor's largest entry).
FD_TOL = 1e-8


def torch_activation(act, z):
    import torch.nn.functional as F

    if isinstance(act, activations.Sigmoid):
        return torch_sigmoid(z)
    if isinstance(act, activations.Tanh):
        return z.tanh()
    if isinstance(act, activations.ReLU):
        return F.relu(z)
    if isinstance(act, activations.LeakyReLU):
        return F.leaky_relu(z, act.slope)
    if isinstance(act, activations.Identity):
        return z
    raise AssertionError(act)


def torch_sigmoid(z):
    import torch

    return torch.sigmoid(z)


def torch_twin(net, x, y):
    """Outputs, loss and gradients (name → ndarray) of ``net`` computed by PyTorch autograd in float64.

    x : (N, H, W[, C]) images; y : (N, K) targets.
    """
    import torch
    import torch.nn.functional as F

    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in net.parameters().items()}
    x = np.asarray(x, dtype=np.float64)
    a = torch.tensor(x if x.ndim == 4 else x[..., None]).permute(0, 3, 1, 2)
    n = a.shape[0]
    for i, layer in enumerate(net.layers[1:], start=1):
        name = f"{type(layer).__name__.lower()}{i}"
        if isinstance(layer, Conv):
            top, bottom, left, right = layer.pads
            a = F.pad(a, (left, right, top, bottom))
            # conv2d is a cross-correlation, which is what convprop's weight holds in both modes
            a = F.conv2d(a, params[f"{name}.weight"], params[f"{name}.bias"], stride=layer.stride)
            a = torch_activation(layer.activation, a)
        elif isinstance(layer, Subsample):
            a = F.avg_pool2d(a, layer.scale)
        elif isinstance(layer, MaxPool):
            a = F.max_pool2d(a, layer.scale)  # ceil_mode=False: drops the rows / columns past the last block
        elif isinstance(layer, Dense):
            if a.ndim == 4:
                a = a.permute(0, 2, 3, 1).reshape(n, -1)  # convprop's (H, W, C) order
            a = torch_activation(layer.activation, a @ params[f"{name}.weight"].T + params[f"{name}.bias"])
        else:
            raise AssertionError(layer)
    fv = a.permute(0, 2, 3, 1).reshape(n, -1) if a.ndim == 4 else a
    z = fv @ params["output.weight"].T + params["output.bias"]
    yt = torch.tensor(np.asarray(y, dtype=np.float64))
    if net.output_kind == "softmax":
        o = torch.softmax(z, dim=1)
        loss = -(yt * torch.log_softmax(z, dim=1)).sum() / n
    else:
        o = torch.sigmoid(z)
        loss = 0.5 * ((o - yt) ** 2).sum() / n
    loss.backward()
    return o.detach().numpy(), loss.item(), {k: p.grad.numpy() for k, p in params.items()}


def central_differences(net, x, y, epsilon=1e-5):
    """Central differences (L(θ+ε) − L(θ−ε))/2ε for every parameter entry of a float64 network."""
    from convprop._validation import check_images, check_targets

    maps, _ = check_images(x, net.image_shape, net.dtype)
    targets = check_targets(y, maps.shape[0], net.n_outputs, net.dtype)

    def loss():
        net.forward_batch(maps)
        return net.backward_batch(targets)

    numeric = {}
    for name, param in net.parameters().items():
        num = np.empty_like(param)
        flat = param.reshape(-1)
        for k in range(flat.size):
            keep = flat[k]
            flat[k] = keep + epsilon
            plus = loss()
            flat[k] = keep - epsilon
            minus = loss()
            flat[k] = keep
            num.reshape(-1)[k] = (plus - minus) / (2 * epsilon)
        numeric[name] = num
    return numeric


def rel_err(a, b) -> float:
    """max |a − b| / max |b| (0 when both vanish)."""
    scale = np.abs(b).max()
    diff = np.abs(np.asarray(a) - np.asarray(b)).max()
    return float(diff / scale) if scale else float(diff)


def batch(net, n=3, seed=0, labels=True):
    """Images in [−1, 1) (both signs reach ReLUs) and targets: one-hot labels (softmax) or reals."""
    rng = np.random.default_rng(seed)
    h, w, c = net.image_shape
    x = rng.uniform(-1, 1, (n, h, w, c) if c > 1 else (n, h, w))
    if net.output_kind == "softmax" or labels:
        y = np.eye(net.n_outputs)[rng.integers(0, net.n_outputs, n)]
    else:
        y = rng.random((n, net.n_outputs))
    return x, y


def check_against_torch(net, x, y, record=None):
    """Outputs, loss and every gradient equal PyTorch's to TORCH_TOL; returns the worst relative error."""
    o = net.forward(x)
    loss = net.backward(y)
    grads = net.gradients()
    ot, lt, gt = torch_twin(net, x, y)
    worst = max([rel_err(o, ot), abs(loss - lt) / abs(lt)] + [rel_err(grads[k], gt[k]) for k in gt])
    assert rel_err(o, ot) < TORCH_TOL
    assert abs(loss - lt) <= TORCH_TOL * abs(lt)
    for k in gt:
        assert grads[k].shape == gt[k].shape
        assert rel_err(grads[k], gt[k]) < TORCH_TOL, (k, rel_err(grads[k], gt[k]))
    _record("torch", worst)
    return worst


def check_central_differences(net, x, y):
    """Every gradient equals central differences to FD_TOL; returns the worst relative error."""
    net.forward(x)
    net.backward(y)
    grads = {k: g.copy() for k, g in net.gradients().items()}
    numeric = central_differences(net, x, y)
    worst = 0.0
    for k, num in numeric.items():
        err = rel_err(grads[k], num)
        worst = max(worst, err)
        assert err < FD_TOL, (k, err)
    _record("fd", worst)
    return worst


def _record(kind: str, worst: float) -> None:
    """With $CONVPROP_RECORD_ERRORS=path, append each check's worst relative error (for reports)."""
    path = os.environ.get("CONVPROP_RECORD_ERRORS")
    if path:
        with open(path, "a") as f:
            f.write(f"{kind} {worst:.3e}\n")
