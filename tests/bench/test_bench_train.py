"""`flashsnn bench-train` (python/flashsnn/bench/train_step.py) on tiny
workloads: every installed implementation is checked, measured and timed;
the JSON and the table say so; a broken step or a flashsnn path that does
not compute the same loss is reported as FAIL; bad arguments are refused."""

from __future__ import annotations

import json

import mlx.core as mx
import pytest

import flashsnn as fs
from flashsnn import _device
from flashsnn.bench import train_impls, train_step

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason() is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason()}")

TINY = ["--mlp", "5,8", "--conv", "6,8", "--repeat", "3", "--rounds", "1", "--warmup", "1",
        "--no-progress"]


def run(tmp_path, *argv):
    out = tmp_path / "t.json"
    rc = train_step.main([*TINY, *argv, "--out", str(out)])
    return rc, out


def rows_of(out):
    return json.loads(out.read_text())["rows"]


def test_every_installed_implementation_runs_on_both_models(tmp_path):
    rc, out = run(tmp_path)
    assert rc == 0
    first = out.read_text().splitlines()[0]
    assert first.startswith('{"machine": {') and '"command": ' in first
    assert '"mlx": "' in first and '"cores": ' in first
    rows = rows_of(out)
    for model in ("mlp", "conv"):
        w = train_impls.Workload(model, 5 if model == "mlp" else 6, 8)
        got = {r["impl"]: r for r in rows if r["workload"] == w.label}
        assert set(got) == {i.name for i in train_impls.IMPLS}
        for impl in train_impls.IMPLS:
            r = got[impl.name]
            if impl.available(w, "cpu"):
                assert r["skipped"] == impl.available(w, "cpu")
                continue
            assert r["check_ok"], r
            assert r["runs"] == 3 and 0 < r["min_ms"] <= r["median_ms"]
            assert r["peak_mb"] > 0 and r["peak_by"]
            assert len(r["losses"]) == 6 and r["losses"][-1] < r["losses"][0] + 0.1
            if r["framework"] == "mlx":
                assert r["peak_by"].startswith("MLX") and r["mlx_peak_mb"] > 0
        assert got["fused+compile"]["vs_baseline"] == 1.0
        ref = got["reference"]
        assert ref["vs_baseline"] == pytest.approx(
            ref["median_ms"] / got["fused+compile"]["median_ms"])
        # the same weights: flashsnn's three paths start from the same loss
        for name in ("fused", "reference"):
            assert got[name]["first_loss_rel_diff"] <= 1e-5
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# flashsnn bench-train on cpu | ")
    assert "| fused+compile |" in md and "FAIL" not in md


def test_a_flashsnn_path_with_other_weights_fails_the_check(tmp_path, monkeypatch):
    real = train_impls.flashsnn_model

    def other_weights(w, backend, seed):
        return real(w, backend, seed + (backend == "reference"))

    monkeypatch.setattr(train_impls, "flashsnn_model", other_weights)
    rc, out = run(tmp_path, "--models", "mlp", "--impls", "fused+compile", "reference")
    assert rc == 1
    got = {r["impl"]: r for r in rows_of(out)}
    assert got["fused+compile"]["check_ok"]
    assert not got["reference"]["check_ok"]
    assert "first-step loss" in got["reference"]["check"]
    md = out.with_suffix(".md").read_text()
    assert "| reference | " in md and "| FAIL | " in md


def test_a_step_that_does_not_learn_fails_the_check(tmp_path, monkeypatch):
    real = train_impls.IMPLS[0].prepare

    def frozen(w, data, device, seed):               # Adam with learning rate 0
        import dataclasses
        return real(dataclasses.replace(w, lr=0.0), data, device, seed)

    monkeypatch.setattr(train_impls.IMPLS[0], "prepare", frozen)
    rc, out = run(tmp_path, "--models", "mlp", "--impls", "fused+compile")
    assert rc == 1
    (r,) = rows_of(out)
    assert not r["check_ok"] and "did not decrease" in r["check"]


def test_memory_is_measured_one_implementation_at_a_time(tmp_path):
    rc, out = run(tmp_path, "--models", "conv", "--impls", "fused+compile", "reference")
    assert rc == 0
    got = {r["impl"]: r for r in rows_of(out)}
    # T=6 B=8: the first layer's [6, 8, 28, 28, 16] float32 spikes alone are 2.4 MB
    for r in got.values():
        assert 2.4 < r["mlx_peak_mb"] < 500
        assert r.get("rss_growth_mb") is None or r["rss_growth_mb"] >= 0


@pytest.mark.parametrize("argv, msg", [
    (["--mlp", "5"], r"--mlp takes T,B \(positive\), such as 25,128; got '5'"),
    (["--conv", "0,8"], r"--conv takes T,B"),
    (["--impls", "nope"], r"unknown implementation\(s\) \['nope'\]; valid: \['fused\+compile'"),
    (["--check-steps", "1"], r"--check-steps must be at least 2"),
    (["--torch-threads", "0"], r"--torch-threads must be at least 1"),
])
def test_bad_arguments(tmp_path, capsys, argv, msg):
    import re
    rc, _ = run(tmp_path, *argv)
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("flashsnn bench-train: error: ") and re.search(msg, err), err


def test_gpu_without_a_gpu_is_refused_with_the_choices(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_device.mx, "is_available", lambda d: d == mx.cpu)
    rc, out = run(tmp_path, "--device", "gpu")
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "this MLX has no GPU" in err and "choose from 'cpu', 'gpu'" in err


def test_flashsnn_command_wires_bench_train(capsys):
    from flashsnn.cli import main
    with pytest.raises(SystemExit) as e:
        main(["bench-train", "--help"])
    assert e.value.code == 0
    assert "--torch-threads" in capsys.readouterr().out
