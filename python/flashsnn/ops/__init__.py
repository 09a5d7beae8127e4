"""Fused multi-step neuron ops: ``flashsnn.ops.<family>(x, *state, **params)``.

Each op runs all T steps in one kernel launch, forward and backward, where a
kernel exists for the device and options, and falls back to its pure-MLX
reference (``flashsnn.reference.<family>``) elsewhere. Every family is fused
(the table ``ops/_table.py``); what has no kernel is a user-written surrogate
and RLeaky's and RSynaptic's callable (all-to-all) feedback, which run the
reference under ``backend="auto"`` and are an error under ``backend="fused"``.

``selective_scan`` is Mamba-1's scan (not a neuron family): fused on the CPU,
CUDA and Metal for up to 64 (CUDA) or 128 (Metal) states per channel.

Under ``backend="auto"`` a fallback to the reference warns once per op and
reason (:class:`ReferenceFallbackWarning`), and :func:`last_path` tells which
path an op's last call took.
"""

from ._checks import ReferenceFallbackWarning, last_path

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
           "izhikevich", "selective_scan", "last_path", "ReferenceFallbackWarning"]
