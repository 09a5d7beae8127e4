"""``Synaptic``: snnTorch's second-order LIF (a decaying synaptic current
feeding a leaky membrane), on :func:`flashsnn.ops.synaptic`."""

from __future__ import annotations

import mlx.core as mx

from .. import ops
from ..ops import _checks
from .leaky import _check_inhibition
from .neurons import LIF


class Synaptic(LIF):
    """Second-order leaky integrate-and-fire neuron, snnTorch's
    ``Synaptic`` with its arguments, defaults and results.

    Stepping: ``spk, syn, mem = layer(x_t, syn, mem)``. Whole sequences:
    ``spk, syn, mem = layer.sequence(x, syn=None, mem=None,
    output_mem="last")`` with ``x`` ``[T, *S]``: one call of
    :func:`flashsnn.ops.synaptic`, the same as stepping T times.

    Args (as snnTorch): ``alpha`` (synaptic decay), ``beta`` (membrane
    decay), both clamped to [0, 1]; ``threshold``, ``spike_grad``,
    ``surrogate_disable``, ``init_hidden``, ``inhibition``, ``learn_alpha``,
    ``learn_beta``, ``learn_threshold``, ``reset_mechanism``,
    ``state_quant`` (only False), ``output``, ``reset_delay``; and
    ``backend``. snnTorch's Synaptic takes no graded spikes factor.

    >>> import mlx.core as mx, flashsnn as fs
    >>> layer = fs.nn.Synaptic(alpha=0.5, beta=0.5)
    >>> spk, syn, mem = layer.sequence(mx.full((3, 1), 0.5))
    >>> spk[:, 0].tolist(), syn.tolist(), mem.tolist()
    ([0.0, 0.0, 1.0], [0.875], [1.375])
    """

    _unit_params = ("alpha", "beta")

    _states = ("syn", "mem")

    def __init__(self, alpha, beta, threshold=1.0, spike_grad=None,
                 surrogate_disable=False, init_hidden=False, inhibition=False,
                 learn_alpha=False, learn_beta=False, learn_threshold=False,
                 reset_mechanism="subtract", state_quant=False, output=False,
                 reset_delay=True, *, backend="auto"):
        super().__init__(beta, threshold, spike_grad, surrogate_disable, init_hidden,
                         inhibition, learn_beta, learn_threshold, reset_mechanism,
                         state_quant, output, backend=backend)
        self._param("alpha", alpha, learn_alpha)
        self.reset_delay = _checks.flag(type(self).__name__, "reset_delay", reset_delay)
        _check_inhibition(self, self.reset_delay)

    def __call__(self, input_: mx.array, syn: mx.array | None = None,
                 mem: mx.array | None = None):
        return self._forward(input_, {"syn": syn, "mem": mem}, sequence=False)

    def sequence(self, x: mx.array, syn: mx.array | None = None,
                 mem: mx.array | None = None, *, output_mem: str = "last"):
        """All T steps of ``x`` ``[T, *S]`` in one call: ``(spk [T, *S], syn,
        mem)``, the states ``[*S]`` or ``[T, *S]`` with ``output_mem="all"``."""
        return self._forward(x, {"syn": syn, "mem": mem}, sequence=True,
                             output_mem=output_mem)

    def _op(self, x, syn, mem, *, output_mem):
        return ops.synaptic(x, syn, mem, alpha=self.alpha, beta=self.beta,
                            threshold=self.threshold, reset_mechanism=self.reset_mechanism,
                            reset_delay=self.reset_delay, spike_grad=self.spike_grad,
                            output_mem=output_mem, backend=self.backend)

    def init_synaptic(self):
        """Deprecated in snnTorch; same as :meth:`reset_mem`."""
        return self.reset_mem()
