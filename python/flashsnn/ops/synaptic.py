"""The synaptic-current LIF neuron (snnTorch's ``Synaptic``) over a whole sequence.

Equations: ``python/flashsnn/ops/README.md`` (Synaptic). Fused: all T steps in
one kernel launch, forward and backward (``src/step/synaptic.h`` through the family
engine, docs/adding-a-family.md); the pure-MLX reference
(``flashsnn.reference.synaptic``) runs where no kernel applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx

from .. import surrogate as _surrogate
from . import _checks, _family, _fused

OP = "synaptic"


@dataclass
class SynapticArgs(_family.FamilyArgs):
    """Checked and normalized arguments, shared by every path of the op."""

    x: mx.array
    syn: mx.array | None      # float32 [*S] or None (zeros)
    mem: mx.array | None      # float32 [*S] or None (zeros)
    alpha: mx.array           # float32, broadcastable to S
    beta: mx.array
    threshold: mx.array
    reset: str
    reset_delay: bool
    spike_grad: object        # Surrogate or callable
    mem_all: bool


def check_args(x, syn, mem, alpha, beta, threshold, reset_mechanism, reset_delay,
               spike_grad, output_mem) -> SynapticArgs:
    S = _family.check_sequence(OP, x, reset_mechanism, output_mem)
    return SynapticArgs(
        x=x,
        **_checks.states(OP, S, syn=syn, mem=mem),
        **_checks.params(OP, S, alpha=alpha, beta=beta, threshold=threshold),
        reset=reset_mechanism,
        reset_delay=_checks.flag(OP, "reset_delay", reset_delay),
        spike_grad=_surrogate.resolve(spike_grad, OP),
        mem_all=output_mem == "all",
    )


def synaptic(x: mx.array, syn: mx.array | None = None, mem: mx.array | None = None, *,
             alpha, beta, threshold=1.0, reset_mechanism: str = "subtract",
             reset_delay: bool = True, spike_grad=_surrogate.atan(),
             output_mem: str = "last", backend: str = "auto"
             ) -> tuple[mx.array, mx.array, mx.array]:
    """Synaptic-current LIF over all T steps of ``x``: snnTorch's ``Synaptic``
    stepped T times.

    Args:
        x: input current ``[T, *S]``, float32 / float16 / bfloat16.
        syn: initial synaptic current ``[*S]`` (zeros when None).
        mem: initial membrane ``[*S]`` (zeros when None).
        alpha: synaptic decay, a float or an array broadcastable to ``S``;
            clamped to [0, 1]. Differentiable.
        beta: membrane decay, likewise.
        threshold: firing threshold, a float or an array broadcastable to
            ``S``. Differentiable.
        reset_mechanism: ``"subtract"``, ``"zero"`` (the membrane only, as
            snnTorch does) or ``"none"``.
        reset_delay: False also resets the membrane in the step that fires.
        spike_grad: a ``flashsnn.surrogate`` surrogate or a callable
            ``f(v) -> spikes``.
        output_mem: ``"last"`` returns the final ``syn`` and ``mem``
            ``[*S]``; ``"all"`` returns both after every step ``[T, *S]``.
        backend: ``"auto"`` (the fused kernel where one exists for this
            device and these options, else the reference), ``"fused"`` (an
            error where none exists) or ``"reference"`` (pure MLX).

    Returns:
        ``(spk, syn, mem)``: spikes ``[T, *S]`` and the states, in x's dtype.

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk, syn, mem = fs.ops.synaptic(mx.full((3, 1), 0.5), alpha=0.5, beta=0.5)
    >>> spk.tolist(), syn.tolist(), mem.tolist()
    ([[0.0], [0.0], [1.0]], [0.875], [1.375])
    """
    a = check_args(x, syn, mem, alpha, beta, threshold, reset_mechanism, reset_delay,
                   spike_grad, output_mem)
    return _fused.dispatch(OP, backend, a)
