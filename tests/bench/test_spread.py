"""python/flashsnn/bench/spread.py: several `flashsnn bench` runs side by side.

Synthetic runs with hand-picked times, so every median, range and per-run
ratio below is known exactly."""

from __future__ import annotations

import json

import pytest

from flashsnn.bench import spread

CASE = "leaky T=4 B=2 N=8 float32"


def _run(path, fused_ms, x2_ms, other_ms, machine=None):
    rows = [{"case": CASE, "impl": "spikingjelly", "skipped": "not installed"}]
    for impl, ms in (("fused", fused_ms), ("mlx-snn", other_ms), ("x*2", x2_ms)):
        rows.append({"case": CASE, "impl": impl, "pass": "fwd+bwd" if impl != "x*2" else "fwd",
                     "median_ms": ms, "vs_fused": ms / fused_ms, "vs_x2": ms / x2_ms,
                     "parity_ok": True, "yardstick": impl == "x*2"})
    path.write_text(json.dumps({"machine": machine or {"device": "cpu", "cpu": "test"},
                                "rows": rows, "command": "test"}))
    return path


def test_medians_ranges_and_per_run_ratios(tmp_path):
    files = [_run(tmp_path / "a.json", 2.0, 1.0, 300.0),   # 2.0x x*2, 150x
             _run(tmp_path / "b.json", 4.0, 1.0, 200.0),   # 4.0x x*2, 50x
             _run(tmp_path / "c.json", 3.0, 0.5, 330.0)]   # 6.0x x*2, 110x
    summary = {(e["impl"], e["pass"]): e for e in spread.summarize(spread.load(files))}
    fused = summary[("fused", "fwd+bwd")]
    assert fused["median_ms"]["runs"] == [2.0, 4.0, 3.0]
    assert (fused["median_ms"]["median"], fused["median_ms"]["min"],
            fused["median_ms"]["max"]) == (3.0, 2.0, 4.0)
    # each ratio within its own run: the median of 2, 4, 6, not 3.0 / 1.0
    assert fused["vs_x2"]["median"] == pytest.approx(4.0)
    other = summary[("mlx-snn", "fwd+bwd")]
    assert other["vs_fused"]["runs"] == pytest.approx([150.0, 50.0, 110.0])
    assert other["vs_fused"]["median"] == pytest.approx(110.0)
    text = spread.table(spread.load(files), list(summary.values()))
    assert text.startswith("# spread of 3 `flashsnn bench` runs\n")
    assert f"| {CASE} | fwd+bwd | fused | 3 | 3.00 (2.00-4.00) | 1.00 (1.00-1.00) | " \
           "4.00 (2.00-6.00) |" in text
    assert "| b.json | 4.000 | 4.00 | 50.0 |" in text
    assert "spikingjelly" not in text  # skipped rows are not runs


def test_a_run_missing_an_implementation(tmp_path):
    a = _run(tmp_path / "a.json", 2.0, 1.0, 300.0)
    b = tmp_path / "b.json"
    data = json.loads(a.read_text())
    data["rows"] = [r for r in data["rows"] if r["impl"] != "mlx-snn"]
    b.write_text(json.dumps(data))
    summary = {e["impl"]: e for e in spread.summarize(spread.load([a, b]))}
    assert summary["mlx-snn"]["vs_fused"]["runs"] == [150.0, None]
    assert summary["mlx-snn"]["median_ms"]["n"] == 1
    text = spread.table(spread.load([a, b]), list(summary.values()))
    assert "| b.json | 2.000 | 2.00 |  |" in text


def test_a_failed_parity_check_is_not_a_time(tmp_path):
    """The runner prints FAIL instead of ratios for it; so does the spread."""
    a = _run(tmp_path / "a.json", 2.0, 1.0, 300.0)
    b = _run(tmp_path / "b.json", 1.0, 1.0, 300.0)
    data = json.loads(b.read_text())
    next(r for r in data["rows"] if r["impl"] == "fused")["parity_ok"] = False
    b.write_text(json.dumps(data))
    fused = next(e for e in spread.summarize(spread.load([a, b])) if e["impl"] == "fused")
    assert fused["median_ms"]["runs"] == [2.0, None]


def test_machines_that_differ_are_named(tmp_path):
    files = [_run(tmp_path / "a.json", 2.0, 1.0, 300.0, {"device": "cpu", "cpu": "one"}),
             _run(tmp_path / "b.json", 2.0, 1.0, 300.0, {"device": "cpu", "cpu": "two"})]
    runs = spread.load(files)
    assert "on 2 different machine setups" in spread.table(runs, spread.summarize(runs))


def test_bad_files(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": []}))
    assert spread.main([str(bad)]) == 2
    assert "[spread] cannot read" in capsys.readouterr().err
    assert spread.main([str(other)]) == 2
    assert "is not a `flashsnn bench` JSON file" in capsys.readouterr().err
    assert spread.main([str(tmp_path / "missing.json")]) == 2


def test_main_writes_the_table(tmp_path, capsys):
    a = _run(tmp_path / "a.json", 2.0, 1.0, 300.0)
    out = tmp_path / "out" / "spread.md"
    assert spread.main([str(a), "--out", str(out)]) == 0
    assert out.read_text() == capsys.readouterr().out


def test_per_call_modes_are_passes_of_their_own(tmp_path):
    """Rows of --modes other than throughput are summarized apart, each
    ratio within its own mode; rows without a mode are throughput's."""
    a = _run(tmp_path / "a.json", 2.0, 1.0, 300.0)
    data = json.loads(a.read_text())
    busy = [dict(r, mode="busy", median_ms=r["median_ms"] * 10) for r in data["rows"] if "pass" in r]
    data["rows"] += busy
    a.write_text(json.dumps(data))
    summary = {(e["impl"], e["pass"]): e for e in spread.summarize(spread.load([a]))}
    assert summary[("fused", "fwd+bwd")]["median_ms"]["runs"] == [2.0]
    assert summary[("fused", "fwd+bwd busy")]["median_ms"]["runs"] == [20.0]
    assert summary[("x*2", "fwd busy")]["median_ms"]["runs"] == [10.0]
