"""`flashsnn bench --modes` (python/flashsnn/bench/percall.py): one call at a
time as users make it, each in a fresh process: with MLX's cache as users
have it (latency), with the cache off, and after other MLX work (busy), on a
tiny case. No timing is asserted: these
check what each mode does, what the JSON and the table carry, and the order
the modes run in."""

from __future__ import annotations

import json
import re

import mlx.core as mx
import pytest

import flashsnn as fs
from flashsnn.bench import percall, registry, runner

ON_CPU = mx.default_device().type is mx.cpu

pytestmark = pytest.mark.skipif(fs.fused_unavailable_reason() is not None,
                                reason=f"no fused kernel: {fs.fused_unavailable_reason()}")

TINY = ["--shapes", "6,2,16", "--repeat", "3", "--warmup", "1", "--no-progress",
        "--rounds", "1", "--impls", "fused"]


def _limit() -> int:
    """MLX's cache limit, read without changing it."""
    cur = mx.set_cache_limit(0)
    mx.set_cache_limit(cur)
    return cur


@pytest.fixture
def keep_cache_limit():
    before = _limit()
    yield
    mx.set_cache_limit(before)


def test_all_modes_in_one_run(tmp_path, keep_cache_limit):
    out = tmp_path / "b.json"
    assert runner.main([*TINY, "--modes", "busy", "latency", "throughput", "cache-off",
                        "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["modes"] == ["throughput", "latency", "cache-off", "busy"]  # run order
    assert data["busy_routine"]["calls"] == 348
    rows = {(r["impl"], r["pass"], r["mode"]): r for r in data["rows"] if "pass" in r}
    want = {(i, p, m) for i, p in (("fused", "fwd"), ("fused", "fwd+bwd"), ("x*2", "fwd"))
            for m in percall.MODES}
    assert set(rows) == want
    for (impl, pas, mode), r in rows.items():
        assert r["runs"] == 3 and r["parity_ok"]
        if mode != "throughput":
            assert r["cache_limit_mb"] == (0 if mode == "cache-off" else _limit() / 2**20)
            assert r["page_faults_per_call"] >= 0
        if mode == "latency":
            t = rows[(impl, pas, "throughput")]["median_ms"]
            assert r["vs_throughput"] == pytest.approx(r["median_ms"] / t)
        elif mode != "throughput":
            lat = rows[(impl, pas, "latency")]["median_ms"]
            assert r["vs_latency"] == pytest.approx(r["median_ms"] / lat)
        # x fused and x (x*2) are taken within the mode
        x2 = rows[("x*2", "fwd", mode)]["median_ms"]
        assert r["vs_x2"] == pytest.approx(r["median_ms"] / x2)
    assert "floor_ms" in rows[("fused", "fwd", "throughput")]
    assert "floor_ms" not in rows[("fused", "fwd", "latency")]
    # the per-call graph was checked against the reference before timing
    assert "per-call dx rel" in rows[("fused", "fwd+bwd", "busy")]["parity"]
    md = out.with_suffix(".md").read_text()
    assert ("| case | pass | implementation | throughput | latency (x throughput) | "
            "cache-off (x latency) | busy (x latency) |") in md
    assert re.search(r"\| fwd\+bwd \| fused \| [\d.]+ \| [\d.]+ \([\d.]+x\) \| [\d.]+ \([\d.]+x\) "
                     r"\| [\d.]+ \([\d.]+x\) \|", md)


def test_throughput_only_is_the_old_run(tmp_path):
    out = tmp_path / "b.json"
    assert runner.main([*TINY, "--modes", "throughput", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {r["mode"] for r in data["rows"] if "pass" in r} == {"throughput"}
    assert data["busy_routine"] is None
    assert "Per call" not in out.with_suffix(".md").read_text()


@pytest.mark.parametrize("modes", [["fast"], ["latency", "busy", "warm"]])
def test_bad_modes(tmp_path, capsys, modes):
    assert runner.main([*TINY, "--modes", *modes, "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    bad = [m for m in modes if m not in percall.MODES]
    assert f"[bench] unknown mode(s) {bad}; valid: throughput, latency, cache-off, busy" in err
    assert not (tmp_path / "b.json").exists()


def _calls(monkeypatch):
    """Counts mx.synchronize calls and records the cache limit each call of
    the measured function ran under."""
    seen = {"sync": 0, "limits": [], "cache_at_first_call": None}
    real_sync = mx.synchronize

    def sync(*a):
        seen["sync"] += 1
        return real_sync(*a)

    monkeypatch.setattr(mx, "synchronize", sync)
    x = mx.ones((4, 8))

    def fn():
        if seen["cache_at_first_call"] is None:
            seen["cache_at_first_call"] = mx.get_cache_memory()
        seen["limits"].append(_limit())
        return fs.ops.leaky(x, beta=0.9)
    return seen, fn


@pytest.mark.parametrize("mode", percall.PER_CALL)
def test_each_call_is_evaluated_and_synchronized(monkeypatch, keep_cache_limit, mode):
    mx.set_cache_limit(7 << 20)
    seen, fn = _calls(monkeypatch)
    for n in (1000, 3000, 9000):  # buffers freed into the cache before the measurement
        mx.eval(mx.arange(n, dtype=mx.float32) * 2)
    # MLX's GPU backends free buffers from their completion thread, so what
    # the cache holds at a given moment is checked on the CPU only.
    assert mx.get_cache_memory() > 0 or not ON_CPU
    times, info = percall.measure(mode, fn, repeat=4, warmup=2, budget=10.0)
    assert len(times) == 4
    assert seen["sync"] == 2 + 4  # one per call, warm-up included
    assert seen["limits"] == [0 if mode == "cache-off" else 7 << 20] * 6
    assert _limit() == 7 << 20  # cache-off restores the limit
    assert info["cache_limit_mb"] == (0 if mode == "cache-off" else 7)
    assert info["page_faults_per_call"] >= 0
    if mode == "busy":
        assert info["busy"]["calls"] == 348
        if ON_CPU:
            assert info["busy"]["cache_mb"] > 0 and seen["cache_at_first_call"] > 0  # filled first
    else:
        assert "busy" not in info
        if ON_CPU:
            assert seen["cache_at_first_call"] == 0  # emptied first


def test_cache_off_restores_the_limit_when_a_call_fails(keep_cache_limit):
    mx.set_cache_limit(9 << 20)

    def boom():
        raise RuntimeError("user error")

    with pytest.raises(RuntimeError, match="user error"):
        percall.measure("cache-off", boom, repeat=3, warmup=0, budget=1.0)
    assert _limit() == 9 << 20


def test_cache_off_in_a_run_restores_the_limit(tmp_path, keep_cache_limit):
    mx.set_cache_limit(5 << 20)
    assert runner.main([*TINY, "--modes", "cache-off", "--out", str(tmp_path / "b.json")]) == 0
    assert _limit() == 5 << 20


def test_busy_routine_is_deterministic_and_leaves_the_global_generator_alone():
    mx.random.seed(3)
    want = mx.random.uniform(shape=(4,))
    mx.random.seed(3)
    mx.clear_cache()
    a = percall.other_mlx_work()
    assert mx.array_equal(mx.random.uniform(shape=(4,)), want)
    mx.clear_cache()
    b = percall.other_mlx_work()
    assert a["calls"] == b["calls"]
    if ON_CPU:  # the GPU's cache fills from its completion thread, as it gets there
        assert a["cache_mb"] == b["cache_mb"]
    if mx.default_device().type is mx.cpu and _limit() == 32 << 20:
        assert a["cache_mb"] > 24  # MLX's own 32 MB on the CPU: left nearly full


def test_busy_runs_after_every_other_mode_of_every_case(tmp_path, monkeypatch):
    order = []
    real_fresh, real_time_it = percall.run_fresh, runner.time_it

    def run_fresh(case, impl, pas, mode, *a):
        order.append(mode)
        return real_fresh(case, impl, pas, mode, *a)

    def time_it(*a):
        order.append("throughput")
        return real_time_it(*a)

    monkeypatch.setattr(percall, "run_fresh", run_fresh)
    monkeypatch.setattr(runner, "time_it", time_it)
    argv = [*TINY, "--shapes", "6,2,16", "5,1,8", "--out", str(tmp_path / "b.json")]
    assert runner.main(argv) == 0
    first_busy = order.index("busy")
    assert set(order[first_busy:]) == {"busy"}
    # two cases x (fused fwd, fused fwd+bwd, x*2 fwd) per mode
    assert {m: order.count(m) for m in percall.MODES} == {m: 6 for m in percall.MODES}


@pytest.mark.parametrize("mode", percall.PER_CALL)
def test_a_measurement_in_a_fresh_process(mode):
    case = registry.Case("leaky", 6, 2, 16)
    times, info = percall.run_fresh(case, "fused", "fwd+bwd", mode, repeat=4, warmup=1,
                                    budget=10.0, min_calls=3, device="cpu")
    assert len(times) == 4 and all(t > 0 for t in times)
    assert ("busy" in info) == (mode == "busy")
    # the limit reaches the fresh process (MLX's own 32 MB on the CPU otherwise)
    _, info = percall.run_fresh(case, "x*2", "fwd", mode, 3, 0, 1.0, 3, cache_limit_mb=48)
    assert info["cache_limit_mb"] == (0 if mode == "cache-off" else 48)


def test_a_failing_fresh_process_says_why():
    case = registry.Case("leaky", 6, 2, 16)
    with pytest.raises(RuntimeError, match=r"(?s)\[bench\] the fresh process for nope fwd "
                                           r"latency failed.*unknown implementation 'nope'"):
        percall.run_fresh(case, "nope", "fwd", "latency", 3, 1, 1.0, 3)


def test_a_wrong_per_call_graph_fails_parity(tmp_path, monkeypatch):
    """The per-call graph is checked against the reference's gradient of the
    spikes' sum before timing; a wrong one prints FAIL, not ratios."""
    fused = next(i for i in registry.BENCHMARKS["leaky"]["impls"] if i.name == "fused")
    real = fused.prepare

    def prepare(case, inp, device):
        prep = real(case, inp, device)
        prep.call_fwdbwd = lambda: inp["x"] * 0.5
        return prep

    monkeypatch.setattr(fused, "prepare", prepare)
    out = tmp_path / "b.json"
    assert runner.main([*TINY, "--modes", "latency", "--out", str(out)]) == 1
    rows = [r for r in json.loads(out.read_text())["rows"] if r.get("impl") == "fused"]
    assert rows and not any(r["parity_ok"] for r in rows)
    assert "per-call dx rel" in rows[0]["parity"]
    assert "(FAIL)" in out.with_suffix(".md").read_text()
