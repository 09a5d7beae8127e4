"""Helpers for the CUDA backend's checks (tests/cuda): paths, flags, tools.

Everything builds with this machine's ``nvcc`` into pytest's temporary
folder; without ``nvcc`` the checks skip and say why. (A module of its own,
not conftest.py, so that test files can import it by a name no other test
folder uses.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
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


# ---------------------------------------------------------------------------
# Sample inputs for the kernels, per family (test_cuda_kernel_logic.py and
# test_cuda_gpu.py). The table (flashsnn.ops._table.FAMILIES) gives each
# parameter's range; what it does not say is here, in one place.
# ---------------------------------------------------------------------------

# Inputs x, per family: ("normal", mean, std) or ("uniform", lo, hi). The
# default suits thresholds of order 1; Izhikevich's membrane is in mV with a
# threshold of ~30 mV and takes input currents of 0..20.
X_DEFAULT = ("normal", 0.6, 0.8)
X_SAMPLE = {"izhikevich": ("uniform", 0.0, 20.0)}

# Initial states the op makes in MLX (Family.initial): values like those it
# makes. ALIF's fed-back spike is a spike (0 or 1); Izhikevich's membrane
# around its range (rest -65 mV, peak 30 mV, past the threshold too) and its
# recovery variable u = b v near rest (b ~0.2: about -15..0). Every other
# initial state: normal(0, 0.5) (the fed-back spikes of RLeaky and RSynaptic
# are the op's `spk` argument, any float).
STATE_DEFAULT = ("normal", 0.0, 0.5)
INITIAL_SAMPLE = {
    ("alif", "spk"): ("binary",),
    ("izhikevich", "mem"): ("uniform", -65.0, 30.0),
    ("izhikevich", "u"): ("uniform", -15.0, 0.0),
}


def draw(rng, spec, shape):
    kind = spec[0]
    if kind == "normal":
        v = rng.normal(spec[1], spec[2], shape)
    elif kind == "uniform":
        v = rng.uniform(spec[1], spec[2], shape)
    elif kind == "binary":
        v = rng.integers(0, 2, shape)
    else:
        raise ValueError(spec)
    return np.asarray(v, np.float32)


def sample_x(fam, rng, shape):
    return draw(rng, X_SAMPLE.get(fam.name, X_DEFAULT), shape)


def sample_state(fam, k, rng, shape):
    """Initial state k (kernel order) of family `fam`."""
    return draw(rng, INITIAL_SAMPLE.get((fam.name, fam.states[k]), STATE_DEFAULT), shape)


def clamped_params(fam) -> set[str]:
    """The kernel parameters (fam.params, then the derived ones) that the
    family's prepare() clamps to [0, 1] (clamp_unit(raw.v[k]) in its step
    header, src/step/<name>.h). Tests stretch their ranges past [0, 1] so that
    the clamp and its gradient mask are exercised; no other parameter leaves
    its sample range (an Izhikevich time step or a negative ALIF b would not
    be a neuron any more)."""
    text = (ROOT / "src/step" / f"{fam.name}.h").read_text()
    m = re.search(r"prepare\(Vec<\d+> raw\)\s*\{(.*?)\n  \}", text, re.S)
    assert m, f"no prepare() in src/step/{fam.name}.h"
    names = (*fam.params, *(d for d, _ in fam.derived))
    return {names[int(k)] for k in re.findall(r"\bclamp_unit\(raw\.v\[(\d+)\]\)", m[1])}


def sample_param(fam, p, rng, shape, stretch):
    lo, hi = fam.sample[p]
    if stretch and p in clamped_params(fam):
        lo, hi = lo - 0.3, hi + 0.3
    return rng.uniform(lo, hi, shape).astype(np.float32)


def limits() -> tuple[int, int, int]:
    """fs::kMaxStates, kMaxParams, kMaxSaves (src/step/family.h): the sizes
    of the kernels' pointer tables."""
    text = (ROOT / "src/step/family.h").read_text()
    return tuple(int(re.search(rf"\b{n}\s*=\s*(\d+)", text)[1])
                 for n in ("kMaxStates", "kMaxParams", "kMaxSaves"))
