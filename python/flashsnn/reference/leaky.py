"""Leaky, the pure-MLX way: one Python-level step per time step, upcast to
float32, straight-through surrogate (see ``flashsnn.surrogate``).

Written from snnTorch's equations, independently of ``src/step/leaky.h``::

    reset_t = stop_gradient(H(U_{t-1} - threshold))          (snntorch convention)
    subtract: U_t = beta*U_{t-1} + X_t - reset_t*threshold
    zero:     U_t = beta*((1 - reset_t)*U_{t-1}) + X_t
    S_t     = spike_grad(U_t - threshold)
    reset_delay=False:  U_t -= (S_t - reset_t) * threshold   (subtract)
                        U_t -= (S_t - reset_t) * U_t         (zero)
"""

from __future__ import annotations

import mlx.core as mx

from .. import surrogate as _surrogate
from ..ops.leaky import DELAYED, SAME_STEP, LeakyArgs, check_args
from ..surrogate import fire as _fire  # a user callable decides its own firing rule
from ._common import Steps


def run(a: LeakyArgs) -> tuple[mx.array, mx.array]:
    x = a.x.astype(mx.float32)
    th = a.threshold
    beta = a.beta
    b = mx.where(beta < 0, 0.0, mx.where(beta > 1, 1.0, beta))  # clamp; grad passes on [0, 1]
    u = a.mem if a.mem is not None else mx.zeros(a.S, dtype=mx.float32)
    same_step = a.mode == SAME_STEP
    steps = Steps(a)
    for t in range(x.shape[0]):
        # With an empty neuron shape, MLX 0.32.4's vjp of the index x[t]
        # divides by zero (SIGFPE: mx.vjp(lambda a: a[1], [mx.zeros((3, 0))],
        # [mx.zeros((0,))])); the slice differentiates fine, same values.
        xt = x[t] if x.size else x[t:t + 1].reshape(a.S)
        if same_step:
            r = None
            h = b * u + xt
        else:
            r = mx.stop_gradient(_fire(a.spike_grad, u - th, False))
            if a.reset == "subtract":
                h = b * u + xt - r * th
            elif a.reset == "zero":
                h = b * ((1.0 - r) * u) + xt
            else:
                h = b * u + xt
        s = _fire(a.spike_grad, h - th, same_step, fired=(h >= th) if same_step else None)
        if a.mode == DELAYED or a.reset == "none":
            u = h
        else:
            d = s if r is None else s - r
            if a.detach:
                d = mx.stop_gradient(d)
            u = h - d * th if a.reset == "subtract" else h - d * h
        steps.add(s, u)
    return steps.outputs(u)


def leaky(x: mx.array, mem: mx.array | None = None, *, beta, threshold=1.0,
          reset_mechanism: str = "subtract", reset_delay: bool = True,
          spike_grad=_surrogate.atan(), output_mem: str = "last",
          convention: str = "snntorch", detach_reset: bool = False
          ) -> tuple[mx.array, mx.array]:
    """Same signature and results as :func:`flashsnn.ops.leaky` (without
    ``backend``), computed step by step in plain MLX."""
    return run(check_args(x, mem, beta, threshold, reset_mechanism, reset_delay,
                              spike_grad, output_mem, convention, detach_reset))
