"""The Metal sources stay inside the subset of MSL that the shim models, and
the shim does not let invalid Metal through.

`msl.lint` = inline the includes (metal/embed.py), clang type-check with
real address spaces (shim, FSEMU_TYPECHECK), then rules on the AST
(exceptions, new/delete, RTTI, virtual, recursion, double, statics,
lambdas, goto, function pointers, program-scope non-constant variables,
kernel signatures) and on the text (the fp-contract pragma, std::, the
host_name instantiation form). Each rule is shown to fire on a small kernel
that breaks it.
"""

from __future__ import annotations

import re

import pytest

import msl

GOOD = """\
#pragma METAL fp contract(off)
#include <metal_stdlib>
using namespace metal;

constant bool fc_twice [[function_constant(0)]];

inline float twice(float v) {
  return v * 2.0f;
}

[[kernel]] void good(const device float* x [[buffer(0)]],
                     device float* y [[buffer(1)]],
                     device float* z [[buffer(3), function_constant(fc_twice)]],
                     constant uint& n [[buffer(2)]],
                     uint i [[thread_position_in_grid]]) {
  if (i < n) y[i] = fc_twice ? twice(x[i]) : x[i];
  if (fc_twice) z[i] = 1.0f;
}
"""

HEAD = "#pragma METAL fp contract(off)\n#include <metal_stdlib>\nusing namespace metal;\n"
TPIG = "uint i [[thread_position_in_grid]]"

BAD = {
    # address spaces (clang, shim type-check mode)
    "device-to-thread-reference": (
        HEAD + "inline void bump(thread float& v) { v += 1.0f; }\n"
        f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) {{ bump(y[i]); }}\n",
        r"address space|cannot bind|no matching function"),
    "constant-to-device-pointer": (
        HEAD + "inline float first(const device float* p) { return p[0]; }\n"
        f"[[kernel]] void k(constant float* c [[buffer(0)]], device float* y [[buffer(1)]], {TPIG}) "
        "{ y[i] = first(c); }\n",
        r"address space|no matching function|cannot initialize"),
    "write-through-constant": (
        HEAD + f"[[kernel]] void k(constant float* c [[buffer(0)]], {TPIG}) {{ c[i] = 1.0f; }}\n",
        r"read-only|const-qualified"),
    "device-pointer-to-generic-pointer": (
        HEAD + "inline void set(float* p) { p[0] = 1.0f; }\n"
        f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) {{ set(y); }}\n",
        r"address space|no matching function|cannot initialize"),
    "uninitialized-constant-variable": (
        HEAD + "constant float scale;\n"
        f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) {{ y[i] = scale; }}\n",
        r"default initialization of an object of const type"),
    # kernel signatures
    "pointer-without-address-space": (
        HEAD + f"[[kernel]] void k(float* y [[buffer(0)]], {TPIG}) {{ y[i] = 1.0f; }}\n",
        r"without the device or constant address space"),
    "argument-without-buffer": (
        HEAD + f"[[kernel]] void k(device float* y, {TPIG}) {{ y[i] = 1.0f; }}\n",
        r"without \[\[buffer\(n\)\]\]"),
    "buffer-index-twice": (
        HEAD + "[[kernel]] void k(device float* y [[buffer(0)]], device float* z [[buffer(0)]], "
        f"{TPIG}) {{ y[i] = z[i]; }}\n",
        r"\[\[buffer\(0\)\]\] on both"),
    "misspelt-attribute": (
        HEAD + f"[[kernel]] void k(device float* y [[bufer(0)]], {TPIG}) {{ y[i] = 1.0f; }}\n",
        r"unknown attribute"),
    "unmodelled-built-in": (
        HEAD + "[[kernel]] void k(device float* y [[buffer(0)]], "
        "uint g [[threadgroup_position_in_grid]]) { y[g] = 1.0f; }\n",
        r"unknown attribute|thread_position_in_grid"),
    "gate-that-is-no-function-constant": (
        HEAD + "constant bool flag = true;\n"
        "[[kernel]] void k(device float* y [[buffer(0), function_constant(flag)]], "
        f"{TPIG}) {{ y[i] = 1.0f; }}\n",
        r"gated by flag, which is no \[\[function_constant\]\]"),
    # C++ that Metal lacks
    "throw": (HEAD + f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) {{ if (i == 0) throw 1; }}\n",
              r"exceptions"),
    "try-catch": (HEAD + f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) "
                  "{ try { y[i] = 1.0f; } catch (...) {} }\n", r"exceptions"),
    "new": (HEAD + f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) "
            "{ float* p = new float(1.0f); y[i] = *p; }\n", r"new"),
    "delete": (HEAD + "inline void drop(float* p) { delete p; }\n"
               f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) {{ y[i] = 1.0f; }}\n",
               r"delete"),
    "virtual": (HEAD + "struct B { virtual float f() const { return 1.0f; } };\n"
                f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) {{ B b; y[i] = b.f(); }}\n",
                r"virtual"),
    "recursion": (HEAD + "inline uint fact(uint v) { return v < 2u ? 1u : v * fact(v - 1u); }\n"
                  f"[[kernel]] void k(device uint* y [[buffer(0)]], {TPIG}) {{ y[i] = fact(i); }}\n",
                  r"recursion: fact -> fact"),
    "mutual-recursion": (
        HEAD + "inline uint odd(uint v);\n"
        "inline uint even(uint v) { return v == 0u ? 1u : odd(v - 1u); }\n"
        "inline uint odd(uint v) { return v == 0u ? 0u : even(v - 1u); }\n"
        f"[[kernel]] void k(device uint* y [[buffer(0)]], {TPIG}) {{ y[i] = even(i); }}\n",
        r"recursion"),
    "recursive-template": (
        HEAD + "template <int K> inline float pw(float v) { return K == 0 ? 1.0f : v * pw<K - 1 < 0 ? 0 : K - 1>(v); }\n"
        f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) {{ y[i] = pw<2>(y[i]); }}\n",
        r"recursion"),
    "standard-library-include": (HEAD + "#include <cmath>\n", r"#include <cmath>"),
    "std-namespace": (HEAD + f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) "
                      "{ y[i] = std::fabs(y[i]); }\n", r"std::"),
    "double-literal": (HEAD + f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) "
                       "{ y[i] = y[i] * 0.5; }\n", r"double"),
    "double-variable": (HEAD + f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) "
                        "{ double d = y[i]; y[i] = float(d); }\n", r"double"),
    "long-long": (HEAD + f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) "
                  "{ long long n = i; y[i] = float(n); }\n", r"long long"),
    "static-local": (HEAD + f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) "
                     "{ static float last = 0.0f; y[i] = last; }\n", r"static local"),
    "program-scope-device-variable": (
        HEAD + "float counter = 0.0f;\n"
        f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) {{ y[i] = counter; }}\n",
        r"program-scope variable outside the constant address space"),
    "lambda": (HEAD + f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) "
               "{ auto f = [](float v) { return v; }; y[i] = f(y[i]); }\n", r"lambda"),
    "goto": (HEAD + f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) "
             "{ if (i) goto out; y[i] = 1.0f; out: return; }\n", r"goto"),
    "function-pointer": (
        HEAD + "inline float one(float v) { return 1.0f; }\n"
        f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) "
        "{ float (*f)(float) = one; y[i] = f(y[i]); }\n",
        r"function pointers"),
    "variadic": (HEAD + "inline float first(float v, ...) { return v; }\n"
                 f"[[kernel]] void k(device float* y [[buffer(0)]], {TPIG}) {{ y[i] = first(y[i]); }}\n",
                 r"variadic"),
    # preprocessor-level rules
    "no-fp-contract-pragma": ("#include <metal_stdlib>\n" + GOOD.split("#include <metal_stdlib>\n", 1)[1],
                              r"fp contract"),
    "host-name-instantiation": (
        HEAD + "template <typename T> [[kernel]] void k(device T* y [[buffer(0)]], "
        f"{TPIG}) {{ y[i] = T(1); }}\n"
        "template [[host_name(\"k_float\")]] [[kernel]] decltype(k<float>) k<float>;\n",
        r"host_name"),
    "kernel-keyword": (HEAD + f"kernel void k(device float* y [[buffer(0)]], {TPIG}) {{ y[i] = 1.0f; }}\n",
                       r"`kernel` keyword"),
}


@pytest.mark.parametrize("path", msl.metal_files(), ids=lambda p: p.name)
def test_kernel_sources_pass(clang, path):
    problems = msl.lint(path)
    assert not problems, "\n".join(problems)


def test_good_example_passes(clang, tmp_path):
    """The baseline the bad examples start from is clean, so each of those
    fails for its own reason."""
    f = tmp_path / "good.metal"
    f.write_text(GOOD)
    assert msl.lint(f) == []


@pytest.mark.parametrize("name", list(BAD))
def test_rule_fires(clang, tmp_path, name):
    text, pattern = BAD[name]
    f = tmp_path / f"{name}.metal"
    f.write_text(text)
    problems = msl.lint(f)
    assert problems, f"{name}: invalid Metal passed the lint"
    assert any(re.search(pattern, p) for p in problems), "\n".join(problems)


def test_type_check_mode_really_has_address_spaces(clang, tmp_path):
    """The execution mode erases address spaces; the type-check mode must not
    (or the address-space examples above would be vacuous)."""
    f = tmp_path / "as.metal"
    f.write_text(BAD["device-to-thread-reference"][0])
    r = msl.typecheck(f, ast=False)
    assert r.errors and "cannot bind reference in address space '1'" in r.stderr, r.stderr
