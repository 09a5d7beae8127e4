"""Loading the compiled extension, and deciding where a fused kernel applies.

`import flashsnn` never fails because of the extension: when `_ext` is
missing or was built against another MLX, a warning says what to do and every
op runs on its pure-MLX reference (`backend="auto"`), while
`backend="fused"` raises with the same explanation.

One install state is an error even under `backend="auto"`: MLX runs on a GPU
here but `_ext` has no kernels for it (built against MLX's CPU build, e.g. by
`pip install ".[cuda13]"` without `-C mlx=cuda13`). Falling back to the
reference would hide a wrong install behind a 100x slower op, so ops on that
GPU raise with the command that fixes it (and `import flashsnn` warns).
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
# How to get kernels for each GPU backend (docs/cuda.md, docs/metal.md).
_GPU_REBUILD = {
    "cuda": "pip install --force-reinstall '.[cuda13]' -C mlx=cuda13 (docs/cuda.md)",
    "metal": "pip install --force-reinstall '.[cpu,all]' on macOS with MLX's Metal build "
             "(docs/metal.md)",
}


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


@functools.lru_cache(maxsize=1)
def gpu_kind() -> str | None:
    """'metal' or 'cuda' when MLX has a usable GPU here, else None (asked on
    every op call on a GPU; the answer does not change in a process)."""
    if not mx.is_available(mx.gpu):
        return None
    return "metal" if mx.metal.is_available() else "cuda"


def gpu_backend() -> str:
    """The GPU backend compiled into _ext ('metal', 'cuda' or 'none')."""
    return ext.gpu_backend() if ext is not None else "none"


def device_kind(device: mx.Device | None = None) -> str:
    """'cpu', 'metal' or 'cuda' for the device ops will run on ('gpu' for a
    GPU device where MLX has none)."""
    device = device or mx.default_device()
    kind = getattr(device, "type", device)  # mx.gpu (a DeviceType) names one too
    if kind is mx.cpu:  # an enum member; `is` takes 0.08 us, `==` 0.17 us
        return "cpu"
    return gpu_kind() or "gpu"


def build_mismatch(device: mx.Device | None = None) -> str | None:
    """Why this install is wrong for `device`: MLX runs on a GPU of a kind
    that _ext has no kernels for (None otherwise, and on the CPU)."""
    return None if ext is None else _mismatch(device_kind(device), gpu_backend())


def _mismatch(kind: str, backend: str) -> str | None:
    if kind not in _GPU_REBUILD or backend == kind:
        return None
    return (f"this flashsnn._ext has no {kind} kernels (built with GPU backend "
            f"'{backend}', i.e. against an MLX without {kind}) but MLX runs on a {kind} "
            f"GPU here; rebuild it: {_GPU_REBUILD[kind]}")


def fused_unavailable_reason(device: mx.Device | None = None) -> str | None:
    """Why no fused kernel can run on `device` (None when one can)."""
    if ext is None:
        return ext_error
    kind = device_kind(device)  # asked on every op call: 0.08 us for the CPU
    if kind == "cpu":
        return None
    return _gpu_reason(kind, gpu_backend())


@functools.lru_cache(maxsize=8)
def _gpu_reason(kind: str, backend: str) -> str | None:
    """The GPU's answer, worked out once per process and build."""
    if kind == "gpu":
        return "MLX has no GPU here (mx.is_available(mx.gpu) is False); run on mx.cpu"
    return _mismatch(kind, backend)


_load()
if ext_error is not None:
    warnings.warn(f"flashsnn: fused kernels disabled: {ext_error}. The pure-MLX reference "
                  "path still works (backend='reference', or 'auto').", RuntimeWarning,
                  stacklevel=2)
elif build_mismatch(mx.Device(mx.gpu)) is not None:
    warnings.warn(f"flashsnn: {build_mismatch(mx.Device(mx.gpu))}. Ops on the GPU raise until "
                  "then; ops on mx.cpu use the CPU kernels.", RuntimeWarning, stacklevel=2)
