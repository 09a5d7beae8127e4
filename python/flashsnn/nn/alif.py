"""``ALIF``: Leaky with an adaptive threshold, on :func:`flashsnn.ops.alif`.
snnTorch has no ALIF; the equations are in ``ops/README.md``."""

from __future__ import annotations

import mlx.core as mx

from .. import ops
from .neurons import LIF


class ALIF(LIF):
    """Adaptive-threshold LIF: :class:`Leaky` (snnTorch's conventions)
    whose threshold is ``threshold + b*A_t``, with the spike trace
    ``A_t = rho*A_{t-1} + S_{t-1}``. With ``b = 0`` it is exactly ``Leaky``.

    Stepping: ``spk, mem, adapt = layer(x_t, mem, adapt)``. Whole sequences:
    ``spk, mem, adapt = layer.sequence(x, mem=None, adapt=None,
    output_mem="last")``: one call of :func:`flashsnn.ops.alif`.

    Args: ``beta`` (membrane decay), ``rho`` (trace decay; both clamped to
    [0, 1]), ``b`` (adaptation strength), ``threshold`` (the base
    threshold), ``spike_grad``, ``surrogate_disable``, ``init_hidden``,
    ``inhibition``, ``learn_beta``, ``learn_rho``, ``learn_b``,
    ``learn_threshold``, ``reset_mechanism`` (``"subtract"`` removes the
    base threshold), ``state_quant`` (only False), ``output``,
    ``graded_spikes_factor``, ``learn_graded_spikes_factor``; ``backend``.
    The reset is always delayed (snnTorch's ``reset_delay=True``).

    >>> import mlx.core as mx, flashsnn as fs
    >>> layer = fs.nn.ALIF(beta=0.5, rho=0.5, b=1.0)
    >>> spk, mem, adapt = layer.sequence(mx.full((4, 1), 1.5))
    >>> spk[:, 0].tolist(), adapt.tolist()
    ([1.0, 0.0, 1.0, 0.0], [1.25])
    """

    _unit_params = ("beta", "rho")

    _states = ("mem", "adapt")

    def __init__(self, beta, rho=0.95, b=0.1, threshold=1.0, spike_grad=None,
                 surrogate_disable=False, init_hidden=False, inhibition=False,
                 learn_beta=False, learn_rho=False, learn_b=False, learn_threshold=False,
                 reset_mechanism="subtract", state_quant=False, output=False,
                 graded_spikes_factor=1.0, learn_graded_spikes_factor=False, *,
                 backend="auto"):
        super().__init__(beta, threshold, spike_grad, surrogate_disable, init_hidden,
                         inhibition, learn_beta, learn_threshold, reset_mechanism,
                         state_quant, output, graded_spikes_factor,
                         learn_graded_spikes_factor, backend)
        self._param("rho", rho, learn_rho)
        self._param("b", b, learn_b)

    def __call__(self, input_: mx.array, mem: mx.array | None = None,
                 adapt: mx.array | None = None):
        return self._forward(input_, {"mem": mem, "adapt": adapt}, sequence=False)

    def sequence(self, x: mx.array, mem: mx.array | None = None,
                 adapt: mx.array | None = None, *, output_mem: str = "last"):
        """All T steps of ``x`` ``[T, *S]`` in one call: ``(spk [T, *S], mem,
        adapt)``, the states ``[*S]`` or ``[T, *S]`` with ``output_mem="all"``."""
        return self._forward(x, {"mem": mem, "adapt": adapt}, sequence=True,
                             output_mem=output_mem)

    def _op(self, x, mem, adapt, *, output_mem):
        return ops.alif(x, mem, adapt, beta=self.beta, threshold=self.threshold,
                        rho=self.rho, b=self.b, reset_mechanism=self.reset_mechanism,
                        spike_grad=self.spike_grad, output_mem=output_mem,
                        backend=self.backend)

    def init_alif(self):
        """Same as :meth:`reset_mem` (named like snnTorch's init functions)."""
        return self.reset_mem()
