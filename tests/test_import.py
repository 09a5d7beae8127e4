"""`import flashsnn` without a usable extension: a warning that says what to
do, the reference path working, and backend='fused' raising the same advice."""

import subprocess
import sys
import textwrap

import pytest

import flashsnn


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-W", "always", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_missing_extension_falls_back_to_reference():
    p = run("""
        import sys
        sys.modules["flashsnn._ext"] = None          # makes `from . import _ext` fail
        import mlx.core as mx, flashsnn as fs
        # U: 0.6, 1.14 (fires), 0.9*1.14 + 0.6 - 1 = 0.626, 1.1634 (fires)
        spk, mem = fs.ops.leaky(mx.ones((4, 3)) * 0.6, beta=0.9)   # auto -> reference
        print("SPIKES", spk.sum().item())
        try:
            fs.ops.leaky(mx.ones((4, 3)), beta=0.9, backend="fused")
        except RuntimeError as e:
            print("FUSED-ERROR", e)
    """)
    assert p.returncode == 0, p.stderr
    assert "fused kernels disabled" in p.stderr and "pip install" in p.stderr
    assert "SPIKES 6.0" in p.stdout  # 2 spikes x 3 neurons
    assert "FUSED-ERROR [leaky] backend='fused'" in p.stdout and "reinstall" in p.stdout


def test_mlx_without_a_backend_says_what_to_install(tmp_path):
    """Plain `mlx` on Linux (`pip install .` without the cpu extra) has no
    libmlx.so: `import flashsnn` names the extra to install and keeps MLX's
    error, after OpenBLAS had its chance to load (docs/blas.md)."""
    import os
    from pathlib import Path

    fake = tmp_path / "mlx"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "core.py").write_text(
        "import sys\n"
        "print('BLAS-FIRST', 'flashsnn._blas' in sys.modules)\n"
        "raise ImportError('libmlx.so: cannot open shared object file: "
        "No such file or directory')\n")
    pkg = Path(flashsnn.__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(pkg)])}
    p = subprocess.run([sys.executable, "-c", "import flashsnn"], capture_output=True,
                       text=True, timeout=120, env=env, cwd=tmp_path)
    assert p.returncode != 0
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: flashsnn: MLX cannot load"), p.stderr
    assert "libmlx.so: cannot open shared object file" in last
    if sys.platform.startswith("linux"):
        assert 'pip install "flashsnn[cpu]"' in last and '"flashsnn[cuda13]"' in last
    assert "BLAS-FIRST True" in p.stdout


def test_extension_built_for_another_mlx_is_refused():
    class Fake:
        @staticmethod
        def mlx_version():
            return "0.0.1"
    msg = flashsnn._backend._diagnose(Fake, "0.32.4")
    assert "built against MLX 0.0.1 but MLX 0.32.4 is installed" in msg
    assert flashsnn._backend._diagnose(Fake, "0.0.1.dev20260101+abc") is None


# ---------------------------------------------------------------------------
# A build without kernels for the GPU MLX runs on (e.g. `pip install
# ".[cuda13]"` without `-C mlx=cuda13`, which builds against MLX's CPU build)
# ---------------------------------------------------------------------------

class _CpuOnlyExt:
    @staticmethod
    def mlx_version():
        import mlx.core as mx
        return mx.__version__.split(".dev")[0]

    @staticmethod
    def gpu_backend():
        return "none"


@pytest.fixture
def cpu_only_build_on_a_cuda_gpu(monkeypatch):
    """What flashsnn sees with a CPU-only _ext where MLX runs on a CUDA GPU."""
    b = flashsnn._backend
    monkeypatch.setattr(b, "ext", _CpuOnlyExt)
    monkeypatch.setattr(b, "gpu_kind", lambda: "cuda")
    monkeypatch.setattr(b, "device_kind", lambda device=None: "cuda")


def test_a_build_without_the_gpus_kernels_is_an_error(cpu_only_build_on_a_cuda_gpu):
    import mlx.core as mx
    reason = flashsnn.fused_unavailable_reason()
    assert "has no cuda kernels" in reason and "-C mlx=cuda13" in reason
    with pytest.raises(RuntimeError, match=r"\[leaky\] this flashsnn._ext has no cuda kernels"):
        flashsnn.ops.leaky(mx.ones((3, 2)), beta=0.9)  # auto: no silent fallback
    with pytest.raises(RuntimeError, match=r"\[leaky\] backend='fused' but no fused kernel"):
        flashsnn.ops.leaky(mx.ones((3, 2)), beta=0.9, backend="fused")
    # What would not have used the kernels anyway still runs.
    flashsnn.ops.leaky(mx.ones((3, 2)), beta=0.9, backend="reference")
    flashsnn.ops.leaky(mx.ones((3, 2)), beta=0.9, spike_grad=lambda v: (v > 0).astype(v.dtype))


def test_gpu_device_without_a_gpu_names_that():
    import mlx.core as mx
    if mx.is_available(mx.gpu):
        pytest.skip("this machine has a GPU")
    reason = flashsnn.fused_unavailable_reason(mx.Device(mx.gpu))
    if flashsnn._backend.ext is not None:
        assert reason.startswith("MLX has no GPU here")


# ---------------------------------------------------------------------------
# FLASHSNN_REQUIRE_KERNELS=1 (tests/conftest.py): the run fails, not skips
# ---------------------------------------------------------------------------

FAKE_EXT = {
    "missing": 'import sys\nsys.modules["flashsnn._ext"] = None\n',
    "other-mlx": ('import sys, types\nm = types.ModuleType("flashsnn._ext")\n'
                  'm.mlx_version = lambda: "0.0.1"\nm.gpu_backend = lambda: "none"\n'
                  'sys.modules["flashsnn._ext"] = m\n'),
    "real": "",
}


def run_pytest(tmp_path, ext: str, **env):
    """pytest on one trivial test under tests/conftest.py, with _ext replaced
    by a plugin imported before the conftest."""
    import os
    import shutil
    from pathlib import Path

    tests = tmp_path / "t"
    tests.mkdir()
    shutil.copy(Path(__file__).parent / "conftest.py", tests / "conftest.py")
    (tests / "test_one.py").write_text("def test_one():\n    pass\n")
    (tmp_path / "fake_ext_plugin.py").write_text(FAKE_EXT[ext])
    pkg = Path(flashsnn.__file__).parent.parent
    path = os.pathsep.join(filter(None, [str(tmp_path), str(pkg), os.environ.get("PYTHONPATH")]))
    environ = {**os.environ, "PYTHONPATH": path, **env}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "fake_ext_plugin", str(tests)], capture_output=True, text=True,
                          timeout=300, env=environ, cwd=tmp_path)


@pytest.mark.parametrize("ext,message", [
    ("missing", "flashsnn._ext is missing or failed to load"),
    ("other-mlx", "built against MLX 0.0.1 but MLX"),
])
def test_required_kernels_fail_the_run(tmp_path, ext, message):
    p = run_pytest(tmp_path, ext, FLASHSNN_REQUIRE_KERNELS="1", FLASHSNN_TEST_DEVICE="cpu")
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "FLASHSNN_REQUIRE_KERNELS=1: no fused kernels for Device(cpu, 0)" in out, out
    assert message in out, out
    assert "1 passed" not in out


def test_without_the_variable_a_missing_extension_only_skips(tmp_path):
    p = run_pytest(tmp_path, "missing", FLASHSNN_REQUIRE_KERNELS="0", FLASHSNN_TEST_DEVICE="cpu")
    assert p.returncode == 0 and "1 passed" in p.stdout, p.stdout + p.stderr


def test_required_kernels_pass_with_the_real_extension(tmp_path):
    if flashsnn._backend.ext is None:
        pytest.skip(f"no extension here: {flashsnn._backend.ext_error}")
    p = run_pytest(tmp_path, "real", FLASHSNN_REQUIRE_KERNELS="1", FLASHSNN_TEST_DEVICE="cpu")
    assert p.returncode == 0 and "1 passed" in p.stdout, p.stdout + p.stderr


def test_gpu_run_without_a_gpu_fails_the_run(tmp_path):
    import mlx.core as mx
    if mx.is_available(mx.gpu):
        pytest.skip("this machine has a GPU")
    p = run_pytest(tmp_path, "real", FLASHSNN_TEST_DEVICE="gpu")
    assert p.returncode != 0 and "FLASHSNN_TEST_DEVICE=gpu but MLX has no GPU here" in \
        p.stdout + p.stderr, p.stdout + p.stderr
