"""The build: which MLX the extension is compiled against.

scripts/build_backend/flashsnn_build.py (the PEP 517 backend named in
pyproject.toml) adds the MLX build to compile against to the isolated build
environment: mlx[cpu] by default on Linux, mlx[cuda13] with -C mlx=cuda13.
CMake then refuses any other MLX when a GPU build was asked for.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts" / "build_backend"))
import flashsnn_build  # noqa: E402

PIN = re.search(r'^dependencies = \["mlx==([^"]+)"', (REPO / "pyproject.toml").read_text(),
                re.M).group(1)


class FakeSkbuild:
    """Stands in for scikit_build_core.build and records what it was given."""

    def __init__(self):
        self.settings = None

    def get_requires_for_build_wheel(self, settings):
        self.settings = settings
        return ["cmake>=3.27"]

    def build_wheel(self, wheel_directory, settings, metadata_directory):
        self.settings = settings
        return "flashsnn.whl"


@pytest.fixture
def backend(monkeypatch):
    monkeypatch.chdir(REPO)  # PEP 517 runs hooks in the source tree
    monkeypatch.delenv("FLASHSNN_MLX", raising=False)
    monkeypatch.setattr(flashsnn_build.sys, "platform", "linux")
    fake = FakeSkbuild()
    monkeypatch.setattr(flashsnn_build, "_skbuild", lambda: fake)
    return fake


def test_linux_builds_against_mlx_cpu_by_default(backend):
    assert flashsnn_build.get_requires_for_build_wheel(None) == ["cmake>=3.27",
                                                                 f"mlx[cpu]=={PIN}"]
    flashsnn_build.build_wheel("out")
    assert backend.settings == {"cmake.define.FLASHSNN_REQUIRE_GPU": ""}


@pytest.mark.parametrize("how", ["config", "env"])
def test_cuda13_builds_against_mlx_cuda13_and_requires_it(backend, monkeypatch, how):
    settings = {"cmake.define.X": "1"}
    if how == "config":
        settings["mlx"] = "cuda13"
    else:
        monkeypatch.setenv("FLASHSNN_MLX", "cuda13")
    assert flashsnn_build.get_requires_for_build_wheel(settings) == ["cmake>=3.27",
                                                                     f"mlx[cuda13]=={PIN}"]
    assert backend.settings == {"cmake.define.X": "1"}  # scikit-build-core never sees "mlx"
    flashsnn_build.build_wheel("out", settings)
    assert backend.settings["cmake.define.FLASHSNN_REQUIRE_GPU"] == "cuda"


def test_installed_adds_no_mlx(backend):
    assert flashsnn_build.get_requires_for_build_wheel({"mlx": "installed"}) == ["cmake>=3.27"]


def test_an_unknown_choice_lists_the_valid_ones(backend):
    with pytest.raises(ValueError, match=r"\[flashsnn build\] unknown mlx='cuda12' .*; valid on "
                                         r"linux: 'cpu', 'cuda13', 'installed'"):
        flashsnn_build.get_requires_for_build_wheel({"mlx": "cuda12"})


def test_macos_builds_against_mlx_with_metal(backend, monkeypatch):
    monkeypatch.setattr(flashsnn_build.sys, "platform", "darwin")
    assert flashsnn_build.get_requires_for_build_wheel(None)[-1] == f"mlx=={PIN}"
    with pytest.raises(ValueError, match=r"valid on darwin: 'metal', 'installed'"):
        flashsnn_build.get_requires_for_build_wheel({"mlx": "cuda13"})


def test_the_static_requirements_name_no_mlx():
    """mlx[cpu] there would be installed beside mlx[cuda13] (one mlx/ folder)."""
    text = (REPO / "pyproject.toml").read_text()
    requires = re.search(r"^requires = \[(.*?)\]", text, re.M | re.S).group(1)
    assert "mlx" not in requires
    assert 'build-backend = "flashsnn_build"' in text


def _configure(tmp_path, *defines):
    nanobind = pytest.importorskip("nanobind", reason="CMake needs nanobind to configure")
    del nanobind
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("no cmake")
    return subprocess.run([cmake, "-S", str(REPO), "-B", str(tmp_path / "b"),
                           f"-DPython_EXECUTABLE={sys.executable}", *defines],
                          capture_output=True, text=True, timeout=300)


def test_cmake_refuses_an_mlx_without_the_required_gpu(tmp_path):
    import mlx.core as mx
    if mx.cuda.is_available() or mx.metal.is_available():
        pytest.skip("the installed MLX has a GPU backend")
    p = _configure(tmp_path, "-DFLASHSNN_REQUIRE_GPU=cuda")
    assert p.returncode != 0
    assert "flashsnn: asked for cuda kernels, but the MLX at" in p.stdout + p.stderr


@pytest.mark.skipif(not os.environ.get("FLASHSNN_MLX_CUDA_ROOT"),
                    reason="set FLASHSNN_MLX_CUDA_ROOT to an unpacked mlx-cuda-13 wheel's mlx/")
def test_cmake_answers_mlx_cudas_cudnn_question(tmp_path):
    """MLX's CUDA config with no cuDNN anywhere: the stand-in satisfies it."""
    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc")
    p = _configure(tmp_path, f"-DMLX_ROOT={os.environ['FLASHSNN_MLX_CUDA_ROOT']}",
                   "-DFLASHSNN_REQUIRE_GPU=cuda", "-DFLASHSNN_CUDA_ARCHITECTURES=90-real")
    out = p.stdout + p.stderr
    assert "a stand-in in" in out and "Found CUDNN" in out, out
    assert "flashsnn: GPU backend 'cuda'" in out, out


@pytest.mark.skipif(not (os.environ.get("FLASHSNN_MLX_CUDA_ROOT")
                         and os.environ.get("FLASHSNN_FMT_ARCHIVE")),
                    reason="set FLASHSNN_MLX_CUDA_ROOT and FLASHSNN_FMT_ARCHIVE (fmt 12.1.0's "
                           "source .tar.gz at commit 407c905)")
def test_cmake_fetches_fmt_and_checks_its_headers(tmp_path):
    """No fmt installed: the fetched archive's headers must be fmt 12.1.0's."""
    import tarfile

    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc")
    good = os.environ["FLASHSNN_FMT_ARCHIVE"]
    bad = tmp_path / "fmt-bad.tar.gz"
    with tarfile.open(good) as src, tarfile.open(bad, "w:gz") as dst:
        for m in src.getmembers():
            f = src.extractfile(m) if m.isfile() else None
            if m.name.endswith("include/fmt/format.h"):
                data = f.read() + b"// changed\n"
                m.size = len(data)
                f = io.BytesIO(data)
            dst.addfile(m, f)
    for url, expect in ((f"file://{bad}", "is not fmt 12.1.0's"),
                        (f"file://{good}", "flashsnn: fmt headers from")):
        p = _configure(tmp_path, f"-DMLX_ROOT={os.environ['FLASHSNN_MLX_CUDA_ROOT']}",
                       "-DFLASHSNN_CUDA_ARCHITECTURES=90-real", "-DCMAKE_DISABLE_FIND_PACKAGE_fmt=ON",
                       f"-DFLASHSNN_FMT_URL={url}")
        assert expect in p.stdout + p.stderr, p.stdout + p.stderr
