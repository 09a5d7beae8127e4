"""`import flashsnn` without a usable extension: a warning that says what to
do, the reference path working, and backend='fused' raising the same advice."""

import subprocess
import sys
import textwrap

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


def test_extension_built_for_another_mlx_is_refused():
    class Fake:
        @staticmethod
        def mlx_version():
            return "0.0.1"
    msg = flashsnn._backend._diagnose(Fake, "0.32.4")
    assert "built against MLX 0.0.1 but MLX 0.32.4 is installed" in msg
    assert flashsnn._backend._diagnose(Fake, "0.0.1.dev20260101+abc") is None
