"""``Alpha``: snnTorch's alpha-function neuron (excitatory and inhibitory
synaptic currents), on :func:`flashsnn.ops.alpha`."""

from __future__ import annotations

import mlx.core as mx

from .. import ops
from .neurons import LIF


class Alpha(LIF):
    """Alpha neuron, snnTorch's ``Alpha`` with its arguments, defaults and
    results (``reset_mechanism="zero"`` by default).

    Stepping: ``spk, syn_exc, syn_inh, mem = layer(x_t, syn_exc, syn_inh,
    mem)``. Whole sequences: ``layer.sequence(x, syn_exc=None,
    syn_inh=None, mem=None, output_mem="last")`` with ``x`` ``[T, *S]``:
    one call of :func:`flashsnn.ops.alpha`, the same as stepping T times.

    Args (as snnTorch): ``alpha`` > ``beta`` (decays of the excitatory and
    inhibitory currents; alpha is clamped to [0, 1] when stored, both in
    every step), ``threshold``, ``spike_grad``,
    ``surrogate_disable``, ``init_hidden``, ``inhibition``, ``learn_alpha``
    (fails in snnTorch 1.0; works here), ``learn_beta``, ``learn_threshold``,
    ``reset_mechanism``, ``state_quant`` (only False), ``output``; and
    ``backend``.

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk, exc, inh, mem = fs.nn.Alpha(alpha=0.5, beta=0.25).sequence(mx.full((2, 1), 4.0))
    >>> spk[:, 0].tolist(), mem.tolist()
    ([0.0, 1.0], [2.0])
    """

    _unit_params = ("alpha", "beta")

    _states = ("syn_exc", "syn_inh", "mem")

    def __init__(self, alpha, beta, threshold=1.0, spike_grad=None,
                 surrogate_disable=False, init_hidden=False, inhibition=False,
                 learn_alpha=False, learn_beta=False, learn_threshold=False,
                 reset_mechanism="zero", state_quant=False, output=False, *,
                 backend="auto"):
        super().__init__(beta, threshold, spike_grad, surrogate_disable, init_hidden,
                         inhibition, learn_beta, learn_threshold, reset_mechanism,
                         state_quant, output, backend=backend)
        self._param("alpha", alpha, learn_alpha)
        # As snnTorch: alpha is stored clamped, then checked against beta
        # (tau_alpha = log(a)/(log(b) - log(a)) + 1 needs a != b). snnTorch's
        # second check, beta != 1, can never fire after this one (a <= 1).
        self.alpha = mx.clip(self.alpha, 0.0, 1.0)
        if bool(mx.any(self.alpha <= self.beta).item()):
            raise ValueError("[Alpha] alpha must be greater than beta.")

    def __call__(self, input_: mx.array, syn_exc: mx.array | None = None,
                 syn_inh: mx.array | None = None, mem: mx.array | None = None):
        return self._forward(input_, {"syn_exc": syn_exc, "syn_inh": syn_inh, "mem": mem},
                             sequence=False)

    def sequence(self, x: mx.array, syn_exc: mx.array | None = None,
                 syn_inh: mx.array | None = None, mem: mx.array | None = None, *,
                 output_mem: str = "last"):
        """All T steps of ``x`` ``[T, *S]`` in one call: ``(spk [T, *S],
        syn_exc, syn_inh, mem)``, the states ``[*S]`` or ``[T, *S]`` with
        ``output_mem="all"``."""
        return self._forward(x, {"syn_exc": syn_exc, "syn_inh": syn_inh, "mem": mem},
                             sequence=True, output_mem=output_mem)

    def _op(self, x, syn_exc, syn_inh, mem, *, output_mem):
        return ops.alpha(x, syn_exc, syn_inh, mem, alpha=self.alpha, beta=self.beta,
                         threshold=self.threshold, reset_mechanism=self.reset_mechanism,
                         spike_grad=self.spike_grad, output_mem=output_mem,
                         backend=self.backend)

    def init_alpha(self):
        """Deprecated in snnTorch; same as :meth:`reset_mem`."""
        return self.reset_mem()
