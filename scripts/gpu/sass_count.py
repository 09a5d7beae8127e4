#!/usr/bin/env python3
"""SASS instructions per position of the selective scan's CUDA kernels,
without a GPU.

Compiles csrc/scan_<dtype>.cu for one architecture with the build's numerics
flags (csrc/backend.cmake; with -lineinfo, which leaves the machine code as
it is), disassembles it (nvdisasm) and prints, per kernel instance (dtype,
direction, lanes per channel P, states per lane SPL): registers, spill
bytes (stores/loads) and stack frame (ptxas -v), and per main loop the
instructions per position of one lane:

  loop     fwd (forward), recompute and walk (backward): the innermost loop
           holding the per-position update of src/step/selective_scan.h
           (state_update; state_grad for the walk) and an owner lane's
           softplus, i.e. one iteration per group of positions (per span in
           the kDense path)
  G        positions an iteration runs on the longest path (scan_decay's
           ex2 on it, over SPL)
  static   the loop's instructions, every path's once, over the positions
           of an iteration (of a kDense span where there is one)
  min/max  the shortest and longest paths through the loop over their
           positions (inner loops once; a runtime loop inside, such as the
           old kernels' butterfly over a runtime lane count, runs log2(P)
           times: `inner` counts them). With a kDense path, these are the
           checked path's.
  dense    where the loop holds both the path without bounds checks (kDense
           in csrc/scan.cuh) and the checked one: positions per span (W) and
           the longest path through the kDense path over them, its loops over
           the span's groups counted as often as they run (ScanSpan in
           csrc/scan.h, read by a small host program nvcc builds). Every uniform branch is
           taken on the longest path, so it includes the optional owner
           work (softplus, the gate) that the Mamba recipe runs; rare
           fix-ups (a division's slow path: a CALL) add a few.

  python scripts/gpu/sass_count.py                      # the working tree
  python scripts/gpu/sass_count.py --commit 895b3b0     # an earlier kernel
  python scripts/gpu/sass_count.py -D FLASHSNN_SCAN_LANES_CAP=8 --dtype float32

Tools: nvcc ($NVCC, PATH, /usr/local/cuda*/bin), nvdisasm ($NVDISASM, PATH,
the CUDA toolkit, scripts/gpu/build_cuda.sh's venv, a pip nvidia-cuda-nvdisasm).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NUMERICS = ["-fmad=false", "--ftz=false", "--prec-div=true", "--prec-sqrt=true",
            "-Xcompiler", "-ffp-contract=off"]
DTYPES = ("float32", "float16", "bfloat16")


def tool(name: str, env: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/local/cuda*/bin/{name}"))
    cands += glob.glob(str(ROOT / "build/gpu-cache/venv312/lib/python*/site-packages/nvidia/*/bin"
                           / name))
    for p in sys.path:
        cands += glob.glob(os.path.join(p, f"nvidia/*/bin/{name}"))
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    sys.exit(f"sass_count: no {name} (set ${env}; pip install nvidia-cuda-nvdisasm gives one)")


# ---------------------------------------------------------------- SASS parsing

FUNC = re.compile(r"^//-+ \.text\.(\S+) -+")
INSN = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
LABEL = re.compile(r"^(\.L_x_\d+):")
LINE = re.compile(r'^\s*//## File "([^"]+)", line (\d+)')


def parse(text: str) -> dict:
    """mangled name -> {"ins": [(text, chain)], "labels": {label: index}}; chain:
    the instruction's source locations (file name, line), innermost first, one
    per level of inlining (nvdisasm -gi)."""
    funcs, cur, chain, fresh = {}, None, (), True
    for line in text.splitlines():
        m = FUNC.match(line)
        if m:
            cur = funcs.setdefault(m[1], {"ins": [], "labels": {}})
            chain, fresh = (), True
            continue
        if cur is None:
            continue
        m = LINE.match(line)
        if m:
            loc = (os.path.basename(m[1]), int(m[2]))
            chain, fresh = ((loc,) if fresh else chain + (loc,)), False
            continue
        m = LABEL.match(line)
        if m:
            cur["labels"][m[1]] = len(cur["ins"])
            continue
        m = INSN.match(line)
        if m:
            cur["ins"].append((m[2], chain))
            fresh = True
    return funcs


def opcode(t: str) -> str:
    t = t.strip()
    if t.startswith("@"):
        t = t.split(None, 1)[1]
    return t.split()[0] if t else ""


def cfg(f: dict):
    """Basic blocks [(start, end)] and successors; an unconditional EXIT or
    BRA ends a path, a predicated one falls through too. BRA.DIV (taken only
    when the warp has diverged, which the scan's uniform control flow never
    does) falls through only: its out-of-line fallback is no path."""
    ins, lab = f["ins"], f["labels"]
    starts = {0} | set(lab.values())
    for i, (t, _) in enumerate(ins):
        if opcode(t).startswith(("BRA", "EXIT", "RET", "BRX", "JMP")):
            starts.add(i + 1)
    starts = sorted(s for s in starts if s < len(ins))
    blocks = [(s, starts[k + 1] if k + 1 < len(starts) else len(ins)) for k, s in enumerate(starts)]
    at = {s: k for k, (s, _) in enumerate(blocks)}
    succ = defaultdict(list)
    for k, (s, e) in enumerate(blocks):
        t = ins[e - 1][0]
        op = opcode(t)
        cond = t.lstrip().startswith("@") or re.search(r"BRA\S* !?U?P\d", t)
        target = re.search(r"`\((\S+?)\)", t)
        if op == "BRA.DIV":
            if k + 1 < len(blocks):
                succ[k].append(k + 1)
        elif op.startswith("BRA") and target and target[1] in lab:
            succ[k].append(at[lab[target[1]]])
            if cond and k + 1 < len(blocks):
                succ[k].append(k + 1)
        elif op in ("EXIT", "RET") and not cond:
            pass
        elif k + 1 < len(blocks):
            succ[k].append(k + 1)
    return blocks, succ


def loops(blocks, succ):
    """Natural loops: header -> set of blocks (back edges into one header merged)."""
    preds = defaultdict(list)
    for a, bs in succ.items():
        for b in bs:
            preds[b].append(a)
    seen, stack = {0}, [0]
    while stack:
        a = stack.pop()
        for b in succ[a]:
            if b not in seen:
                seen.add(b)
                stack.append(b)
    order = sorted(seen)
    dom = {k: set(seen) for k in seen}
    dom[0] = {0}
    changed = True
    while changed:
        changed = False
        for k in order[1:]:
            ps = [p for p in preds[k] if p in seen]
            new = (set.intersection(*(dom[p] for p in ps)) if ps else set()) | {k}
            if new != dom[k]:
                dom[k], changed = new, True
    out = defaultdict(set)
    for a in seen:
        for h in succ[a]:
            if h in dom[a]:
                body, stack = {h, a}, [a]
                while stack:
                    x = stack.pop()
                    if x == h:
                        continue
                    for p in preds[x]:
                        if p not in body:
                            body.add(p)
                            stack.append(p)
                out[h] |= body
    return dict(out)


def paths(blocks, succ, body, head, size):
    """Shortest and longest instruction counts from the loop head back to it
    through `body` (inner back edges dropped: inner loops once), and the
    blocks of the longest."""
    inner_back = set()
    # DFS from the head inside the body; an edge to a block on the stack is a back edge.
    state, stack = {head: 1}, [(head, iter(succ[head]))]
    while stack:
        node, it = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            state[node] = 2
            stack.pop()
            continue
        if nxt not in body or nxt == head:
            continue
        if state.get(nxt) == 1:
            inner_back.add((node, nxt))
        elif nxt not in state:
            state[nxt] = 1
            stack.append((nxt, iter(succ[nxt])))
    topo, mark = [], set()
    work = [(head, False)]
    while work:
        x, done = work.pop()
        if done:
            topo.append(x)
            continue
        if x in mark:
            continue
        mark.add(x)
        work.append((x, True))
        for y in succ[x]:
            if y in body and (x, y) not in inner_back and y != head and y not in mark:
                work.append((y, False))
    topo.reverse()
    INF = float("inf")
    lo = {n: INF for n in topo}
    hi = {n: -INF for n in topo}
    via = {}
    lo[head] = hi[head] = size(head)
    best_lo, best_hi, end = INF, -INF, None
    for x in topo:
        if lo[x] == INF:
            continue
        for y in succ[x]:
            if y == head:
                best_lo = min(best_lo, lo[x])
                if hi[x] > best_hi:
                    best_hi, end = hi[x], x
            elif y in lo and (x, y) not in inner_back:
                lo[y] = min(lo[y], lo[x] + size(y))
                if hi[x] + size(y) > hi[y]:
                    hi[y], via[y] = hi[x] + size(y), x
    path = []
    while end is not None:
        path.append(end)
        end = via.get(end)
    return best_lo, best_hi, path


# ------------------------------------------------------------ the source tree

def block_lines(text: str, start: str) -> set[int]:
    """Line numbers of the function whose definition line contains `start`."""
    lines = text.splitlines()
    for i, l in enumerate(lines):
        if start in l:
            depth, out = 0, set()
            for k in range(i, len(lines)):
                out.add(k + 1)
                depth += lines[k].count("{") - lines[k].count("}")
                if depth == 0 and "}" in lines[k]:
                    return out
    return set()


def call_lines(text: str, pattern: str) -> set[int]:
    """Lines of the statements (up to their ';') that contain `pattern`."""
    lines, out = text.splitlines(), set()
    for i, l in enumerate(lines):
        if pattern in l:
            k = i
            while True:
                out.add(k + 1)
                if ";" in lines[k] or k + 1 >= len(lines):
                    break
                k += 1
    return out


# -------------------------------------------------------------------- driver

def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return out.stdout.splitlines() if out.returncode == 0 else list(names)


def ptxas_usage(report: str) -> dict:
    usage = {}
    for m in re.finditer(r"Compiling entry function '(\w+)'.*?(\d+) bytes stack frame, "
                         r"(\d+) bytes spill stores, (\d+) bytes spill loads\n.*?Used (\d+) "
                         r"registers", report, re.S):
        usage[m[1]] = dict(stack=int(m[2]), spill_st=int(m[3]), spill_ld=int(m[4]), regs=int(m[5]))
    return usage


PROBE = r"""
#include <cstdio>
#include "csrc/scan.cuh"
using namespace flashsnn::cuda;
template <int P, int SPL>
void row() {
  if constexpr (scan_built(P, SPL)) {
    using S = ScanSpan<P, SPL, true>;
    std::printf("%d %d fwd %d %d\n", P, SPL, S::fwd, S::fwd_group);
    std::printf("%d %d recompute %d %d\n", P, SPL, S::recompute, S::recompute_group);
    std::printf("%d %d walk %d %d\n", P, SPL, S::walk, S::walk_group);
  }
}
template <int P>
void lanes() { row<P, 1>(); row<P, 2>(); row<P, 4>(); }
int main() { lanes<1>(); lanes<2>(); lanes<4>(); lanes<8>(); lanes<16>(); lanes<32>(); }
"""


def spans(tree: Path, defines, nvcc: str, work: Path) -> dict:
    """(P, SPL, loop) -> (positions per kDense span, per group), from the
    tree's ScanSpan; empty for a tree without it."""
    src, exe = work / "probe.cu", work / "probe"
    src.write_text(PROBE)
    p = subprocess.run([nvcc, "-std=c++17", "-I", str(tree), *[f"-D{d}" for d in defines],
                        str(src), "-o", str(exe)], capture_output=True, text=True)
    if p.returncode:
        return {}
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {(int(a), int(b), k): (int(w), int(g))
            for a, b, k, w, g in (l.split() for l in out.splitlines())}


def analyse(tree: Path, dtype: str, defines, arch: str, nvcc: str, nvdisasm: str, work: Path,
            span_of: dict):
    src = tree / f"csrc/scan_{dtype}.cu"
    cubin = work / f"scan_{dtype}.cubin"
    p = subprocess.run([nvcc, "-cubin", "-lineinfo", "-std=c++17", "-O3", f"-arch={arch}",
                        *NUMERICS, *[f"-D{d}" for d in defines], "-Xptxas", "-v", str(src),
                        "-o", str(cubin)], capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"sass_count: nvcc failed\n{p.stderr[-4000:]}")
    usage = ptxas_usage(p.stdout + p.stderr)
    sass = subprocess.run([nvdisasm, "-c", "-gi", str(cubin)], capture_output=True, text=True,
                          check=True).stdout
    funcs = parse(sass)
    scan_cuh = (tree / "csrc/scan.cuh").read_text()
    step = (tree / "src/step/selective_scan.h").read_text()
    h_ = "selective_scan.h"
    upd = {(h_, n) for n in block_lines(step, "FS_FN float state_update(")}
    grad = {(h_, n) for n in block_lines(step, "FS_FN StateGrad state_grad(")}
    soft = {(h_, n) for n in block_lines(step, "FS_FN float softplus(")}
    # The calls of the two paths (kDense true / false), and scan_decay's ex2.
    dense_at = {("scan.cuh", n) for n in call_lines(scan_cuh, "_span<true,")}
    checked_at = {("scan.cuh", n) for n in call_lines(scan_cuh, "_span<false,")}
    decay_at = {("scan.cuh", i + 1) for i, l in enumerate(scan_cuh.splitlines())
                if "ex2.approx" in l}
    rows = []
    names = [n for n in funcs if "scan_forward_kernel" in n or "scan_backward_kernel" in n]
    for name, pretty in zip(names, demangle(names)):
        m = re.search(r"(?:lanes(\d+)::)?scan_(forward|backward)_kernel<[^,]+, (\d+)>", pretty)
        if not m:
            continue
        P, direction, spl = m[1] or "any", m[2], int(m[3])
        f = funcs[name]
        blocks, succ = cfg(f)
        lp = loops(blocks, succ)

        def size(k):
            return blocks[k][1] - blocks[k][0]

        def tagged(k, locs):
            return any(loc in locs for _, chain in f["ins"][blocks[k][0]:blocks[k][1]]
                       for loc in chain)

        def has(body, locs):
            return any(tagged(k, locs) for k in body)

        def decays(path):
            return sum(1 for k in path for t, chain in f["ins"][blocks[k][0]:blocks[k][1]]
                       if opcode(t) == "MUFU.EX2" and chain and chain[0] in decay_at) / spl

        loop_rows = []
        update_kind = "fwd" if direction == "forward" else "recompute"
        for marker, kind in ((grad, "walk"), (upd, update_kind)):
            cands = {h: b for h, b in lp.items() if has(b, marker) and has(b, soft)}
            if kind == "recompute":  # not the walk's loop
                cands = {h: b for h, b in cands.items() if not has(b, grad)}
            for h, body in cands.items():
                if any(h2 != h and b2 < body for h2, b2 in cands.items()):
                    continue  # not innermost
                lo, hi, hot = paths(blocks, succ, body, h, size)
                G = decays(hot) or 1
                row = dict(kind=kind, static=sum(size(k) for k in body) / G, min=lo / G,
                           max=hi / G, G=G,
                           inner=sum(1 for h2, b2 in lp.items() if h2 != h and b2 < body))
                # The kDense path: the branch between the two calls, its successor
                # into the checked code and the one into the dense code; the loop
                # without the blocks reached from the former and not the latter.
                # (nvcc may merge the calls' common code: the dense path can run
                # through blocks of the checked one.)
                dense = {k for k in body if tagged(k, dense_at)}
                ctag = {k for k in body if tagged(k, checked_at)} - dense

                def reach(k0):
                    seen, stack = {k0}, [k0]
                    while stack:
                        for y in succ[stack.pop()]:
                            if y in body and y != h and y not in seen:
                                seen.add(y)
                                stack.append(y)
                    return seen
                checked = set()
                for x in sorted(body, key=lambda k: blocks[k][0]):
                    cs = [y for y in succ[x] if y in ctag]
                    ds = [y for y in succ[x] if y not in ctag and reach(y) & dense]
                    if cs and ds:
                        checked = reach(cs[0]) - reach(ds[0])
                        break
                if dense and checked:
                    dbody = body - checked
                    _, dhi, dhot = paths(blocks, succ, dbody, h, size)
                    n = decays(dhot)
                    # The span's loops over its groups (the walk's gate pass and
                    # its walk): counted once on the path, each runs span / group
                    # times.
                    w, g = span_of.get((int(P), spl, kind), (0, 0))
                    for h2, b2 in lp.items():
                        if h2 != h and b2 < dbody and g:
                            _, ihi, ihot = paths(blocks, succ, b2, h2, size)
                            dhi += (w // g - 1) * ihi
                            n += (w // g - 1) * decays(ihot)
                    row.update(dense_G=n, dense_max=dhi / (n or 1),
                               static=row["static"] * row["G"] / (n or 1))
                    if w and n != w:
                        row["warn"] = f"{n:g} positions counted, ScanSpan says {w}"
                loop_rows.append(row)
        u = usage.get(name, {})
        rows.append(dict(dtype=dtype, dir="fwd" if direction == "forward" else "bwd", P=P, SPL=spl,
                         total=len(f["ins"]), loops=loop_rows, **u))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commit", help="analyse this git revision's csrc/ and src/ instead")
    ap.add_argument("--tree", type=Path, help="analyse this source tree instead")
    ap.add_argument("--dtype", default=",".join(DTYPES))
    ap.add_argument("-D", dest="defines", action="append", default=[],
                    help="a macro for nvcc, e.g. FLASHSNN_SCAN_LANES_CAP=8")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--lanes", help="only these lane counts P (comma-separated)")
    a = ap.parse_args()
    nvcc, nvdisasm = tool("nvcc", "NVCC"), tool("nvdisasm", "NVDISASM")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tree = a.tree or ROOT
        if a.commit:
            tree = work / "tree"
            tree.mkdir()
            arch = subprocess.run(["git", "-C", str(ROOT), "archive", a.commit, "csrc", "src"],
                                  capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=arch, check=True)
        span_of = spans(tree, a.defines, nvcc, work)
        rows = []
        for dt in a.dtype.split(","):
            rows += analyse(tree, dt, a.defines, a.arch, nvcc, nvdisasm, work, span_of)
    lanes = set(a.lanes.split(",")) if a.lanes else None
    print(f"{'dtype':9} {'dir':3} {'P':>3} {'SPL':>3} {'regs':>4} {'spill':>7} {'stack':>5}  "
          f"{'loop':9} {'G':>3} {'static':>6} {'min':>6} {'max':>6} {'inner':>5} | "
          f"{'dense W':>7} {'max':>6}   (instructions per position and lane)")
    order = {"fwd": 0, "bwd": 1}
    for r in sorted(rows, key=lambda r: (DTYPES.index(r["dtype"]), order[r["dir"]], r["SPL"],
                                         int(r["P"]) if r["P"] != "any" else 0)):
        if lanes and r["P"] not in lanes:
            continue
        head = (f"{r['dtype']:9} {r['dir']:3} {r['P']:>3} {r['SPL']:>3} {r.get('regs', '?'):>4} "
                f"{str(r.get('spill_st', '?')) + '/' + str(r.get('spill_ld', '?')):>7} "
                f"{r.get('stack', '?'):>5}")
        if not r["loops"]:
            print(head + "  (no main loop found)")
        for k, l in enumerate(sorted(r["loops"], key=lambda l: l["kind"])):
            line = (head if k == 0 else " " * len(head)) + (
                f"  {l['kind']:9} {l['G']:3.0f} {l['static']:6.1f} {l['min']:6.1f} "
                f"{l['max']:6.1f} {l['inner']:>5}")
            if "dense_max" in l:
                line += f" | {l['dense_G']:7.0f} {l['dense_max']:6.1f}"
            if "warn" in l:
                line += f"  ({l['warn']})"
            print(line)


if __name__ == "__main__":
    main()
