"""``Leaky`` (snnTorch's first-order LIF) and ``IF`` (Leaky with beta = 1),
both on the fused op :func:`flashsnn.ops.leaky`."""

from __future__ import annotations

from .. import ops
from ..ops import _checks
from .neurons import MembraneLIF


def _check_inhibition(layer, reset_delay: bool) -> None:
    if layer.inhibition and not reset_delay:
        raise NotImplementedError(
            f"[{type(layer).__name__}] inhibition with reset_delay=False is not supported: "
            "snnTorch's same-step reset then follows the inhibited spikes, which the op "
            "does not see; use reset_delay=True (or inhibition=False)")


class Leaky(MembraneLIF):
    """First-order leaky integrate-and-fire neuron, snnTorch's ``Leaky``
    with its arguments, defaults and results.

    Stepping: ``spk, mem = lif(x_t, mem)`` with ``x_t`` ``[*S]`` (e.g.
    ``[B, N]``); with ``init_hidden=True`` the layer keeps ``mem`` itself
    and returns ``spk`` only (``spk, mem`` when ``output=True``).

    Whole sequences: ``spk, mem = lif.sequence(x, mem=None,
    output_mem="last")`` with ``x`` ``[T, *S]`` runs all T steps in one
    fused kernel (:func:`flashsnn.ops.leaky`) and returns spikes ``[T, *S]``
    and the final membrane ``[*S]`` (every step's ``[T, *S]`` with
    ``output_mem="all"``): the same as stepping T times from ``mem``
    (zeros when None). It is a pure function of its arguments, unless
    ``init_hidden=True``: then it starts from the layer's hidden state and
    stores the final one, as stepping does.

    Args (as snnTorch): ``beta`` (decay, clamped to [0, 1]; float or
    per-neuron array), ``threshold``, ``spike_grad`` (a
    ``flashsnn.surrogate``; atan by default), ``surrogate_disable``,
    ``init_hidden``, ``inhibition``, ``learn_beta``, ``learn_threshold``,
    ``reset_mechanism`` (``"subtract"``, ``"zero"``, ``"none"``),
    ``state_quant`` (only False), ``output``, ``graded_spikes_factor``,
    ``learn_graded_spikes_factor``, ``reset_delay``. flashsnn adds
    ``backend`` (``"auto"``, ``"fused"``, ``"reference"``).

    >>> import mlx.core as mx, flashsnn as fs
    >>> lif = fs.nn.Leaky(beta=0.5)
    >>> spk, mem = lif(mx.array([1.5, 0.5]))                  # one step
    >>> spk.tolist(), mem.tolist()
    ([1.0, 0.0], [1.5, 0.5])
    >>> spk, mem = lif.sequence(mx.full((3, 2), 0.75))        # [T, N] in one launch
    >>> spk.tolist()
    [[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    """

    def __init__(self, beta, threshold=1.0, spike_grad=None, surrogate_disable=False,
                 init_hidden=False, inhibition=False, learn_beta=False,
                 learn_threshold=False, reset_mechanism="subtract", state_quant=False,
                 output=False, graded_spikes_factor=1.0, learn_graded_spikes_factor=False,
                 reset_delay=True, *, backend="auto"):
        super().__init__(beta, threshold, spike_grad, surrogate_disable, init_hidden,
                         inhibition, learn_beta, learn_threshold, reset_mechanism,
                         state_quant, output, graded_spikes_factor,
                         learn_graded_spikes_factor, backend)
        self.reset_delay = _checks.flag(type(self).__name__, "reset_delay", reset_delay)
        _check_inhibition(self, self.reset_delay)

    def _op(self, x, mem, *, output_mem):
        return ops.leaky(x, mem, beta=self.beta, threshold=self.threshold,
                         reset_mechanism=self.reset_mechanism, reset_delay=self.reset_delay,
                         spike_grad=self.spike_grad, output_mem=output_mem,
                         backend=self.backend)

    def init_leaky(self):
        """Deprecated in snnTorch; same as :meth:`reset_mem`."""
        return self.reset_mem()


class IF(Leaky):
    """Integrate-and-fire: :class:`Leaky` with ``beta = 1`` (no leak), on the
    same fused kernel. Arguments as ``Leaky`` without ``beta`` and
    ``learn_beta``.

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk, mem = fs.nn.IF().sequence(mx.full((4, 1), 0.375))
    >>> spk[:, 0].tolist(), mem.tolist()
    ([0.0, 0.0, 1.0, 0.0], [0.5])
    """

    def __init__(self, threshold=1.0, spike_grad=None, surrogate_disable=False,
                 init_hidden=False, inhibition=False, learn_threshold=False,
                 reset_mechanism="subtract", state_quant=False, output=False,
                 graded_spikes_factor=1.0, learn_graded_spikes_factor=False,
                 reset_delay=True, *, backend="auto"):
        super().__init__(1.0, threshold, spike_grad, surrogate_disable, init_hidden,
                         inhibition, False, learn_threshold, reset_mechanism, state_quant,
                         output, graded_spikes_factor, learn_graded_spikes_factor,
                         reset_delay, backend=backend)
