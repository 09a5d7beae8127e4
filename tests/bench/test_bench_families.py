"""`flashsnn bench --family` for every family of the fused-family table
(flashsnn/ops/_table.py), on a tiny case. No timing is asserted: these check
that each family runs, passes its parity gate, gets its own byte floor, and
that a family the table does not have is a clear error."""

from __future__ import annotations

import json

import numpy as np

import pytest

import flashsnn as fs
from flashsnn import cli
from flashsnn.bench import registry, runner
from flashsnn.ops._table import DELAYED, FAMILIES

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason() is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason()}")

TINY = ["--shapes", "6,2,16", "--repeat", "2", "--warmup", "1", "--no-progress",
        "--rounds", "1"]
OWN = ("fused", "fused+learn", "reference", "reference+compile")


@pytest.mark.parametrize("family", sorted(registry.BENCHMARKS))
def test_each_family_runs_with_parity(tmp_path, family):
    """Through the `flashsnn` command, as users run it: every own path and
    x*2 timed, parity ok (spikes, every state, dx of the timed vjp and of
    the per-call graph), a floor and a summary row per pass."""
    out = tmp_path / "b.json"
    argv = ["bench", "--family", family, *TINY, "--modes", "throughput", "latency",
            "--impls", *OWN, "--out", str(out)]
    assert cli.main(argv) == 0
    data = json.loads(out.read_text())
    assert data["family"] == family
    rows = {(r["impl"], r["pass"], r["mode"]): r for r in data["rows"] if "pass" in r}
    for impl in OWN:
        for pas in ("fwd", "fwd+bwd"):
            for mode in ("throughput", "latency"):
                r = rows[(impl, pas, mode)]
                assert r["parity_ok"], r["parity"]
                assert r["case"].startswith(f"{family} T=6 B=2 N=16")
            par = rows[(impl, "fwd+bwd", "throughput")]["parity"]
            fam = registry.table_family(family)
            for state in fam.states[:fam.n_outputs]:  # each state output is compared
                assert f"{state} rel" in par
            assert "dx rel" in par and "per-call dx rel" in par
            assert rows[(impl, "fwd+bwd", "throughput")]["floor_ms"] > 0
    assert ("x*2", "fwd", "throughput") in rows
    summ = {s["pass"]: s for s in data["summary"]}
    assert set(summ) == {"fwd", "fwd+bwd"}
    for pas, s in summ.items():
        fused, ref = rows[("fused", pas, "throughput")], rows[("reference", pas, "throughput")]
        assert s["reference_vs_fused"] == pytest.approx(ref["median_ms"] / fused["median_ms"])
        assert s["fused_vs_floor"] == pytest.approx(fused["vs_floor"])
    md = out.with_suffix(".md").read_text()
    assert "| case | pass | fused ms | fused vs reference | fused vs floor |" in md


def test_if_bench_is_leaky_with_beta_one():
    """`--family if` runs Leaky at beta = 1: spikes and membrane as a
    hand-written integrate-and-fire loop (snnTorch's delayed subtract reset),
    and SpikingJelly's IFNode is its peer (GPU only)."""
    case = registry.Case("if", 9, 2, 8)
    assert case.fam is FAMILIES["leaky"] and case.params == {"beta": 1.0, "threshold": 1.0}
    x = registry.make_inputs(case)["x"]
    spk, mem = case.op(x, backend="fused")
    xs = np.array(x)
    u, want = np.zeros(xs.shape[1:], np.float32), []
    for t in range(case.T):
        reset = (u > 1.0).astype(np.float32)
        u = u + xs[t] - reset * 1.0
        want.append((u > 1.0).astype(np.float32))
    np.testing.assert_array_equal(np.array(spk), np.stack(want))
    np.testing.assert_allclose(np.array(mem), u, rtol=1e-6, atol=1e-6)
    peers = {i.name: i for i in registry.BENCHMARKS["if"]["impls"]}
    assert "spikingjelly" in peers
    assert peers["spikingjelly"].available("cpu") is not None  # said why, not run


def _old_leaky_floor(case, pas):
    """Leaky's floor as it was written before the family table."""
    e = 4 if case.dtype == "float32" else 2
    plane, state = case.T * case.B * case.N, case.B * case.N
    fwd = plane * 2 * e + state * e
    if pas == "fwd":
        return fwd
    return fwd + plane * 4 + (plane * 4 + plane * e + state * e) + plane * e


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(100, 32, 1024), (25, 128, 256), (7, 3, 5)])
def test_leaky_floor_is_the_old_formula(shape, dtype):
    case = registry.Case("leaky", *shape, dtype)
    for pas in ("fwd", "fwd+bwd"):
        assert runner.floor_bytes(case, pas) == _old_leaky_floor(case, pas)


def test_floor_grows_with_the_family():
    """More states and saves, and a backward that rereads x, cost bytes."""
    from flashsnn._backend import ext
    fams = ext.families()
    for name, fam in FAMILIES.items():
        _, _, _, reads_x, _, _, saves, outputs = fams[fam.id]
        case = registry.Case(name, 10, 4, 8)
        plane, state = 10 * 4 * 8, 4 * 8
        assert runner.floor_bytes(case, "fwd") == 4 * (2 * plane + outputs * state)
        bwd_extra = runner.floor_bytes(case, "fwd+bwd") - runner.floor_bytes(case, "fwd")
        assert bwd_extra == 4 * (2 * saves[DELAYED] * plane + reads_x * plane + 2 * plane
                                 + outputs * state)


def test_every_family_has_the_same_shapes_and_implementations():
    leaky = registry.BENCHMARKS["leaky"]
    assert set(registry.BENCHMARKS) == set(FAMILIES) | set(registry.VARIANTS)
    for name, bench in registry.BENCHMARKS.items():
        for device in ("cpu", "gpu"):
            assert [c.shape for c in bench[device]] == [c.shape for c in leaky[device]]
            assert {c.family for c in bench[device]} == {name}
        names = [i.name for i in bench["impls"]]
        assert set(OWN) | {"x*2"} <= set(names)
    # Leaky keeps the other libraries
    assert {"mlx-snn", "mlx-snn+compile", "snntorch", "spikingjelly", "torch x*2"} <= {
        i.name for i in leaky["impls"]}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_inputs_have_one_cotangent_per_state_output(family):
    case = registry.Case(family, 5, 2, 3)
    inp = registry.make_inputs(case)
    assert inp["cs"].shape == case.shape
    assert [c.shape for c in inp["cstates"]] == [(2, 3)] * FAMILIES[family].n_outputs
    assert inp["cm"] is inp["cstates"][-1]  # the membrane's, for the other libraries
    bare = registry.make_inputs(case, cotangents=False)
    assert bare["cs"] is None and bare["cstates"] is None


def test_unknown_family_lists_the_valid_ones(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert runner.main([*TINY, "--family", "hodgkin_huxley", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"[bench] unknown family 'hodgkin_huxley'; valid: {', '.join(sorted([*FAMILIES, 'if']))}" in err
    assert not out.exists()
