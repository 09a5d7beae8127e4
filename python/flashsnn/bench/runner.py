"""`flashsnn bench`: time every implementation of a family in one run.

For each case: a parity gate first (every implementation's forward against the
flashsnn reference with the same semantics, and the fused gradients against
the reference's), then warm-up and the median of repeated timed passes,
waiting on every output and gradient. The table gives each time as a multiple
of the fused kernel's and of one `x * 2` pass over the input (the memory
bandwidth yardstick), and of the family's byte floor (floor_bytes) at x*2's
bandwidth; a summary gives each pass's fused vs reference and fused vs floor.
A failed parity check prints FAIL instead of a ratio.
The machine and versions head the table; a JSON file holds everything.

Besides that back-to-back ``throughput``, ``--modes`` times one call at a
time as users make it (``latency``, ``cache-off``, ``busy``; see
bench/percall.py) and prints each mode's median and its ratio to latency.

    flashsnn bench                          # CPU, the registry's CPU shapes
    flashsnn bench --family synaptic        # any family of ops/_table.py
    flashsnn bench --modes throughput latency   # no cache-off, no busy
    flashsnn bench --device gpu --out benchmarks/results/leaky-h100.json
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import mlx.core as mx
import numpy as np

import flashsnn as fs

from . import percall
from .._backend import ext
from .._device import resolve_device
from ..cli import fail
from ..ops._table import DELAYED
from .registry import BENCHMARKS, Case, make_inputs, unknown_family

_fail = partial(fail, "bench")

PARITY_MEM_TOL = 1e-5   # relative RMS of each final state (the membrane, ...)
PARITY_GRAD_TOL = 1e-5  # relative RMS of dL/dx, fused vs reference
# flashsnn's own paths: held to the strict checks above, and run in every dtype.
OWN = ("fused", "fused+learn", "reference", "reference+compile")
# The parity message of an implementation with nothing to compare (another
# model of the same name, timed for the work it does).
NOT_CHECKED = "not checked"
OTHER_SPIKE_FRACTION = 1e-4  # other libraries: spikes allowed to differ
OTHER_MEM_TOL = 1e-2
DEFAULT_OUT = Path("flashsnn-bench.json")

# "x floor" below 1 is explained (--help, a footnote under the table), not
# blanked: where "bandwidth-bound" starts is a guess per machine, and the
# ratio is still what was measured.
FLOOR_NOTE = ("x floor below 1 (e.g. at T=1): x*2 on so small a case is bound by its per-call "
              "cost, not memory, so the floor from its bandwidth is no lower bound there; it "
              "is one where x*2 is bandwidth-bound (large T*B*N)")


def impl_alias(name: str) -> str:
    """'torch x*2' -> 'torch-x2', 'x*2' -> 'x2': typed without shell quoting."""
    return name.replace(" ", "-").replace("*", "")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Time every implementation of a neuron family (flashsnn's fused kernel and "
        "reference, other SNN libraries where installed, an x*2 memory yardstick) after a "
        "parity check against the reference, and print a table of medians and ratios. "
        f"Writes (and overwrites) the JSON results to --out, ./{DEFAULT_OUT} by default, "
        "and a .md table beside it. " + FLOOR_NOTE + ".")
    # Not argparse's choices: an unknown family is a tagged error (exit 2).
    p.add_argument("--family", default="leaky", help=f"the neuron family to time: "
                   f"{', '.join(sorted(BENCHMARKS))}; or selective_scan (default: leaky)")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"],
                   help="where MLX runs (default: cpu); gpu needs MLX's CUDA build or Metal")
    p.add_argument("--shapes", nargs="*", metavar="T,B,N",
                   help="shapes to run instead of the registry's, e.g. 100,32,1024 "
                        "(positive integers; B,L,D,N for selective_scan; default: the "
                        "registry's shapes for --device)")
    p.add_argument("--memory", action="store_true",
                   help="selective_scan only: peak memory of a fused forward+backward against L")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="(default: float32)")
    p.add_argument("--impls", nargs="*", metavar="IMPL",
                   help="only these implementations (default: all available); names with a "
                        "space or '*' also go without them, e.g. torch-x2 for 'torch x*2'")
    p.add_argument("--repeat", type=int, default=20,
                   help="timed passes per measurement (default: 20)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds over the implementations (default: 5 on the CPU, "
                        "1 on a GPU); repeat and budget are split across them")
    p.add_argument("--warmup", type=int, default=3, help="untimed passes first (default: 3)")
    p.add_argument("--budget", type=float, default=10.0, help="seconds per measurement at "
                   "most (default: 10); slow ones get fewer passes (>= 3)")
    p.add_argument("--mlx-cache-limit", type=int, default=-1, metavar="MB",
                   help="MLX buffer-cache limit for the run, in MB (default and -1: MLX's "
                        "own, which keeps 32 MB of freed buffers on the CPU)")
    p.add_argument("--modes", nargs="+", default=list(percall.DEFAULT_MODES), metavar="MODE",
                   help="how to time each implementation, in this order whatever the order "
                        "given: throughput (passes back to back), then per call as users "
                        "run it (graph, mx.eval, mx.synchronize), each in a fresh process: "
                        "latency (MLX's cache as users have it), cache-off "
                        "(mx.set_cache_limit(0)), busy (after other MLX work filled the "
                        "cache; runs last, after every case). Default: all four; "
                        "`--modes throughput` is the run of earlier versions")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is off anyway when stderr is not a terminal)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="PATH",
                   help=f"JSON results, overwritten if there (default: ./{DEFAULT_OUT}); a "
                        ".md table is written beside it")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        # SpikingJelly installed without its requirements (its LIF layers
        # need only torch) may sit on the path with no distribution record.
        if dist == "spikingjelly" and importlib.util.find_spec("spikingjelly"):
            return "on the path"
        return None


def machine_info(device: str) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "device": device,
            "mlx_device": str(mx.default_device()), "flashsnn_gpu_backend": fs.gpu_backend()}
    for dist in ("mlx", "mlx-cpu", "mlx-cuda-13", "flashsnn", "mlx-snn", "torch", "snntorch",
                 "spikingjelly"):
        v = _version(dist)
        if v:
            info[dist] = v
    if device == "gpu":
        try:
            import torch
            if torch.cuda.is_available():
                info["gpu"] = torch.cuda.get_device_name(0)
        except ImportError:
            pass
        if mx.metal.is_available():
            info["gpu"] = mx.metal.device_info().get("device_name", "Apple GPU")
    return info


def headline(info: dict) -> str:
    keys = ["gpu", "cpu", "cores", "os", "python", "mlx", "flashsnn", "mlx-snn", "torch",
            "snntorch", "spikingjelly", "mlx cache limit"]
    parts = [f"{k} {info[k]}" for k in keys if k in info]
    return f"# flashsnn bench on {info['device']} | " + " | ".join(parts)


def time_it(prep, fn, repeat: int, warmup: int, budget: float, device: str) -> list[float]:
    """Seconds per pass. On a GPU, passes run back to back in batches of k
    between two waits (k chosen so a batch takes ~20 ms), as CUDA-event
    timing would: waiting after every 0.1 ms pass leaves the GPU idle most
    of the time, and it then lowers its clocks."""
    # A GPU left idle (while the parity check runs on the host) drops its
    # clocks; on an H100 the first passes after that ran up to 30x slow.
    # Warm up for a minimum time as well as a minimum count.
    warmup_seconds = 1.0 if device == "gpu" else 0.1
    start = time.perf_counter()
    n = 0
    while n < warmup or time.perf_counter() - start < warmup_seconds:
        prep.sync(fn())
        n += 1
    k = 1
    if device == "gpu":
        t0 = time.perf_counter()
        prep.sync(fn())
        one = time.perf_counter() - t0
        k = max(1, min(64, int(0.02 / max(one, 1e-6))))
    times = []
    start = time.perf_counter()
    for i in range(repeat):
        t0 = time.perf_counter()
        for _ in range(k - 1):
            prep.launch(fn())
        prep.sync(fn())
        times.append((time.perf_counter() - t0) / k)
        if i >= 2 and time.perf_counter() - start > budget:
            break
    return times


def _rel(a, b) -> float:
    a, b = np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32))
    return float(np.sqrt(np.mean((a - b) ** 2)) / (np.sqrt(np.mean(b ** 2)) + 1e-30))


def _reference_op(case: Case, x, **kw):
    """fs.ops.<family> on the reference path with the table's bench parameters."""
    return case.op(x, backend="reference", **kw)


def _reference_sum_grad(case: Case, inputs: dict):
    """d(spikes.sum())/dx on the reference, once per case."""
    if "ref_sum_grad" not in inputs:
        inputs["ref_sum_grad"] = mx.grad(
            lambda a: _reference_op(case, a)[0].sum())(inputs["x"])
    return inputs["ref_sum_grad"]


def _reference_dx(case: Case, inputs: dict):
    """dL/dx on the reference for the spike and last-state cotangents, once
    per case."""
    if "ref_dx" not in inputs:
        _, (g,) = mx.vjp(lambda a: _reference_op(case, a), [inputs["x"]],
                         [inputs["cs"], *inputs["cstates"]])
        inputs["ref_dx"] = g
    return inputs["ref_dx"]


def parity(case: Case, inputs: dict, name: str, prep, per_call: bool = False) -> tuple[bool, str]:
    """Forward spikes and last states against the family's reference op with
    the same semantics; for flashsnn's own paths also dL/dx of the pass that
    is timed (its vjp), and with ``per_call`` the gradient of the per-call
    modes' graph (mx.grad of the spikes' sum)."""
    if prep.spikes is None:
        return True, NOT_CHECKED
    x = inputs["x"]
    spk, *states = prep.spikes()
    r_spk, *r_states = (np.array(a.astype(mx.float32))
                        for a in _reference_op(case, x, **prep.parity_with))
    mism = int(np.sum(spk != r_spk))
    # Other libraries return the membrane, the last state, alone.
    fam = case.fam
    names = fam.states[:fam.n_outputs][-len(states):]
    errs = [float(np.sqrt(np.mean((s - r) ** 2)) / (np.sqrt(np.mean(r ** 2)) + 1e-30))
            for s, r in zip(states, r_states[-len(states):])]
    err = max(errs)
    if name in OWN:
        ok = mism == 0 and err <= PARITY_MEM_TOL
    else:
        # Other libraries write the same equation with other operations
        # (SpikingJelly: v - v/tau + x for beta*v + x), which flips the odd
        # spike that lands within an ulp of threshold; the trajectory of that
        # neuron then departs. Same semantics: almost every spike agrees.
        ok = mism <= OTHER_SPIKE_FRACTION * spk.size and err <= OTHER_MEM_TOL
    msg = f"spikes {mism} of {spk.size} differ, " + ", ".join(
        f"{n} rel {e:.1e}" for n, e in zip(names, errs))
    if ok and name in OWN and prep.fwdbwd is not None:
        # The timed callable itself (compiled where it is), dL/dx first.
        g = prep.fwdbwd()[1][0]
        gerr = _rel(g, _reference_dx(case, inputs))
        ok = gerr <= PARITY_GRAD_TOL
        msg += f", dx rel {gerr:.1e}"
    if ok and per_call and name in OWN and prep.call_fwdbwd is not None:
        g = prep.call_fwdbwd()
        gerr = _rel(g[0] if isinstance(g, (tuple, list)) else g,
                    _reference_sum_grad(case, inputs))
        ok = gerr <= PARITY_GRAD_TOL
        msg += f", per-call dx rel {gerr:.1e}"
    return ok, msg


def prepare_case(case: Case, impls, args, bar) -> dict:
    """A case's inputs, each available implementation prepared and checked
    for parity (before any timing), and a row for each one skipped."""
    inputs = make_inputs(case)
    per_call = any(m in percall.PER_CALL for m in args.modes)
    skipped, ready = [], []
    for impl in impls:
        why = impl.available(args.device)
        if not why and case.dtype != "float32" and impl.name not in OWN and not impl.yardstick:
            why = "float32 only"
        if why:
            skipped.append({"case": case.label, "impl": impl.name, "skipped": why})
            bar.update(2 * args.rounds * _phases(args.modes))
            continue
        prep = impl.prepare(case, inputs, args.device)
        ready.append((impl, prep, *parity(case, inputs, impl.name, prep, per_call)))
    return {"case": case, "inputs": inputs, "skipped": skipped, "ready": ready,
            "samples": {}, "busy": None, "rounds": args.rounds, "per_call": {}}


def _phases(modes) -> int:
    """Timing phases: one for throughput, latency and cache-off together,
    one for busy (after every case's first phase)."""
    return int(any(m != "busy" for m in modes)) + int("busy" in modes)


def time_modes(state: dict, modes, args, bar) -> None:
    """Every implementation's passes in `modes`, timed in `args.rounds`
    interleaved rounds: round r times each implementation in turn, each pass
    in each mode, with 1/rounds of the repeats and budget, and a median is
    over the samples of all rounds. On a shared machine whose speed drifts
    from minute to minute (the 2-core VM this was tuned on: +-20%), every
    implementation and mode then sees the same slow and fast phases, instead
    of the one timed during a slow phase looking slow."""
    case, samples = state["case"], state["samples"]
    rounds = args.rounds  # >= 1, checked by run()
    repeat = max(3, -(-args.repeat // rounds))
    budget = args.budget / rounds
    # Per call, a slow implementation gets at least 3 calls over all rounds
    # (not 3 per round): each call of a per-step loop takes 0.1-0.8 s here.
    min_calls = -(-3 // rounds)
    for _ in range(rounds):
        for impl, prep, ok, pmsg in state["ready"]:
            for pas, fn, call in (("fwd", prep.fwd, prep.call_fwd),
                                  ("fwd+bwd", prep.fwdbwd, prep.call_fwdbwd)):
                bar.set_description(f"{case.label} {impl.name} {pas} {'/'.join(modes)}")
                for mode in modes:
                    if mode == "throughput" and fn is not None:
                        t = time_it(prep, fn, repeat, args.warmup, budget, args.device)
                    elif mode != "throughput" and call is not None:
                        t, info = percall.run_fresh(case, impl.name, pas, mode, repeat,
                                                    args.warmup, budget, min_calls,
                                                    args.device, args.mlx_cache_limit)
                        state["busy"] = info.get("busy", state["busy"])
                        state["per_call"].setdefault((impl.name, pas, mode), []).append(info)
                    else:
                        continue
                    samples.setdefault((impl.name, pas, mode), []).extend(t)
                bar.update(1)


def case_rows(state: dict, modes) -> list[dict]:
    """One row per implementation, pass and mode timed, with the ratios
    within this run: to the fused op and to x*2 in the same mode, to the
    floor (throughput), latency to throughput, the others to latency."""
    case, inputs, samples = state["case"], state["inputs"], state["samples"]
    rows = list(state["skipped"])
    for impl, prep, ok, pmsg in state["ready"]:
        for pas in ("fwd", "fwd+bwd"):
            for mode in modes:
                t = samples.get((impl.name, pas, mode))
                if not t:
                    continue
                rows.append({"case": case.label, "T": case.T, "B": case.B, "N": case.N,
                             "dtype": case.dtype, "impl": impl.name, "pass": pas, "mode": mode,
                             "median_ms": statistics.median(t) * 1e3, "min_ms": min(t) * 1e3,
                             "runs": len(t), "rounds": state["rounds"], "parity_ok": ok,
                             "parity": pmsg, "note": prep.note, "yardstick": impl.yardstick})
                infos = state["per_call"].get((impl.name, pas, mode))
                if infos:  # what the fresh processes reported: the same limit in each
                    rows[-1]["cache_limit_mb"] = infos[-1]["cache_limit_mb"]
                    faults = [i["page_faults_per_call"] for i in infos
                              if "page_faults_per_call" in i]
                    if faults:
                        rows[-1]["page_faults_per_call"] = statistics.median(faults)
    timed = [r for r in rows if "pass" in r]
    ms = {(r["impl"], r["pass"], r["mode"]): r["median_ms"] for r in timed}
    for r in timed:
        f = ms.get(("fused", r["pass"], r["mode"]))
        x2 = ms.get(("x*2", "fwd", r["mode"]))
        r["vs_fused"] = r["median_ms"] / f if f else None
        r["vs_x2"] = r["median_ms"] / x2 if x2 else None
        base = "throughput" if r["mode"] == "latency" else "latency"
        b = ms.get((r["impl"], r["pass"], base))
        if r["mode"] != "throughput" and b:
            r[f"vs_{base}"] = r["median_ms"] / b
    # x*2 reads and writes x once: the fastest yardstick back to back (MLX's,
    # or torch's on a GPU) gives this run's bandwidth, and the fewest bytes a
    # pass must move over it gives that pass's floor.
    yard = [r["median_ms"] for r in timed if r["yardstick"] and r["mode"] == "throughput"]
    bw = 2 * inputs["x"].nbytes / (min(yard) * 1e-3) if yard else None
    for r in timed:
        if r["mode"] != "throughput" or not bw:
            continue
        if r["impl"] == "fused":
            r["floor_bandwidth_GBps"] = bw / 1e9
        floor = floor_bytes(case, r["pass"])
        if not r["yardstick"] and floor:
            r["floor_ms"] = floor / bw * 1e3
            r["vs_floor"] = r["median_ms"] / r["floor_ms"]
    return rows


def floor_bytes(case: Case, pas: str) -> int | None:
    """Bytes a pass of the family must move at least, from the extension's
    own counts (``_ext.families()``); None without the extension.

    Forward (inference): read x, write the spikes and each output state's
    last value. Forward+backward: the forward also writes its saves (float32
    [T, B, N] planes, as many as the kernel's delayed mode keeps: the bench
    runs each op's defaults, which are that mode); the backward reads them,
    x again where the family's backward needs it, the spike cotangent and
    one [B, N] cotangent per output state, and writes dx. (A carried-only
    state, RLeaky's fed-back spike, moves no [T, B, N] bytes of its own.)"""
    if ext is None:
        return None
    fam = case.fam
    _, _, _, reads_x, _, _, saves, outputs = ext.families()[fam.id]
    e = 4 if case.dtype == "float32" else 2
    plane, state = case.T * case.B * case.N, case.B * case.N
    fwd = plane * e + plane * e + outputs * state * e
    if pas == "fwd":
        return fwd
    saved = saves[DELAYED] * plane * 4
    bwd = saved + (plane * e if reads_x else 0) + plane * e + outputs * state * e + plane * e
    return fwd + saved + bwd


def summary(rows: list[dict]) -> list[dict]:
    """Per case and pass, what the issue's targets read (throughput): the
    fused op's median, the reference's time over it and the fused op's
    over its byte floor."""
    ms = {(r["case"], r["impl"], r["pass"]): r for r in rows
          if r.get("mode") == "throughput"}
    out = []
    for (case, impl, pas), f in ms.items():
        ref = ms.get((case, "reference", pas))
        if impl != "fused" or not f["parity_ok"]:
            continue
        out.append({"case": case, "pass": pas, "fused_ms": f["median_ms"],
                    "reference_vs_fused": (ref["median_ms"] / f["median_ms"]
                                           if ref and ref["parity_ok"] else None),
                    "fused_vs_floor": f.get("vs_floor")})
    return out


def _summary_table(summ: list[dict]) -> list[str]:
    if not summ:
        return []
    lines = ["", "Summary (throughput): fused vs reference (reference ms / fused ms) and "
             "fused vs floor (fused ms / floor ms at x*2's bandwidth)", "",
             "| case | pass | fused ms | fused vs reference | fused vs floor |",
             "|---|---|---:|---:|---:|"]
    for r in summ:
        vr = f"{r['reference_vs_fused']:.1f}x faster" if r["reference_vs_fused"] else ""
        vf = f"{r['fused_vs_floor']:.2f}x floor" if r["fused_vs_floor"] else ""
        lines.append(f"| {r['case']} | {r['pass']} | {r['fused_ms']:.3f} | {vr} | {vf} |")
    return lines


def table(rows: list[dict], info: dict, modes=("throughput",), busy: dict | None = None) -> str:
    """The throughput table (implementations skipped included), then the
    per-call table of bench/percall.py."""
    lines = [headline(info), ""]
    if "throughput" in modes:
        lines += ["| case | pass | implementation | median ms | x fused | x (x*2) | x floor "
                  "| parity |", "|---|---|---|---:|---:|---:|---:|---|"]
    else:
        lines += ["Skipped: " + (", ".join(f"{r['impl']} ({r['skipped']})" for r in rows
                                          if "skipped" in r) or "none")]
    for r in rows:
        if "skipped" in r and "throughput" in modes:
            lines.append(f"| {r['case']} | | {r['impl']} | skipped: {r['skipped']} | | | | |")
        if "skipped" in r or r["mode"] != "throughput":
            continue
        if r["parity_ok"]:
            vf = f"{r['vs_fused']:.2f}" if r["vs_fused"] else ""
            vx = f"{r['vs_x2']:.2f}" if r["vs_x2"] else ""
            vl = f"{r['vs_floor']:.2f}" if r.get("vs_floor") else ""
        else:
            vf = vx = vl = "FAIL"
        par = "ok" if r["parity_ok"] else f"FAIL ({r['parity']})"
        if r["parity_ok"] and r["parity"] == NOT_CHECKED:
            par = "not checked (another model)"
        if r["yardstick"]:
            par = "yardstick"
        lines.append(f"| {r['case']} | {r['pass']} | {r['impl']} | {r['median_ms']:.3f} | "
                     f"{vf} | {vx} | {vl} | {par} |")
    if any((r.get("vs_floor") or 1) < 1 for r in rows if r.get("parity_ok")):
        lines += ["", f"x floor: {FLOOR_NOTE}."]
    if "throughput" in modes:
        lines += _summary_table(summary(rows))
    per_call = percall.table(rows, modes, busy)
    if per_call:
        lines += ["", per_call]
    return "\n".join(lines)


def set_cache_limit(mb: int) -> None:
    """MB >= 0 sets MLX's buffer-cache limit for every implementation alike;
    -1 (the default) leaves MLX's own, as users run it: 32 MB of freed
    buffers on the CPU. A larger cache keeps buffers of 13 MB (T=100 B=32
    N=1024) from going back to malloc, and speeds the per-step loops up more
    than the fused op: with 1024 MB mlx-snn's loop took 234-276 ms instead
    of 336-347 ms, the fused op 2.9-3.2 ms instead of 2.7-3.5 ms (2026-11-23,
    2-core EPYC; docs/design.md, CPU kernel)."""
    if mb >= 0:
        mx.set_cache_limit(mb << 20)


def cache_limit_label(mb: int) -> str:
    """The limit the run used, for the table's first line."""
    if mb >= 0:
        return f"{mb} MB"
    own = mx.set_cache_limit(0)  # set_cache_limit returns the limit it replaces
    mx.set_cache_limit(own)
    return f"{own >> 20} MB (MLX's own)"


_TUPLES = {2: "pairs", 3: "triples", 4: "quadruples"}


def parse_shapes(shapes: list[str], fields: str = "TBN", example: str = "100,32,1024",
                 family: str = "") -> list[tuple[int, ...]]:
    """``--shapes`` values as tuples of ``len(fields)`` positive integers,
    one letter of ``fields`` naming each (``"TBN"`` for the neuron
    families, ``"BLDN"`` for selective_scan); ValueError naming the bad
    value and the rule."""
    n = len(fields)
    form = ",".join(fields) + " " + _TUPLES.get(n, f"{n}-tuples") + \
        (f" for {family}" if family else "")
    for s in shapes:
        parts = s.split(",")
        if len(parts) != n:
            raise ValueError(f"--shapes {s!r}: takes {form} such as {example} "
                             f"({n} positive integers; got {len(parts)} values)")
        for name, v in zip(fields, parts):
            if not v.strip().isdecimal() or int(v) < 1:
                raise ValueError(f"--shapes {s!r}: {name} must be a positive integer; got {v!r}")
    return [tuple(int(v) for v in s.split(",")) for s in shapes]


def select_impls(impls, names: list[str]):
    """The implementations named (or their impl_alias) and the yardsticks."""
    known = {n: i.name for i in impls for n in (i.name, impl_alias(i.name))}
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"unknown implementation(s) {bad}; valid: " + ", ".join(
            impl_alias(i.name) + (f" (or {i.name!r})" if "*" in i.name or " " in i.name else "")
            for i in impls))
    return [i for i in impls if i.name in {known[n] for n in names} or i.yardstick]


def run(args) -> int:
    try:  # no GPU in this MLX: say so and why, not a traceback
        mx.set_default_device(resolve_device(args.device))
    except ValueError as e:
        return _fail(f"--device {args.device}: {e}")
    from .._blas import notice
    notice(args.device, "flashsnn bench")  # once, on Linux CPU without OpenBLAS
    from tqdm import tqdm

    if args.rounds is None:
        args.rounds = 5 if args.device == "cpu" else 1
    if args.rounds < 1:
        return _fail(f"--rounds must be at least 1; got {args.rounds}")
    if args.mlx_cache_limit < -1:
        return _fail(f"--mlx-cache-limit takes MB >= 0, or -1 for MLX's own; "
                     f"got {args.mlx_cache_limit}")
    try:
        args.modes = percall.parse_modes(args.modes)
    except ValueError as e:
        return _fail(str(e))
    if args.family == "selective_scan":
        # Mamba-1's scan is not a neuron family: its own shapes and peers.
        from . import scan
        return scan.run(args)
    if args.memory:
        return _fail("[bench] --memory is for --family selective_scan")
    if why := unknown_family(args.family):
        return _fail(why)
    bench = BENCHMARKS[args.family]
    try:
        dims = parse_shapes(args.shapes) if args.shapes else \
            [(c.T, c.B, c.N) for c in bench[args.device]]
        impls = select_impls(bench["impls"], args.impls) if args.impls else bench["impls"]
    except ValueError as e:
        return _fail(str(e))
    cases = [Case(args.family, *d, args.dtype) for d in dims]
    set_cache_limit(args.mlx_cache_limit)
    info = machine_info(args.device)
    info["mlx cache limit"] = cache_limit_label(args.mlx_cache_limit)
    first = [m for m in args.modes if m != "busy"]
    states = []
    with tqdm(total=len(cases) * len(impls) * 2 * args.rounds * _phases(args.modes),
              unit="pass", file=sys.stderr,
              disable=args.no_progress or not sys.stderr.isatty()) as bar:
        for case in cases:
            states.append(prepare_case(case, impls, args, bar))
            if first:
                time_modes(states[-1], first, args, bar)
        # busy fills MLX's cache with other buffers and leaves it so: last,
        # after every case's other modes.
        if "busy" in args.modes:
            for state in states:
                time_modes(state, ["busy"], args, bar)
    rows = [r for state in states for r in case_rows(state, args.modes)]
    busy = next((s["busy"] for s in states if s["busy"]), None)
    text = table(rows, info, args.modes, busy)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(sys.argv)
    args.out.write_text(json.dumps({"machine": info, "modes": args.modes, "busy_routine": busy,
                                    "family": args.family, "rows": rows,
                                    "summary": summary(rows), "command": command}, indent=2))
    # The markdown's first line: machine, versions and the command that ran.
    head, _, rest = text.partition("\n")
    args.out.with_suffix(".md").write_text(f"{head} | command `{command}`\n{rest}\n")
    print(f"\nwrote {args.out} and {args.out.with_suffix('.md')}", file=sys.stderr)
    return 0 if all(r.get("parity_ok", True) for r in rows) else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="flashsnn bench", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))
