"""The fused families' table: the Python side of ``src/step/families.h``.

One entry per fused family says how its op's checked arguments (the
``<Family>Args`` record) map onto the generic kernel's inputs: the initial
states and the parameters in kernel order, the kernel mode the options
select, and any parameter the op derives in MLX before the kernel (Alpha's
tau, computed with the reference's own expression). Everything generic reads
it: the dispatch (``_fused.run``), the generated tests and
``flashsnn bench --family``. ``tests/ops/test_family_table.py`` checks it
against the extension's own list (``_ext.families()``).

Adding a family: its step header, one line in ``src/step/families.h`` and
one entry here (docs/adding-a-family.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import mlx.core as mx

# fs::Mode (src/step/common.h)
DELAYED, IMMEDIATE, SAME_STEP = 0, 1, 2
# fs::Reset, in snnTorch's order
RESETS = {"subtract": 0, "zero": 1, "none": 2}


def _delay_mode(a) -> int:
    return DELAYED if a.reset_delay else IMMEDIATE


def _alpha_tau(a) -> mx.array:
    # The reference's expression (flashsnn/reference/alpha.py), in the same
    # order, so that the kernel sees the bits the reference computes.
    alpha = mx.where(a.alpha < 0, 0.0, mx.where(a.alpha > 1, 1.0, a.alpha))
    beta = mx.where(a.beta < 0, 0.0, mx.where(a.beta > 1, 1.0, a.beta))
    log_a = mx.log(alpha)
    return log_a / (mx.log(beta) - log_a) + 1


@dataclass(frozen=True)
class Family:
    name: str                       # the op, flashsnn.ops.<name>
    id: int                         # fs::FamilyId
    states: tuple[str, ...]         # Args fields of the initial states, kernel order
    params: tuple[str, ...]         # Args fields of the parameters, kernel order
    mode: Callable = lambda a: DELAYED        # Args -> fs::Mode
    modes: tuple[int, ...] = (DELAYED,)       # the modes the kernel has
    derived: tuple[tuple[str, Callable], ...] = ()  # parameters made in MLX, after `params`
    # Values for tests and benchmarks: each parameter's range for random
    # per-neuron values, and keyword options the op takes.
    sample: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # option name -> the values to test
    bench: dict = field(default_factory=dict)    # scalar parameters flashsnn bench runs with

    def kernel_params(self, a) -> list[mx.array]:
        return [getattr(a, p) for p in self.params] + [f(a) for _, f in self.derived]


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("leaky", 0, states=("mem",), params=("beta", "threshold"),
           mode=lambda a: a.mode, modes=(DELAYED, IMMEDIATE, SAME_STEP),
           sample={"beta": (0.5, 0.98), "threshold": (0.5, 1.5)},
           options={"reset_delay": (True, False), "convention": ("snntorch", "same_step")},
           bench={"beta": 0.9, "threshold": 1.0}),
    Family("synaptic", 1, states=("syn", "mem"), params=("alpha", "beta", "threshold"),
           mode=_delay_mode, modes=(DELAYED, IMMEDIATE),
           sample={"alpha": (0.3, 0.95), "beta": (0.5, 0.98), "threshold": (0.5, 1.5)},
           options={"reset_delay": (True, False)},
           bench={"alpha": 0.8, "beta": 0.9, "threshold": 1.0}),
    Family("alpha", 2, states=("syn_exc", "syn_inh", "mem"),
           params=("alpha", "beta", "threshold"), derived=(("tau", _alpha_tau),),
           # snnTorch's Alpha needs alpha > beta (tau > 0).
           sample={"alpha": (0.85, 0.95), "beta": (0.5, 0.8), "threshold": (0.5, 1.5)},
           bench={"alpha": 0.9, "beta": 0.7, "threshold": 1.0}),
    Family("lapicque", 3, states=("mem",), params=("R", "C", "time_step", "threshold"),
           sample={"R": (2.0, 8.0), "C": (0.5, 2.0), "time_step": (0.5, 1.0),
                   "threshold": (0.5, 1.5)},
           bench={"R": 5.0, "C": 1.0, "time_step": 1.0, "threshold": 1.0}),
)}

BY_ID = {f.id: f for f in FAMILIES.values()}
