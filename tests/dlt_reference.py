"""A literal, loop-by-loop port of the toolbox's CNN functions, used only as a test oracle.

cnnff, cnnbp, cnnsetup, cnnapplygrads, cnntest and cnnnumgradcheck (CNN/*.m).

It follows the MATLAB code line by line (convn → scipy.signal.convolve, cell
arrays → lists, column-major reshapes with order='F'), so that the engine's
layouts (flipped kernels, NHWC feature vector) are checked against the
toolbox's own semantics rather than against themselves.
"""

import copy

import numpy as np
from scipy.signal import convolve


def sigm(z):
    return 1.0 / (1.0 + np.exp(-z))


def rot180(k):
    return k[::-1, ::-1]


def flipall(a):
    return a[::-1, ::-1, ::-1]


def expand(d, scale):
    return np.kron(d, np.ones((scale, scale, 1)))


def cnnff(net, x):
    n = len(net["layers"])
    net["layers"][0]["a"] = [x]
    inputmaps = 1
    for l in range(1, n):
        layer, prev = net["layers"][l], net["layers"][l - 1]
        if layer["type"] == "c":
            layer["a"] = []
            for j in range(layer["outputmaps"]):
                z = np.zeros(np.subtract(prev["a"][0].shape, [layer["kernelsize"] - 1, layer["kernelsize"] - 1, 0]))
                for i in range(inputmaps):
                    z = z + convolve(prev["a"][i], layer["k"][i][j][:, :, None], mode="valid")
                layer["a"].append(sigm(z + layer["b"][j]))
            inputmaps = layer["outputmaps"]
        elif layer["type"] == "s":
            s = layer["scale"]
            layer["a"] = []
            for j in range(inputmaps):
                z = convolve(prev["a"][j], np.ones((s, s, 1)) / s**2, mode="valid")
                layer["a"].append(z[::s, ::s, :])
    fv = [a.reshape(a.shape[0] * a.shape[1], a.shape[2], order="F") for a in net["layers"][-1]["a"]]
    net["fv"] = np.concatenate(fv, axis=0)
    net["o"] = sigm(net["ffW"] @ net["fv"] + net["ffb"])
    return net


def cnnbp(net, y):
    n = len(net["layers"])
    net["e"] = net["o"] - y
    net["L"] = 0.5 * np.sum(net["e"] ** 2) / net["e"].shape[1]
    net["od"] = net["e"] * (net["o"] * (1 - net["o"]))
    net["fvd"] = net["ffW"].T @ net["od"]
    last = net["layers"][-1]
    if last["type"] == "c":
        net["fvd"] = net["fvd"] * (net["fv"] * (1 - net["fv"]))
    sa = last["a"][0].shape
    fvnum = sa[0] * sa[1]
    last["d"] = [net["fvd"][j * fvnum : (j + 1) * fvnum, :].reshape(sa, order="F") for j in range(len(last["a"]))]
    for l in range(n - 2, -1, -1):
        layer, nxt = net["layers"][l], net["layers"][l + 1]
        if layer["type"] == "c":
            s = nxt["scale"]
            layer["d"] = [a * (1 - a) * (expand(nxt["d"][j], s) / s**2) for j, a in enumerate(layer["a"])]
        elif layer["type"] == "s":
            layer["d"] = []
            for i in range(len(layer["a"])):
                z = np.zeros_like(layer["a"][0])
                for j in range(len(nxt["a"])):
                    z = z + convolve(nxt["d"][j], rot180(nxt["k"][i][j])[:, :, None], mode="full")
                layer["d"].append(z)
    for l in range(1, n):
        layer, prev = net["layers"][l], net["layers"][l - 1]
        if layer["type"] == "c":
            layer["dk"] = [[None] * len(layer["a"]) for _ in prev["a"]]
            layer["db"] = []
            for j in range(len(layer["a"])):
                for i in range(len(prev["a"])):
                    layer["dk"][i][j] = convolve(flipall(prev["a"][i]), layer["d"][j], mode="valid")[:, :, 0] / layer["d"][j].shape[2]
                layer["db"].append(np.sum(layer["d"][j]) / layer["d"][j].shape[2])
    net["dffW"] = net["od"] @ net["fv"].T / net["od"].shape[1]
    net["dffb"] = np.mean(net["od"], axis=1, keepdims=True)
    return net


def cnnsetup(net, x, y, rand):
    """CNN/cnnsetup.m; ``rand(m, n)`` stands for MATLAB's rand (an m×n matrix, filled column-major)."""
    inputmaps = 1
    mapsize = np.array(x.shape[:2], dtype=float)
    for l, layer in enumerate(net["layers"]):
        if layer["type"] == "s":
            mapsize = mapsize / layer["scale"]
            assert np.all(np.floor(mapsize) == mapsize), f"Layer {l + 1} size must be integer. Actual: {mapsize}"
            layer["b"] = [0.0 for j in range(inputmaps)]
        if layer["type"] == "c":
            ks = layer["kernelsize"]
            mapsize = mapsize - ks + 1
            fan_out = layer["outputmaps"] * ks**2
            layer["k"] = [[None] * layer["outputmaps"] for i in range(inputmaps)]
            layer["b"] = [None] * layer["outputmaps"]
            for j in range(layer["outputmaps"]):
                fan_in = inputmaps * ks**2
                for i in range(inputmaps):
                    layer["k"][i][j] = (rand(ks, ks) - 0.5) * 2 * np.sqrt(6 / (fan_in + fan_out))
                layer["b"][j] = 0.0
            inputmaps = layer["outputmaps"]
    fvnum = int(np.prod(mapsize)) * inputmaps
    onum = y.shape[0]
    net["ffb"] = np.zeros((onum, 1))
    net["ffW"] = (rand(onum, fvnum) - 0.5) * 2 * np.sqrt(6 / (onum + fvnum))
    return net


def cnnapplygrads(net, opts):
    """CNN/cnnapplygrads.m."""
    for l in range(1, len(net["layers"])):
        layer, prev = net["layers"][l], net["layers"][l - 1]
        if layer["type"] == "c":
            for j in range(len(layer["a"])):
                for ii in range(len(prev["a"])):
                    layer["k"][ii][j] = layer["k"][ii][j] - opts["alpha"] * layer["dk"][ii][j]
                layer["b"][j] = layer["b"][j] - opts["alpha"] * layer["db"][j]
    net["ffW"] = net["ffW"] - opts["alpha"] * net["dffW"]
    net["ffb"] = net["ffb"] - opts["alpha"] * net["dffb"]
    return net


def cnntest(net, x, y):
    """CNN/cnntest.m (bad is 1-based, as MATLAB's find)."""
    net = cnnff(copy.deepcopy(net), x)
    h = np.argmax(net["o"], axis=0)
    a = np.argmax(y, axis=0)
    bad = np.flatnonzero(h != a) + 1
    return bad.size / y.shape[1], bad


class NumGradCheckFailed(Exception):
    """MATLAB's error('numerical gradient checking failed'), with where it was raised."""


def cnnnumgradcheck(net, x, y):
    """CNN/cnnnumgradcheck.m, loop for loop (returns the number of entries checked)."""
    epsilon, er = 1e-4, 1e-8
    n = len(net["layers"])
    checked = 0

    def check(where, stored, perturb):
        nonlocal checked
        net_m, net_p = copy.deepcopy(net), copy.deepcopy(net)
        perturb(net_p, +epsilon)
        perturb(net_m, -epsilon)
        net_m = cnnbp(cnnff(net_m, x), y)
        net_p = cnnbp(cnnff(net_p, x), y)
        d = (net_p["L"] - net_m["L"]) / (2 * epsilon)
        if abs(d - stored) > er:
            raise NumGradCheckFailed(where)
        checked += 1

    def add(path, index):
        def perturb(target, sign):
            container = target
            for key in path[:-1]:
                container = container[key]
            value = np.array(container[path[-1]], dtype=float)
            value[index] = value[index] + sign
            container[path[-1]] = value
        return perturb

    for j in range(np.size(net["ffb"])):
        check(f"dffb({j + 1})", np.ravel(net["dffb"])[j], add(["ffb"], (j, 0)))
    for i in range(net["ffW"].shape[0]):
        for u in range(net["ffW"].shape[1]):
            check(f"dffW({i + 1},{u + 1})", net["dffW"][i, u], add(["ffW"], (i, u)))
    for l in range(n - 1, 0, -1):
        layer = net["layers"][l]
        if layer["type"] == "c":
            for j in range(len(layer["a"])):
                check(f"layers{{{l + 1}}}.db{{{j + 1}}}", layer["db"][j], add(["layers", l, "b", j], ()))
                for i in range(len(net["layers"][l - 1]["a"])):
                    kh, kw = np.shape(layer["k"][i][j])
                    for u in range(kh):
                        for v in range(kw):
                            check(f"layers{{{l + 1}}}.dk{{{i + 1}}}{{{j + 1}}}({u + 1},{v + 1})",
                                  layer["dk"][i][j][u, v], add(["layers", l, "k", i, j], (u, v)))
    return checked


def cnntrain(net, x, y, opts, randperm):
    """CNN/cnntrain.m; ``randperm(m)`` stands for MATLAB's (a permutation of 0 … m−1 here)."""
    m = x.shape[2]
    numbatches = m / opts["batchsize"]
    if numbatches % 1 != 0:
        raise ValueError("numbatches not integer")
    net["rL"] = []
    for i in range(opts["numepochs"]):
        kk = randperm(m)
        for l in range(int(numbatches)):
            batch = kk[l * opts["batchsize"] : (l + 1) * opts["batchsize"]]
            net = cnnff(net, x[:, :, batch])
            net = cnnbp(net, y[:, batch])
            net = cnnapplygrads(net, opts)
            if len(net["rL"]) == 0:
                net["rL"].append(net["L"])
            net["rL"].append(0.99 * net["rL"][-1] + 0.01 * net["L"])
    return net
