"""Mamba-Spike: a spiking convolutional front end feeding Mamba-1 blocks.

The model of Qin & Liu's public code (MIT, PyTorch), written for MLX from
its semantics (``docs/mamba-spike.md`` says what it follows and where it
departs), channels-last and time-first as the rest of flashsnn:

    x [T, B, H, W, 2]   event frames (ON / OFF polarity channels)
    front end           conv3x3 -> maxpool 2 -> LIF, conv3x3 -> maxpool 2 -> LIF,
                        conv3x3 -> LIF; each LIF's input also gets a 1x1 conv
                        of that layer's own spikes one step before (none at t=0)
    interface           flatten [T, B, F]; causal mean of the last 5 steps'
                        spikes (a rate in [0, 1]); Linear F -> d_model
    backbone            n_layers x (x + Mamba(LayerNorm(x))), Mamba-1 blocks on
                        flashsnn.ops.selective_scan (one fused call per block)
    head                mean over time -> LayerNorm -> Linear -> logits [B, classes]

Each convolution runs once over all T*B frames; the LIF recurrences step in
Python, because each step's input depends on the layer's own spikes one step
before through a 1x1 convolution (a matmul over channels), which no
elementwise kernel can fold in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .. import nn as fsnn
from .. import ops
from .. import surrogate as _surrogate
from .spiking_cnn import _bad_int

OP = "MambaSpike"


@dataclass(frozen=True)
class MambaSpikePreset:
    """One recipe of the public code: input frame ``(H, W, C)``, time steps,
    the front end's last channel count, the backbone's width, depth and
    state count, and the classes."""
    in_shape: tuple
    steps: int
    channels: int
    d_model: int
    n_layers: int
    d_state: int
    num_classes: int


# Parameter counts (tests/train/test_mamba_spike.py): sequential MNIST
# 903,626; N-MNIST 1.03 M; DVS Gesture and CIFAR10-DVS 36.25 M; N-TIDIGITS
# 633,131 (the notes' 0.63 M): its 64 channels are a (1, 64, 1) frame, the
# same 3x3 convolutions, pooled along the channels only (_pool_shape below).
PRESETS = {
    "smnist": MambaSpikePreset((28, 28, 2), 100, 64, 128, 4, 16, 10),
    "nmnist": MambaSpikePreset((34, 34, 2), 300, 64, 128, 4, 16, 10),
    "dvs_gesture": MambaSpikePreset((128, 128, 2), 500, 128, 256, 6, 16, 11),
    "cifar10_dvs": MambaSpikePreset((128, 128, 2), 100, 128, 256, 6, 16, 10),
    "ntidigits": MambaSpikePreset((1, 64, 1), 300, 64, 128, 4, 16, 11),
}

# Audio frames (SHD, N-TIDIGITS: flashsnn.data's (1, channels, 1)) are one
# row high: the front end's 2x2 pools become 1x2 there, so the two pools take
# 64 channels to 16 positions. With the 3x3 convolutions kept, the N-TIDIGITS
# recipe has 633,131 parameters, the notes' 0.63 M; kernel-3 1-D convolutions
# would give 614,603, farther from it.


def _pool_shape(H: int, W: int) -> tuple:
    """The front end's pool window: 2x2, or 1x2 for a one-row frame."""
    return (1 if H == 1 else 2, 2)


# The paper's options for the front end's neurons, on flashsnn's families:
# "alif" an adaptive threshold (fs.nn.ALIF: threshold + b * trace of the
# layer's spikes, its defaults rho 0.95, b 0.1), "synaptic" a synaptic
# current (fs.nn.Synaptic, alpha below). The paper gives neither's values.
NEURONS = ("leaky", "alif", "synaptic")
SYNAPTIC_ALPHA = 0.9


@mx.custom_function
def _unstack(x: mx.array):
    """``x[0], x[1], ...`` with a backward that stacks the steps'
    cotangents once. Indexing ``x[t]`` T times costs O(T^2) memory in the
    backward: each slice's VJP scatters its step into zeros of x's whole
    shape (one training step of the DVS-Gesture model at batch 2 peaked at
    10.3 / 36.5 / 122 GB at T = 100 / 250 / 500 on an H200, and ran out of
    memory at T = 1000)."""
    return tuple(x[t] for t in range(x.shape[0]))


@_unstack.vjp
def _unstack_vjp(primals, cotangents, outputs):
    return (mx.stack(list(cotangents)),)


def _inverse_softplus(x: mx.array) -> mx.array:
    return x + mx.log(-mx.expm1(-x))


class MambaBlock(nn.Module):
    """One residual pre-LayerNorm Mamba-1 block: ``x + Mamba(LayerNorm(x))``
    on ``[B, L, d_model]``, as the public code builds it (a depthwise causal
    conv1d without bias; mamba_ssm's has one).

    Args:
        d_model: width of the residual stream.
        d_state: states per channel of the scan (N).
        d_conv: the causal conv's kernel length.
        expand: ``d_inner = expand * d_model``.
        dt_min, dt_max: the range the step sizes start in (log-uniform).
        backend: the scan's backend (``"auto"``, ``"fused"``, ``"reference"``).
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, *,
                 dt_min: float = 1e-3, dt_max: float = 0.1, backend: str = "auto"):
        super().__init__()
        d_inner = expand * d_model
        dt_rank = math.ceil(d_model / 16)
        self.d_inner, self.d_state, self.dt_rank, self.d_conv = d_inner, d_state, dt_rank, d_conv
        self.backend = backend
        self.norm = nn.LayerNorm(d_model)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        bound = 1.0 / math.sqrt(d_conv)  # PyTorch's Conv1d init for one input channel
        self.conv_weight = mx.random.uniform(-bound, bound, (d_inner, d_conv))
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner)
        std = dt_rank ** -0.5
        self.dt_proj.weight = mx.random.uniform(-std, std, (d_inner, dt_rank))
        dt = mx.exp(mx.random.uniform(math.log(dt_min), math.log(dt_max), (d_inner,)))
        self.dt_proj.bias = _inverse_softplus(mx.maximum(dt, 1e-4))
        self.A_log = mx.log(mx.broadcast_to(mx.arange(1, d_state + 1, dtype=mx.float32),
                                            (d_inner, d_state)))
        self.D = mx.ones((d_inner,))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def _causal_conv(self, x: mx.array) -> mx.array:
        # out[l] = sum_k w[:, k] x[l - (K - 1) + k]: K shifted products over
        # [B, L, d_inner], zeros before the start.
        K, L = self.d_conv, x.shape[1]
        xp = mx.pad(x, [(0, 0), (K - 1, 0), (0, 0)])
        out = xp[:, 0:L] * self.conv_weight[:, 0]
        for k in range(1, K):
            out = out + xp[:, k:k + L] * self.conv_weight[:, k]
        return out

    def __call__(self, x: mx.array) -> mx.array:
        xz = self.in_proj(self.norm(x))
        u, z = xz[..., :self.d_inner], xz[..., self.d_inner:]
        u = nn.silu(self._causal_conv(u))
        dbc = self.x_proj(u)
        r, N = self.dt_rank, self.d_state
        delta = dbc[..., :r] @ self.dt_proj.weight.T  # the bias goes in with softplus
        B, C = dbc[..., r:r + N], dbc[..., r + N:]
        y = ops.selective_scan(u, delta, -mx.exp(self.A_log), B, C, self.D, z,
                               delta_bias=self.dt_proj.bias, delta_softplus=True,
                               backend=self.backend)
        return x + self.out_proj(y)


class _SpikingConv(nn.Module):
    """conv3x3 (-> maxpool ``pool``) -> LIF, with the 1x1 conv of the layer's
    previous spikes added to the LIF's input from the second step on."""

    def __init__(self, c_in: int, c_out: int, pool, neuron: str, beta, threshold,
                 spike_grad, learn_beta: bool, learn_threshold: bool, backend: str):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.rec = nn.Conv2d(c_out, c_out, 1)
        self.pool = nn.MaxPool2d(pool, stride=pool) if pool else None
        if learn_beta and not isinstance(beta, mx.array):
            beta = mx.full((c_out,), float(beta))  # per channel, as the paper's option
        if learn_threshold and not isinstance(threshold, mx.array):
            threshold = mx.full((c_out,), float(threshold))
        common = dict(beta=beta, threshold=threshold, spike_grad=spike_grad,
                      learn_beta=learn_beta, learn_threshold=learn_threshold, backend=backend)
        if neuron == "alif":
            self.lif = fsnn.ALIF(**common)
        elif neuron == "synaptic":
            self.lif = fsnn.Synaptic(alpha=SYNAPTIC_ALPHA, **common)
        else:
            self.lif = fsnn.Leaky(**common)

    def __call__(self, x: mx.array) -> mx.array:
        T, B = x.shape[:2]
        cur = self.conv(x.reshape(T * B, *x.shape[2:]))
        if self.pool is not None:
            cur = self.pool(cur)
        cur = cur.reshape(T, B, *cur.shape[1:])
        # Each call starts from rest: a stepping layer called with no state
        # would continue from the one it stored on the last call (snnTorch's
        # convention), carrying one batch's state into the next. One-step
        # sequence() calls are pure and store nothing.
        # The 1x1 feedback conv as a product over channels (the same weights):
        # a compiled digits training step took 4-5% less than through
        # nn.Conv2d (76.8 / 84.6 against 79.8 / 89.4 ms, two runs, 2-core CPU).
        w, bias = self.rec.weight.reshape(self.rec.weight.shape[0], -1).T, self.rec.bias
        spk, out = None, []
        states = [mx.zeros_like(cur[0]) for _ in self.lif._states]
        for t, c_t in enumerate(_unstack(cur)):
            c = c_t if spk is None else c_t + (spk @ w + bias)
            s, *states = self.lif.sequence(c[None], *states)
            spk = s[0]
            out.append(spk)
        return mx.stack(out)


class MambaSpike(nn.Module):
    """Mamba-Spike (module docstring): spiking front end, rate interface,
    Mamba-1 backbone, mean-pooled head.

    Args:
        in_shape: one frame, ``(H, W, C)`` channels-last (C = 2 polarities);
            audio channels as a one-row frame ``(1, channels, 1)``, pooled
            along the channels only.
        num_classes: classes of the head.
        channels: the third conv's channels (the first two have 32).
        d_model, n_layers, d_state: the backbone's width, depth, states.
        beta, threshold: the LIF layers' decay (0.97) and threshold (1).
        spike_grad: surrogate (fast sigmoid, slope 25, as the public code).
        learn_beta, learn_threshold: the paper's learnable per-channel decay
            and threshold (off in the public code).
        neuron: the front end's neuron: ``"leaky"`` (the public code's),
            ``"alif"`` (the paper's adaptive threshold) or ``"synaptic"``
            (its synaptic dynamics); see :data:`NEURONS`.
        window: the interface's sliding-mean length in steps (5).
        lif_backend, scan_backend: ``"auto"``, ``"fused"`` or ``"reference"``.

    Call: ``model(x)`` with ``x`` ``[T, B, H, W, C]`` returns logits
    ``[B, num_classes]``; ``model(x, record=True)`` a dict with ``logits``,
    each front-end layer's spikes ``spk1..spk3`` and the interface's
    ``rates`` ``[T, B, F]``.

    >>> import mlx.core as mx, flashsnn as fs
    >>> model = fs.models.MambaSpike.from_preset("smnist")
    >>> fs.models.count_parameters(model)
    903626
    >>> x = (mx.random.uniform(shape=(8, 2, 28, 28, 2)) < 0.1).astype(mx.float32)
    >>> model(x).shape
    (2, 10)
    """

    def __init__(self, in_shape: tuple = (28, 28, 2), num_classes: int = 10, *,
                 channels: int = 64, d_model: int = 128, n_layers: int = 4,
                 d_state: int = 16, beta: float = 0.97, threshold: float = 1.0,
                 spike_grad=None, learn_beta: bool = False, learn_threshold: bool = False,
                 neuron: str = "leaky", window: int = 5, lif_backend: str = "auto",
                 scan_backend: str = "auto"):
        super().__init__()
        in_shape = tuple(in_shape)
        if len(in_shape) != 3 or any(_bad_int(v) for v in in_shape):
            raise ValueError(f"[{OP}] in_shape must be (H, W, C), positive ints (channels "
                             f"last); got {in_shape!r}")
        for name, v in (("num_classes", num_classes), ("channels", channels),
                        ("d_model", d_model), ("n_layers", n_layers), ("d_state", d_state),
                        ("window", window)):
            if _bad_int(v):
                raise ValueError(f"[{OP}] {name} must be a positive int; got {v!r}")
        if neuron not in NEURONS:
            raise ValueError(f"[{OP}] unknown neuron {neuron!r}; valid: {', '.join(NEURONS)}")
        H, W, C = in_shape
        if not (H >= 4 or H == 1) or W < 4:
            raise ValueError(f"[{OP}] frames must be at least 4x4 (two 2x2 pools), or one row "
                             f"at least 4 wide (audio, two 1x2 pools); got {H}x{W}")
        self.in_shape, self.window = in_shape, int(window)
        pool = _pool_shape(H, W)
        grad = spike_grad if spike_grad is not None else _surrogate.fast_sigmoid(slope=25)
        lif = dict(neuron=neuron, beta=beta, threshold=threshold, spike_grad=grad,
                   learn_beta=learn_beta, learn_threshold=learn_threshold, backend=lif_backend)
        self.front = [_SpikingConv(C, 32, pool, **lif), _SpikingConv(32, 32, pool, **lif),
                      _SpikingConv(32, channels, None, **lif)]
        self.features = (H // pool[0] ** 2) * (W // 4) * channels
        self.interface = nn.Linear(self.features, d_model)
        self.blocks = [MambaBlock(d_model, d_state, backend=scan_backend)
                       for _ in range(n_layers)]
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "MambaSpike":
        """The model of one recipe of :data:`PRESETS` (keyword arguments
        override it)."""
        if name not in PRESETS:
            raise ValueError(f"[{OP}] unknown preset {name!r}; valid: {', '.join(PRESETS)}")
        p = PRESETS[name]
        args = dict(channels=p.channels, d_model=p.d_model, n_layers=p.n_layers,
                    d_state=p.d_state)
        args.update(kwargs)
        return cls(p.in_shape, p.num_classes, **args)

    def rates(self, spk: mx.array) -> mx.array:
        """Causal mean of the last ``window`` steps of ``spk`` ``[T, B, F]``
        (zeros before the start, so the first steps divide by the window)."""
        cs = mx.cumsum(spk, axis=0)
        w = self.window
        if spk.shape[0] > w:
            cs = mx.concatenate([cs[:w], cs[w:] - cs[:-w]], axis=0)
        return cs / w

    def __call__(self, x: mx.array, record: bool = False):
        if x.ndim != 5 or tuple(x.shape[2:]) != self.in_shape:
            raise ValueError(f"[{OP}] x must be [T, B, {', '.join(map(str, self.in_shape))}] "
                             f"(time first, channels last); got {list(x.shape)}")
        spikes, h = [], x
        for layer in self.front:
            h = layer(h)
            spikes.append(h)
        T, B = h.shape[:2]
        r = self.rates(h.reshape(T, B, -1))
        s = self.interface(r).transpose(1, 0, 2)  # [B, T, d_model]
        for block in self.blocks:
            s = block(s)
        logits = self.head(self.norm(s.mean(axis=1)))
        if not record:
            return logits
        return {"logits": logits, "spk1": spikes[0], "spk2": spikes[1], "spk3": spikes[2],
                "rates": r}


def count_parameters(model: nn.Module) -> int:
    """Trainable scalars of ``model``."""
    return sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
