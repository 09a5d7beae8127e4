"""The fused path of every family in the table (``_table.FAMILIES``): the op's
checked arguments -> one call of the generic kernel (``_ext.fused``), or the
family's pure-MLX reference where no kernel applies."""

from __future__ import annotations

import importlib

import mlx.core as mx

from .. import _backend
from . import _checks
from ._table import FAMILIES, Family

# No initial state: a scalar 0 that the kernels broadcast (no [*S] zeros to
# write and read, and shapeless mx.compile stays shape-free), made once:
# mx.array(0.0) cost 0.34 us a call.
_NO_STATE = mx.array(0.0, dtype=mx.float32)


def _traced(x: mx.array) -> bool:
    """Inside mx.compile or mx.vmap, where no array can be evaluated."""
    try:
        mx.eval(x)
    except ValueError:
        return True
    return False


def dispatch(op: str, backend: str, a) -> tuple[mx.array, ...]:
    """``backend`` resolved for ``a``: the fused kernel, or the reference."""
    # Both paths answer T = 0 with arrays of x's shape made without a kernel;
    # a shapeless mx.compile traced there would replay them at every later T
    # (results of shape (0, *S) for x of (4, *S), silently). Only T = 0 pays
    # for this check.
    if a.x.shape[0] == 0 and _traced(a.x):
        raise ValueError(f"[{op}] x has T = 0 steps inside mx.compile or mx.vmap: a "
                         "shapeless compile traced at T = 0 would give empty results at "
                         "every later T; call the op (or skip it) outside the transformation "
                         "for T = 0")
    fam = FAMILIES[op]
    why_not = fam.reason(a) or _checks.kernel_reason(a.spike_grad)
    if not _checks.use_fused(op, backend, why_not):
        return importlib.import_module(f"..reference.{op}", __package__).run(a)
    return run(fam, a)


def initial_states(fam: Family, a) -> list[mx.array]:
    """The kernel's initial states: each Args field, a scalar 0 for None,
    or what the family makes in MLX (``Family.initial``)."""
    out = []
    for name in fam.states:
        make = fam.initial.get(name)
        if make is not None:
            # Made from the parameters, so it has their broadcast shape, which
            # need not be a suffix of S (b of shape (B, 1) makes Izhikevich's
            # u = b * mem (B, 1)): the kernels' form, as for a parameter.
            s = _checks.suffix_param(make(a), a.S)
        else:
            s = getattr(a, name)
        out.append(_NO_STATE if s is None else s)
    return out


def run(fam: Family, a) -> tuple[mx.array, ...]:
    """``(spk, *output states)`` from the fused kernel."""
    states = initial_states(fam, a)
    # A float parameter is a scalar, already in the kernels' form; only
    # arrays need S (a.S and suffix_param took 0.45 us per parameter).
    params = [p if p.ndim == 0 else _checks.suffix_param(p, a.S) for p in fam.kernel_params(a)]
    g = a.spike_grad
    return tuple(_backend.ext.fused(
        fam.id, a.x, states, params, reset=fam.reset_id(a), mode=fam.mode(a),
        detach=getattr(a, "detach", False), surrogate_id=g.kernel_id, surrogate_a=g.a,
        surrogate_b=g.b, mem_all=a.mem_all))
