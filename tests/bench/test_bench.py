"""`flashsnn bench` (python/flashsnn/bench): the runner on a tiny case.

Checks what a reader of its table relies on: a parity gate before timing,
every implementation's passes timed in interleaved rounds (so a drifting
machine slows them all alike), ratios against the fused op and x*2, and
clear errors for bad arguments."""

from __future__ import annotations

import json

import pytest

import flashsnn as fs
from flashsnn.bench import runner

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason() is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason()}")

TINY = ["--shapes", "6,2,16", "--repeat", "6", "--warmup", "1", "--no-progress"]


def test_rounds_interleave_implementations(tmp_path, monkeypatch):
    calls = []
    real = runner.time_it

    def spy(prep, fn, repeat, warmup, budget, device):
        calls.append(prep)
        return real(prep, fn, repeat, warmup, budget, device)

    monkeypatch.setattr(runner, "time_it", spy)
    out = tmp_path / "b.json"
    rc = runner.main([*TINY, "--impls", "fused", "reference", "--rounds", "3", "--out", str(out),
                      "--modes", "throughput"])
    assert rc == 0
    # per round: fused fwd, fused fwd+bwd, reference fwd, reference fwd+bwd, x*2 fwd
    assert len(calls) == 3 * 5
    order = [id(p) for p in calls]
    first_round = order[:5]
    assert order == first_round * 3, "each round must visit every implementation in turn"

    rows = json.loads(out.read_text())["rows"]
    assert {r["mode"] for r in rows if "pass" in r} == {"throughput"}
    timed = {(r["impl"], r["pass"]): r for r in rows if "pass" in r}
    assert set(timed) == {("fused", "fwd"), ("fused", "fwd+bwd"), ("reference", "fwd"),
                          ("reference", "fwd+bwd"), ("x*2", "fwd")}
    for r in timed.values():
        assert r["rounds"] == 3
        assert r["runs"] == 3 * 3  # ceil(6 / 3) = 2 repeats, at least 3 per round
        assert r["min_ms"] <= r["median_ms"]
    assert timed[("fused", "fwd")]["parity_ok"] and timed[("reference", "fwd+bwd")]["parity_ok"]
    assert timed[("fused", "fwd+bwd")]["vs_fused"] == 1.0
    ref = timed[("reference", "fwd+bwd")]
    assert ref["vs_fused"] == pytest.approx(ref["median_ms"] / timed[("fused", "fwd+bwd")]["median_ms"])
    assert "| fused |" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize("argv,msg", [
    (["--rounds", "0"], r"\[bench\] --rounds must be at least 1"),
    (["--impls", "nope"], r"\[bench\] unknown implementation\(s\) \['nope'\]; valid: "),
    (["--shapes", "6,2"], r"\[bench\] --shapes takes T,B,N triples"),
    (["--shapes", "6,0,16"], r"\[bench\] --shapes takes T,B,N triples"),
    (["--mlx-cache-limit", "-2"], r"\[bench\] --mlx-cache-limit takes MB >= 0, or -1"),
])
def test_bad_arguments(tmp_path, capsys, argv, msg):
    import re
    assert runner.main([*TINY, *argv, "--out", str(tmp_path / "b.json")]) == 2
    assert re.search(msg, capsys.readouterr().err)


@pytest.fixture
def keep_cache_limit():
    import mlx.core as mx
    before = mx.set_cache_limit(32 << 20)
    mx.set_cache_limit(before)
    yield
    mx.set_cache_limit(before)


@pytest.mark.parametrize("argv,limit,shown", [
    ([], 5 << 20, "mlx cache limit 5 MB (MLX's own)"),          # default: left as it was
    (["--mlx-cache-limit", "64"], 64 << 20, "mlx cache limit 64 MB"),
    (["--mlx-cache-limit", "-1"], 5 << 20, "mlx cache limit 5 MB (MLX's own)"),
])
def test_mlx_cache_limit(tmp_path, keep_cache_limit, argv, limit, shown):
    import mlx.core as mx
    mx.set_cache_limit(5 << 20)
    out = tmp_path / "b.json"
    assert runner.main([*TINY, "--impls", "fused", "--rounds", "1", *argv, "--out", str(out)]) == 0
    assert mx.set_cache_limit(5 << 20) == limit
    head = out.with_suffix(".md").read_text().splitlines()[0]
    assert f"| {shown} | command `" in head  # the command that ran ends the first line
    assert json.loads(out.read_text())["machine"]["mlx cache limit"] == shown.split("limit ")[1]


def test_own_paths_run_in_16_bit_and_others_are_skipped(tmp_path):
    """flashsnn's paths (fused+learn included) run in every dtype under the
    strict parity check; other libraries are float32 only."""
    out = tmp_path / "b.json"
    rc = runner.main([*TINY, "--dtype", "float16", "--rounds", "1", "--out", str(out),
                      "--impls", "fused", "fused+learn", "reference", "snntorch"])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    timed = {r["impl"] for r in rows if "pass" in r}
    assert {"fused", "fused+learn", "reference", "x*2"} <= timed
    assert all(r["parity_ok"] for r in rows if "pass" in r)
    skipped = {r["impl"]: r["skipped"] for r in rows if "skipped" in r}
    if "snntorch" in skipped:  # "float32 only", or not installed
        assert "snntorch" not in timed
