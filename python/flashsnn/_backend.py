"""Loading the compiled extension, and deciding where a fused kernel applies.

`import flashsnn` never fails because of the extension: when `_ext` is
missing or was built against another MLX, a warning says what to do and every
op runs on its pure-MLX reference (`backend="auto"`), while
`backend="fused"` raises with the same explanation.
"""

from __future__ import annotations

import functools
import warnings

import mlx.core as mx

ext = None
ext_error: str | None = None

_REBUILD = (
    "reinstall it from the source tree with `pip install --force-reinstall --no-deps .` "
    "(Linux CPU: `pip install '.[cpu]'`; Linux CUDA and macOS: see README)"
)


def _diagnose(module, running: str) -> str | None:
    """Why `module` (a loaded _ext) cannot serve this MLX, or None."""
    built = module.mlx_version()
    if built != running.split(".dev")[0]:
        return (f"flashsnn._ext was built against MLX {built} but MLX {running} is installed; "
                f"{_REBUILD}")
    return None


def _load() -> None:
    global ext, ext_error
    try:
        from . import _ext as module
    except ImportError as e:
        ext_error = f"the compiled extension flashsnn._ext is missing or failed to load ({e}); {_REBUILD}"
        return
    ext_error = _diagnose(module, mx.__version__)
    if ext_error is None:
        ext = module


_load()
if ext_error is not None:
    warnings.warn(f"flashsnn: fused kernels disabled: {ext_error}. The pure-MLX reference "
                  "path still works (backend='reference', or 'auto').", RuntimeWarning,
                  stacklevel=2)


def gpu_backend() -> str:
    """The GPU backend compiled into _ext ('metal', 'cuda' or 'none')."""
    return ext.gpu_backend() if ext is not None else "none"


def device_kind(device: mx.Device | None = None) -> str:
    """'cpu', 'metal' or 'cuda' for the device ops will run on."""
    device = device or mx.default_device()
    if device.type is mx.cpu:  # an enum member; `is` takes 0.08 us, `==` 0.17 us
        return "cpu"
    if mx.metal.is_available():
        return "metal"
    return "cuda"


def fused_unavailable_reason(device: mx.Device | None = None) -> str | None:
    """Why no fused kernel can run on `device` (None when one can)."""
    if ext is None:
        return ext_error
    # Asked on every op call: the CPU answer first (0.35 -> 0.2 us a call),
    # the GPU's once per process (its kind and this build do not change).
    if (device or mx.default_device()).type is mx.cpu:
        return None
    return _gpu_reason()


@functools.lru_cache(maxsize=1)
def _gpu_reason() -> str | None:
    kind = device_kind(mx.Device(mx.gpu))
    if gpu_backend() != kind:
        return (f"this flashsnn build has no {kind} kernels (built with GPU backend "
                f"'{gpu_backend()}'); rebuild against MLX's {kind} build or run on mx.cpu")
    return None
