"""A small convolutional spiking network, channels-last (MLX's NHWC).

    x [T, B, H, W, C] -> conv 3x3 (c1) -> LIF -> max pool 2
                      -> conv 3x3 (c2) -> LIF -> max pool 2
                      -> Linear -> LIF (reset off by default) -> U_T [B, classes]

Each convolution runs once over all T*B frames ([T*B, H, W, C], one large
convolution instead of T small ones), and each LIF layer is one
``flashsnn.ops.leaky`` call over the whole ``[T, B, H, W, c]`` sequence (one
fused kernel launch, forward and backward). MLX has no ``nn.Flatten``: the
pooled ``[T, B, H/4, W/4, c2]`` spikes are reshaped to ``[T, B, features]``
for the Linear layer (in H, W, C order, channels-last).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from ._lif import LIFNetwork


class SpikingCNN(LIFNetwork):
    """Two convolutional spiking layers and a spiking readout.

    Args:
        in_shape: ``(H, W, C)`` of one frame, channels-last (MNIST: ``(28, 28, 1)``).
        num_outputs: classes (10).
        channels: output channels of the two 3x3 convolutions (``(16, 32)``).
            The convolutions keep H and W (padding 1); each pool halves them
            (rounding down).
        beta: membrane decay of every LIF layer.
        threshold: firing threshold of every LIF layer.
        spike_grad: surrogate (default: fast sigmoid, slope 25).
        backend: ``"fused"`` (the kernel; an error where none applies),
            ``"reference"`` (pure MLX, per-step loop) or ``"auto"``.
        output_reset: the readout layer's reset, ``"none"`` (default: its
            membrane integrates the evidence, for ``membrane_ce``),
            ``"subtract"`` or ``"zero"`` (for losses on its spikes).

    Call: ``model(x)`` with ``x`` ``[T, B, H, W, C]`` returns
    ``(spk_out [T, B, classes], mem_out [B, classes])``.
    ``model(x, record=True)`` returns a dict with the spikes of every layer,
    ``spk1`` ``[T, B, H, W, c1]``, ``spk2`` ``[T, B, H/2, W/2, c2]``,
    ``spk3`` ``[T, B, classes]``, and the readout membrane at every step,
    ``mem3`` ``[T, B, classes]``.

    >>> import mlx.core as mx, mlx.optimizers as optim, flashsnn as fs
    >>> model = fs.models.SpikingCNN((28, 28, 1), channels=(16, 32))
    >>> x = fs.encoding.rate(mx.random.uniform(shape=(4, 28, 28, 1)), num_steps=10)
    >>> x.shape                                    # [T, B, H, W, C]
    (10, 4, 28, 28, 1)
    >>> spk, mem = model(x)
    >>> spk.shape, mem.shape
    ((10, 4, 10), (4, 10))
    >>> opt = optim.Adam(learning_rate=1e-3)
    >>> step = fs.train.make_train_step(
    ...     model, opt, lambda m, x, y: fs.functional.membrane_ce(m(x)[1], y))
    >>> loss = step(x, mx.array([0, 1, 2, 3]))
    >>> mx.eval(loss, model.parameters(), opt.state)
    """

    def __init__(self, in_shape: tuple = (28, 28, 1), num_outputs: int = 10, *,
                 channels: tuple = (16, 32), beta: float = 0.9, threshold: float = 1.0,
                 spike_grad=None, backend: str = "fused", output_reset: str = "none"):
        super().__init__()
        op = "SpikingCNN"
        in_shape, channels = tuple(in_shape), tuple(channels)
        if len(in_shape) != 3 or any(_bad_int(v) for v in in_shape):
            raise ValueError(f"[{op}] in_shape must be (H, W, C), positive ints (channels "
                             f"last); got {in_shape!r}")
        if len(channels) != 2 or any(_bad_int(v) for v in channels):
            raise ValueError(f"[{op}] channels must be two positive ints; got {channels!r}")
        if _bad_int(num_outputs):
            raise ValueError(f"[{op}] num_outputs must be a positive int; got {num_outputs!r}")
        H, W, C = in_shape
        if H < 4 or W < 4:
            raise ValueError(f"[{op}] frames must be at least 4x4 (two 2x2 pools); got "
                             f"{H}x{W}")
        c1, c2 = channels
        self.conv1 = nn.Conv2d(C, c1, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
        self.fc = nn.Linear((H // 4) * (W // 4) * c2, num_outputs)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.in_shape = in_shape  # plain values, as _set_lif keeps the LIF settings
        self._set_lif(op, beta, threshold, spike_grad, backend, output_reset)

    def _conv_lif_pool(self, conv, x):
        """[T, B, H, W, C] -> (pooled spikes [T, B, H/2, W/2, c], spikes [T, B, H, W, c])."""
        T, B = x.shape[:2]
        h = conv(x.reshape(T * B, *x.shape[2:]))                 # all T*B frames at once
        spk, _ = self._lif(h.reshape(T, B, *h.shape[1:]), "subtract")
        p = self.pool(spk.reshape(h.shape))
        return p.reshape(T, B, *p.shape[1:]), spk

    def __call__(self, x: mx.array, *, record: bool = False):
        if x.ndim != 5 or tuple(x.shape[2:]) != self.in_shape:
            raise ValueError(f"[SpikingCNN] x must be [T, B, H, W, C] = [T, B, "
                             f"{', '.join(map(str, self.in_shape))}] (time first, channels "
                             f"last); got shape {tuple(x.shape)}")
        T, B = x.shape[:2]
        p1, spk1 = self._conv_lif_pool(self.conv1, x)
        p2, spk2 = self._conv_lif_pool(self.conv2, p1)
        o = self.fc(p2.reshape(T, B, -1))                          # no nn.Flatten in MLX
        spk3, mem3 = self._lif(o, self.output_reset, "all" if record else "last")
        if record:
            return {"spk1": spk1, "spk2": spk2, "spk3": spk3, "mem3": mem3}
        return spk3, mem3


def _bad_int(v) -> bool:
    return isinstance(v, bool) or not isinstance(v, int) or v < 1
