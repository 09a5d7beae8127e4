"""Pure-MLX references: a per-step loop over T written from the equations,
with the straight-through surrogate. Same signatures as ``flashsnn.ops``;
no code shared with the kernels. They validate every kernel and run wherever
no kernel applies."""

from .leaky import leaky

__all__ = ["leaky"]
