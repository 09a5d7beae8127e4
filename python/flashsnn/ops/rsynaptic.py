"""The recurrent synaptic neuron (snnTorch's ``RSynaptic``) over a whole sequence.

Equations: ``python/flashsnn/ops/README.md`` (RSynaptic). Feedback as in
:func:`flashsnn.ops.rleaky`: one-to-one ``V`` is fused (``src/step/rsynaptic.h``);
a callable ``recurrent`` runs the pure-MLX reference
(``flashsnn.reference.rsynaptic``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import mlx.core as mx

from .. import surrogate as _surrogate
from . import _checks, _family, _fused
from .rleaky import recurrent_arg

OP = "rsynaptic"


@dataclass
class RSynapticArgs(_family.FamilyArgs):
    """Checked and normalized arguments, shared by every path of the op."""

    x: mx.array
    spk: mx.array | None      # float32 [*S] or None (zeros): the previous step's spikes
    syn: mx.array | None      # float32 [*S] or None (zeros)
    mem: mx.array | None
    alpha: mx.array           # float32, broadcastable to S
    beta: mx.array
    V: mx.array | None        # one-to-one feedback weight, or None with `recurrent`
    recurrent: Callable | None
    threshold: mx.array
    reset: str
    reset_delay: bool
    spike_grad: object        # Surrogate or callable
    mem_all: bool


def check_args(x, spk, syn, mem, alpha, beta, V, recurrent, threshold, reset_mechanism,
               reset_delay, spike_grad, output_mem) -> RSynapticArgs:
    S = _family.check_sequence(OP, x, reset_mechanism, output_mem)
    V, recurrent = recurrent_arg(OP, V, recurrent, S)
    return RSynapticArgs(
        x=x,
        **_checks.states(OP, S, spk=spk, syn=syn, mem=mem),
        **_checks.params(OP, S, alpha=alpha, beta=beta, threshold=threshold),
        V=V,
        recurrent=recurrent,
        reset=reset_mechanism,
        reset_delay=_checks.flag(OP, "reset_delay", reset_delay),
        spike_grad=_surrogate.resolve(spike_grad, OP),
        mem_all=output_mem == "all",
    )


def rsynaptic(x: mx.array, spk: mx.array | None = None, syn: mx.array | None = None,
              mem: mx.array | None = None, *, alpha, beta, V=None,
              recurrent: Callable | None = None, threshold=1.0,
              reset_mechanism: str = "subtract", reset_delay: bool = True,
              spike_grad=_surrogate.atan(), output_mem: str = "last",
              backend: str = "auto") -> tuple[mx.array, mx.array, mx.array]:
    """Recurrent synaptic LIF over all T steps of ``x``: snnTorch's
    ``RSynaptic`` stepped T times, each step's spikes fed back into the
    synaptic current of the next.

    Args:
        x: input current ``[T, *S]``, float32 / float16 / bfloat16.
        spk: the spikes before the first step ``[*S]`` (zeros when None).
        syn, mem: initial synaptic current and membrane ``[*S]`` (zeros
            when None).
        alpha, beta: synaptic and membrane decay, floats or arrays
            broadcastable to ``S``; clamped to [0, 1]. Differentiable.
        V: one-to-one feedback weight (differentiable); 1.0 when neither
            ``V`` nor ``recurrent`` is given.
        recurrent: instead of ``V``, any callable mapping ``[*S]`` spikes to
            a ``[*S]`` current (``mlx.nn.Linear``, ``mlx.nn.Conv2d``...).
        threshold: firing threshold, a float or an array broadcastable to
            ``S``. Differentiable.
        reset_mechanism: ``"subtract"``, ``"zero"`` (the membrane only) or
            ``"none"``.
        reset_delay: False also resets the membrane in the step that fires
            (snnTorch 1.0's RSynaptic ignores this flag; see ``docs/layers.md``).
        spike_grad: a ``flashsnn.surrogate`` surrogate or a callable
            ``f(v) -> spikes``.
        output_mem: ``"last"`` returns the final ``syn`` and ``mem``
            ``[*S]``; ``"all"`` returns both after every step ``[T, *S]``.
        backend: ``"auto"`` (the fused kernel where one exists for this
            device and these options, else the reference), ``"fused"`` (an
            error where none exists) or ``"reference"`` (pure MLX).

    Returns:
        ``(spk, syn, mem)``: spikes ``[T, *S]`` (``spk[-1]`` is the next
        call's ``spk`` state) and the states, in x's dtype.

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk, syn, mem = fs.ops.rsynaptic(mx.full((3, 1), 0.5), alpha=0.5, beta=0.5, V=0.5)
    >>> spk.tolist(), syn.tolist(), mem.tolist()
    ([[0.0], [0.0], [1.0]], [0.875], [1.375])
    """
    a = check_args(x, spk, syn, mem, alpha, beta, V, recurrent, threshold,
                   reset_mechanism, reset_delay, spike_grad, output_mem)
    return _fused.dispatch(OP, backend, a)
