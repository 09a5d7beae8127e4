"""Izhikevich, the pure-MLX way: one step per time step, float32 state,
straight-through surrogate. From the equations in ``ops/README.md``::

    R_t  = stop_gradient(H(v_{t-1} >= threshold))
    v'   = c          where R_t, else v_{t-1}
    u'   = u_{t-1} + R_t*d
    f(v) = 0.04*v*v + 5*v + 140 - u' + X_t
    v_h  = v'  + (dt/2)*f(v')                 (two half steps, as the paper)
    v_t  = v_h + (dt/2)*f(v_h)
    u_t  = u' + dt*a*(b*v_t - u')
    S_t  = spike_grad(v_t - threshold)        (fires on >=)
"""

from __future__ import annotations

import mlx.core as mx

from .. import surrogate as _surrogate
from ..ops.izhikevich import V_REST, IzhikevichArgs, check_args
from ._common import Steps


def run(args: IzhikevichArgs) -> tuple[mx.array, mx.array, mx.array]:
    x = args.x.astype(mx.float32)
    a, b, c, d, th, dt = args.a, args.b, args.c, args.d, args.threshold, args.time_step
    half = dt * 0.5
    fire = _surrogate.fire
    v = args.mem if args.mem is not None else mx.full(args.S, V_REST, dtype=mx.float32)
    u = args.u if args.u is not None else mx.broadcast_to(b * v, args.S)
    steps = Steps(args)
    for t in range(x.shape[0]):
        r = mx.stop_gradient(fire(args.spike_grad, v - th, True, fired=v >= th))
        v = mx.where(r > 0, c, v)
        u = u + r * d
        v = v + half * (0.04 * v * v + 5.0 * v + 140.0 - u + x[t])
        v = v + half * (0.04 * v * v + 5.0 * v + 140.0 - u + x[t])
        u = u + dt * a * (b * v - u)
        steps.add(fire(args.spike_grad, v - th, True, fired=v >= th), v, u)
    return steps.outputs(v, u)


def izhikevich(x: mx.array, mem: mx.array | None = None, u: mx.array | None = None, *,
               a, b, c, d, threshold=30.0, time_step=1.0, spike_grad=_surrogate.atan(),
               output_mem: str = "last") -> tuple[mx.array, mx.array, mx.array]:
    """Same signature and results as :func:`flashsnn.ops.izhikevich` (without
    ``backend``), computed step by step in plain MLX."""
    return run(check_args(x, mem, u, a, b, c, d, threshold, time_step, spike_grad,
                          output_mem))
