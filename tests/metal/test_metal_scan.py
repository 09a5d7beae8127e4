"""The selective scan's Metal kernels (metal/kernels/scan.metal), run in the
emulator through the launch plans eval_gpu encodes (metal/scan.h): the
forward, the backward's threadgroups with their barriers and threadgroup
memory (one fiber per thread, NaN-poisoned arena), and the fixed-order sums.

Every output and gradient (out, last state, du, ddelta, dA, dB, dC, dD, dz,
dbias, dh0) against the CPU kernel (`backend="fused"` on mx.cpu) and the
pure-MLX reference, within relative RMS 1e-5 in float32 (16-bit: one unit
in the last place against the CPU kernel, mamba_ssm's tolerances against the
reference); the plans against the kernels' signatures; the same bits in any
thread and threadgroup order; and broken kernels caught.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

import flashsnn as fs
import metal_emu
import msl
from metal_scan import (TOL_CPU, TOL_REF, check, cotangents, emulated, make, run_cpu, run_emulated,
                        run_reference)

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason(mx.Device(mx.cpu)) is not None,
                                reason="no CPU kernel to compare with")

# (b, L, D, N, chunk, dtype, options): odd D across a 32-channel group
# boundary, odd N reaching every NMAX (5, 17, 40, 70 -> 16, 32, 64, 128),
# L = 1, L not a multiple of the chunk, chunks shorter than L, every option
# on and off, per-step and time-invariant B and C, each dtype.
ALL = dict(with_D=True, with_z=True, with_bias=True, with_h0=True, softplus=True)
NONE = dict(with_D=False, with_z=False, with_bias=False, with_h0=False, softplus=False)
CASES = {
    "all-options-chunk4": (2, 11, 37, 5, 4, "float32", ALL),
    "no-options-fixed-BC": (3, 9, 33, 5, 64, "float32", dict(NONE, B_varies=False, C_varies=False)),
    "L1-fixed-B-N17": (2, 1, 5, 17, 64, "float32", dict(ALL, B_varies=False)),
    "fixed-C-N70-chunk5": (2, 13, 37, 70, 5, "float32", dict(ALL, with_bias=False, softplus=False,
                                                            C_varies=False)),
    "N40-L65-D64": (1, 65, 64, 40, 64, "float32", dict(NONE, with_z=True, with_h0=True)),
    "float16": (2, 11, 37, 5, 4, "float16", ALL),
    "bfloat16-fixed-B": (3, 20, 40, 16, 8, "bfloat16", dict(ALL, B_varies=False)),
}


@pytest.fixture(scope="module")
def scan_emu(clang) -> metal_emu.Emulator:
    """metal/kernels/scan.metal compiled as C++ and loaded (cached by content)."""
    return metal_emu.build(msl.KERNELS / "scan.metal")


def _case(name):
    b, L, D, N, chunk, dtype, o = CASES[name]
    o = dict(o)
    softplus = o.pop("softplus")
    inp = make(b, L, D, N, dtype=dtype, softplus=softplus, seed=len(name), **o)
    return inp, cotangents(inp, seed=len(name) + 1), softplus, chunk, dtype


@pytest.mark.parametrize("name", list(CASES))
def test_matches_cpu_kernel_and_reference(scan_emu, name):
    inp, cot, softplus, chunk, dtype = _case(name)
    got = run_emulated(scan_emu, inp, cot, softplus, chunk)
    check(got, run_cpu(inp, cot, softplus, chunk), TOL_CPU[dtype], f"[{name}] against the CPU kernel")
    check(got, run_reference(inp, cot, softplus, chunk), TOL_REF[dtype], f"[{name}] against the reference")


@pytest.mark.parametrize("order", [1, 2], ids=["reversed", "shuffled"])
def test_any_thread_order_gives_the_same_bits(scan_emu, order):
    """Threadgroups, and the threads of a threadgroup between two barriers,
    in reverse or shuffled order: the sums are in a fixed order, so every
    bit is the same (a race on threadgroup memory would show here)."""
    inp, cot, softplus, chunk, _ = _case("all-options-chunk4")
    base = run_emulated(scan_emu, inp, cot, softplus, chunk)
    other = run_emulated(scan_emu, inp, cot, softplus, chunk, order=order)
    for a, b in zip(base[0], other[0]):
        assert np.array_equal(np.array(a), np.array(b))
    for k in base[1]:
        assert np.array_equal(np.array(base[1][k]), np.array(other[1][k])), k


def _launch(B_varies=True, C_varies=True, **kw):
    f = dict(Bt=2, L=11, D=37, N=5, chunk=4, has_D=1, has_z=1, has_bias=1, has_h0=1, softplus=1, dtype=0)
    f.update(kw)
    return metal_emu.ScanLaunch(f["Bt"], f["L"], f["D"], f["N"], f["chunk"], f["has_D"], f["has_z"],
                                f["has_bias"], f["has_h0"], f["softplus"], int(B_varies), int(C_varies), f["dtype"])


def test_plans_match_kernel_signatures(scan_emu, clang, tmp_path):
    """For every option combination and dtype: each plan names a kernel of
    the source, sets every function constant it reads, binds exactly the
    arguments compiled in with their element types, and the pipeline names
    tell the combinations apart."""
    src = tmp_path / "scan.inlined.metal"
    src.write_text(msl.load_embed().inline(msl.KERNELS / "scan.metal"))
    r = msl.typecheck(src)
    assert not r.errors, r.errors
    a = msl.analyze(r.ast)
    by_index = {c.index: c for c in a.constants.values()}
    pipelines, used = {}, set()
    element = {0: "float", 1: "half", 2: "bfloat"}
    # every option combination, dtype and NMAX rotating; every (dtype, NMAX)
    # with all options on and all off
    combos = [(bits, bits % 3, (5, 17, 40, 70)[bits % 4]) for bits in range(1 << 7)]
    combos += [(bits, dt, N) for bits in (0, 127) for dt in range(3) for N in (5, 17, 40, 70)]
    for bits, dtype, N in combos:
        o = [bool(bits >> k & 1) for k in range(7)]
        lau = _launch(*o[:2], has_D=o[2], has_z=o[3], has_bias=o[4], has_h0=o[5], softplus=o[6], N=N,
                      dtype=dtype)
        for bw in (False, True):
            ps = scan_emu.scan_plans(bw, lau)
            for p in ps["plans"]:
                k = a.kernels[p["kernel"]]
                used.add(k.name)
                consts = {i: v for i, (_, v) in p["constants"].items()}
                need = {a.constants[n].index for n in a.constants_used_by(k.name)}
                assert need <= set(consts), (p["pipeline"], need - set(consts))
                assert all(by_index[i].type == "bool" for i in consts)
                params = {q.buffer: q for q in k.params if q.buffer is not None}
                present = {b for b, q in params.items() if q.gate is None or consts[a.constants[q.gate].index]}
                assert set(p["bindings"]) == present, (p["pipeline"], sorted(p["bindings"]), sorted(present))
                for idx, (kind, _) in p["bindings"].items():
                    q = params[idx]
                    if kind in ("input", "output"):
                        # sequence arrays in u's dtype, the rest float32
                        assert q.element in (element[dtype], "float"), (p["pipeline"], q.name)
                        assert q.is_const == (kind == "input"), (p["pipeline"], q.name)
                    elif kind == "scratch":
                        assert q.element == "float", (p["pipeline"], q.name)
                    else:
                        assert kind == "uints" and q.element == "uint" and q.address_space == 2
                key = (p["kernel"], tuple(sorted(consts.items())))
                assert pipelines.setdefault(p["pipeline"], key) == key, p["pipeline"]
                if p["kernel"].startswith("scan_bwd"):
                    assert p["group"] == 32 and 0 < p["tgmem"] <= 32768 and p["grid"] % 32 == 0
    assert used == set(a.kernels), set(a.kernels) - used


@pytest.mark.parametrize("kw,message", [
    (dict(N=129), r"\[selective_scan\] N = 129 states"),
    (dict(N=0), r"\[selective_scan\] N = 0 states"),
    (dict(L=2 ** 31), r"\[selective_scan\] L = 2147483648"),
])
def test_plans_refuse_what_the_kernels_cannot_run(scan_emu, kw, message):
    with pytest.raises(metal_emu.EmulatorError, match=message):
        scan_emu.scan_plans(True, _launch(**kw))


# The kernel broken in one plausible way; each must fail the comparison (or
# the emulator's checks) with a message matching WHY[name]. text ->
# replacement, in the inlined source.
WHY = {"missing-first-barrier": r"dB: rel RMS inf", "missing-second-barrier": r"dB: rel RMS",
       "reduction-skips-a-lane": r"dB: rel RMS", "reduction-pitch": r"dB: rel RMS",
       "divergent-barrier": r"divergent control flow", "checkpoint-after-the-step": r"ddelta: rel RMS"}
MUTATIONS = {
    # the sums start before every thread has written its terms
    "missing-first-barrier": ("      threadgroup_barrier(mem_flags::mem_threadgroup);\n      // The round's",
                              "      // The round's"),
    # the next round overwrites the terms before every thread has summed them
    "missing-second-barrier": ("      threadgroup_barrier(mem_flags::mem_threadgroup);  // the next round", "//"),
    # the sum over the threadgroup's channels stops one short
    "reduction-skips-a-lane": ("for (int j = 0; j < CH; ++j) acc += red[k * W + j];",
                               "for (int j = 0; j < CH - 1; ++j) acc += red[k * W + j];"),
    # the terms written at the wrong pitch: rows overlap
    "reduction-pitch": ("threadgroup float* rb = red + (l - lo) * 2 * N * W + t;",
                        "threadgroup float* rb = red + (l - lo) * 2 * N * (W - 1) + t;"),
    # a barrier inside a branch only some threads take
    "divergent-barrier": ("        if (!on) {\n          for (int k = 0; k < 2 * N; ++k) rb[k * W] = 0.0f;\n"
                          "          continue;\n        }",
                          "        if (!on) {\n          for (int k = 0; k < 2 * N; ++k) rb[k * W] = 0.0f;\n"
                          "          threadgroup_barrier(mem_flags::mem_threadgroup);\n          continue;\n        }"),
    # the forward's checkpoint one chunk late
    "checkpoint-after-the-step": ("    if (l % p.K == 0) {", "    if (l % p.K == 1 % p.K && l > 0) {"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_broken_kernel_is_caught(scan_emu, name):
    old, new = MUTATIONS[name]
    source = msl.load_embed().inline(msl.KERNELS / "scan.metal")
    assert source.count(old) == 1, f"{name}: update the mutation"
    # float32, NMAX 16 only: one pair of kernels builds in seconds
    source = source.replace("FS_SCAN_NMAX_KERNELS(float32, float)\nFS_SCAN_NMAX_KERNELS(float16, half)\n"
                            "FS_SCAN_NMAX_KERNELS(bfloat16, bfloat)", "FS_SCAN_KERNELS(float32, float, 16)")
    broken = metal_emu.build(msl.KERNELS / "scan.metal", source=source.replace(old, new))
    inp, cot, softplus, chunk, _ = _case("all-options-chunk4")
    want = run_cpu(inp, cot, softplus, chunk)
    check(run_emulated(scan_emu, inp, cot, softplus, chunk), want, 1e-5, "intact")
    with pytest.raises((AssertionError, metal_emu.EmulatorError), match=WHY[name]):
        check(run_emulated(broken, inp, cot, softplus, chunk), want, 1e-5, name)


def test_inference_runs_the_forward_only(scan_emu):
    inp = make(2, 7, 9, 3)
    with mx.stream(mx.cpu), emulated(scan_emu) as e:
        y = fs.ops.selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], inp["z"],
                                  delta_bias=inp["delta_bias"], delta_softplus=True,
                                  initial_state=inp["initial_state"], backend="fused")
        mx.eval(y)
    assert e.calls == ["fwd"]
    with mx.stream(mx.cpu):
        want = fs.ops.selective_scan(inp["u"], inp["delta"], inp["A"], inp["B"], inp["C"], inp["D"], inp["z"],
                                     delta_bias=inp["delta_bias"], delta_softplus=True,
                                     initial_state=inp["initial_state"], backend="fused")
    assert np.allclose(np.array(y), np.array(want), rtol=1e-5, atol=1e-6)
