"""`flashsnn bench` runs of one machine, side by side: the spread between runs.

A shared machine's speed drifts between minutes (the 2-core CPU VM flashsnn
is tuned on: +-20%, and the fused op and one `x * 2` pass do not always drift
together), so one run's ratio can land on either side of a target that the
op meets in most runs. This reads the JSON files of several runs and prints,
for every implementation and pass, the median over the runs and the range of
its time and of its ratios, each ratio taken within its own run, then the
fused op's ratios run by run.

    flashsnn bench --out runs/1.json; flashsnn bench --out runs/2.json; ...
    python benchmarks/spread.py runs/*.json --out benchmarks/results/leaky-cpu-spread.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from .runner import headline

# per-run fields summarized, with their column titles
FIELDS = (("median_ms", "median ms"), ("vs_fused", "x fused"), ("vs_x2", "x (x*2)"))


def load(paths: list[Path]) -> list[dict]:
    runs = []
    for p in paths:
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"[spread] cannot read {p}: {e}") from None
        if not isinstance(data, dict) or "rows" not in data or "machine" not in data:
            raise ValueError(f"[spread] {p} is not a `flashsnn bench` JSON file "
                             "(no 'rows' and 'machine')")
        runs.append({"path": str(p), **data})
    return runs


def _timed(run: dict) -> dict:
    """(case, impl, pass) -> row, for the rows that were timed and passed
    parity. A per-call mode's row (``--modes``) counts as a pass of its own,
    ``"fwd+bwd busy"``; throughput's, and rows of runs from before modes
    existed, keep the bare pass."""
    def label(r):
        mode = r.get("mode", "throughput")
        return r["pass"] if mode == "throughput" else f"{r['pass']} {mode}"
    return {(r["case"], r["impl"], label(r)): r for r in run["rows"]
            if "pass" in r and r.get("parity_ok", True)}


def summarize(runs: list[dict]) -> list[dict]:
    """One entry per (case, impl, pass) timed in any run: for each field the
    values run by run (None where a run lacks it) and their median, min, max."""
    timed = [_timed(run) for run in runs]
    keys = list(dict.fromkeys(k for t in timed for k in t))  # first-seen order
    out = []
    for k in keys:
        row = next(t[k] for t in timed if k in t)
        entry = {"case": k[0], "impl": k[1], "pass": k[2],
                 "yardstick": bool(row.get("yardstick"))}
        for field, _ in FIELDS:
            vals = [t.get(k, {}).get(field) for t in timed]
            have = [v for v in vals if v is not None]
            entry[field] = {"runs": vals, "n": len(have),
                            "median": statistics.median(have) if have else None,
                            "min": min(have) if have else None,
                            "max": max(have) if have else None}
        out.append(entry)
    return out


def _cell(s: dict) -> str:
    if s["median"] is None:
        return ""
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def table(runs: list[dict], summary: list[dict]) -> str:
    machines = {json.dumps(r["machine"], sort_keys=True) for r in runs}
    lines = [f"# spread of {len(runs)} `flashsnn bench` runs"
             + ("" if len(machines) == 1 else f" on {len(machines)} different machine setups"),
             "", "First run: " + headline(runs[0]["machine"]).lstrip("# "), "",
             "Median over the runs (min-max); every ratio is taken within its own run.", "",
             "| case | pass | implementation | runs | " + " | ".join(t for _, t in FIELDS) + " |",
             "|---|---|---|---:|" + "---:|" * len(FIELDS)]
    for e in summary:
        lines.append(f"| {e['case']} | {e['pass']} | {e['impl']} | {e['median_ms']['n']} | "
                     + " | ".join(_cell(e[f]) for f, _ in FIELDS) + " |")
    # The fused op run by run: its time, its x*2 ratio, and how many times
    # faster it was than each other implementation in that run.
    fused = [e for e in summary if e["impl"] == "fused"]
    others = [e for e in summary if e["impl"] != "fused" and not e["yardstick"]]
    for f in fused:
        vs = [o for o in others if (o["case"], o["pass"]) == (f["case"], f["pass"])]
        lines += ["", f"{f['case']} {f['pass']}, run by run:", "",
                  "| run | fused ms | fused x (x*2) | "
                  + " | ".join(f"{o['impl']} / fused" for o in vs) + " |",
                  "|---|---:|---:|" + "---:|" * len(vs)]
        for i, run in enumerate(runs):
            ms, x2 = f["median_ms"]["runs"][i], f["vs_x2"]["runs"][i]
            cells = ["not timed" if ms is None else f"{ms:.3f}",
                     "" if x2 is None else f"{x2:.2f}"]
            cells += ["" if o["vs_fused"]["runs"][i] is None else f"{o['vs_fused']['runs'][i]:.1f}"
                      for o in vs]
            lines.append(f"| {Path(run['path']).name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="spread", description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path, help="JSON files written by flashsnn bench")
    p.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = p.parse_args(argv)
    try:
        runs = load(args.files)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    text = table(runs, summarize(runs))
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0
