"""RLeaky, the pure-MLX way: one step per time step, float32 state,
straight-through surrogate. Written from snnTorch's ``RLeaky`` (same operation
order)::

    R_t = stop_gradient(H(U_{t-1} - threshold))
    B_t = beta*U_{t-1} + X_t + V*S_{t-1}        (or + recurrent(S_{t-1}))
    U_t = B_t - R_t*threshold    (subtract)
          B_t - R_t*B_t          (zero: the whole step, input included)
    S_t = spike_grad(U_t - threshold)           (fed back with its gradient)
    reset_delay=False:  U_t -= (S_t - R_t)*threshold   (subtract)
                        U_t -= (S_t - R_t)*U_t         (zero)
"""

from __future__ import annotations

import mlx.core as mx

from .. import surrogate as _surrogate
from ..ops.rleaky import RLeakyArgs, check_args
from ._common import Steps, clamp01, reset, reset_same_step, zeros_if_none


def run(a: RLeakyArgs) -> tuple[mx.array, mx.array]:
    x = a.x.astype(mx.float32)
    beta, th = clamp01(a.beta), a.threshold
    fire = _surrogate.fire
    feedback = a.recurrent if a.recurrent is not None else (lambda s: s * a.V)
    spk, mem = zeros_if_none(a.S, a.spk, a.mem)
    steps = Steps(a)
    for t in range(x.shape[0]):
        r = mx.stop_gradient(fire(a.spike_grad, mem - th))
        base = beta * mem + x[t] + feedback(spk).astype(mx.float32)
        mem = reset(base, r, th, a.reset)
        spk = fire(a.spike_grad, mem - th)
        if not a.reset_delay:
            mem = reset_same_step(mem, spk, r, th, a.reset)
        steps.add(spk, mem)
    return steps.outputs(mem)


def rleaky(x: mx.array, spk: mx.array | None = None, mem: mx.array | None = None, *,
           beta, V=None, recurrent=None, threshold=1.0, reset_mechanism: str = "subtract",
           reset_delay: bool = True, spike_grad=_surrogate.atan(),
           output_mem: str = "last") -> tuple[mx.array, mx.array]:
    """Same signature and results as :func:`flashsnn.ops.rleaky` (without
    ``backend``), computed step by step in plain MLX."""
    return run(check_args(x, spk, mem, beta, V, recurrent, threshold, reset_mechanism,
                          reset_delay, spike_grad, output_mem))
