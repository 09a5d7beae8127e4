"""The Alpha neuron (snnTorch's ``Alpha``) over a whole sequence.

Equations: ``python/flashsnn/ops/README.md`` (Alpha). Fused: all T steps in
one kernel launch, forward and backward (``src/step/alpha.h`` through the family
engine, docs/adding-a-family.md); the pure-MLX reference
(``flashsnn.reference.alpha``) runs where no kernel applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx

from .. import surrogate as _surrogate
from . import _checks, _family, _fused

OP = "alpha"


@dataclass
class AlphaArgs(_family.FamilyArgs):
    """Checked and normalized arguments, shared by every path of the op."""

    x: mx.array
    syn_exc: mx.array | None  # float32 [*S] or None (zeros)
    syn_inh: mx.array | None
    mem: mx.array | None
    alpha: mx.array           # float32, broadcastable to S
    beta: mx.array
    threshold: mx.array
    reset: str
    spike_grad: object        # Surrogate or callable
    mem_all: bool


def check_args(x, syn_exc, syn_inh, mem, alpha, beta, threshold, reset_mechanism,
               spike_grad, output_mem) -> AlphaArgs:
    S = _family.check_sequence(OP, x, reset_mechanism, output_mem)
    return AlphaArgs(
        x=x,
        **_checks.states(OP, S, syn_exc=syn_exc, syn_inh=syn_inh, mem=mem),
        **_checks.params(OP, S, alpha=alpha, beta=beta, threshold=threshold),
        reset=reset_mechanism,
        spike_grad=_surrogate.resolve(spike_grad, OP),
        mem_all=output_mem == "all",
    )


def alpha(x: mx.array, syn_exc: mx.array | None = None, syn_inh: mx.array | None = None,
          mem: mx.array | None = None, *, alpha, beta, threshold=1.0,
          reset_mechanism: str = "zero", spike_grad=_surrogate.atan(),
          output_mem: str = "last", backend: str = "auto"
          ) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """Alpha neuron over all T steps of ``x``: snnTorch's ``Alpha`` stepped
    T times (an excitatory and an inhibitory synaptic current whose
    difference, scaled by ``tau_alpha``, is the membrane).

    Args:
        x: input current ``[T, *S]``, float32 / float16 / bfloat16.
        syn_exc, syn_inh, mem: initial states ``[*S]`` (zeros when None).
            ``mem`` only decides the first step's reset.
        alpha: excitatory decay, a float or an array broadcastable to ``S``;
            clamped to [0, 1]. Differentiable. Must exceed ``beta`` (the
            layer checks; here ``alpha == beta`` divides by zero).
        beta: inhibitory decay, likewise; ``beta == 1`` divides by zero.
        threshold: firing threshold, a float or an array broadcastable to
            ``S``. Differentiable.
        reset_mechanism: ``"zero"`` (snnTorch's default here),
            ``"subtract"`` or ``"none"``.
        spike_grad: a ``flashsnn.surrogate`` surrogate or a callable
            ``f(v) -> spikes``.
        output_mem: ``"last"`` returns the final states ``[*S]``; ``"all"``
            returns every state after every step ``[T, *S]``.
        backend: ``"auto"`` (the fused kernel where one exists for this
            device and these options, else the reference), ``"fused"`` (an
            error where none exists) or ``"reference"`` (pure MLX).

    Returns:
        ``(spk, syn_exc, syn_inh, mem)``: spikes ``[T, *S]`` and the states,
        in x's dtype.

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk, exc, inh, mem = fs.ops.alpha(mx.full((2, 1), 4.0), alpha=0.5, beta=0.25)
    >>> spk.tolist(), mem.tolist()
    ([[0.0], [1.0]], [2.0])
    """
    a = check_args(x, syn_exc, syn_inh, mem, alpha, beta, threshold, reset_mechanism,
                   spike_grad, output_mem)
    return _fused.dispatch(OP, backend, a)
