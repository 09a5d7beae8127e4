"""Pure-MLX references: a per-step loop over T written from the equations,
with the straight-through surrogate. Same signatures as ``flashsnn.ops``;
no code shared with the kernels. They validate every kernel and run wherever
no kernel applies."""

from .alif import alif
from .alpha import alpha
from .izhikevich import izhikevich
from .lapicque import lapicque
from .leaky import leaky
from .rleaky import rleaky
from .rsynaptic import rsynaptic
from .selective_scan import selective_scan
from .synaptic import synaptic

__all__ = ["leaky", "synaptic", "alpha", "lapicque", "rleaky", "rsynaptic", "alif",
           "izhikevich", "selective_scan"]
