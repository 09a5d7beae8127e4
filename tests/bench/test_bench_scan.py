"""`flashsnn bench --family selective_scan` on tiny shapes: every path runs,
passes its parity check against the reference, gets a floor; the per-call
modes run; --memory reports both peaks. No timing is asserted."""

from __future__ import annotations

import importlib.util
import json

import mlx.core as mx
import pytest

import flashsnn as fs
from flashsnn import cli

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason(mx.cpu) is not None,
                                reason="no fused kernel")


def test_every_path_runs_with_parity(tmp_path):
    out = tmp_path / "s.json"
    assert cli.main(["bench", "--family", "selective_scan", "--shapes", "2,9,5,3", "1,70,33,4",
                     "--repeat", "2", "--budget", "1", "--modes", "throughput", "--out",
                     str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    timed = {(r["impl"], r["pass"], tuple(r["shape"])): r for r in rows if "ms" in r}
    assert {r["mode"] for r in timed.values()} == {"throughput"}
    impls = {"fused", "reference", "reference+compile"}
    if importlib.util.find_spec("torch"):
        impls.add("torch loop")
    for shape in ((2, 9, 5, 3), (1, 70, 33, 4)):
        for impl in impls:
            for pas in ("fwd", "fwd+bwd"):
                r = timed[(impl, pas, shape)]
                assert r["parity"].startswith("ok"), r
                assert r["ms"] > 0 and r["floor_ms"] > 0
        assert ("x*2", "fwd", shape) in timed


def test_memory_mode(tmp_path):
    out = tmp_path / "m.json"
    assert cli.main(["bench", "--family", "selective_scan", "--memory", "--shapes", "1,600,64,4",
                     "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["memory"]
    fused, ref = row["fused_peak_mb"], row["reference_peak_mb"]
    # The fused outputs live in flashsnn's cache: counted there, not in MLX's
    # ([1, 600, 64] float32 is 150 KB, past the 128 KB below which outputs
    # stay with MLX's allocator, src/no_gpu/buffers.cpp).
    assert fused["flashsnn"] > 0 and fused["total"] == fused["mlx"] + fused["flashsnn"]
    assert ref["total"] > fused["total"] > row["inputs_mb"] > 0


def test_bad_shapes_and_memory_elsewhere_are_errors(capsys):
    assert cli.main(["bench", "--family", "selective_scan", "--shapes", "2,9,5"]) == 2
    assert capsys.readouterr().err == (
        "flashsnn bench: error: --shapes '2,9,5': takes B,L,D,N quadruples for selective_scan "
        "such as 32,100,256,16 (4 positive integers; got 3 values)\n")
    assert cli.main(["bench", "--family", "selective_scan", "--shapes", "2,9,5,3", "2,0,5,3"]) == 2
    assert capsys.readouterr().err == (
        "flashsnn bench: error: --shapes '2,0,5,3': L must be a positive integer; got '0'\n")
    assert cli.main(["bench", "--family", "leaky", "--memory"]) == 2
    assert "[bench] --memory is for --family selective_scan" in capsys.readouterr().err


def test_per_call_modes(tmp_path):
    """--modes latency busy: the fused op one call at a time in fresh
    processes, both passes, without the throughput table."""
    out = tmp_path / "p.json"
    assert cli.main(["bench", "--family", "selective_scan", "--shapes", "1,20,8,4", "--modes",
                     "latency", "busy", "--budget", "1", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {(r["mode"], r["pass"]) for r in rows} == {
        (m, p) for m in ("latency", "busy") for p in ("fwd", "fwd+bwd")}
    assert all(r["impl"] == "fused" and r["ms"] > 0 and r["runs"] >= 3 for r in rows)
