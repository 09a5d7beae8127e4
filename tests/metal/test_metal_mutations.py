"""The emulation tests can fail: each case breaks the kernel source (the
inlined family.metal, step headers included) in one small, plausible way,
rebuilds the emulator from it, and checks that the test that should notice
does. At least one mutation per registered family, in its own step header.
"""

from __future__ import annotations

import re

import pytest

import metal_emu
import msl
from metal_family import (FAMILIES, check_against_reference, exact, make_case, mode_options, run_emulated,
                          run_reference)


def _reference_case(name, mode=0, reset="subtract", form="neuron", n=33, output_mem="all"):
    """The family's op, emulated, against the reference: outputs identical,
    gradients within tolerance."""
    def run(emu):
        fam = FAMILIES[name]
        x, states, params, cot = make_case(fam, "float32", 20, n, 4, form, output_mem)
        kw = dict(reset_mechanism=reset, output_mem=output_mem, **mode_options(fam)[mode])
        got = run_emulated(emu, fam, x, states, params, cot, **kw)
        want = run_reference(fam, x, states, params, cot, **kw)
        for a, b in zip(got[0], want[0]):
            assert exact(a, b), "outputs differ"
        check_against_reference(got, want, "float32")
    return run


def _tie_case(emu):
    import test_metal_family
    test_metal_family.test_inputs_exactly_on_threshold(emu)


# name: (text, replacement, the check that must fail, the error it fails with)
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
    "synaptic-immediate-reset": ("if (RESET == kSubtract) return h - (s - r) * th;",
                                 "if (RESET == kSubtract) return h - s * th;",
                                 _reference_case("synaptic", mode=1), AssertionError),
    # Alpha: the backward drops tau from the excitatory current's gradient
    "alpha-no-tau": ("ge1 += gu1 * tau;", "ge1 += gu1;", _reference_case("alpha", reset="zero"),
                     AssertionError),
    # Lapicque: the backward's membrane gradient ignores the reset
    "lapicque-reset-gradient": ("if (RESET == kSubtract) dth -= gu * r;", "",
                                _reference_case("lapicque"), AssertionError),
}


def _only(source: str, family: str) -> str:
    """The source with kernels for `family` alone (its entry of the
    registration list in src/step/families.h): a quarter to a half of the
    126 kernels, so that each broken build takes seconds, not half a minute."""
    reg = (msl.REPO / "src" / "step" / "families.h").read_text()
    entry = re.search(rf"X\((\d+), {family}, (\w+)\)", reg)
    assert entry, family
    line = "FS_FOR_EACH_FAMILY(FS_FAMILY_KERNELS)"
    assert source.count(line) == 1
    return source.replace(line, f"FS_FAMILY_KERNELS({entry.group(1)}, {family}, {entry.group(2)})")


# the family each mutation's check runs
CHECKED = {"stale-saves": "synaptic", "wrong-step-saves": "leaky", "parameter-index-off-by-one": "lapicque",
           "swapped-buffers": "leaky"}


def test_every_family_has_a_mutation():
    assert {name for name in FAMILIES} <= {m.split("-")[0] for m in MUTATIONS}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_broken_kernel_is_caught(clang, name):
    old, new, check, error = MUTATIONS[name]
    source = msl.load_embed().inline(msl.KERNELS / "family.metal")
    assert source.count(old) == 1, f"{name}: the text to break is gone or ambiguous; update the mutation"
    new_source = source.replace(old, new)
    if name == "swapped-buffers":  # keep the signature valid: v1 takes slot 0's buffer
        new_source = new_source.replace("FS_OUT(float, v1, fs::layout::fwd_save(1), fs_save1)",
                                        "FS_OUT(float, v1, fs::layout::fwd_save(0), fs_save1)")
    broken = metal_emu.build(source=_only(new_source, CHECKED.get(name, name.split("-")[0])))
    check(metal_emu.build())  # the intact kernels pass the same check
    with pytest.raises(error):
        check(broken)
