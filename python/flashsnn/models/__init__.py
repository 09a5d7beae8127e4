"""Ready-made spiking models. :class:`SpikingMLP` is the mlx-snn paper's
two-layer network trained by ``flashsnn train``; :data:`PRESETS` holds the
paper's configurations C1-C5. :class:`SpikingCNN` is a small convolutional
network (channels-last), as timed by ``flashsnn bench-train``.
:class:`MambaSpike` is a spiking convolutional front end feeding Mamba-1
blocks on the fused selective scan, with the public code's recipes in
:data:`MAMBA_SPIKE_PRESETS`."""

from .mamba_spike import PRESETS as MAMBA_SPIKE_PRESETS
from .mamba_spike import MambaBlock, MambaSpike, MambaSpikePreset, count_parameters
from .spiking_cnn import SpikingCNN
from ._lif import BACKENDS, RESETS
from .spiking_mlp import PRESETS, Preset, SpikingMLP

__all__ = ["SpikingMLP", "SpikingCNN", "Preset", "PRESETS", "BACKENDS", "RESETS", "MambaSpike",
           "MambaBlock", "MambaSpikePreset", "MAMBA_SPIKE_PRESETS", "count_parameters"]
