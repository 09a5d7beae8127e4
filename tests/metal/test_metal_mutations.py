"""The emulation tests can fail: each case breaks the kernel source (the
inlined family.metal, step headers included) or the launch plans
(metal/family.h) in one small, plausible way, rebuilds the emulator from it,
and checks that the test that should notice does. At least one mutation per
registered family, in its own step header.
"""

from __future__ import annotations

import re

import pytest

import metal_emu
import msl
from metal_family import (FAMILIES, check_against_reference, exact, make_case, mode_options, reset_kw,
                          run_emulated, run_reference)


def _reference_case(name, mode=0, reset="subtract", form="neuron", n=33, output_mem="all"):
    """The family's op, emulated, against the reference: outputs identical,
    gradients within tolerance."""
    def run(emu):
        fam = FAMILIES[name]
        x, states, params, cot = make_case(fam, "float32", 20, n, 4, form, output_mem)
        kw = dict(reset_kw(fam, reset), output_mem=output_mem, **mode_options(fam)[mode])
        got = run_emulated(emu, fam, x, states, params, cot, **kw)
        want = run_reference(fam, x, states, params, cot, **kw)
        for a, b in zip(got[0], want[0]):
            assert exact(a, b), "outputs differ"
        check_against_reference(got, want, "float32")
    return run


def _tie_case(emu):
    import test_metal_family
    test_metal_family.test_inputs_exactly_on_threshold(emu)


# name: (text, replacement, the check that must fail, the error it fails with
# or (error, a regex its message matches));
# text is a string of the inlined source, or (repo path, string) for a string
# of that header's lines only, or
# of the launch plans ("metal/family.h").
MUTATIONS = {
    # generic kernel: the backward forgets to carry the saves back one step
    "stale-saves": ("    sv = svp;\n", "", _reference_case("synaptic"), AssertionError),
    # generic kernel: the states entering step t recomputed from step t's saves
    "wrong-step-saves": ("svp = load_saves<F, MODE>(b, o - n);", "svp = load_saves<F, MODE>(b, o);",
                         _reference_case("leaky", mode=1, reset="zero"), AssertionError),
    # generic kernel: the forward reads the parameters of the next neuron
    "parameter-index-off-by-one": ("raw.v[j] = b.param[j][i % dims[fs::layout::dims_param(j)]];\n  const "
                                   "fs::Vec<F::kConsts> c = F::prepare(raw);\n  fs::Vec<F::kStates> st;",
                                   "raw.v[j] = b.param[j][(i + 1) % dims[fs::layout::dims_param(j)]];\n  const "
                                   "fs::Vec<F::kConsts> c = F::prepare(raw);\n  fs::Vec<F::kStates> st;",
                                   _reference_case("lapicque", form="feature", n=500), AssertionError),
    # generic kernel: save slot 0's argument moved to slot 1's buffer: the
    # plan binds slot 0 where the kernel now has slot 1's (compiled-out)
    # argument, which the runner's binding check refuses
    "swapped-buffers": ("FS_OUT(float, v0, fs::layout::fwd_save(0), fs_save0)",
                        "FS_OUT(float, v0, fs::layout::fwd_save(1), fs_save0)",
                        _reference_case("leaky"), metal_emu.EmulatorError),
    # Leaky: snnTorch's strict spike test becomes >=
    "leaky-fire-on-equal": ("  return h > th ? 1.0f : 0.0f;\n}\n\n// The delayed reset",
                            "  return h >= th ? 1.0f : 0.0f;\n}\n\n// The delayed reset", _tie_case,
                            AssertionError),
    # Synaptic: the immediate reset subtracts the whole spike, not S - R
    # (the same-step reset of every Synaptic-like step, in family.h)
    "synaptic-immediate-reset": (("src/step/family.h", "if (RESET == kSubtract) return h - (s - r) * th;"),
                                 "if (RESET == kSubtract) return h - s * th;",
                                 _reference_case("synaptic", mode=1), AssertionError),
    # Alpha: the backward drops tau from the excitatory current's gradient
    "alpha-no-tau": ("ge1 += gu1 * tau;", "ge1 += gu1;", _reference_case("alpha", reset="zero"),
                     AssertionError),
    # Lapicque: the backward's membrane gradient ignores the reset
    "lapicque-reset-gradient": ("if (RESET == kSubtract) dth -= gu * r;", "",
                                _reference_case("lapicque"), AssertionError),
    # generic kernel: the initial-state gradients written for the output
    # states only, as if every state were one (RLeaky's spk keeps the NaN the
    # emulator fills outputs with)
    "carried-state-gradient": ("for (int j = 0; j < F::kStates; ++j) b.dstate0[j][i] = gu.v[j];",
                               "for (int j = 0; j < F::kOutputStates; ++j) b.dstate0[j][i] = gu.v[j];",
                               _reference_case("rleaky", output_mem="last"), AssertionError),
    # plans: the forward binds a state output for every state, carried-only
    # ones included; the runner refuses the binding (fs_out1 compiles it out)
    "plan-outputs-are-states": (("metal/family.h", "for (int j = 0; j < f.outputs; ++j) "
                                 "p.bindings.push_back(Binding::output(L::fwd_state_out(j), 1 + j));"),
                                "for (int j = 0; j < f.states; ++j) "
                                "p.bindings.push_back(Binding::output(L::fwd_state_out(j), 1 + j));",
                                _reference_case("rleaky"),
                                (metal_emu.EmulatorError, r"rleaky_fwd_subtract_delayed_float32 .*: binds output 2 "
                                                          r"of the primitive's 2")),
    # RLeaky: the fed-back spike's cotangent from the next step (V dL/dB_{t+1})
    # never joins dL/dS_t
    "rleaky-no-feedback-gradient": ("const float gs = dspk + dstate.v[1] + gu * p.ds;",
                                    "const float gs = dspk + gu * p.ds;",
                                    _reference_case("rleaky", mode=1, reset="zero"), AssertionError),
    # RSynaptic: the previous spike's gradient forgets V
    "rsynaptic-feedback-weight": ("g.dprev.v[2] = gsyn * c.v[2];", "g.dprev.v[2] = gsyn;",
                                  _reference_case("rsynaptic", reset="none"), AssertionError),
    # ALIF: the backward recovers the previous spike with the base threshold
    # alone (Leaky's test), not the adapted one
    "alif-carried-spike": ("p.v[2] = spike(save.v[0], save.v[1], c).s;",
                           "p.v[2] = save.v[0] > c.v[1] ? 1.0f : 0.0f;",
                           _reference_case("alif"), AssertionError),
    # Izhikevich: the membrane's gradient flows through the reset to c
    "izhikevich-reset-gradient": ("g.dprev.v[0] = gv1 * (1.0f - r);", "g.dprev.v[0] = gv1;",
                                  _reference_case("izhikevich"), AssertionError),
}


def _mutate(text: str, where: str | None, old: str, new: str) -> str:
    """text with its one occurrence of `old` replaced; where: the repo path
    of the header whose inlined lines alone are searched (the #line markers
    metal/embed.py writes), None for the whole text."""
    spans = [(0, len(text))]
    if where is not None:
        spans, cur, start = [], None, 0
        for m in re.finditer(r'^#line \d+ "([^"]+)"\n', text, re.M):
            if cur == where:
                spans.append((start, m.start()))
            cur, start = m.group(1), m.end()
        if cur == where:
            spans.append((start, len(text)))
    hits = [a + m.start() for a, b in spans for m in re.finditer(re.escape(old), text[a:b])]
    assert len(hits) == 1, f"{old!r} occurs {len(hits)} times in {where or 'the source'}; update the mutation"
    return text[:hits[0]] + new + text[hits[0] + len(old):]


def _only(source: str, family: str) -> str:
    """The source with kernels for `family` alone (its entry of the
    registration list in src/step/families.h): at most a quarter of the
    222 kernels, so that each broken build takes seconds, not half a minute."""
    reg = (msl.REPO / "src" / "step" / "families.h").read_text()
    entry = re.search(rf"X\((\d+), {family}, (\w+)\)", reg)
    assert entry, family
    line = "FS_FOR_EACH_FAMILY(FS_FAMILY_KERNELS)"
    assert source.count(line) == 1
    return source.replace(line, f"FS_FAMILY_KERNELS({entry.group(1)}, {family}, {entry.group(2)})")


# the family each mutation's check runs
CHECKED = {"stale-saves": "synaptic", "wrong-step-saves": "leaky", "parameter-index-off-by-one": "lapicque",
           "swapped-buffers": "leaky", "carried-state-gradient": "rleaky", "plan-outputs-are-states": "rleaky"}


def test_every_family_has_a_mutation():
    assert {name for name in FAMILIES} <= {m.split("-")[0] for m in MUTATIONS}
    assert set(CHECKED) <= set(MUTATIONS)
    assert {CHECKED.get(m, m.split("-")[0]) for m in MUTATIONS} <= set(FAMILIES)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_broken_kernel_is_caught(clang, name):
    old, new, check, error = MUTATIONS[name]
    where, old = old if isinstance(old, tuple) else (None, old)
    source = msl.load_embed().inline(msl.KERNELS / "family.metal")
    plans = None
    if where == "metal/family.h":
        plans = _mutate((msl.REPO / where).read_text(), None, old, new)
        new_source = source
    else:
        new_source = _mutate(source, where, old, new)
    if name == "swapped-buffers":  # keep the signature valid: v1 takes slot 0's buffer
        new_source = new_source.replace("FS_OUT(float, v1, fs::layout::fwd_save(1), fs_save1)",
                                        "FS_OUT(float, v1, fs::layout::fwd_save(0), fs_save1)")
    broken = metal_emu.build(source=_only(new_source, CHECKED.get(name, name.split("-")[0])), plans=plans)
    check(metal_emu.build())  # the intact kernels pass the same check
    error, match = error if isinstance(error, tuple) else (error, None)
    with pytest.raises(error, match=match):
        check(broken)
