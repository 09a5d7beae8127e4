"""Synaptic, the pure-MLX way: one step per time step, float32 state,
straight-through surrogate. Written from snnTorch's ``Synaptic`` (same
operation order, so float32 results match it to the last bit in practice)::

    R_t   = stop_gradient(H(U_{t-1} - threshold))
    I_t   = alpha*I_{t-1} + X_t
    U_t   = beta*U_{t-1} + I_t  - R_t*threshold        (subtract)
            (beta*U_{t-1} + I_t)*(1 - R_t)              (zero; I_t is not reset)
    S_t   = spike_grad(U_t - threshold)
    reset_delay=False:  U_t -= (S_t - R_t)*threshold   (subtract)
                        U_t -= (S_t - R_t)*U_t         (zero)
"""

from __future__ import annotations

import mlx.core as mx

from .. import surrogate as _surrogate
from ..ops.synaptic import SynapticArgs, check_args
from ._common import Steps, clamp01, reset, reset_same_step, zeros_if_none


def run(a: SynapticArgs) -> tuple[mx.array, mx.array, mx.array]:
    x = a.x.astype(mx.float32)
    alpha, beta, th = clamp01(a.alpha), clamp01(a.beta), a.threshold
    fire = _surrogate.fire
    syn, mem = zeros_if_none(a.S, a.syn, a.mem)
    steps = Steps(a)
    for t in range(x.shape[0]):
        r = mx.stop_gradient(fire(a.spike_grad, mem - th))
        syn = alpha * syn + x[t]
        mem = reset(beta * mem + syn, r, th, a.reset)
        s = fire(a.spike_grad, mem - th)
        if not a.reset_delay:
            mem = reset_same_step(mem, s, r, th, a.reset)
        steps.add(s, syn, mem)
    return steps.outputs(syn, mem)


def synaptic(x: mx.array, syn: mx.array | None = None, mem: mx.array | None = None, *,
             alpha, beta, threshold=1.0, reset_mechanism: str = "subtract",
             reset_delay: bool = True, spike_grad=_surrogate.atan(),
             output_mem: str = "last") -> tuple[mx.array, mx.array, mx.array]:
    """Same signature and results as :func:`flashsnn.ops.synaptic` (without
    ``backend``), computed step by step in plain MLX."""
    return run(check_args(x, syn, mem, alpha, beta, threshold, reset_mechanism,
                          reset_delay, spike_grad, output_mem))
