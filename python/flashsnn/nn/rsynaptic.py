"""``RSynaptic``: snnTorch's recurrent second-order LIF, on
:func:`flashsnn.ops.rsynaptic`."""

from __future__ import annotations

import mlx.core as mx

from .. import ops
from ..ops import _checks
from .neurons import LIF
from .rleaky import check_recurrent_input, init_recurrent, recurrent_kwargs


class RSynaptic(LIF):
    """Recurrent second-order LIF, snnTorch's ``RSynaptic`` with its
    arguments, defaults and results: the previous step's spikes feed the
    synaptic current through ``V`` or ``recurrent``.

    Stepping: ``spk, syn, mem = layer(x_t, spk, syn, mem)``. Whole
    sequences: ``spk, syn, mem = layer.sequence(x, spk=None, syn=None,
    mem=None, output_mem="last")``: one call of :func:`flashsnn.ops.rsynaptic`.

    Args (as snnTorch): ``alpha``, ``beta``, ``V``, ``all_to_all``,
    ``linear_features``, ``conv2d_channels``, ``kernel_size`` (channels-last
    Conv2d), ``threshold``, ``spike_grad``, ``surrogate_disable``,
    ``init_hidden``, ``inhibition`` (only False), ``learn_alpha``,
    ``learn_beta``, ``learn_threshold``, ``learn_recurrent``,
    ``reset_mechanism``, ``state_quant`` (only False), ``output``,
    ``reset_delay``; and ``backend``. ``reset_delay=False`` resets in the
    firing step, as in Synaptic; snnTorch 1.0's RSynaptic ignores the flag
    (its code computes the reset into a variable it never returns).

    >>> import mlx.core as mx, flashsnn as fs
    >>> layer = fs.nn.RSynaptic(alpha=0.5, beta=0.5, V=0.5, all_to_all=False)
    >>> spk, syn, mem = layer.sequence(mx.full((3, 1), 0.5))
    >>> spk[:, 0].tolist(), syn.tolist(), mem.tolist()
    ([0.0, 0.0, 1.0], [0.875], [1.375])
    """

    _unit_params = ("alpha", "beta")

    _states = ("spk", "syn", "mem")
    _spk_state = True

    def __init__(self, alpha, beta, V=1.0, all_to_all=True, linear_features=None,
                 conv2d_channels=None, kernel_size=None, threshold=1.0, spike_grad=None,
                 surrogate_disable=False, init_hidden=False, inhibition=False,
                 learn_alpha=False, learn_beta=False, learn_threshold=False,
                 learn_recurrent=True, reset_mechanism="subtract", state_quant=False,
                 output=False, reset_delay=True, *, backend="auto"):
        super().__init__(beta, threshold, spike_grad, surrogate_disable, init_hidden,
                         inhibition, learn_beta, learn_threshold, reset_mechanism,
                         state_quant, output, backend=backend)
        init_recurrent(self, V, all_to_all, linear_features, conv2d_channels, kernel_size,
                       learn_recurrent)
        self._param("alpha", alpha, learn_alpha)
        self.reset_delay = _checks.flag(type(self).__name__, "reset_delay", reset_delay)

    def __call__(self, input_: mx.array, spk: mx.array | None = None,
                 syn: mx.array | None = None, mem: mx.array | None = None):
        return self._forward(input_, {"spk": spk, "syn": syn, "mem": mem}, sequence=False)

    def sequence(self, x: mx.array, spk: mx.array | None = None,
                 syn: mx.array | None = None, mem: mx.array | None = None, *,
                 output_mem: str = "last"):
        """All T steps of ``x`` ``[T, *S]`` in one call: ``(spk [T, *S], syn,
        mem)``, the states ``[*S]`` or ``[T, *S]`` with ``output_mem="all"``."""
        return self._forward(x, {"spk": spk, "syn": syn, "mem": mem}, sequence=True,
                             output_mem=output_mem)

    def _check_input(self, x, sequence):
        check_recurrent_input(self, x, sequence)

    def _op(self, x, spk, syn, mem, *, output_mem):
        return ops.rsynaptic(x, spk, syn, mem, alpha=self.alpha, beta=self.beta,
                             threshold=self.threshold, reset_mechanism=self.reset_mechanism,
                             reset_delay=self.reset_delay, spike_grad=self.spike_grad,
                             output_mem=output_mem, backend=self.backend,
                             **recurrent_kwargs(self))

    def init_rsynaptic(self):
        """Deprecated in snnTorch; same as :meth:`reset_mem`."""
        return self.reset_mem()
