"""ALIF, the pure-MLX way: one step per time step, float32 state,
straight-through surrogate. From the equations in ``ops/README.md``::

    P_t = spike_grad(U_{t-1} - threshold - b*A_{t-1})   (the previous step's spike,
                                                         recomputed from the state)
    R_t = stop_gradient(P_t)
    A_t = rho*A_{t-1} + P_t                              (keeps P_t's gradient)
    U_t = beta*U_{t-1} + X_t - R_t*threshold             (subtract)
          beta*((1 - R_t)*U_{t-1}) + X_t                 (zero)
          beta*U_{t-1} + X_t                             (none)
    S_t = spike_grad(U_t - threshold - b*A_t)
"""

from __future__ import annotations

import mlx.core as mx

from .. import surrogate as _surrogate
from ..ops.alif import ALIFArgs, check_args
from ._common import Steps, clamp01, zeros_if_none


def run(a: ALIFArgs) -> tuple[mx.array, mx.array, mx.array]:
    x = a.x.astype(mx.float32)
    beta, rho, th, b = clamp01(a.beta), clamp01(a.rho), a.threshold, a.b
    fire = _surrogate.fire
    mem, adapt = zeros_if_none(a.S, a.mem, a.adapt)
    steps = Steps(a)
    for t in range(x.shape[0]):
        prev = fire(a.spike_grad, mem - th - b * adapt)
        r = mx.stop_gradient(prev)
        adapt = rho * adapt + prev
        if a.reset == "subtract":
            mem = beta * mem + x[t] - r * th
        elif a.reset == "zero":
            mem = beta * ((1.0 - r) * mem) + x[t]
        else:
            mem = beta * mem + x[t]
        steps.add(fire(a.spike_grad, mem - th - b * adapt), mem, adapt)
    return steps.outputs(mem, adapt)


def alif(x: mx.array, mem: mx.array | None = None, adapt: mx.array | None = None, *,
         beta, threshold=1.0, rho=0.95, b=0.1, reset_mechanism: str = "subtract",
         spike_grad=_surrogate.atan(), output_mem: str = "last"
         ) -> tuple[mx.array, mx.array, mx.array]:
    """Same signature and results as :func:`flashsnn.ops.alif` (without
    ``backend``), computed step by step in plain MLX."""
    return run(check_args(x, mem, adapt, beta, threshold, rho, b, reset_mechanism,
                          spike_grad, output_mem))
