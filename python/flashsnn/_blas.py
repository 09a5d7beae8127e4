"""Which BLAS MLX's matrix products run on, and putting them on OpenBLAS on
Linux CPU (docs/blas.md).

The ``mlx-cpu`` wheel links netlib's reference BLAS and LAPACK
(``mlx_cpu.libs/libblas-*.so``): unblocked loops, one thread. On the 2-core
x86-64 VM ``[3200, 784] @ [784, 256]`` (the first Linear of the mlx-snn
paper's MLP at T=25, B=128) took 688 ms there and 19 ms on OpenBLAS, and
an MNIST-shaped `flashsnn train` step 1713 against 95 ms (medians,
benchmarks/results/blas-linux-cpu.md). flashsnn's ``cpu`` extra installs
``cmeel-openblas``, an OpenBLAS with the plain names (``cblas_sgemm``,
``sgesdd_``, ...), and :func:`load` opens it with ``RTLD_GLOBAL`` before
``mlx.core`` is first imported: ``libmlx.so`` then binds each of its 24
BLAS/LAPACK references to OpenBLAS, because the process's global scope is
searched before libmlx's own dependencies.

That only works before libmlx is loaded: Python opens extensions with
``RTLD_NOW``, so once ``mlx.core`` is imported its references are bound to
the reference BLAS for good. Then nothing is loaded and :func:`load` warns
once (OpenBLAS installed, so the user asked for it): ``import flashsnn``
before ``mlx``. The ``flashsnn`` command imports flashsnn first, so it is
always on OpenBLAS.

cmeel-openblas's library needs ``libgfortran.so.5`` (for two LAPACK
helpers), which the wheel does not ship and a bare Linux lacks. mlx-cpu
ships one, renamed by auditwheel to ``libgfortran-<hash>.so.5.0.0`` (that
name is its SONAME, so the loader will not take it for
``libgfortran.so.5``). When the system has none, :func:`load` loads a copy of
mlx-cpu's from memory (``memfd_create``) with its SONAME rewritten to
``libgfortran.so.5``; the dynamic loader then satisfies OpenBLAS's
dependency with it. Nothing is written to disk.

``FLASHSNN_BLAS=off`` (or ``reference``) leaves MLX on its bundled BLAS.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
import warnings

ENV = "FLASHSNN_BLAS"
_OFF = ("off", "reference")
_AUTO = ("", "auto", "openblas")
DIST = "cmeel-openblas"
MLX_CPU_DIST = "mlx-cpu"

# What the reference BLAS costs, for the notice of `flashsnn train` and
# `flashsnn bench` (benchmarks/blas_linux_cpu.py, 2-core x86-64 VM shared
# with other jobs, 2026-12-03; medians of 5 rounds, each measurement in its
# own process).
MEASURED = ("[3200,784] @ [784,256] (the MNIST MLP's first Linear at T=25, B=128) took "
            "688 ms on it against 19 ms with OpenBLAS, and an MNIST-shaped "
            "`flashsnn train` step 1713 ms against 95 ms (2-core x86-64 VM, "
            "2026-12-03, benchmarks/results/blas-linux-cpu.md)")

_info: dict | None = None
_notified = False
_keep: list = []        # handles and the memfd: kept for the process's life


def _setting() -> str:
    return os.environ.get(ENV, "").strip().lower()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _libmlx_loaded() -> bool:
    """mlx.core imported, or libmlx.so mapped by anything else (an extension
    linking it directly): its BLAS references are then already bound."""
    if "mlx.core" in sys.modules:
        return True
    try:
        with open("/proc/self/maps") as f:
            return any(line.rstrip().endswith("/libmlx.so") for line in f)
    except OSError:
        return False


def _dist_files(name: str, match) -> list[str]:
    """Paths of the files of installed distribution `name` whose file name
    satisfies `match`, from its RECORD (the wheel's own list of what it
    installed), looked up along sys.path as importlib.metadata does. Read
    directly: importing importlib.metadata took 50-65 ms on the 2-core VM,
    on top of `import flashsnn`'s ~350 ms, in every process."""
    import csv

    want = name.replace("-", "_").lower()
    for entry in sys.path:
        site = entry or os.getcwd()
        try:
            names = os.listdir(site)
        except OSError:
            continue
        for n in names:
            if not n.endswith(".dist-info") or \
                    n[:-len(".dist-info")].rsplit("-", 1)[0].replace(".", "_").lower() != want:
                continue
            try:
                with open(os.path.join(site, n, "RECORD"), newline="") as f:
                    rows = list(csv.reader(f))
            except OSError:
                continue
            out = []
            for row in rows:
                if row and match(os.path.basename(row[0])):
                    p = os.path.normpath(os.path.join(site, row[0]))
                    if os.path.isfile(p):
                        out.append(p)
            return out
    return []


def openblas_path() -> str | None:
    """The OpenBLAS shared library of the installed cmeel-openblas wheel, or
    None. The wheel holds three identical copies (libopenblas.so, .so.0,
    .so.0.3: a wheel has no symlinks); the SONAME's is preferred."""
    libs = _dist_files(DIST, lambda n: n.startswith("libopenblas") and ".so" in n)
    libs.sort(key=lambda p: (not p.endswith("libopenblas.so.0"), p))
    return libs[0] if libs else None


# ------------------------------------------------------------- ELF editing --

def _dynamic(data: bytes):
    """(file offset of .dynstr, [(tag, value, offset of the entry)]) of a
    64-bit little-endian ELF shared object (x86-64, aarch64)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise OSError("not a 64-bit little-endian ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dyn = [], None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1:                                   # PT_LOAD
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:                                 # PT_DYNAMIC
            dyn = (p_offset, p_filesz)
    if dyn is None:
        raise OSError("no dynamic section")
    entries = []
    for off in range(dyn[0], dyn[0] + dyn[1], 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == 0:                                      # DT_NULL
            break
        entries.append((tag, val, off))
    strtab = next((v for t, v, _ in entries if t == 5), None)        # DT_STRTAB
    base = next((o + strtab - v for v, o, s in loads if strtab is not None and
                 v <= strtab < v + s), None)
    if base is None:
        raise OSError("no string table")
    return base, entries


def _cstr(data: bytes, off: int) -> bytes:
    return bytes(data[off:data.index(0, off)])


def needed(data: bytes) -> list[str]:
    """The DT_NEEDED names of an ELF shared object."""
    base, entries = _dynamic(data)
    return [_cstr(data, base + v).decode() for t, v, _ in entries if t == 1]


def with_soname(data: bytes, soname: bytes) -> bytes:
    """`data` (an ELF shared object) with its SONAME string overwritten in
    place by `soname`, which must not be longer; the rest is unchanged."""
    base, entries = _dynamic(data)
    off = next((v for t, v, _ in entries if t == 14), None)          # DT_SONAME
    if off is None:
        raise OSError("no SONAME")
    old = _cstr(data, base + off)
    if len(soname) > len(old):
        raise OSError(f"SONAME {soname!r} is longer than {old!r}")
    # Another name (NEEDED, RPATH, RUNPATH) sharing the bytes would change too.
    for t, v, _ in entries:
        if t in (1, 15, 29) and off <= v < off + len(old):
            raise OSError("the SONAME string is shared with another entry")
    out = bytearray(data)
    out[base + off:base + off + len(old)] = soname + b"\0" * (len(old) - len(soname))
    return bytes(out)


def _open_from_memory(data: bytes, name: str) -> tuple[ctypes.CDLL, str]:
    """dlopen `data` without a file on disk: a memfd, opened through
    /proc/self/fd. The descriptor stays open for the process's life, so no
    later file gets its number and, with it, the same path (the loader
    matches already loaded objects by path)."""
    fd = os.memfd_create(name)            # MFD_CLOEXEC: children do not inherit it
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        path = f"/proc/self/fd/{fd}"
        lib = ctypes.CDLL(path)
    except BaseException:
        os.close(fd)
        raise
    _keep.append(fd)
    return lib, path


def _gfortran_stand_in() -> str:
    """Make OpenBLAS's ``libgfortran.so.5`` dependency loadable from mlx-cpu's
    renamed copy; return that copy's path. Raises OSError when there is none."""
    copies = _dist_files(MLX_CPU_DIST, lambda n: n.startswith("libgfortran") and ".so" in n)
    if not copies:
        raise OSError("OpenBLAS needs libgfortran.so.5: the system has none and mlx-cpu "
                      "ships no libgfortran to stand in")
    src = copies[0]
    with open(src, "rb") as f:
        data = f.read()
    # Its own dependencies (x86-64: libquadmath-<hash>.so.0.0.0, beside it)
    # first, by path: the loader then finds them by their SONAMEs. Its RPATH
    # ($ORIGIN) would point into /proc/self/fd.
    here = os.path.dirname(src)
    for dep in needed(data):
        p = os.path.join(here, dep)
        if os.path.isfile(p):
            _keep.append(ctypes.CDLL(p))
    lib, _ = _open_from_memory(with_soname(data, b"libgfortran.so.5"), "libgfortran.so.5")
    _keep.append(lib)
    return src


# Threads. MLX runs a stream's CPU primitives one at a time on that stream's
# thread (mlx/backend/cpu/encoder.h: CommandEncoder::dispatch enqueues to the
# stream's scheduler), and flashsnn's kernels are dispatched the same way
# (src/cpu/family.cpp, scan.cpp): a product and a flashsnn kernel never
# overlap. But MLX's other work separates the products, so OpenBLAS's
# workers have gone to sleep before each one and must be woken, and when
# another process holds the other core the product waits for the woken
# worker's turn. On the 2-core VM (benchmarks/results/blas-linux-cpu.md, 5
# rounds): with one OpenBLAS thread the digits step took 11-20 ms in every
# round; with two, 14-23 ms in the quieter rounds and 80-84 ms in the 3 busy
# ones; the MNIST-shaped step took 95 against 93 ms (medians) and the
# [3200,784] @ [784,256] product 18.7 against 19.4 ms, 20.6 against 10.5 ms
# in the quietest round. One thread bounds the loss on a quiet machine and
# avoids the 5x on a busy one (a shared VM, CI, `pytest -n auto`).
# OPENBLAS_NUM_THREADS (or GOTO_NUM_THREADS, OMP_NUM_THREADS) set by the user
# wins.
THREADS = "1"
_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
# With more threads, OpenBLAS's idle workers spin (sched_yield) 2^28 cycles
# after each call: on the VM a product left a core busy for 0.13 s (CPU time
# during a 0.5 s sleep after it), the time flashsnn's kernels that follow
# need that core; back-to-back digits-sized products took 12.0 ms each
# against 1.9 ms with 2^17 cycles (~50 us, the spin of flashsnn's own pool,
# src/cpu/parallel.h). A user's OPENBLAS_THREAD_TIMEOUT wins.
THREAD_TIMEOUT = "17"


def _open_openblas(path: str) -> tuple[ctypes.CDLL, str]:
    """(OpenBLAS opened RTLD_GLOBAL, where its libgfortran came from).
    OpenBLAS reads its thread settings when it loads; flashsnn's defaults are
    in os.environ only for that moment, so child processes and other OpenBLAS
    copies (NumPy's, loaded later) do not inherit them."""
    defaults = {"OPENBLAS_THREAD_TIMEOUT": THREAD_TIMEOUT}
    if not any(os.environ.get(v) for v in _THREAD_ENV):
        defaults["OPENBLAS_NUM_THREADS"] = THREADS
    added = [k for k in defaults if k not in os.environ]
    for k in added:
        os.environ[k] = defaults[k]
    try:
        try:
            return ctypes.CDLL(path, mode=os.RTLD_GLOBAL), "system"
        except OSError as e:
            if "libgfortran.so.5" not in str(e):
                raise
        src = _gfortran_stand_in()
        return ctypes.CDLL(path, mode=os.RTLD_GLOBAL), src
    finally:
        for k in added:
            os.environ.pop(k, None)


# ------------------------------------------------------------------ state --

def _bundled() -> str:
    """What MLX's products run on without OpenBLAS."""
    if sys.platform == "darwin":
        return "accelerate"
    if sys.platform.startswith("linux") and _dist_files(
            MLX_CPU_DIST, lambda n: n.startswith("libblas")):
        return "reference"
    return "bundled"


def _set(blas: str, reason: str, **kw) -> None:
    global _info
    _info = {"blas": blas, "fast": blas in ("openblas", "accelerate"), "reason": reason,
             "setting": _setting() or "auto", "library": None, "config": None,
             "threads": None, "cores": _cores(), "gfortran": None, **kw}


def load() -> None:
    """Load OpenBLAS for MLX if this process can still use it. Called by
    ``flashsnn/__init__.py`` before its ``import mlx.core``; runs once;
    never raises (the reason lands in :func:`blas_info`)."""
    global _info
    if _info is not None:
        return
    try:
        _load()
    except Exception as e:          # `import flashsnn` must not fail over this
        _info = None
        _set("unknown", f"flashsnn._blas failed: {e!r}")
        warnings.warn(f"flashsnn: checking or loading OpenBLAS for MLX failed ({e!r}); "
                      "MLX's matrix products stay on its bundled BLAS (docs/blas.md)",
                      RuntimeWarning, stacklevel=2)


def _load() -> None:
    setting = _setting()
    if not sys.platform.startswith("linux"):
        _set(_bundled(), f"{sys.platform}: MLX uses its platform's BLAS (Accelerate on macOS)")
        return
    if setting in _OFF:
        _set(_bundled(), f"{ENV}={os.environ[ENV]}: OpenBLAS not loaded")
        return
    unknown = setting not in _AUTO
    path = openblas_path()
    if path is None:
        _set(_bundled(), f"{DIST} is not installed (Linux x86-64 and aarch64: "
             "pip install 'flashsnn[cpu]')")
        return
    if _libmlx_loaded():
        _set(_bundled(), "mlx.core was imported before flashsnn, so libmlx's BLAS calls were "
             "already bound to the BLAS bundled with MLX; import flashsnn before mlx (the "
             "flashsnn command does)", library=path)
        warnings.warn(
            "flashsnn: mlx.core was imported before flashsnn, so MLX's matrix products stay "
            "on the reference BLAS bundled with mlx-cpu (an MNIST-shaped training step "
            "18x slower than on OpenBLAS, docs/blas.md). `import flashsnn` before "
            f"`import mlx`, or set {ENV}=off to keep the reference BLAS without this "
            "warning.", RuntimeWarning, stacklevel=3)
        return
    try:
        lib, gfortran = _open_openblas(path)
    except (OSError, ValueError, AttributeError) as e:   # AttributeError: no memfd_create
        _set(_bundled(), f"loading {path} failed: {e}", library=path)
        warnings.warn(f"flashsnn: could not load OpenBLAS for MLX ({e}); MLX's matrix "
                      "products stay on its bundled BLAS (docs/blas.md)",
                      RuntimeWarning, stacklevel=3)
        return
    _keep.append(lib)
    lib.openblas_get_config.restype = ctypes.c_char_p
    _set("openblas", "cmeel-openblas loaded before mlx.core"
         + (f" ({ENV}={os.environ[ENV]!r} is not one of auto, openblas, off, reference: "
            "taken as auto)" if unknown else ""),
         library=path, gfortran=gfortran, config=lib.openblas_get_config().decode())
    _info["_lib"] = lib


def _resolved(symbol: str) -> str | None:
    """The file that the process's global scope resolves `symbol` to (what
    a library loaded afterwards binds to), or None when it is not there."""
    try:
        scope = ctypes.CDLL(None)
        addr = ctypes.cast(getattr(scope, symbol), ctypes.c_void_p).value
    except (AttributeError, OSError):
        return None

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    info = DlInfo()
    try:
        dladdr = scope.dladdr
    except AttributeError:
        return "?"
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
    if not dladdr(addr, ctypes.byref(info)) or not info.dli_fname:
        return "?"
    return os.path.realpath(info.dli_fname.decode())


def blas_info() -> dict:
    """Which BLAS MLX's matrix products run on in this process, and why.

    Keys: ``blas`` ('openblas'; 'reference': netlib's, bundled with mlx-cpu;
    'accelerate' on macOS; 'bundled': whatever another MLX build links),
    ``fast`` (OpenBLAS or Accelerate), ``reason``, ``setting`` (the
    FLASHSNN_BLAS value, 'auto' when unset), ``library`` (the OpenBLAS file),
    ``config`` (its ``openblas_get_config()``, read through ctypes),
    ``threads`` (``openblas_get_num_threads()``), ``cores`` (this process's
    CPU affinity), ``gfortran`` ('system', or the mlx-cpu file loaded as
    libgfortran.so.5), ``cblas_sgemm`` (the file the global scope resolves
    it to: OpenBLAS's when loaded, else None).

    >>> import flashsnn
    >>> flashsnn.blas_info()["blas"] in ("openblas", "reference", "accelerate", "bundled")
    True
    """
    load()
    info = {k: v for k, v in _info.items() if not k.startswith("_")}
    lib = _info.get("_lib")
    if lib is not None:
        info["threads"] = int(lib.openblas_get_num_threads())
    info["cblas_sgemm"] = _resolved("cblas_sgemm")
    return info


def notice(device=None, command: str = "flashsnn") -> None:
    """One line on stderr, once per process, when MLX's products on the CPU
    run on the reference BLAS on Linux: `flashsnn train` and `flashsnn bench`
    call it first. `device`: the command's --device ('cpu', 'gpu', or None for
    MLX's default device)."""
    global _notified
    if _notified or not sys.platform.startswith("linux"):
        return
    info = blas_info()
    if info["fast"]:
        return
    if device is None:
        import mlx.core as mx
        device = "cpu" if mx.default_device() == mx.cpu else "gpu"
    if str(device) != "cpu":
        return
    _notified = True
    # MEASURED is the reference BLAS's cost; another MLX build's is unknown
    which, cost = (("the reference BLAS bundled with mlx-cpu", ": " + MEASURED)
                   if info["blas"] == "reference" else ("the BLAS bundled with MLX", ""))
    print(f"{command}: MLX's matrix products run on {which}, not OpenBLAS "
          f"({info['reason']}){cost}. See docs/blas.md.", file=sys.stderr)
