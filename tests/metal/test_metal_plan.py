"""The launch plans of metal/family.h against the kernels' real signatures,
for every family of the table.

eval_gpu on macOS does nothing but encode these plans, so a wrong buffer
index, a missing function constant or two specializations sharing a pipeline
name would be a GPU-only bug. Here every plan the op can make is checked
against the type-checked AST of family.metal.
"""

from __future__ import annotations

import itertools

import pytest

import metal_emu
from flashsnn import _backend
from flashsnn.ops._table import FAMILIES, RESETS as RESET_IDS

RESETS = ("subtract", "zero", "none")
MODES = ("delayed", "immediate", "same_step")
DTYPES = ("float32", "float16", "bfloat16")
ELEMENT = {"float32": "float", "float16": "half", "bfloat16": "bfloat"}
NUM_SURROGATES = 9
T, N = 63, 500
# The extension's own table (_ext.families()), where there is an extension.
EXT = {f[0]: f for f in _backend.ext.families()} if _backend.ext else {}


def _sizes(fam):
    """Distinct suffix sizes per slot, so that a swapped size shows."""
    return ([(N, 25, 50)[j] for j in range(len(fam.states))],
            [(1, 25, N, 5, 100, 20)[j] for j in range(len(fam.params) + len(fam.derived))])


def _resets(fam):
    """The reset ids the family has (its FS_RESETS_<name> list)."""
    return [RESET_IDS[r] for r in fam.resets]


def _launch(fam, mode, dtype, **o):
    ps, pp = _sizes(fam)
    return metal_emu.launch(dict(family=fam.id, mode=mode, **o), T, N, ps, pp, dtype)


def forward_launches():
    for fam in FAMILIES.values():
        for r, m, d, mem_all, save in itertools.product(_resets(fam), fam.modes, DTYPES, (0, 1), (0, 1)):
            o = dict(reset=r, mem_all=bool(mem_all), save=bool(save))
            yield fam, False, dict(o, mode=m), d


def backward_launches():
    for fam in FAMILIES.values():
        ns = len(fam.states)
        for r, m, d, sid, detach, mem_all in itertools.product(_resets(fam), fam.modes, DTYPES,
                                                               range(NUM_SURROGATES), (0, 1), (0, 1)):
            # Row cotangents (a .sum() loss's): dspk alone, and every state's where it is [T, N]
            # (bits of carried-only states too, which the plan must drop: they have no cotangent).
            rows = [(0, 0), (1, 0)] + ([(1, (1 << ns) - 1), (0, 1)] if mem_all else [])
            for dspk_row, dstate_rows in rows:
                yield fam, True, dict(reset=r, mode=m, surrogate_id=sid, detach=bool(detach), mem_all=bool(mem_all),
                                      surrogate_a=0.5, surrogate_b=-1.25, dspk_row=bool(dspk_row),
                                      dstate_rows=dstate_rows), d


@pytest.fixture(scope="module")
def plans(emu):
    out = []
    for fam, bw, o, d in itertools.chain(forward_launches(), backward_launches()):
        mode = o.pop("mode")
        out.append((fam, bw, dict(o, mode=mode), d, emu.plan(bw, _launch(fam, mode, d, **o))))
    return out


def test_family_table_matches_the_extension(emu):
    """The plans' family table (traits through FS_FOR_EACH_FAMILY) against
    the extension's (_ext.families()) and the Python table."""
    ext = EXT
    for fam in FAMILIES.values():
        k = emu.family(fam.id)
        assert k["states"] == len(fam.states), fam.name
        assert k["outputs"] == fam.n_outputs, fam.name
        assert k["params"] == len(fam.params) + len(fam.derived), fam.name
        assert sorted(m for m in range(3) if k["modes"] >> m & 1) == sorted(fam.modes), fam.name
        assert sorted(r for r in range(3) if k["resets"] >> r & 1) == sorted(_resets(fam)), fam.name
        if fam.name in ext:
            _, states, params, bx, resets, modes, saves, outputs = ext[fam.name]
            assert (len(states), len(params), bool(bx), resets, modes, outputs) == \
                (k["states"], k["params"], bool(k["backward_x"]), k["resets"], k["modes"], k["outputs"]), fam.name
            for m in fam.modes:
                assert saves[m] == emu.family(fam.id, m)["saves"], (fam.name, m)


def test_kernel_names_mirror_template_arguments(plans):
    for fam, bw, o, d, p in plans:
        assert p["kernel"] == f"{fam.name}_{'bwd' if bw else 'fwd'}_{RESETS[o['reset']]}_{MODES[o['mode']]}_{d}"


def test_plans_use_every_kernel_and_only_existing_ones(plans, emu, family_analysis):
    planned = {p["kernel"] for *_, p in plans}
    assert planned == set(family_analysis.kernels), "kernels the plans never launch, or launch but lack"
    assert set(emu.kernel_names()) == planned
    # one pair per (family, reset, mode, dtype) the family has
    assert len(planned) == sum(2 * len(f.resets) * len(f.modes) * 3 for f in FAMILIES.values())


def test_modes_and_resets_a_family_lacks_are_refused(emu):
    for fam in FAMILIES.values():
        for m in set(range(3)) - set(fam.modes):
            with pytest.raises(metal_emu.EmulatorError, match=rf"\[{fam.name}\] internal: reset 0 / mode {m}"):
                emu.plan(False, _launch(fam, m, "float32", reset=0))
        for r in set(range(3)) - set(_resets(fam)):  # Izhikevich: one reset
            for bw in (False, True):
                with pytest.raises(metal_emu.EmulatorError, match=rf"\[{fam.name}\] internal: reset {r} / mode 0"):
                    emu.plan(bw, _launch(fam, 0, "float32", reset=r))


def _primitive_types(fam, bw, o, emu):
    """Element types of the primitive's inputs and outputs by position
    (Layout in src/ops/family.h); "T" is x's dtype. Every state is an input
    (and has a dstate0 output); only the first n_outputs are forward outputs
    and backward cotangent inputs (the Python table's count, checked
    against the plans' and the extension's above)."""
    k = emu.family(fam.id, o["mode"])
    ns, no, npar = len(fam.states), fam.n_outputs, len(fam.params) + len(fam.derived)
    saves = k["saves"] if (bw or o.get("save", True)) else 0
    if not bw:
        return ["T"] + ["float"] * (ns + npar), ["T"] * (1 + no) + ["float"] * saves
    ins = ["float"] * saves + (["T"] if k["backward_x"] else []) + ["float"] * (ns + npar) + ["T"] * (1 + no)
    return ins, ["T"] + ["float"] * (ns + npar)


def test_bindings_match_kernel_signatures(plans, family_analysis, emu):
    a = family_analysis
    by_index = {c.index: c for c in a.constants.values()}
    for fam, bw, o, d, p in plans:
        k = a.kernels[p["kernel"]]
        what = p["pipeline"]
        consts = p["constants"]
        for idx, (typ, _) in consts.items():
            assert idx in by_index, f"{what}: sets undeclared function constant {idx}"
            assert by_index[idx].type == typ, f"{what}: constant {idx} is {by_index[idx].type}, set as {typ}"
        needed = a.constants_used_by(k.name) | {prm.gate for prm in k.params if prm.gate}
        missing = {a.constants[n].index for n in needed} - set(consts)
        assert not missing, f"{what}: function constants {missing} are read but not set"
        params = {prm.buffer: prm for prm in k.params if prm.buffer is not None}
        present = {b for b, prm in params.items()
                   if prm.gate is None or consts[a.constants[prm.gate].index][1]}
        assert set(p["bindings"]) == present, f"{what}: binds {sorted(p['bindings'])}, kernel has {sorted(present)}"
        ins, outs = _primitive_types(fam, bw, o, emu)
        seen = {"input": set(), "output": set()}
        for idx, (kind, val) in p["bindings"].items():
            prm = params[idx]
            if kind in ("input", "output"):
                want = (ins if kind == "input" else outs)[val]
                want = ELEMENT[d] if want == "T" else want
                assert prm.element == want, f"{what}: buffer({idx}) {prm.name} is {prm.element}, bound {kind} {val} is {want}"
                assert prm.address_space == 1, f"{what}: {prm.name} is not a device pointer"
                assert prm.is_const == (kind == "input"), f"{what}: {prm.name} const-ness vs {kind}"
                seen[kind].add(val)
            elif kind == "uints":
                assert prm.element == "uint" and prm.address_space == 2, f"{what}: {prm.name}"
                ps, pp = _sizes(fam)
                want = [T, N, *ps] + [1] * (metal_emu.MAX_STATES - len(ps)) + pp + \
                    [1] * (metal_emu.MAX_PARAMS - len(pp))
                assert list(val) == want, f"{what}: dims {val} != {want}"
            else:
                assert prm.element == ("uint" if kind == "uint" else "float"), f"{what}: {prm.name}"
                assert prm.address_space == 2 and prm.type.rstrip().endswith("&"), f"{what}: {prm.name}"
        assert seen["input"] == set(range(len(ins))) and seen["output"] == set(range(len(outs))), what
        if bw:
            assert sorted(v for kind, v in p["bindings"].values() if kind == "float") == [-1.25, 0.5]


def test_slot_constants_follow_the_family(plans, family_analysis):
    """The gates by name (fs_state<j>, fs_param<j>, fs_save<j>, fs_out<j>):
    a slot is compiled in exactly for the states, parameters, saves (of the
    mode, with save on) and output states the family has; the row bits of
    dstate only for output states (a carried-only state has no cotangent)."""
    idx = {name: c.index for name, c in family_analysis.constants.items()}
    for fam, bw, o, d, p in plans:
        c = {i: v for i, (_, v) in p["constants"].items()}
        ns, no = len(fam.states), fam.n_outputs
        npar = len(fam.params) + len(fam.derived)
        nsav = sum(1 for j in range(metal_emu.MAX_SAVES) if c[idx[f"fs_save{j}"]])
        for j in range(metal_emu.MAX_STATES):
            assert c[idx[f"fs_state{j}"]] == (j < ns), (p["pipeline"], j)
            assert c[idx[f"fs_out{j}"]] == (j < no), (p["pipeline"], j)
        for j in range(metal_emu.MAX_PARAMS):
            assert c[idx[f"fs_param{j}"]] == (j < npar), (p["pipeline"], j)
        assert all(c[idx[f"fs_save{j}"]] == (j < nsav) for j in range(metal_emu.MAX_SAVES)), p["pipeline"]
        if fam.name in EXT:  # the extension's saves per mode, independent of the plans' table
            want_saves = EXT[fam.name][6][o["mode"]] if (bw or o.get("save", True)) else 0
            assert nsav == want_saves, (p["pipeline"], nsav, want_saves)
        if bw:
            rows = c[idx["fs_dstate_rows"]]
            want = o["dstate_rows"] & ((1 << no) - 1) if o["mem_all"] else 0
            assert rows == want, (p["pipeline"], rows, want)


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
    g = emu.plan(False, metal_emu.launch(dict(), 5, grid), max_threads=max_threads)["group"]
    assert g == min(256, max_threads, grid)


@pytest.mark.parametrize("sizes,message", [
    ((0, 5, (1,), ()), r"\[leaky\] T = 0"),
    ((5, 2 ** 32, (1,), ()), r"\[leaky\] neurons = 4294967296"),
    ((5, 5, (2 ** 33,), ()), r"\[leaky\] state size"),
    ((5, 5, (1,), (1, 2 ** 33)), r"\[leaky\] parameter size"),
])
def test_sizes_the_kernels_cannot_index_are_refused(emu, sizes, message):
    with pytest.raises(Exception, match=message):
        emu.plan(False, metal_emu.launch(dict(), *sizes))


def test_backward_requires_the_saved_state(emu):
    with pytest.raises(Exception, match=r"\[synaptic\] internal: the backward reads what the forward saved"):
        emu.plan(True, metal_emu.launch(dict(family=1, save=False), 5, 5))
