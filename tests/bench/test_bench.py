"""`flashsnn bench` (python/flashsnn/bench): the runner on a tiny case.

Checks what a reader of its table relies on: a parity gate before timing,
every implementation's passes timed in interleaved rounds (so a drifting
machine slows them all alike), ratios against the fused op and x*2, and
clear errors for bad arguments."""

from __future__ import annotations

import json
import re
import sys

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
    (["--rounds", "0"], r"--rounds must be at least 1"),
    (["--impls", "nope"], r"unknown implementation\(s\) \['nope'\]; valid: fused, "
                          r"fused\+learn, .*x2 \(or 'x\*2'\), torch-x2 \(or 'torch x\*2'\)$"),
    (["--shapes", "6,2"], r"--shapes '6,2': takes T,B,N triples such as 100,32,1024 "
                          r"\(3 positive integers; got 2 values\)"),
    (["--shapes", "0,1,1"], r"--shapes '0,1,1': T must be a positive integer; got '0'$"),
    (["--shapes", "6,2,16", "6,-2,16"], r"--shapes '6,-2,16': B must be a positive integer"),
    (["--shapes", "6,2,x"], r"--shapes '6,2,x': N must be a positive integer; got 'x'$"),
    (["--mlx-cache-limit", "-2"], r"--mlx-cache-limit takes MB >= 0, or -1"),
    (["--family", "nope"], r"\[bench\] unknown family 'nope'; valid: alif, "),
])
def test_bad_arguments(tmp_path, capsys, argv, msg):
    import re
    assert runner.main([*TINY, *argv, "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flashsnn bench: error: ") and err.count("\n") == 1, err
    assert re.search(msg, err.strip()), err


def test_gpu_without_a_gpu_is_one_tagged_line(tmp_path, capsys):
    import mlx.core as mx
    if mx.is_available(mx.gpu):
        pytest.skip("this machine has a GPU")
    assert runner.main([*TINY, "--device", "gpu", "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flashsnn bench: error: --device gpu: ") and err.count("\n") == 1
    assert "this MLX has no GPU" in err and "choose from 'cpu', 'gpu'" in err
    assert not (tmp_path / "b.json").exists()


def test_implementations_go_by_names_without_spaces_or_stars():
    impls = runner.BENCHMARKS["leaky"]["impls"]
    names = lambda argv: [i.name for i in runner.select_impls(impls, argv)]  # noqa: E731
    assert "torch x*2" in names(["torch-x2"]) and "torch x*2" in names(["torch x*2"])
    assert names(["fused", "x2"]) == names(["fused", "x*2"]) == names(["fused"])  # x*2 always
    assert runner.impl_alias("torch x*2") == "torch-x2" and runner.impl_alias("fused") == "fused"
    with pytest.raises(ValueError, match=r"unknown implementation\(s\) \['torch_x2'\]"):
        names(["torch_x2"])


def test_help_says_what_it_writes_and_the_defaults(capsys):
    from flashsnn.cli import main
    with pytest.raises(SystemExit) as e:
        main(["bench", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Time every implementation of a neuron family" in out
    assert "Writes (and overwrites) the JSON results to --out, ./flashsnn-bench.json" in out
    for default in ("(default: leaky)", "(default: cpu)", "(default: float32)", "(default: 20)",
                    "(default: 3)", "(default: 10)", "(default: ./flashsnn-bench.json)"):
        assert default in out, default
    assert "x floor below 1" in out and "torch-x2 for 'torch x*2'" in out


def _row(impl, vs_floor):
    return {"case": "T=1 B=2 N=16 float32", "pass": "fwd", "impl": impl, "mode": "throughput",
            "median_ms": 0.01, "parity_ok": True, "parity": "ok", "vs_fused": 1.0,
            "vs_x2": 1.0, "vs_floor": vs_floor, "yardstick": False}


@pytest.mark.parametrize("vs_floor,note", [(0.4, True), (1.3, False), (None, False)])
def test_a_floor_ratio_below_1_is_explained_under_the_table(vs_floor, note):
    text = runner.table([_row("fused", vs_floor)], {"device": "cpu"})
    assert ("x floor: x floor below 1 (e.g. at T=1)" in text) == note, text


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    argv = [a for a in TINY if a != "--no-progress"] + [
        "--impls", "fused", "--rounds", "1", "--modes", "throughput"]
    assert runner.main([*argv, "--out", str(tmp_path / "b.json")]) == 0
    bar = re.compile(r"\d+/\d+ \[")                         # tqdm's "3/8 [00:01<..."
    assert not bar.search(capsys.readouterr().err)          # a pipe: no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert runner.main([*argv, "--out", str(tmp_path / "b.json")]) == 0
    assert bar.search(capsys.readouterr().err)              # a terminal: the bar


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
