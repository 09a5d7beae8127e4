"""The emulation tests can fail: each case breaks the kernel source in one
small, plausible way, rebuilds the emulator from it, and checks that the
test that should notice does.
"""

from __future__ import annotations

import pytest

import metal_emu
import msl
import test_metal_leaky as t
from metal_leaky import CONVENTIONS, cot_mem_for, make_case


def _tie_case(emu):
    t.test_inputs_exactly_on_threshold(emu, "subtract", "delayed", "float32")


def _reference_case(conv, form="neuron", n=33):
    def run(emu):
        x, mem, beta, th, cot_spk, rng = make_case("zero", conv, "float32", 20, n, 4, form)
        cot_mem = cot_mem_for(rng, x, "all")
        t._compare(emu, x, mem, beta, th, cot_spk, cot_mem, "float32", reset_mechanism="zero",
                   output_mem="all", **CONVENTIONS[conv])
    return run


MUTATIONS = {
    # the backward forgets to carry h back one step
    "stale-h": ("    h_t = h_prev;\n", "", _reference_case("delayed"), AssertionError),
    # snnTorch's strict spike test becomes >= in the shared step header
    "fire-on-equal": ("  return h > th ? 1.0f : 0.0f;\n}\n\n// The delayed reset",
                      "  return h >= th ? 1.0f : 0.0f;\n}\n\n// The delayed reset", _tie_case, AssertionError),
    # the clamp of beta no longer masks its gradient
    "no-beta-mask": ("dbeta[i] = gb * fs::clamp_unit_mask(beta_raw);", "dbeta[i] = gb;",
                     _reference_case("same_step"), AssertionError),
    # the forward takes h from the slot the plan gives u, and the other way
    # round: for snnTorch's default the plan binds no u, so the runner's
    # binding check refuses the launch (for kImmediate, with both bound, the
    # values come out wrong instead)
    "swapped-buffers": ("device float* h [[buffer(6), function_constant(fs_save_h)]],",
                        "device float* h [[buffer(7), function_constant(fs_save_h)]],",
                        _reference_case("delayed"), metal_emu.EmulatorError),
    # the immediate reset reads the membrane of the wrong step
    "wrong-step-u": ("u[o - n] :", "u[o] :", _reference_case("immediate"), AssertionError),
    # the forward reads the threshold of the next neuron
    "parameter-index-off-by-one": ("const float th = threshold[i % p_th];\n  float m",
                                   "const float th = threshold[(i + 1) % p_th];\n  float m",
                                   _reference_case("delayed", "feature", 500), AssertionError),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_broken_kernel_is_caught(clang, name):
    old, new, check, error = MUTATIONS[name]
    source = msl.load_embed().inline(msl.KERNELS / "leaky.metal")
    assert source.count(old) >= 1, f"{name}: the text to break is gone; update the mutation"
    if name == "swapped-buffers":  # keep the signature valid: u takes buffer 6
        new_source = source.replace(old, new).replace(
            "device float* u [[buffer(7), function_constant(fs_save_u)]],",
            "device float* u [[buffer(6), function_constant(fs_save_u)]],")
    else:
        new_source = source.replace(old, new)
    broken = metal_emu.build(source=new_source)
    check(metal_emu.build())  # the intact kernels pass the same check
    with pytest.raises(error):
        check(broken)
