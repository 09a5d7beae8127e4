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


def _clamp01(p: mx.array) -> mx.array:
    # torch.clamp's gradient: passes on [0, 1] inclusive, zero outside.
    return mx.where(p < 0, 0.0, mx.where(p > 1, 1.0, p))


def run(a: ALIFArgs) -> tuple[mx.array, mx.array, mx.array]:
    dtype, T = a.x.dtype, a.x.shape[0]
    x = a.x.astype(mx.float32)
    beta, rho, th, b = _clamp01(a.beta), _clamp01(a.rho), a.threshold, a.b
    fire = _surrogate.fire
    zeros = mx.zeros(a.S, dtype=mx.float32)
    mem = a.mem if a.mem is not None else zeros
    adapt = a.adapt if a.adapt is not None else zeros
    spks, mems, adapts = [], [], []
    for t in range(T):
        prev = fire(a.spike_grad, mem - th - b * adapt)
        r = mx.stop_gradient(prev)
        adapt = rho * adapt + prev
        if a.reset == "subtract":
            mem = beta * mem + x[t] - r * th
        elif a.reset == "zero":
            mem = beta * ((1.0 - r) * mem) + x[t]
        else:
            mem = beta * mem + x[t]
        spks.append(fire(a.spike_grad, mem - th - b * adapt))
        if a.mem_all:
            mems.append(mem)
            adapts.append(adapt)
    if T == 0:
        empty = mx.zeros(a.x.shape, dtype=dtype)
        if a.mem_all:
            return empty, empty, empty
        return empty, mem.astype(dtype), adapt.astype(dtype)
    spk = mx.stack(spks).astype(dtype)
    if a.mem_all:
        return spk, mx.stack(mems).astype(dtype), mx.stack(adapts).astype(dtype)
    return spk, mem.astype(dtype), adapt.astype(dtype)


def alif(x: mx.array, mem: mx.array | None = None, adapt: mx.array | None = None, *,
         beta, threshold=1.0, rho=0.95, b=0.1, reset_mechanism: str = "subtract",
         spike_grad=_surrogate.atan(), output_mem: str = "last"
         ) -> tuple[mx.array, mx.array, mx.array]:
    """Same signature and results as :func:`flashsnn.ops.alif` (without
    ``backend``), computed step by step in plain MLX."""
    return run(check_args(x, mem, adapt, beta, threshold, rho, b, reset_mechanism,
                          spike_grad, output_mem))
