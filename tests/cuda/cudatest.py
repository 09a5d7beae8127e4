"""Helpers for the CUDA backend's checks (tests/cuda): paths, flags, tools.

Everything builds with this machine's ``nvcc`` into pytest's temporary
folder; without ``nvcc`` the checks skip and say why. (A module of its own,
not conftest.py, so that test files can import it by a name no other test
folder uses.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"

# The architecture the compile checks build for: the H100's. The wheel build
# (csrc/backend.cmake) adds sm_80/86/89 and PTX; the checks keep to one to
# stay within a minute on a 2-core CI machine.
ARCH = "sm_90"

# Numerics flags of csrc/backend.cmake, repeated for builds made here.
NUMERICS = ["-fmad=false", "--ftz=false", "--prec-div=true", "--prec-sqrt=true",
            "-Xcompiler", "-ffp-contract=off"]
# Warnings in our code fail (CUDA's own headers are system headers).
STRICT = ["-Werror", "all-warnings", "-Xcompiler", "-Wall,-Wextra,-Werror"]


def find_tool(name: str, env: str | None = None) -> str | None:
    """A CUDA tool from $env, PATH, /usr/local/cuda/bin or a pip nvidia-* wheel."""
    if env and os.environ.get(env):
        return os.environ[env]
    found = shutil.which(name)
    if found:
        return found
    for d in (Path("/usr/local/cuda/bin"),):
        if (d / name).exists():
            return str(d / name)
    # scripts/gpu/build_cuda.sh's venv has cuobjdump and nvdisasm.
    for cand in (ROOT / "build/gpu-cache/venv312").glob(f"lib/python*/site-packages/nvidia/*/bin/{name}"):
        return str(cand)
    try:
        import nvidia  # namespace package of the nvidia-* wheels

        for base in nvidia.__path__:
            for cand in Path(base).glob(f"*/bin/{name}"):
                return str(cand)
    except ImportError:
        pass
    return None


def require_nvcc() -> str:
    path = find_tool("nvcc", "NVCC")
    if path is None:
        pytest.skip("nvcc not found (PATH, $NVCC, /usr/local/cuda/bin): the CUDA backend's "
                    "compile checks need the CUDA toolkit")
    return path


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a build command; fail the test with its output if it fails."""
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail(f"command failed ({p.returncode}): {' '.join(cmd)}\n"
                    f"{p.stdout[-6000:]}\n{p.stderr[-6000:]}")
    return p
