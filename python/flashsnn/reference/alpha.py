"""Alpha, the pure-MLX way: one step per time step, float32 state,
straight-through surrogate. Written from snnTorch's ``Alpha`` (same operation
order)::

    R_t     = stop_gradient(H(U_{t-1} - threshold))
    tau     = log(alpha) / (log(beta) - log(alpha)) + 1
    E_t     = alpha*E_{t-1} + X_t
    N_t     = beta*N_{t-1}  - X_t
    U_t     = tau*(E_t + N_t)
    subtract: E_t -= R_t*threshold;  N_t -= R_t*N_t;  U_t += R_t*N_{t-1}
    zero:     E_t, N_t, U_t each multiplied by (1 - R_t)
    S_t     = spike_grad(U_t - threshold)
"""

from __future__ import annotations

import mlx.core as mx

from .. import surrogate as _surrogate
from ..ops.alpha import AlphaArgs, check_args
from ._common import Steps, clamp01, zeros_if_none


def run(a: AlphaArgs) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    x = a.x.astype(mx.float32)
    alpha, beta, th = clamp01(a.alpha), clamp01(a.beta), a.threshold
    log_a = mx.log(alpha)
    tau = log_a / (mx.log(beta) - log_a) + 1
    fire = _surrogate.fire
    exc, inh, mem = zeros_if_none(a.S, a.syn_exc, a.syn_inh, a.mem)
    steps = Steps(a)
    for t in range(x.shape[0]):
        r = mx.stop_gradient(fire(a.spike_grad, mem - th))
        inh_prev = inh
        exc = alpha * exc + x[t]
        inh = beta * inh - x[t]
        mem = tau * (exc + inh)
        if a.reset == "subtract":
            exc = exc - th * r
            inh = inh - inh * r
            mem = mem - (-inh_prev) * r
        elif a.reset == "zero":
            exc = exc - exc * r
            inh = inh - inh * r
            mem = mem - mem * r
        steps.add(fire(a.spike_grad, mem - th), exc, inh, mem)
    return steps.outputs(exc, inh, mem)


def alpha(x: mx.array, syn_exc: mx.array | None = None, syn_inh: mx.array | None = None,
          mem: mx.array | None = None, *, alpha, beta, threshold=1.0,
          reset_mechanism: str = "zero", spike_grad=_surrogate.atan(),
          output_mem: str = "last") -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """Same signature and results as :func:`flashsnn.ops.alpha` (without
    ``backend``), computed step by step in plain MLX."""
    return run(check_args(x, syn_exc, syn_inh, mem, alpha, beta, threshold,
                          reset_mechanism, spike_grad, output_mem))
