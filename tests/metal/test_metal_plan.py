"""The launch plans of metal/leaky.h against the kernels' real signatures.

eval_gpu on macOS does nothing but encode these plans, so a wrong buffer
index, a missing function constant or two specializations sharing a pipeline
name would be a GPU-only bug. Here every plan the op can make is checked
against the type-checked AST of leaky.metal.
"""

from __future__ import annotations

import itertools

import pytest

RESETS = ("subtract", "zero", "none")
MODES = ("delayed", "immediate", "same_step")
DTYPES = ("float32", "float16", "bfloat16")
ELEMENT = {"float32": "float", "float16": "half", "bfloat16": "bfloat"}
NUM_SURROGATES = 9
DIMS = (63, 500, 500, 25, 1)  # T, N, P_mem, P_beta, P_th

# The primitives' inputs and outputs (src/ops/leaky.h): element type by
# position, "T" = x's dtype.
FORWARD_IN = ["T", "float", "float", "float"]          # x, mem, beta, threshold
FORWARD_OUT = ["T", "T", "float", "float"]             # spk, mem, h, u


def backward_in(has_u):                                # h, (u), mem, beta, threshold, dspk, dmem
    return ["float"] * (2 if has_u else 1) + ["float"] * 3 + ["T", "T"]


BACKWARD_OUT = ["T", "float", "float", "float"]        # dx, dmem, dbeta, dthreshold partials


def forward_launches():
    for r, m, d, mem_all, save in itertools.product(range(3), range(3), DTYPES, (0, 1), (0, 1)):
        yield False, dict(reset=r, mode=m, mem_all=bool(mem_all), save=bool(save)), d


def backward_launches():
    for r, m, d, sid, detach, mem_all in itertools.product(range(3), range(3), DTYPES, range(NUM_SURROGATES),
                                                           (0, 1), (0, 1)):
        # Row cotangents (a .sum() loss's): dspk alone, and dmem too where it is [T, N].
        for rows in ((0, 0), (1, 0)) + (((1, 1), (0, 1)) if mem_all else ()):
            yield True, dict(reset=r, mode=m, surrogate_id=sid, detach=bool(detach), mem_all=bool(mem_all),
                             surrogate_a=0.5, surrogate_b=-1.25, dspk_row=bool(rows[0]),
                             dmem_row=bool(rows[1])), d


@pytest.fixture(scope="module")
def plans(emu):
    return [(bw, o, d, emu.leaky_plan(bw, o, DIMS, d))
            for bw, o, d in itertools.chain(forward_launches(), backward_launches())]


def test_kernel_names_mirror_template_arguments(plans):
    for bw, o, d, p in plans:
        assert p["kernel"] == f"leaky_{'bwd' if bw else 'fwd'}_{RESETS[o['reset']]}_{MODES[o['mode']]}_{d}"


def test_plans_use_every_kernel_and_only_existing_ones(plans, emu, leaky_analysis):
    planned = {p["kernel"] for *_, p in plans}
    assert planned == set(leaky_analysis.kernels), "kernels the plans never launch, or launch but lack"
    assert set(emu.kernel_names()) == planned
    assert len(planned) == 2 * 3 * 3 * 3


def test_bindings_match_kernel_signatures(plans, leaky_analysis):
    a = leaky_analysis
    by_index = {c.index: c for c in a.constants.values()}
    for bw, o, d, p in plans:
        k = a.kernels[p["kernel"]]
        what = f"{p['pipeline']}"
        consts = p["constants"]
        # function constants: declared, of the declared type, covering every one
        # the kernel reads or gates an argument with
        for idx, (typ, _) in consts.items():
            assert idx in by_index, f"{what}: sets undeclared function constant {idx}"
            assert by_index[idx].type == typ, f"{what}: constant {idx} is {by_index[idx].type}, set as {typ}"
        needed = a.constants_used_by(k.name) | {prm.gate for prm in k.params if prm.gate}
        missing = {a.constants[n].index for n in needed} - set(consts)
        assert not missing, f"{what}: function constants {missing} are read but not set"
        # arguments present in this specialization == buffers bound
        params = {prm.buffer: prm for prm in k.params if prm.buffer is not None}
        present = {b for b, prm in params.items()
                   if prm.gate is None or consts[a.constants[prm.gate].index][1]}
        assert set(p["bindings"]) == present, f"{what}: binds {sorted(p['bindings'])}, kernel has {sorted(present)}"
        has_u = o["mode"] == 1 and o.get("save", True)
        ins, outs = (backward_in(has_u), BACKWARD_OUT) if bw else (FORWARD_IN, FORWARD_OUT)
        for idx, (kind, val) in p["bindings"].items():
            prm = params[idx]
            if kind in ("input", "output"):
                want = (ins if kind == "input" else outs)[val]
                want = ELEMENT[d] if want == "T" else want
                assert prm.element == want, f"{what}: buffer({idx}) {prm.name} is {prm.element}, bound {kind} {val} is {want}"
                assert prm.address_space == 1, f"{what}: {prm.name} is not a device pointer"
                assert prm.is_const == (kind == "input"), f"{what}: {prm.name} const-ness vs {kind}"
            else:
                assert prm.element == ("uint" if kind == "uint" else "float"), f"{what}: {prm.name}"
                assert prm.address_space == 2 and prm.type.rstrip().endswith("&"), f"{what}: {prm.name}"
        # the scalars carry the launch's values
        scalars = sorted(v for kind, v in p["bindings"].values() if kind == "uint")
        assert scalars == sorted(DIMS), f"{what}: sizes {scalars}"
        if bw:
            assert sorted(v for kind, v in p["bindings"].values() if kind == "float") == [-1.25, 0.5]


def test_pipeline_names_tell_specializations_apart(plans):
    """MLX caches a pipeline by its name: two plans with one name must be the
    same kernel with the same function-constant values."""
    seen = {}
    for *_, p in plans:
        key = (p["kernel"], tuple(sorted(p["constants"].items())))
        assert seen.setdefault(p["pipeline"], key) == key, p["pipeline"]
    assert len(seen) == len({(p["kernel"], tuple(sorted(p["constants"].items()))) for *_, p in plans})


@pytest.mark.parametrize("grid", [1, 2, 31, 33, 255, 256, 257, 500, 10 ** 6])
@pytest.mark.parametrize("max_threads", [1024, 256, 64, 32, 7, 1])
def test_threadgroup_size(emu, grid, max_threads):
    g = emu.leaky_plan(False, dict(reset=0, mode=0), (5, grid, 1, 1, 1), max_threads=max_threads)["group"]
    assert 1 <= g <= min(256, max_threads, grid)
    assert g == min(256, max_threads, grid)


@pytest.mark.parametrize("dims,message", [
    ((0, 5, 1, 1, 1), r"\[leaky\] T = 0"),
    ((5, 2 ** 32, 1, 1, 1), r"\[leaky\] neurons = 4294967296"),
    ((5, 5, 2 ** 33, 1, 1), r"\[leaky\] mem size"),
])
def test_sizes_the_kernels_cannot_index_are_refused(emu, dims, message):
    with pytest.raises(Exception, match=message):
        emu.leaky_plan(False, dict(reset=0, mode=0), dims)


def test_backward_requires_the_saved_state(emu):
    with pytest.raises(Exception, match=r"\[leaky\] internal: the backward reads the saved h"):
        emu.leaky_plan(True, dict(reset=0, mode=0, save=False), DIMS)
