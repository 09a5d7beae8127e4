"""MLX's products on OpenBLAS on Linux CPU (flashsnn._blas, docs/blas.md).

Every case runs in a fresh interpreter: what matters is what `import
flashsnn` does before libmlx is loaded. "on" is the default (OpenBLAS
loaded), "off" is FLASHSNN_BLAS=off (MLX's bundled reference BLAS). Whether
MLX's calls really land in OpenBLAS is read from the dynamic loader itself
(LD_DEBUG=bindings), not from timings; the speed is benchmarks/blas_linux_cpu.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from flashsnn import _blas

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="OpenBLAS is loaded for MLX on Linux only")

HAVE_OPENBLAS = _blas.openblas_path() is not None
HAVE_MLX_CPU = bool(_blas._dist_files(_blas.MLX_CPU_DIST, lambda n: n.startswith("libmlx")))
# The `cpu` extra installs both: with mlx-cpu but without cmeel-openblas the
# install is broken and the "on" cases fail; without mlx-cpu (MLX's CUDA
# build, no `cpu` extra) they skip.
needs_openblas = pytest.mark.skipif(not HAVE_OPENBLAS and not HAVE_MLX_CPU,
                                    reason="neither mlx-cpu nor cmeel-openblas installed "
                                           "(not the `cpu` extra)")
MODES = {"on": {}, "off": {"FLASHSNN_BLAS": "off"}}


def run(code: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    # flashsnn's defaults only apply where the user set nothing
    e = {k: v for k, v in os.environ.items()
         if k not in ("FLASHSNN_BLAS", "OPENBLAS_THREAD_TIMEOUT", *_blas._THREAD_ENV)}
    e.update(env or {})
    return subprocess.run([sys.executable, "-W", "always", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, env=e)


def last_json(p: subprocess.CompletedProcess):
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


INFO = """
    import json, flashsnn
    print(json.dumps(flashsnn.blas_info()))
"""


@needs_openblas
def test_blas_info_on():
    assert HAVE_OPENBLAS, "mlx-cpu is installed but cmeel-openblas is not: reinstall '.[cpu]'"
    p = run(INFO)
    info = last_json(p)
    assert info["blas"] == "openblas" and info["fast"], info
    assert info["setting"] == "auto"
    # openblas_get_config() read back from the loaded library
    assert info["config"].startswith("OpenBLAS 0.3.31"), info
    # the global scope (what libmlx bound to) gives OpenBLAS's cblas_sgemm
    assert info["cblas_sgemm"] == os.path.realpath(info["library"]), info
    assert info["threads"] == 1, info          # flashsnn's default (docs/blas.md, Threads)
    assert "RuntimeWarning" not in p.stderr, p.stderr


def test_blas_info_off():
    info = last_json(run(INFO, MODES["off"]))
    assert info["blas"] in ("reference", "bundled") and not info["fast"], info
    assert info["setting"] == "off" and "FLASHSNN_BLAS=off" in info["reason"], info
    assert info["cblas_sgemm"] is None and info["library"] is None, info


def test_reference_setting_and_unknown_value():
    info = last_json(run(INFO, {"FLASHSNN_BLAS": "reference"}))
    assert info["blas"] in ("reference", "bundled") and info["setting"] == "reference"
    if HAVE_OPENBLAS:
        info = last_json(run(INFO, {"FLASHSNN_BLAS": "fast"}))
        assert info["blas"] == "openblas" and "taken as auto" in info["reason"], info


@needs_openblas
def test_mlx_imported_first_warns_and_stays_on_reference():
    """The documented behaviour: too late to rebind libmlx, so nothing is
    loaded, and one RuntimeWarning says to import flashsnn first."""
    p = run("""
        import json, os, mlx.core, flashsnn
        maps = open("/proc/self/maps").read()
        print(json.dumps([flashsnn.blas_info(), "libopenblas" in maps]))
    """)
    info, mapped = last_json(p)
    assert info["blas"] == "reference" and "imported before flashsnn" in info["reason"], info
    assert not mapped and info["cblas_sgemm"] is None
    assert p.stderr.count("RuntimeWarning: flashsnn: mlx.core was imported before") == 1, \
        p.stderr
    p = run("import mlx.core, flashsnn", MODES["off"])
    assert p.returncode == 0 and "RuntimeWarning" not in p.stderr, p.stderr


def test_off_loads_nothing():
    p = run("""
        import json, os, flashsnn
        print(json.dumps(["libopenblas" in open("/proc/self/maps").read(),
                          os.environ.get("OPENBLAS_THREAD_TIMEOUT")]))
    """, MODES["off"])
    assert last_json(p) == [False, None]


def _bindings(tmp_path, env: dict) -> dict:
    """{symbol: file} that libmlx.so's BLAS/LAPACK references were bound to,
    as the dynamic loader reports them (LD_DEBUG=bindings, written to files)."""
    out = tmp_path / "ld"
    p = run("""
        import flashsnn, mlx.core as mx
        a = mx.ones((8, 8), stream=mx.cpu)
        mx.eval(a @ a, mx.linalg.svd(a, stream=mx.cpu))
    """, {**env, "LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": str(out)})
    assert p.returncode == 0, p.stderr[-4000:]
    got = {}
    for f in tmp_path.glob("ld.*"):
        for line in f.read_text(errors="replace").splitlines():
            if "binding file" not in line or "/libmlx.so " not in line.split(" to ")[0]:
                continue
            sym = line.rsplit("`", 1)[-1].rstrip("'")
            if sym in ("cblas_sgemm", "cblas_dgemm", "sgesdd_", "sgetrf_", "ssyevd_"):
                got[sym] = line.split(" to ")[1].split(" [")[0]
    return got


@needs_openblas
def test_libmlx_binds_to_openblas(tmp_path):
    got = _bindings(tmp_path, MODES["on"])
    assert set(got) == {"cblas_sgemm", "cblas_dgemm", "sgesdd_", "sgetrf_", "ssyevd_"}, got
    assert all(os.path.basename(f) == "libopenblas.so.0" for f in got.values()), got


def test_libmlx_binds_to_bundled_blas_when_off(tmp_path):
    got = _bindings(tmp_path, MODES["off"])
    assert got and not any("openblas" in f for f in got.values()), got
    if HAVE_MLX_CPU:
        assert os.path.basename(got["cblas_sgemm"]).startswith("libblas-"), got


# Products against float64 NumPy. Bound: |C - C64| <= K u (|A| @ |B|) with
# u = 2^-24, the worst-case float32 error of a K-term dot product in any
# summation order (Higham, gamma_K); a wrong kernel (transpose, stride,
# uninitialised output) is off by O(|A||B|) and fails it.
NUMERICS = """
    import json, numpy as np, flashsnn, mlx.core as mx, mlx.nn as nn
    mx.set_default_device(mx.cpu)
    U = 2.0 ** -24
    rng = np.random.default_rng(0)
    worst = {}

    def check(name, got, ref, absref, k):
        got = np.asarray(got, dtype=np.float64)
        assert got.shape == ref.shape, (name, got.shape, ref.shape)
        bound = k * U * absref + 1e-30
        worst[name] = float(np.max(np.abs(got - ref) / bound))

    def mm(name, a, b, ta=False, tb=False):
        A = a.T if ta else a
        B = b.T if tb else b
        x, y = mx.array(a), mx.array(b)
        got = (x.T if ta else x) @ (y.T if tb else y)
        A64, B64 = A.astype(np.float64), B.astype(np.float64)
        check(name, got, A64 @ B64, np.abs(A64) @ np.abs(B64), A.shape[-1])

    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    mm("mnist_linear", (rng.uniform(size=(3200, 784)) < 0.3).astype(np.float32),
       f32(784, 256) * 0.05)
    mm("odd", f32(37, 129), f32(129, 65))
    mm("a_transposed", f32(300, 50), f32(300, 70), ta=True)
    mm("b_transposed", f32(64, 200), f32(33, 200), tb=True)
    mm("vector", f32(1, 300), f32(300, 7))
    mm("batched", f32(4, 33, 17), f32(4, 17, 9))
    mm("broadcast", f32(3, 1, 20, 40), f32(5, 40, 6))
    a, b, c = f32(40, 30), f32(30, 20), f32(40, 20)
    A, B, C = (v.astype(np.float64) for v in (a, b, c))
    check("addmm", mx.addmm(mx.array(c), mx.array(a), mx.array(b), alpha=0.5, beta=2.0),
          2.0 * C + 0.5 * A @ B, 2.0 * np.abs(C) + 0.5 * np.abs(A) @ np.abs(B), 31)
    a, b = rng.standard_normal((50, 60)), rng.standard_normal((60, 40))
    check("float64", mx.array(a, dtype=mx.float64) @ mx.array(b, dtype=mx.float64),
          a @ b, np.abs(a) @ np.abs(b), 60 * 2.0 ** -29)   # u64 / u32 = 2^-29

    # conv2d (NHWC input, [O, kh, kw, C] weights): 3x3, 'valid', against an
    # explicit sum over the window
    x, w = f32(2, 16, 16, 3), f32(8, 3, 3, 3)
    X, W = x.astype(np.float64), w.astype(np.float64)
    ref = np.zeros((2, 14, 14, 8)); absref = np.zeros_like(ref)
    for i in range(3):
        for j in range(3):
            win = X[:, i:i + 14, j:j + 14, :]
            ref += np.einsum("nhwc,oc->nhwo", win, W[:, i, j, :])
            absref += np.einsum("nhwc,oc->nhwo", np.abs(win), np.abs(W[:, i, j, :]))
    check("conv2d", mx.conv2d(mx.array(x), mx.array(w)), ref, absref, 27)

    # a gradient through a Linear: loss = sum(G * (x W^T + b))
    lin = nn.Linear(784, 256)
    x, g = f32(128, 784), f32(128, 256)
    def loss(params, x):
        lin.update(params)
        return (mx.array(g) * lin(x)).sum()
    (gp, gx) = mx.grad(loss, argnums=(0, 1))(lin.parameters(), mx.array(x))
    X, G, Wt = x.astype(np.float64), g.astype(np.float64), np.array(lin.weight, np.float64)
    check("grad_weight", gp["weight"], G.T @ X, np.abs(G).T @ np.abs(X), 128)
    check("grad_input", gx, G @ Wt, np.abs(G) @ np.abs(Wt), 256)
    check("grad_bias", gp["bias"], G.sum(0), np.abs(G).sum(0), 128)
    print(json.dumps([flashsnn.blas_info()["blas"], worst]))
"""


@pytest.mark.parametrize("mode", sorted(MODES))
def test_products_within_float32_of_float64(mode):
    if mode == "on" and not HAVE_OPENBLAS:
        if not HAVE_MLX_CPU:
            pytest.skip("cmeel-openblas not installed (not the `cpu` extra)")
        pytest.fail("mlx-cpu is installed but cmeel-openblas is not: reinstall '.[cpu]'")
    blas, worst = last_json(run(NUMERICS, MODES[mode]))
    assert blas == ("openblas" if mode == "on" else "reference") or \
        (mode == "off" and blas == "bundled")
    bad = {k: v for k, v in worst.items() if not v <= 1}
    assert not bad, f"over the float32 bound (x bound): {bad}; all: {worst}"


# LAPACK through mx.linalg on the CPU stream (sgetrf_/sgetri_, sgeqrf_/sorgqr_,
# sgesdd_, ssyevd_, spotrf_, sgeev_), checked by reconstruction and against
# NumPy's float64 results; well-conditioned matrices (n = 64).
LINALG = """
    import json, numpy as np, flashsnn, mlx.core as mx
    cpu = mx.cpu
    mx.set_default_device(cpu)  # the checks' own products too (MLX's CUDA build: the GPU)
    rng = np.random.default_rng(1)
    n = 64
    a = (rng.standard_normal((n, n)) / np.sqrt(n) + 2 * np.eye(n)).astype(np.float32)
    s = (a @ a.T + n * np.eye(n, dtype=np.float32)).astype(np.float32)   # SPD
    A, S = mx.array(a), mx.array(s)
    A64, S64 = a.astype(np.float64), s.astype(np.float64)
    r = {}
    rel = lambda x, y: float(np.max(np.abs(np.asarray(x, np.float64) - y)) / np.max(np.abs(y)))
    r["inv"] = rel(mx.linalg.inv(A, stream=cpu), np.linalg.inv(A64))
    q, rr = mx.linalg.qr(A, stream=cpu)
    r["qr"] = rel(q @ rr, A64)
    r["qr_orth"] = rel(q.T @ q, np.eye(n))
    u, sv, vt = mx.linalg.svd(A, stream=cpu)
    r["svd"] = rel((u[:, :n] * sv) @ vt, A64)
    r["svd_values"] = rel(sv, np.linalg.svd(A64, compute_uv=False))
    w, v = mx.linalg.eigh(S, stream=cpu)
    r["eigh"] = rel(w, np.linalg.eigvalsh(S64))
    r["eigh_vectors"] = rel(S @ v, np.asarray(v, np.float64) * np.asarray(w, np.float64))
    lo = mx.linalg.cholesky(S, stream=cpu)
    r["cholesky"] = rel(lo @ lo.T, S64)
    ev = np.sort_complex(np.asarray(mx.linalg.eigvals(A, stream=cpu)).astype(np.complex128))
    r["eig"] = float(np.max(np.abs(ev - np.sort_complex(np.linalg.eigvals(A64)))))
    x = mx.linalg.solve(A, mx.ones((n, 1)), stream=cpu)
    r["solve"] = rel(A @ x, np.ones((n, 1)))
    r["inv_float64"] = rel(mx.linalg.inv(mx.array(A64, dtype=mx.float64), stream=cpu),
                           np.linalg.inv(A64)) * 1e7       # float64: 1e-7 of float32's room
    print(json.dumps([flashsnn.blas_info()["blas"], r]))
"""


@pytest.mark.parametrize("mode", sorted(MODES))
def test_linalg_on_the_cpu_stream(mode):
    if mode == "on" and not HAVE_OPENBLAS:
        if not HAVE_MLX_CPU:
            pytest.skip("cmeel-openblas not installed (not the `cpu` extra)")
        pytest.fail("mlx-cpu is installed but cmeel-openblas is not: reinstall '.[cpu]'")
    blas, r = last_json(run(LINALG, MODES[mode]))
    assert (blas == "openblas") == (mode == "on"), blas
    # float32 with n = 64 and condition numbers below 10: 1e-4 relative is
    # ~100 u; a wrong routine is off by O(1)
    bad = {k: v for k, v in r.items() if not v < 1e-4}
    assert not bad, f"{bad}; all: {r}"


@needs_openblas
def test_idle_openblas_threads_leave_the_cores():
    """With more than flashsnn's one thread, OpenBLAS's workers spin 2^28
    cycles after each call unless told otherwise (0.13 s of a core on the
    2-core VM); flashsnn sets 2^17, only while OpenBLAS loads. CPU time, not
    wall time: a busy machine can only make the spinning thread burn less."""
    p = run("""
        import json, os, time, flashsnn, mlx.core as mx
        mx.set_default_device(mx.cpu)
        a, w = mx.random.normal((3200, 784)), mx.random.normal((784, 256))
        mx.eval(a @ w)
        burnt = []
        for _ in range(3):
            mx.eval(a @ w)
            c = time.process_time(); time.sleep(0.3); burnt.append(time.process_time() - c)
        print(json.dumps([sorted(burnt)[1], os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
                          flashsnn.blas_info()["threads"]]))
    """, {"OPENBLAS_NUM_THREADS": "2"})
    burnt, leaked, threads = last_json(p)
    assert threads == min(2, os.cpu_count())
    assert burnt < 0.03, f"{burnt:.3f} s of CPU in a 0.3 s sleep after a product"
    assert leaked is None


@needs_openblas
def test_users_thread_variables_win_and_do_not_leak():
    p = run("""
        import json, os, flashsnn
        print(json.dumps([flashsnn.blas_info()["threads"],
                          {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS",
                                                          "OPENBLAS_THREAD_TIMEOUT")}]))
    """, {"OPENBLAS_NUM_THREADS": "2", "OPENBLAS_THREAD_TIMEOUT": "20"})
    threads, env = last_json(p)
    # OpenBLAS caps the count at the cores it sees: a 1-core machine gets 1
    assert threads == min(2, os.cpu_count()), threads
    assert env == {"OPENBLAS_NUM_THREADS": "2", "OPENBLAS_THREAD_TIMEOUT": "20"}, env
    threads, env = last_json(run(p.args[-1]))
    assert threads == 1 and env == {"OPENBLAS_NUM_THREADS": None,
                                    "OPENBLAS_THREAD_TIMEOUT": None}, env


def test_notice_once_on_reference_blas():
    p = run("""
        from flashsnn._blas import notice
        notice("cpu", "flashsnn train"); notice("cpu", "flashsnn train")
        notice("gpu", "flashsnn bench")
    """, MODES["off"])
    assert p.returncode == 0, p.stderr
    lines = [s for s in p.stderr.splitlines() if "BLAS" in s]
    which = "the reference BLAS bundled with mlx-cpu" if HAVE_MLX_CPU else "the BLAS bundled with MLX"
    assert len(lines) == 1 and lines[0].startswith("flashsnn train: MLX's matrix products run "
                                                   f"on {which}, not OpenBLAS"), p.stderr
    assert "FLASHSNN_BLAS=off" in lines[0] and "?" not in lines[0]
    # the measured cost is the reference BLAS's: said only of it
    assert (" ms " in lines[0]) == HAVE_MLX_CPU, lines[0]
    p = run("""
        from flashsnn._blas import notice
        notice("gpu", "flashsnn bench")
    """, MODES["off"])
    assert p.returncode == 0 and "BLAS" not in p.stderr, p.stderr


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("argv", [["train", "--data", "mnist", "--device", "cpu"],
                                  ["bench", "--device", "cpu", "--rounds", "0"]],
                         ids=["train", "bench"])
def test_commands_say_so_first(mode, argv):
    """Both commands fail fast on these arguments, after the notice."""
    if mode == "on" and not HAVE_OPENBLAS:
        pytest.skip("cmeel-openblas not installed")
    p = subprocess.run([sys.executable, "-m", "flashsnn", *argv], capture_output=True,
                       text=True, timeout=300, env={**os.environ, **MODES[mode]})
    assert p.returncode == 2, p.stderr
    said = f"flashsnn {argv[0]}: MLX's matrix products run on the" in p.stderr
    assert said == (mode == "off"), p.stderr


def test_with_soname_rewrites_only_the_name():
    libs = _blas._dist_files(_blas.MLX_CPU_DIST, lambda n: n.startswith("libgfortran"))
    if not libs:
        pytest.skip("no mlx-cpu libgfortran here")
    data = open(libs[0], "rb").read()
    out = _blas.with_soname(data, b"libgfortran.so.5")
    assert len(out) == len(data)
    assert sum(x != y for x, y in zip(out, data)) <= len(b"libgfortran-00000000.so.5.0.0")
    assert _blas.needed(out) == _blas.needed(data)
    with pytest.raises(OSError, match="longer"):
        _blas.with_soname(data, b"x" * 64)
