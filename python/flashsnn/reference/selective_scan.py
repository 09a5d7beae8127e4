"""Mamba-1's selective scan, the pure-MLX way: one Python-level step per
sequence position, everything in float32, written from the equations
(``flashsnn/ops/README.md``, "Selective scan") and sharing no code with the
kernels. Channels-last, MLX's habit: for sequence position l and channel d,
u[b, l, d]; the state h[b, d, n]::

    delta <- softplus(delta + delta_bias)                    (delta_softplus)
    h_l   = exp(delta_l[d] A[d, n]) h_{l-1} + delta_l[d] B_l[n] u_l[d]
    y_l   = sum_n h_l[d, n] C_l[n] + D[d] u_l[d]
    out_l = y_l * silu(z_l)                                   (z given)

It validates the fused kernels (outputs and, through ``mx.vjp`` of this loop,
every gradient) and runs wherever no kernel applies. Its graph has O(L)
nodes and its memory holds every step's state: fine for tests, not for
long sequences.
"""

from __future__ import annotations

import mlx.core as mx

from ..ops._scan_checks import ScanArgs


def run(a: ScanArgs) -> tuple[mx.array, mx.array]:
    f32 = mx.float32
    u, dt = a.u.astype(f32), a.delta.astype(f32)
    A = a.A.astype(f32)
    if a.delta_bias is not None:
        dt = dt + a.delta_bias.astype(f32)
    if a.delta_softplus:
        # log(1 + e^x), overflow-safe: max(x, 0) + log1p(e^{-|x|})
        dt = mx.maximum(dt, 0.0) + mx.log1p(mx.exp(-mx.abs(dt)))
    Bm, Cm = a.B.astype(f32), a.C.astype(f32)
    batch, L, Dch = u.shape
    N = A.shape[1]
    h = (a.initial_state.astype(f32) if a.initial_state is not None
         else mx.zeros((batch, Dch, N), dtype=f32))
    ys = []
    for t in range(L):
        d_t = dt[:, t, :, None]                                   # [B, D, 1]
        b_t = Bm[:, t, None, :] if a.B_varies else Bm[None]       # [B, 1, N] or [1, D, N]
        c_t = Cm[:, t, None, :] if a.C_varies else Cm[None]
        h = mx.exp(d_t * A) * h + (d_t * u[:, t, :, None]) * b_t
        ys.append((h * c_t).sum(axis=-1))
    y = mx.stack(ys, axis=1) if ys else mx.zeros((batch, 0, Dch), dtype=f32)
    if a.D is not None:
        y = y + a.D.astype(f32) * u
    if a.z is not None:
        z = a.z.astype(f32)
        y = y * (z * mx.sigmoid(z))
    return y.astype(a.out_dtype), h


def selective_scan(u, delta, A, B, C, D=None, z=None, *, delta_bias=None,
                   delta_softplus=False, initial_state=None, return_last_state=False):
    """The reference of ``flashsnn.ops.selective_scan`` (same signature,
    without ``backend``)."""
    from ..ops._scan_checks import check_args
    a = check_args("selective_scan", u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                   initial_state)
    y, h = run(a)
    return (y, h) if return_last_state else y
