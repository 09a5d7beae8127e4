"""The fused path of every family in the table (``_table.FAMILIES``): the op's
checked arguments -> one call of the generic kernel (``_ext.fused``), or the
family's pure-MLX reference where no kernel applies."""

from __future__ import annotations

import importlib

import mlx.core as mx

from .. import _backend
from . import _checks
from ._table import FAMILIES, RESETS, Family

# No initial state: a scalar 0 that the kernels broadcast (no [*S] zeros to
# write and read, and shapeless mx.compile stays shape-free), made once:
# mx.array(0.0) cost 0.34 us a call.
_NO_STATE = mx.array(0.0, dtype=mx.float32)


def dispatch(op: str, backend: str, a) -> tuple[mx.array, ...]:
    """``backend`` resolved for ``a``: the fused kernel, or the reference."""
    if not _checks.use_fused(op, backend, _checks.kernel_reason(a.spike_grad)):
        return importlib.import_module(f"..reference.{op}", __package__).run(a)
    return run(FAMILIES[op], a)


def run(fam: Family, a) -> tuple[mx.array, ...]:
    """``(spk, *states)`` from the fused kernel."""
    states = [_NO_STATE if (s := getattr(a, name)) is None else s for name in fam.states]
    # A float parameter is a scalar, already in the kernels' form; only
    # arrays need S (a.S and suffix_param took 0.45 us per parameter).
    params = [p if p.ndim == 0 else _checks.suffix_param(p, a.S) for p in fam.kernel_params(a)]
    g = a.spike_grad
    return tuple(_backend.ext.fused(
        fam.id, a.x, states, params, reset=RESETS[a.reset], mode=fam.mode(a),
        detach=getattr(a, "detach", False), surrogate_id=g.kernel_id, surrogate_a=g.a,
        surrogate_b=g.b, mem_all=a.mem_all))
