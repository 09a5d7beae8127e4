"""flashsnn's PEP 517 build backend: scikit-build-core, plus the choice of
which MLX build the extension is compiled against.

The extension must be compiled against the MLX build it will run with: its
GPU kernels exist only if the MLX whose CMake config the build finds is the
CUDA (or Metal) one. With build isolation that MLX comes from the build
requirements, which PEP 517 lets a backend extend per build
(get_requires_for_build_wheel) from its config settings (`pip -C key=value`)
but never tells it which extras the user asked for: `pip install ".[cuda13]"`
alone cannot reach the build. So the choice is a setting:

    pip install ".[cuda13]" -C mlx=cuda13       # or FLASHSNN_MLX=cuda13 pip install ...

mlx=cpu        Linux default: build against mlx[cpu] (CPU kernels only)
mlx=cuda13     build against mlx[cuda13] (CPU + CUDA kernels; needs nvcc 13)
mlx=metal      macOS default: build against mlx (CPU + Metal kernels)
mlx=installed  add no MLX: for --no-build-isolation against the MLX already
               installed (CMake builds whatever backend that one has)

An explicit cuda13 or metal also makes CMake fail unless the MLX it finds is
that build (FLASHSNN_REQUIRE_GPU), so it cannot silently build CPU-only.
Everything else is scikit-build-core's (pyproject.toml, [tool.scikit-build]).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path

KEY = "mlx"
ENV = "FLASHSNN_MLX"


def _skbuild():
    # Looked up at each hook (tests replace it, and read the choices below
    # without scikit-build-core installed).
    return importlib.import_module("scikit_build_core.build")


def _mlx_version() -> str:
    # The one pin of MLX, in [project] dependencies: the wheel runs with that
    # MLX, so it must be built against it.
    text = Path("pyproject.toml").read_text()  # PEP 517 runs hooks in the source tree
    m = re.search(r'^dependencies\s*=\s*\[[^\]]*"mlx==([^";\s]+)"', text, re.M)
    if not m:
        raise RuntimeError("[flashsnn build] no \"mlx==X\" in pyproject.toml's dependencies")
    return m.group(1)


def _choices() -> dict[str, tuple[list[str], str | None]]:
    """Valid settings on this platform: (build requirements, GPU CMake must find)."""
    v = _mlx_version()
    if sys.platform == "darwin":
        return {"metal": ([f"mlx=={v}"], "metal"), "installed": ([], None)}
    return {"cpu": ([f"mlx[cpu]=={v}"], None), "cuda13": ([f"mlx[cuda13]=={v}"], "cuda"),
            "installed": ([], None)}


def _split(config_settings):
    """(the MLX choice, explicit or not, config settings for scikit-build-core)."""
    settings = dict(config_settings or {})
    value = settings.pop(KEY, None)
    explicit = value is not None or os.environ.get(ENV) is not None
    if value is None:
        value = os.environ.get(ENV) or ("metal" if sys.platform == "darwin" else "cpu")
    if isinstance(value, list):  # -C given twice
        value = value[-1]
    choices = _choices()
    if value not in choices:
        raise ValueError(f"[flashsnn build] unknown {KEY}={value!r} (-C {KEY}=... or {ENV}); "
                         f"valid on {sys.platform}: " + ", ".join(repr(c) for c in choices))
    return value, explicit, settings


def _for_cmake(config_settings):
    value, explicit, settings = _split(config_settings)
    gpu = _choices()[value][1]
    # Always defined, empty when nothing is required: a value cached by an
    # earlier build in the same build directory must not linger.
    settings["cmake.define.FLASHSNN_REQUIRE_GPU"] = gpu if explicit and gpu else ""
    return settings


def get_requires_for_build_wheel(config_settings=None):
    value, _, settings = _split(config_settings)
    return [*_skbuild().get_requires_for_build_wheel(settings), *_choices()[value][0]]


def get_requires_for_build_editable(config_settings=None):
    value, _, settings = _split(config_settings)
    return [*_skbuild().get_requires_for_build_editable(settings), *_choices()[value][0]]


def get_requires_for_build_sdist(config_settings=None):
    return _skbuild().get_requires_for_build_sdist(_split(config_settings)[2])


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _skbuild().build_wheel(wheel_directory, _for_cmake(config_settings), metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _skbuild().build_editable(wheel_directory, _for_cmake(config_settings),
                                   metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    return _skbuild().build_sdist(sdist_directory, _split(config_settings)[2])


# scikit-build-core offers these two only where its metadata cannot depend on
# the build (no "failed" overrides): offer them exactly when it does, since a
# PEP 517 backend that defines a hook must answer it.
try:
    _METADATA_HOOKS = hasattr(importlib.import_module("scikit_build_core.build"),
                              "prepare_metadata_for_build_wheel")
except ImportError:  # tests import this module without scikit-build-core
    _METADATA_HOOKS = False

if _METADATA_HOOKS:
    def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
        return _skbuild().prepare_metadata_for_build_wheel(metadata_directory,
                                                           _split(config_settings)[2])

    def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
        return _skbuild().prepare_metadata_for_build_editable(metadata_directory,
                                                              _split(config_settings)[2])
