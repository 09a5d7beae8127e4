"""Ready-made spiking models. :class:`SpikingMLP` is the mlx-snn paper's
two-layer network trained by ``flashsnn train``; :data:`PRESETS` holds the
paper's configurations C1-C5."""

from .spiking_mlp import BACKENDS, PRESETS, Preset, SpikingMLP

__all__ = ["SpikingMLP", "Preset", "PRESETS", "BACKENDS"]
