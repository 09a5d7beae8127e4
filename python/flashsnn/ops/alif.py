"""The adaptive-threshold LIF neuron (ALIF) over a whole sequence.

snnTorch has no ALIF; this one is Leaky (snnTorch's convention: delayed,
detached reset) with a threshold raised by a decaying trace of the neuron's
own spikes. Equations: ``python/flashsnn/ops/README.md`` (ALIF). Fused:
``src/step/alif.h``; the pure-MLX reference is ``flashsnn.reference.alif``.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx

from .. import surrogate as _surrogate
from . import _checks, _family, _fused

OP = "alif"


@dataclass
class ALIFArgs(_family.FamilyArgs):
    """Checked and normalized arguments, shared by every path of the op."""

    x: mx.array
    mem: mx.array | None      # float32 [*S] or None (zeros)
    adapt: mx.array | None    # float32 [*S] or None (zeros): the spike trace A
    beta: mx.array            # float32, broadcastable to S
    threshold: mx.array
    rho: mx.array
    b: mx.array
    reset: str
    spike_grad: object        # Surrogate or callable
    mem_all: bool


def check_args(x, mem, adapt, beta, threshold, rho, b, reset_mechanism, spike_grad,
               output_mem) -> ALIFArgs:
    S = _family.check_sequence(OP, x, reset_mechanism, output_mem)
    return ALIFArgs(
        x=x,
        **_checks.states(OP, S, mem=mem, adapt=adapt),
        **_checks.params(OP, S, beta=beta, threshold=threshold, rho=rho, b=b),
        reset=reset_mechanism,
        spike_grad=_surrogate.resolve(spike_grad, OP),
        mem_all=output_mem == "all",
    )


def alif(x: mx.array, mem: mx.array | None = None, adapt: mx.array | None = None, *,
         beta, threshold=1.0, rho=0.95, b=0.1, reset_mechanism: str = "subtract",
         spike_grad=_surrogate.atan(), output_mem: str = "last", backend: str = "auto"
         ) -> tuple[mx.array, mx.array, mx.array]:
    """Adaptive-threshold LIF over all T steps of ``x``: the effective
    threshold is ``threshold + b*A_t`` with ``A_t = rho*A_{t-1} + S_{t-1}``.

    Args:
        x: input current ``[T, *S]``, float32 / float16 / bfloat16.
        mem: initial membrane ``[*S]`` (zeros when None).
        adapt: initial adaptation trace ``A`` ``[*S]`` (zeros when None).
        beta: membrane decay, a float or an array broadcastable to ``S``;
            clamped to [0, 1]. Differentiable.
        threshold: the base threshold, likewise. Differentiable.
        rho: decay of the trace, clamped to [0, 1]. Differentiable.
        b: adaptation strength (threshold raised by ``b`` per unit of
            trace). Differentiable.
        reset_mechanism: ``"subtract"`` (subtracts the base ``threshold``),
            ``"zero"`` or ``"none"``.
        spike_grad: a ``flashsnn.surrogate`` surrogate or a callable
            ``f(v) -> spikes``.
        output_mem: ``"last"`` returns the final ``mem`` and ``adapt``
            ``[*S]``; ``"all"`` returns both after every step ``[T, *S]``.
        backend: ``"auto"`` (the fused kernel where one exists for this
            device and these options, else the reference), ``"fused"`` (an
            error where none exists) or ``"reference"`` (pure MLX).

    Returns:
        ``(spk, mem, adapt)``: spikes ``[T, *S]`` and the states, in x's
        dtype. With ``b = 0`` the spikes and membrane are exactly
        :func:`flashsnn.ops.leaky`'s.

    >>> import mlx.core as mx, flashsnn as fs
    >>> spk, mem, adapt = fs.ops.alif(mx.full((4, 1), 1.5), beta=0.5, rho=0.5, b=1.0)
    >>> spk[:, 0].tolist(), adapt.tolist()
    ([1.0, 0.0, 1.0, 0.0], [1.25])
    """
    a = check_args(x, mem, adapt, beta, threshold, rho, b, reset_mechanism, spike_grad,
                   output_mem)
    return _fused.dispatch(OP, backend, a)
