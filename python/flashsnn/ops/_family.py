"""What the neuron-family ops share around their own arguments and
equations: the option lists, the checks each op starts with and the base of
the checked-argument records. (The dispatch, fused or reference, is
``_fused.dispatch``; every family is in ``_table.FAMILIES``.)
"""

from __future__ import annotations

from . import _checks

RESETS = ("subtract", "zero", "none")
OUTPUT_MEM = ("last", "all")


class FamilyArgs:
    """Base of each op's ``<Family>Args`` dataclass (the checked and
    normalized arguments, shared by every path of the op), which declares
    ``x`` ``[T, *S]``; adds the neuron shape ``S``."""

    @property
    def S(self) -> tuple:
        return tuple(self.x.shape[1:])


def check_sequence(op: str, x, reset_mechanism, output_mem, resets=RESETS) -> tuple:
    """The checks every op starts with, in this order: ``x`` is a floating
    ``[T, *S]`` array, ``reset_mechanism`` is one of ``resets``, ``output_mem``
    one of ``OUTPUT_MEM``. Returns S."""
    S = _checks.input_sequence(op, x)
    _checks.choice(op, "reset_mechanism", reset_mechanism, resets)
    _checks.choice(op, "output_mem", output_mem, OUTPUT_MEM)
    return S

