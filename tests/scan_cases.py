"""Inputs, cotangents and the vjp of flashsnn.ops.selective_scan, shared by
the op's tests (tests/ops) and the CUDA and Metal kernel checks
(tests/cuda, tests/metal), so that every backend is checked on the same
cases."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from flashsnn.ops.selective_scan import selective_scan

# The op's inputs in order; absent optional ones are None in a case dict.
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")
DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}


def make(b=2, L=9, D=5, N=3, *, B_varies=True, C_varies=True, with_D=True, with_z=True,
         with_bias=True, with_h0=True, dtype=mx.float32, seed=0, softplus=True) -> dict:
    """All nine inputs (None for the absent ones), values of Mamba's scale:
    A < 0 (decays), delta around softplus's knee; without softplus, delta
    and its bias positive (step sizes, as a caller passes them; a negative
    step makes exp(delta A) grow and the states overflow). `dtype`: an MLX
    dtype or its name."""
    r = np.random.default_rng(seed)
    t = DTYPES.get(dtype, dtype)

    def f(*s, scale=1.0):
        return mx.array((r.normal(size=s) * scale).astype(np.float32))
    pos = (lambda a: a) if softplus else (lambda a: mx.abs(a) + 0.01)
    return dict(u=f(b, L, D).astype(t), delta=pos(f(b, L, D, scale=0.5)).astype(t),
                A=-mx.exp(f(D, N, scale=0.5)),
                B=f(b, L, N).astype(t) if B_varies else f(D, N),
                C=f(b, L, N).astype(t) if C_varies else f(D, N),
                D=f(D) if with_D else None, z=f(b, L, D).astype(t) if with_z else None,
                delta_bias=pos(f(D, scale=0.1)) if with_bias else None,
                initial_state=f(b, D, N) if with_h0 else None)


def cotangents(inp, seed=1) -> list:
    """Random cotangents for (out, last state)."""
    r = np.random.default_rng(seed)
    b, L, D = inp["u"].shape
    N = inp["A"].shape[1]
    return [mx.array(r.normal(size=(b, L, D)).astype(np.float32)).astype(inp["u"].dtype),
            mx.array(r.normal(size=(b, D, N)).astype(np.float32))]


def run(inp, backend, softplus=True, chunk=64):
    """(out, last state) of one call."""
    return selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"],
                          inp["z"], delta_bias=inp["delta_bias"], delta_softplus=softplus,
                          initial_state=inp["initial_state"], return_last_state=True,
                          chunk=chunk, backend=backend)


def vjp(inp, backend, cot, softplus=True, chunk=64):
    """[out, last] and the gradient of every present input, by name, evaluated."""
    names = [n for n in NAMES if inp[n] is not None]

    def f(*xs):
        return run({**inp, **dict(zip(names, xs))}, backend, softplus, chunk)
    outs, grads = mx.vjp(f, [inp[n] for n in names], cot)
    mx.eval(outs, grads)
    return list(outs), dict(zip(names, grads))
