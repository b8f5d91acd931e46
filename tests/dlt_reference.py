"""A literal, loop-by-loop port of the toolbox's cnnff / cnnbp, used only as a test oracle.

It follows the MATLAB code line by line (convn → scipy.signal.convolve, cell
arrays → lists, column-major reshapes with order='F'), so that the engine's
layouts (flipped kernels, NHWC feature vector) are checked against the
toolbox's own semantics rather than against themselves.
"""

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
