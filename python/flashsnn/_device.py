"""``--device cpu|gpu`` for the commands: one place that turns the name into
an MLX device, or says clearly why it cannot."""

from __future__ import annotations

import mlx.core as mx

DEVICES = ("cpu", "gpu")


def resolve_device(name: str | None) -> mx.Device:
    """``"cpu"`` -> ``mx.Device(mx.cpu)``, ``"gpu"`` -> ``mx.Device(mx.gpu)``,
    ``None`` -> MLX's default device (the GPU where MLX has one).

    Raises ``ValueError`` naming the choices for an unknown name, and for
    ``"gpu"`` when this MLX has no GPU (the Linux ``mlx[cpu]`` wheel).

    >>> resolve_device("cpu")
    Device(cpu, 0)
    """
    if name is None:
        return mx.default_device()
    if name not in DEVICES:
        raise ValueError(f"[device] unknown device {name!r}; choose from "
                         + ", ".join(repr(d) for d in DEVICES))
    if name == "gpu":
        if not mx.is_available(mx.gpu):
            raise ValueError(
                "[device] 'gpu' was asked for but this MLX has no GPU (mx.is_available(mx.gpu) "
                "is False: the CPU-only mlx[cpu] build?); choose from 'cpu', 'gpu', where 'gpu' "
                "needs MLX's CUDA build (pip install 'mlx[cuda13]', see docs/cuda.md) or Apple "
                "silicon (Metal)")
        return mx.Device(mx.gpu)
    return mx.Device(mx.cpu)


def device_name(device: mx.Device) -> str:
    """``"cpu"`` or ``"gpu"``."""
    return "gpu" if device.type == mx.gpu else "cpu"
