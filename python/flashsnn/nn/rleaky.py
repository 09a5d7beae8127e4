"""``RLeaky``: snnTorch's recurrent first-order LIF (its spikes fed back
through ``V`` or a Linear/Conv2d layer), on :func:`flashsnn.ops.rleaky`."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .. import ops
from ..ops import _checks
from .neurons import LIF, fix_parameters


def init_recurrent(layer, V, all_to_all, linear_features, conv2d_channels, kernel_size,
                   learn_recurrent) -> None:
    """snnTorch's recurrent connection: ``layer.recurrent`` (an
    ``mlx.nn.Linear``, or an ``mlx.nn.Conv2d`` on channels-last maps, as MLX
    convolutions are) for all-to-all feedback, else the one-to-one weight
    ``layer.V``; learnable when ``learn_recurrent``. Refuses inhibition
    first (the inhibited spikes would feed back, which the op does not model)."""
    tag = type(layer).__name__
    if layer.inhibition:
        raise NotImplementedError(
            f"[{tag}] inhibition is not supported for recurrent layers: "
            "the inhibited spikes feed back into the next step, which the op does not "
            "model; use inhibition=False")
    if all_to_all:
        if not linear_features:
            if not (conv2d_channels or kernel_size):
                raise TypeError(f"[{tag}] all_to_all=True needs linear_features or "
                                "(conv2d_channels and kernel_size), matching the shape of "
                                "the layer's output spikes")
            if bool(conv2d_channels) != bool(kernel_size):
                raise TypeError(f"[{tag}] conv2d_channels and kernel_size must both be "
                                "specified")
        elif conv2d_channels or kernel_size:
            raise TypeError(f"[{tag}] linear_features cannot be specified together with "
                            "conv2d_channels or kernel_size: the recurrent connection is "
                            "either a Linear or a Conv2d layer")
    elif linear_features or conv2d_channels or kernel_size:
        raise TypeError(f"[{tag}] with all_to_all=False none of linear_features, "
                        "conv2d_channels or kernel_size applies; the weight V is used")
    layer.all_to_all = bool(all_to_all)
    layer.learn_recurrent = bool(learn_recurrent)
    layer.linear_features = linear_features
    layer.conv2d_channels = conv2d_channels
    # A list would land in the module's parameter tree; keep plain values.
    layer.kernel_size = (kernel_size if kernel_size is None or isinstance(kernel_size, int)
                         else tuple(kernel_size))
    if not all_to_all:
        layer._param("V", V, learn_recurrent)
        return
    if linear_features:
        layer.recurrent = nn.Linear(linear_features, linear_features)
    else:
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        layer.recurrent = nn.Conv2d(conv2d_channels, conv2d_channels, k,
                                    padding=(k[0] // 2, k[1] // 2))
    if not learn_recurrent:
        fix_parameters(layer.recurrent, [k for k in layer.recurrent if
                                         isinstance(layer.recurrent[k], mx.array)])


def check_recurrent_input(layer, x: mx.array, sequence: bool) -> None:
    """The input fits the all-to-all feedback: its last dimension is
    ``linear_features`` (the Linear maps the layer's spikes back onto its
    neurons) or ``conv2d_channels`` (channels-last maps ``[B, H, W, C]``).
    Before, MLX's own ``[addmm] Last dimension...`` said it."""
    if not layer.all_to_all:
        return
    tag, last = type(layer).__name__, (x.shape[-1] if x.ndim else None)
    if layer.linear_features:
        n = layer.linear_features
        if last != n:
            raise ValueError(
                f"[{tag}] the input's last dimension is {last}, but linear_features={n}: the "
                f"recurrent Linear({n}, {n}) feeds the layer's spikes back onto its neurons, so "
                f"the input must be [..., {n}] (got shape {tuple(x.shape)}); set "
                f"linear_features to the number of neurons")
    elif layer.conv2d_channels:
        n, need = layer.conv2d_channels, 4 if sequence else 3
        if x.ndim < need or last != n:
            raise ValueError(
                f"[{tag}] the recurrent Conv2d takes channels-last maps [B, H, W, C] "
                f"(MLX's layout{', with a leading time axis' if sequence else ''}) with "
                f"C = conv2d_channels = {n}; got shape {tuple(x.shape)}")


def recurrent_kwargs(layer) -> dict:
    """The op's feedback argument: ``recurrent`` (all-to-all) or ``V``."""
    if layer.all_to_all:
        return {"recurrent": layer.recurrent}
    return {"V": layer.V}


class RLeaky(LIF):
    """Recurrent first-order LIF, snnTorch's ``RLeaky`` with its arguments,
    defaults and results: each step adds ``V * spk`` (one-to-one) or
    ``recurrent(spk)`` (all-to-all) of the previous step's spikes.

    Stepping: ``spk, mem = layer(x_t, spk, mem)``. Whole sequences:
    ``spk, mem = layer.sequence(x, spk=None, mem=None, output_mem="last")``
    with ``x`` ``[T, *S]``: one call of :func:`flashsnn.ops.rleaky`;
    ``spk[-1]`` is the next call's ``spk``.

    Args (as snnTorch): ``beta``, ``V``, ``all_to_all``, ``linear_features``,
    ``conv2d_channels``, ``kernel_size`` (the Conv2d runs on channels-last
    ``[B, H, W, C]`` maps, MLX's layout), ``threshold``, ``spike_grad``,
    ``surrogate_disable``, ``init_hidden``, ``inhibition`` (only False),
    ``learn_beta``, ``learn_threshold``, ``learn_recurrent``,
    ``reset_mechanism``, ``state_quant`` (only False), ``output``,
    ``reset_delay``; and ``backend``.

    >>> import mlx.core as mx, flashsnn as fs
    >>> layer = fs.nn.RLeaky(beta=0.5, V=0.5, all_to_all=False)
    >>> spk, mem = layer.sequence(mx.full((3, 1), 0.75))
    >>> spk[:, 0].tolist(), mem.tolist()
    ([0.0, 1.0, 0.0], [0.8125])
    """

    _states = ("spk", "mem")
    _spk_state = True

    def __init__(self, beta, V=1.0, all_to_all=True, linear_features=None,
                 conv2d_channels=None, kernel_size=None, threshold=1.0, spike_grad=None,
                 surrogate_disable=False, init_hidden=False, inhibition=False,
                 learn_beta=False, learn_threshold=False, learn_recurrent=True,
                 reset_mechanism="subtract", state_quant=False, output=False,
                 reset_delay=True, *, backend="auto"):
        super().__init__(beta, threshold, spike_grad, surrogate_disable, init_hidden,
                         inhibition, learn_beta, learn_threshold, reset_mechanism,
                         state_quant, output, backend=backend)
        init_recurrent(self, V, all_to_all, linear_features, conv2d_channels, kernel_size,
                       learn_recurrent)
        self.reset_delay = _checks.flag(type(self).__name__, "reset_delay", reset_delay)

    def __call__(self, input_: mx.array, spk: mx.array | None = None,
                 mem: mx.array | None = None):
        return self._forward(input_, {"spk": spk, "mem": mem}, sequence=False)

    def sequence(self, x: mx.array, spk: mx.array | None = None,
                 mem: mx.array | None = None, *, output_mem: str = "last"):
        """All T steps of ``x`` ``[T, *S]`` in one call: ``(spk [T, *S],
        mem)``, ``mem`` ``[*S]`` or ``[T, *S]`` with ``output_mem="all"``."""
        return self._forward(x, {"spk": spk, "mem": mem}, sequence=True,
                             output_mem=output_mem)

    def _check_input(self, x, sequence):
        check_recurrent_input(self, x, sequence)

    def _op(self, x, spk, mem, *, output_mem):
        return ops.rleaky(x, spk, mem, beta=self.beta, threshold=self.threshold,
                          reset_mechanism=self.reset_mechanism, reset_delay=self.reset_delay,
                          spike_grad=self.spike_grad, output_mem=output_mem,
                          backend=self.backend, **recurrent_kwargs(self))

    def init_rleaky(self):
        """Deprecated in snnTorch; same as :meth:`reset_mem`."""
        return self.reset_mem()
