"""What the neuron-family ops share around their own arguments and
equations: the option lists, the checks each op starts with, the base of
the checked-argument records, and the dispatch of a family that has no fused
kernel yet (those not in ``_table.FAMILIES``).
"""

from __future__ import annotations

import importlib

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


def run_reference(op: str, backend: str, args):
    """The dispatch of a family with no fused kernel yet: ``backend="fused"``
    raises (as does an unknown backend); ``"auto"`` and ``"reference"`` run
    ``flashsnn.reference.<op>.run(args)``, so a kernel can slot in later
    without touching the layers."""
    _checks.use_fused(op, backend,  # raises for backend="fused"
                      f"no fused kernel exists for {op} yet; backend='auto' or 'reference' "
                      "runs the pure-MLX reference")
    # Imported here: the reference modules import the ops' argument checks.
    return importlib.import_module(f"..reference.{op}", __package__).run(args)
