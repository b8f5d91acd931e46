"""The convolution layer (toolbox type 'c')."""

from __future__ import annotations

import numpy as np

from .. import activations, backend, ops, parallel
from ..._validation import positive_int
from ...errors import ConvpropError
from .base import Layer, Plan


def _pair(value: int | tuple[int, int], what: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(np.atleast_1d(value))
    if len(pair) != 2:
        raise ConvpropError(f"{what} must be a positive integer or a pair of them, got {value!r}")
    try:
        return positive_int(pair[0], what), positive_int(pair[1], what)
    except ConvpropError:
        raise ConvpropError(f"{what} must be a positive integer or a pair of them, got {value!r}") from None


def _padding(padding, kernelsize: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero rows/columns for 'valid', 'same' or an int."""
    kh, kw = kernelsize
    if isinstance(padding, str) and padding in ("valid", "same"):
        if padding == "valid":
            return (0, 0, 0, 0)
        # 'same' (stride 1 keeps H×W): k − 1 zeros in all, (k − 1)//2 before and the rest
        # after, so an even kernel gets its extra zero at the bottom / right, as PyTorch's
        # padding='same' and TensorFlow's 'SAME' do.
        return ((kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool) and padding >= 0:
        p = int(padding)
        return (p, p, p, p)
    raise ConvpropError(f"Conv padding must be 'valid', 'same' or an integer >= 0, got {padding!r}")


#: Largest patch matrix (bytes) a forward pass keeps for the backward pass: about an L2
#: cache. Larger ones are slower to keep (written to and read back from memory) than to rebuild.
KEEP_COLS_BYTES = 2 << 20


class Conv(Layer):
    """Convolution: ``Conv(outputmaps, kernelsize, activation="sigmoid", padding="valid", stride=1)``.

    Every output map j sums the 'valid' convolutions of all input maps i with
    its own kernel k{i}{j}, adds a scalar bias b{j}, then applies the
    activation (the toolbox's sigmoid by default). The defaults are the
    toolbox's layer exactly.

    Parameters
    ----------
    outputmaps : int
        Number of output maps.
    kernelsize : int or (int, int)
        Kernel height and width.
    activation : str or convprop.activations.Activation, default "sigmoid"
        ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"`` (slope 0.01;
        ``activations.LeakyReLU(s)`` for another) or ``"identity"``.
    padding : "valid", "same" or int, default "valid"
        Zeros around the input maps: none; k − 1 in all per axis,
        (k − 1)//2 before and the rest after (an even kernel has its extra
        zero at the bottom / right, PyTorch- and TensorFlow-compatible);
        or p on every side.
    stride : int, default 1
        Step between output positions; the output has
        ⌊(H + padding − kh)/stride⌋ + 1 rows (as PyTorch), likewise columns.
    mode : "convolution" or "correlation", default "convolution"
        How :attr:`kernels` act on the input: the toolbox's true
        convolution, or cross-correlation (PyTorch's and ONNX's Conv). A
        "correlation" layer with kernels K computes what a "convolution"
        layer with kernels rot180(K) does. Only the meaning of
        :attr:`kernels` (and hence the initialisation) changes; the engine
        always multiplies by ``weight``, the correlation form.

    Notes
    -----
    The parameter ``weight`` has shape (outputmaps, inputmaps, kh, kw) and
    holds *correlation* kernels: ``weight[j, i]`` is the toolbox's
    true-convolution kernel k{i}{j} rotated by 180°. :attr:`kernels` gives
    them back in the toolbox's form; :mod:`convprop.layout` converts exactly.
    """

    code = "c"

    def __init__(
        self,
        outputmaps: int,
        kernelsize: int | tuple[int, int],
        activation: str | activations.Activation = "sigmoid",
        *,
        padding: str | int = "valid",
        stride: int = 1,
        mode: str = "convolution",
    ) -> None:
        super().__init__()
        self.outputmaps = positive_int(outputmaps, "Conv outputmaps")
        self.kernelsize = _pair(kernelsize, "Conv kernelsize")
        self.activation = activations.get(activation)
        self.padding = padding
        self.pads = _padding(padding, self.kernelsize)
        self.stride = positive_int(stride, "Conv stride")
        if mode not in ("convolution", "correlation"):
            raise ConvpropError(f"Conv mode must be 'convolution' or 'correlation', got {mode!r}")
        self.mode = mode

    @property
    def is_toolbox(self) -> bool:
        """Whether this is the toolbox's layer: sigmoid, 'valid', stride 1, true convolution."""
        return (
            isinstance(self.activation, activations.Sigmoid)
            and self.pads == (0, 0, 0, 0)
            and self.stride == 1
            and self.mode == "convolution"
        )

    def plan(self, in_shape, where):
        h, w, c = in_shape
        kh, kw = self.kernelsize
        top, bottom, left, right = self.pads
        hp, wp = h + top + bottom, w + left + right
        if kh > hp or kw > wp:
            raise ConvpropError(
                f"{where} ({self.spec()}): kernel {kh}x{kw} is larger than its "
                + (f"padded input maps {hp}x{wp}" if hp != h or wp != w else f"input maps {h}x{w}")
            )
        s = self.stride
        out = ((hp - kh) // s + 1, (wp - kw) // s + 1, self.outputmaps)
        padded = hp * wp * c if (hp, wp) != (h, w) else 0
        valid = (hp - kh + 1) * (wp - kw + 1) * self.outputmaps  # the stride-1 z, then the strided copy
        values = padded + valid + (out[0] * out[1] * out[2] if s > 1 else 0)
        return Plan(out, self.outputmaps * (c * kh * kw + 1), values)

    def build(self, in_shape, dtype, where):
        self.out_shape = self.plan(in_shape, where).out_shape
        c = in_shape[2]
        kh, kw = self.kernelsize
        self.in_shape = in_shape
        self.params = {
            "weight": np.zeros((self.outputmaps, c, kh, kw), dtype=dtype),
            "bias": np.zeros(self.outputmaps, dtype=dtype),
        }
        return self.out_shape

    @property
    def fan_in(self) -> int:
        return self.in_shape[2] * self.kernelsize[0] * self.kernelsize[1]

    @property
    def fan_out(self) -> int:
        return self.outputmaps * self.kernelsize[0] * self.kernelsize[1]

    @property
    def kernels(self) -> np.ndarray:
        """Kernels as the layer's mode reads them, shape (inputmaps, outputmaps, kh, kw).

        For mode "convolution", ``kernels[i, j]`` is the toolbox's true-convolution
        k{i}{j} (``weight[j, i]`` rotated by 180°); for "correlation", ``weight[j, i]``.
        """
        weight = self.params["weight"]
        return (weight[:, :, ::-1, ::-1] if self.mode == "convolution" else weight).transpose(1, 0, 2, 3)

    @kernels.setter
    def kernels(self, value: np.ndarray) -> None:
        weight = self.params["weight"]
        value = np.asarray(value, dtype=weight.dtype)
        if value.shape != (weight.shape[1], weight.shape[0], *weight.shape[2:]):
            raise ConvpropError(
                f"kernels must have shape {(weight.shape[1], weight.shape[0], *weight.shape[2:])}, got {value.shape}"
            )
        value = value.transpose(1, 0, 2, 3)
        weight[...] = value[:, :, ::-1, ::-1] if self.mode == "convolution" else value

    # a = σ(Σ_i convn(a_prev{i}, k{i}{j}, 'valid') + b{j})
    #   compiled: each output row accumulated directly, σ applied while it is in cache;
    #   5×5 kernels on several maps by Winograd's F(2, 5) (kernels/winograd.py: 15
    #   multiply-adds an output and input map, not 25); only the kept (strided) positions are computed
    #   NumPy, as products over the batch:  z = [W | b] · [cols; 1],  a = σ(z) in place;
    #   z is filled in blocks of output rows so that each block's cols stays in cache
    # Beyond the toolbox: σ is the layer's activation f; padding zero-pads x first; a
    #   stride s takes only every s-th patch (rows and columns): z[r, c] from x[r·s + u, c·s + v]
    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._pad(x)
        kernels = backend.compiled_for(self.activation)
        if kernels is not None:
            a = np.empty((self.outputmaps, *self.out_shape[:2], x.shape[-1]), dtype=x.dtype)
            x = np.ascontiguousarray(x)
            if self.stride == 1:  # work items: pairs of output maps × rows
                kernel, rows = kernels.conv.forward, (a.shape[0] + 1) // 2 * a.shape[1]
            else:
                kernel, rows = kernels.conv.forward_strided, a.shape[0] * a.shape[1]
            parallel.run_rows(kernel, rows, x, self.params["weight"], self.params["bias"], self.stride,
                              *self.activation.kernel_args, a, work=a.size * self.fan_in,
                              per_thread=parallel.MIN_MACS_PER_THREAD)
            self._cache.update(x=x, a=a, kept_for=None)
            return a
        n = x.shape[-1]
        ho, wo = self.out_shape[:2]
        wb = self._weight_matrix()
        z = np.empty((self.outputmaps, ho * wo * n), dtype=x.dtype)
        patches = ops.patches_cm(x, *self.kernelsize, self.stride)
        kept = self._kept_cols(wb.shape[1], ho * wo * n, x.dtype)

        def work(slot, blocks):
            buf = self._buffer(wb.shape[1], wo * n, x.dtype, slot)
            for r0, r1 in blocks:
                cols = ops.im2col_cm(patches, r0, r1, buf if kept is None else kept[:, r0 * wo * n :])
                zb = z[:, r0 * wo * n : r1 * wo * n]
                # zᵀ = colsᵀ·[W | b]ᵀ: OpenBLAS then sums every column in the same order
                # whatever N, so results do not depend on how a batch is chunked.
                np.matmul(cols.T, wb.T, out=zb.T)

        parallel.map_blocks(work, ops.row_blocks(ho, wb.shape[1] * wo * n, x.dtype.itemsize))
        a = self.activation.forward(z, out=z).reshape(self.outputmaps, *self.out_shape[:2], n)  # contiguous
        self._cache.update(x=x, a=a, kept_for=x if kept is not None else None)
        return a

    # d = δ·a(1−a);  dk = convn(flipall(a_prev), d, 'valid')/N;  db = Σd/N;
    #   together:  [dW | db]ᵀ = [cols; 1] · dᵀ / N  (cols kept from the forward when it
    #   fits KEEP_COLS_BYTES, else rebuilt block by block)
    # δ_prev{i} = Σ_j convn(d{j}, rot180(k{i}{j}), 'full')
    #   as col2im(Wᵀ · d), Wᵀ's rows in (kh, kw, C_in) order: every patch gives back its share
    #   compiled: dk, db as direct sums over (rows, columns, batch); δ_prev row by row as
    #   the 'full' correlation Σ_j Σ_u Σ_v d{j}[p − u, q − v]·W[j, i, u, v]
    # Beyond the toolbox: d = δ·f'(z) from a; with a stride s the patches are the kept ones
    #   and col2im adds each back at (r·s, c·s); padding's adjoint crops δ_prev
    def backward(self, delta, need_input_delta=True):
        kernels = backend.compiled_for(self.activation)
        if kernels is not None:
            return self._backward_compiled(kernels, delta, need_input_delta)
        x, a = self._cache["x"], self._cache["a"]
        d = self.activation.backward(delta, a)
        self._d = d
        n = d.shape[-1]
        wo = self.out_shape[1]
        weight = self.params["weight"]
        d2 = d.reshape(self.outputmaps, -1)
        k1 = weight[0].size + 1
        patches = ops.patches_cm(x, *self.kernelsize, self.stride)
        kept = self._cache["cols_kept"] if self._cache.get("kept_for") is x else None

        def work(slot, blocks):
            buf = self._buffer(k1, wo * n, d.dtype, slot) if kept is None else None
            part = np.zeros((k1, self.outputmaps), dtype=d.dtype)
            tmp = np.empty_like(part)
            for r0, r1 in blocks:
                if kept is None:
                    cols = ops.im2col_cm(patches, r0, r1, buf)
                else:  # the forward's patch matrix, kept
                    cols = kept[:, r0 * wo * n : r1 * wo * n]
                # [dW | db]ᵀ = cols · dᵀ: the long axis (Ho·Wo·N) is the reduction and the
                # patch rows the wide side, the shape OpenBLAS runs fastest (1.5–2× d·colsᵀ)
                np.matmul(cols, d2[:, r0 * wo * n : r1 * wo * n].T, out=tmp)
                part += tmp
            return part

        parts = parallel.map_blocks(work, ops.row_blocks(self.out_shape[0], k1 * wo * n, d.dtype.itemsize))
        grad = parts[0]
        for part in parts[1:]:
            grad += part
        grad /= n
        self.grads = {"weight": np.ascontiguousarray(grad[:-1].T).reshape(weight.shape), "bias": grad[-1].copy()}
        if not need_input_delta:
            return None
        # rows in (kh, kw, C_in) order: each kernel offset's rows form one contiguous block
        dcols = weight.transpose(0, 2, 3, 1).reshape(self.outputmaps, -1).T @ d2
        return self._crop(ops.col2im_cm_offset_major(dcols, x.shape, *self.kernelsize, self.stride))

    def _backward_compiled(self, kernels, delta, need_input_delta):
        """:meth:`backward` by the compiled kernels (same equations)."""
        x, a = self._cache["x"], self._cache["a"]
        macs = a.size * self.fan_in
        if parallel.threads_for(macs, parallel.MIN_MACS_PER_THREAD) <= 1:  # one thread: one call
            d, dw, db, dx = kernels.conv.backward(np.ascontiguousarray(delta), a, x, self.params["weight"],
                                                  *self.activation.kernel_args, self.stride, need_input_delta)
            self._d, self.grads = d, {"weight": dw, "bias": db}
            return self._crop(dx) if need_input_delta else None
        d = np.empty_like(a)
        parallel.run_rows(kernels.activation.derivative, d.shape[0] * d.shape[1], np.ascontiguousarray(delta), a,
                          *self.activation.kernel_args, d, work=d.size)
        self._d = d
        weight, bias = self.params["weight"], self.params["bias"]
        scale = d.dtype.type(1.0 / d.shape[-1])
        self.grads = {"weight": np.empty_like(weight), "bias": np.empty_like(bias)}
        ci, s, share = weight.shape[1], self.stride, {"work": macs, "per_thread": parallel.MIN_MACS_PER_THREAD}
        # the same kernels as kernels.conv.backward, so that results do not depend on the thread count
        self._weight_grad(kernels, x, d, scale, share)
        kernels.conv.bias_grad(d, scale, self.grads["bias"], 0, d.shape[0])
        if not need_input_delta:
            return None
        dx = np.empty_like(x)
        if s == 1 and kernels.winograd.fits_input(weight, d.shape[2]):  # work items: pairs of input maps
            parallel.run_rows(kernels.winograd.input_grad, (ci + 1) // 2, kernels.winograd.input_operands(d), weight,
                              dx, **share)
            return self._crop(dx)
        flat, flipped, placed = kernels.conv.input_operands(d, weight, s, x.shape[1], x.shape[2])
        if flat:  # work items: pairs of input maps
            parallel.run_rows(kernels.conv.input_grad_flat, (ci + 1) // 2, placed, flipped, dx, **share)
        else:  # work items: pairs of input maps × rows
            parallel.run_rows(kernels.conv.input_grad, (ci + 1) // 2 * dx.shape[1], placed, flipped, s, dx, **share)
        return self._crop(dx)

    def _weight_grad(self, kernels, x: np.ndarray, d: np.ndarray, scale, share: dict) -> None:
        """``grads["weight"]`` shared over threads, by F(5, 2) or in :func:`kernels.conv.weight_layout`'s
        layout (:func:`kernels.conv.weight_grad_into`'s work, the same numbers)."""
        conv, dw = kernels.conv, self.grads["weight"]
        co, ci, kh, kw = dw.shape
        layout = conv.weight_layout(self.stride, kw, x.shape[2], d.shape[2], d.shape[3], d.itemsize)
        if self.stride == 1 and kernels.winograd.fits(dw, d.shape[2]):  # work items: pairs of output maps × C_in
            parallel.run_rows(kernels.winograd.weight_grad, (co + 1) // 2 * ci, *kernels.winograd.weight_operands(x, d),
                              scale, dw, **share)
        elif layout != conv.ROWS:  # work items: pairs of output maps × C_in
            parallel.run_rows(conv.weight_grad_flat, (co + 1) // 2 * ci, *conv.weight_operands(x, d, kw, layout), scale,
                              dw, **share)
        elif self.stride == 1:  # work items: pairs of output maps × kernel rows
            parallel.run_rows(conv.weight_grad, (co + 1) // 2 * ci * kh, x, d, 1, scale, dw, **share)
        else:
            parallel.run_rows(conv.weight_grad_strided, co * ci * kh, x, d, self.stride, scale, dw, **share)

    def _pad(self, x: np.ndarray) -> np.ndarray:
        """(C, H, W, N) maps with the layer's zero rows and columns around them."""
        top, bottom, left, right = self.pads
        if not (top or bottom or left or right):
            return x
        c, h, w, n = x.shape
        out = np.zeros((c, h + top + bottom, w + left + right, n), dtype=x.dtype)
        out[:, top : top + h, left : left + w] = x
        return out

    def _crop(self, dx: np.ndarray) -> np.ndarray:
        """Adjoint of :meth:`_pad`: the delta of the padded maps without the padding."""
        top, bottom, left, right = self.pads
        if not (top or bottom or left or right):
            return dx
        h, w = self.in_shape[:2]
        return np.ascontiguousarray(dx[:, top : top + h, left : left + w])

    def _weight_matrix(self) -> np.ndarray:
        """[W | b], shape (C_out, C_in·kh·kw + 1): the bias rides on the ones row of the patches."""
        weight, bias = self.params["weight"], self.params["bias"]
        return np.concatenate([weight.reshape(self.outputmaps, -1), bias[:, None]], axis=1)

    def _kept_cols(self, k1: int, columns: int, dtype: np.dtype) -> np.ndarray | None:
        """Whole-batch patch-matrix buffer kept for the backward pass, or None when over KEEP_COLS_BYTES.

        A training batch of the DLT network's second conv layer (50 images:
        1.8 MiB in float32) then builds its patch matrix once per step
        instead of twice; bigger ones (its first layer: 3 MiB; inference
        chunks of 500 images) keep the cache-sized row blocks.
        """
        if k1 * columns * dtype.itemsize > KEEP_COLS_BYTES:
            self._cache.pop("cols_kept", None)
            return None
        buf = self._cache.get("cols_kept")
        if buf is None or buf.shape != (k1, columns) or buf.dtype != dtype:
            buf = np.empty((k1, columns), dtype=dtype)
            buf[-1] = 1
            self._cache["cols_kept"] = buf
        return buf

    def _buffer(self, k1: int, row_size: int, dtype: np.dtype, slot: int = 0) -> np.ndarray:
        """Thread slot's patch-matrix buffer for one row block, kept between calls; ones row set once."""
        rows = ops.row_blocks(self.out_shape[0], k1 * row_size, dtype.itemsize)[0][1]
        shape = (k1, rows * row_size)
        buf = self._cache.get(f"cols{slot}")
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            buf[-1] = 1
            self._cache[f"cols{slot}"] = buf
        return buf

    def spec(self) -> str:
        kh, kw = self.kernelsize
        text = f"{self.outputmaps}{'cc' if self.mode == 'correlation' else 'c'}{kh}" + (f"x{kw}" if kw != kh else "")
        text += activations.spec_code(self.activation)
        if self.padding == "same":
            text += "ps"
        elif self.padding != "valid" and self.padding:
            text += f"p{int(self.padding)}"
        return text + (f"/{self.stride}" if self.stride != 1 else "")

    def _repr_args(self) -> str:
        kh, kw = self.kernelsize
        args = f"{self.outputmaps}, {kh if kh == kw else (kh, kw)}"
        if not isinstance(self.activation, activations.Sigmoid):
            args += f", {self.activation!r}"
        if self.padding != "valid":
            args += f", padding={self.padding!r}"
        if self.stride != 1:
            args += f", stride={self.stride}"
        if self.mode != "convolution":
            args += f", mode={self.mode!r}"
        return args
