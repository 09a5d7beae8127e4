"""Compile flashsnn's Metal sources with clang on Linux, and read them back.

No Metal compiler exists for Linux (docs/metal.md). What this module does
instead, on the very source the extension embeds (``metal/embed.py``):

* ``typecheck(path)``: clang ``-fsyntax-only`` through ``shim/metal_stdlib``
  in its address-space mode, returning the diagnostics and the JSON AST.
* ``analyze(ast)``: the kernels with their ``[[buffer(n)]]`` signatures, the
  function constants, the call graph, and every construct outside the Metal
  subset (``lint``).
* ``compiler()``: the clang command to use, or the reason there is none.

The clang comes from the ``ziglang`` wheel (clang 22, with compiler-rt for
bfloat16 conversions), which the ``[test]`` extra installs; set
``FLASHSNN_EMU_CLANG`` to use another clang++ >= 17 instead (with
``-rtlib=compiler-rt`` where libgcc lacks ``__truncsfbf2``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHIM = HERE / "shim"
KERNELS = REPO / "metal" / "kernels"

# MSL 3.x is C++14 based: keep the kernels within it (C++17 features would
# need Metal 4). fp contraction off and no fast math, as on every backend.
COMMON_FLAGS = [
    "-x", "c++", "-std=c++14", "-I", str(SHIM),
    "-Wall", "-Wextra", "-Werror",
    # `#pragma METAL fp contract(off)` means nothing to clang; lint() checks
    # that every .metal has it.
    "-Wno-unknown-pragmas",
    "-fno-exceptions", "-fno-rtti",
    "-ffp-contract=off", "-fno-fast-math",
    # half / bfloat arithmetic rounds per operation, as on the GPU (clang
    # otherwise computes _Float16 a*b+c in float on x86).
    "-Xclang", "-ffloat16-excess-precision=none",
    "-Xclang", "-fbfloat16-excess-precision=none",
]
TYPECHECK_FLAGS = [
    "-DFSEMU_TYPECHECK", "-fsyntax-only",
    # `const constant T*` reads `const const T*` once `constant` carries its
    # own const, as Metal's constant address space is read-only.
    "-Wno-duplicate-decl-specifier",
    "-fno-color-diagnostics", "-fno-caret-diagnostics", "-fno-diagnostics-show-option",
]


@lru_cache(maxsize=None)
def load_embed():
    """metal/embed.py (not a package: CMake runs it as a script)."""
    spec = importlib.util.spec_from_file_location("flashsnn_metal_embed", REPO / "metal" / "embed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def metal_files() -> list[Path]:
    return sorted(KERNELS.glob("*.metal"))


@lru_cache(maxsize=None)
def compiler() -> tuple[tuple[str, ...], tuple[str, ...], str] | str:
    """(syntax-check command, build command, version) or why there is none."""
    env = os.environ.get("FLASHSNN_EMU_CLANG")
    if env:
        cmd = tuple(shlex.split(env))
        syntax = build = cmd
    else:
        if importlib.util.find_spec("ziglang") is None:
            if sys.platform == "darwin":
                return ("the Metal emulator is for machines without Metal; here the kernels run on "
                        "the GPU (test_metal_device.py). Set FLASHSNN_EMU_CLANG to a clang++ >= 17 "
                        "to emulate anyway")
            return ("no clang for the Metal emulator: `pip install ziglang` (in the [test] "
                    "extra), or set FLASHSNN_EMU_CLANG to a clang++ >= 17")
        # `zig clang` is the bare driver (enough for the header-free shim);
        # `zig c++` adds libc++ and compiler-rt for the runner.
        syntax = (sys.executable, "-m", "ziglang", "clang")
        build = (sys.executable, "-m", "ziglang", "c++")
    try:
        out = subprocess.run([*syntax, "--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"the Metal emulator's clang ({' '.join(syntax)}) does not run: {e}"
    m = re.search(r"clang version (\d+)\.", out.stdout)
    if out.returncode != 0 or m is None:
        return f"`{' '.join(syntax)} --version` failed: {out.stderr.strip()[:300]}"
    if int(m.group(1)) < 17:
        return f"the Metal emulator needs clang >= 17 (bfloat16 as __bf16); found {m.group(0)}"
    return syntax, build, out.stdout.splitlines()[0]


# --------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------

@dataclasses.dataclass
class Diagnostic:
    file: str
    line: int
    severity: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.message}"


_DIAG = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning|fatal error): (?P<msg>.*)$")


def _source_line(file: str, line: int, base: Path) -> str:
    for root in (REPO, base):
        p = (root / file) if not os.path.isabs(file) else Path(file)
        if p.is_file():
            lines = p.read_text().splitlines()
            return lines[line - 1] if 0 < line <= len(lines) else ""
    return ""


def _allowed(d: Diagnostic, base: Path) -> bool:
    """The one C++ error that valid Metal produces under the shim: a function
    constant is a program-scope `constant` variable without an initializer
    (the host supplies its value), which C++ rejects for a const object. Only
    that message, and only on a line that declares a [[function_constant]];
    a plain uninitialized `constant` variable is an error in Metal as well."""
    return (d.severity == "error"
            and d.message.startswith("default initialization of an object of const type")
            and "[[function_constant(" in _source_line(d.file, d.line, base))


def parse_diagnostics(stderr: str) -> list[Diagnostic]:
    out = []
    for line in stderr.splitlines():
        m = _DIAG.match(line.strip())
        if m:
            out.append(Diagnostic(m["file"], int(m["line"]), m["sev"], m["msg"]))
    return out


@dataclasses.dataclass
class TypecheckResult:
    returncode: int
    diagnostics: list[Diagnostic]   # everything clang reported
    errors: list[Diagnostic]        # what remains after _allowed()
    stderr: str
    ast: dict | None


def typecheck(path: str | Path, *, ast: bool = True, extra: list[str] | None = None) -> TypecheckResult:
    """clang -fsyntax-only over `path` in the shim's address-space mode."""
    c = compiler()
    if isinstance(c, str):
        raise RuntimeError(c)
    syntax = list(c[0])
    path = Path(path)
    cmd = [*syntax, *COMMON_FLAGS, *TYPECHECK_FLAGS, *(extra or [])]
    if ast:
        cmd += ["-Xclang", "-ast-dump=json"]
    cmd.append(str(path))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    diags = parse_diagnostics(r.stderr)
    errors = [d for d in diags if not _allowed(d, path.parent)]
    if r.returncode != 0 and not diags:
        # A failure clang did not explain in the usual format (a crash, a bad flag).
        errors.append(Diagnostic(str(path), 0, "error", r.stderr.strip()[:2000] or "clang failed"))
    tree = None
    if ast and r.stdout.strip():
        tree = json.loads(r.stdout)
    return TypecheckResult(r.returncode, diags, errors, r.stderr, tree)


# --------------------------------------------------------------------------
# The AST: kernels, function constants, call graph, the Metal subset
# --------------------------------------------------------------------------

@dataclasses.dataclass
class Param:
    name: str
    type: str                  # as written (address spaces by their macro names)
    desugared: str             # with __attribute__((address_space(n)))
    buffer: int | None = None
    gate: str | None = None    # function constant that compiles the argument in
    builtin: str | None = None  # e.g. thread_position_in_grid

    @property
    def address_space(self) -> int | None:
        m = re.search(r"address_space\((\d+)\)", self.desugared)
        if m:
            return int(m.group(1))
        # clang prints an address space written in the source by the shim's
        # macro name, without the attribute
        m = re.search(r"\b(device|constant|threadgroup)\b", self.type)
        return {"device": 1, "constant": 2, "threadgroup": 3}[m.group(1)] if m else None

    @property
    def is_pointer_or_reference(self) -> bool:
        return self.desugared.rstrip().endswith(("*", "&"))

    @property
    def is_const(self) -> bool:
        """The pointee (or referee) is read-only: const, or in Metal's
        read-only constant address space."""
        head = re.sub(r"[*&]\s*$", "", self.desugared.strip())
        return re.search(r"\bconst\b", head) is not None or self.address_space == 2

    @property
    def element(self) -> str:
        head = re.sub(r"[*&]\s*$", "", self.type.strip())
        head = re.sub(r"__attribute__\(\(address_space\(\d+\)\)\)", " ", head)
        head = re.sub(r"\b(const|device|constant|thread|threadgroup)\b", " ", head)
        return " ".join(head.split())


@dataclasses.dataclass
class Kernel:
    name: str
    params: list[Param]
    id: str


@dataclasses.dataclass
class Constant:
    name: str
    index: int
    type: str
    id: str


@dataclasses.dataclass
class Function:
    name: str
    id: str
    callees: set[str]
    var_refs: set[str]


@dataclasses.dataclass
class Analysis:
    kernels: dict[str, Kernel]
    constants: dict[str, Constant]
    functions: dict[str, Function]
    violations: list[str]

    def reachable(self, fid: str) -> set[str]:
        seen, todo = set(), [fid]
        while todo:
            f = todo.pop()
            if f in seen or f not in self.functions:
                continue
            seen.add(f)
            todo.extend(self.functions[f].callees)
        return seen

    def constants_used_by(self, kernel: str) -> set[str]:
        ids = {c.id: c.name for c in self.constants.values()}
        used = set()
        for f in self.reachable(self.kernels[kernel].id):
            used |= {ids[v] for v in self.functions[f].var_refs if v in ids}
        return used


def _strings_and_ints(node) -> list:
    """Arguments of an AnnotateAttr, in order: str for string literals, int
    for integer constants."""
    out = []
    for arg in node.get("inner", []):
        stack = [arg]
        while stack:
            n = stack.pop()
            if n.get("kind") == "StringLiteral":
                out.append(json.loads(n["value"]))
                break
            if n.get("kind") == "ConstantExpr" and n.get("type", {}).get("qualType") in ("int", "unsigned int"):
                out.append(int(n["value"]))
                break
            stack.extend(reversed(n.get("inner", [])))
    return out


def _annotations(node) -> list[list]:
    return [_strings_and_ints(a) for a in node.get("inner", []) if a.get("kind") == "AnnotateAttr"]


# Statements and expressions that Metal does not have.
_FORBIDDEN_KINDS = {
    "CXXThrowExpr": "exceptions (throw)",
    "CXXTryStmt": "exceptions (try)",
    "CXXCatchStmt": "exceptions (catch)",
    "CXXNewExpr": "dynamic allocation (new)",
    "CXXDeleteExpr": "dynamic allocation (delete)",
    "CXXTypeidExpr": "RTTI (typeid)",
    "CXXDynamicCastExpr": "RTTI (dynamic_cast)",
    "LambdaExpr": "lambda expressions",
    "GCCAsmStmt": "inline assembly",
    "MSAsmStmt": "inline assembly",
    "GotoStmt": "goto",
    "IndirectGotoStmt": "goto",
}
# Types that Metal does not have (no double precision, no 128-bit or long long).
_FORBIDDEN_TYPES = re.compile(r"\b(double|long long|__int128|_Complex|wchar_t)\b|\(\*\)")
_FORBIDDEN_SCALARS = re.compile(r"\b(double|long long|__int128|_Complex|wchar_t)\b")
_FUNCTION_KINDS = ("FunctionDecl", "CXXMethodDecl", "CXXConstructorDecl", "CXXDestructorDecl",
                   "CXXConversionDecl")


def _params(fn_node) -> list[Param]:
    params = []
    for p in fn_node.get("inner", []):
        if p.get("kind") != "ParmVarDecl":
            continue
        t = p.get("type", {})
        prm = Param(p.get("name", ""), t.get("qualType", ""),
                    t.get("desugaredQualType", t.get("qualType", "")))
        for a in _annotations(p):
            if a and a[0] == "buffer":
                prm.buffer = a[1]
            elif a and a[0] == "function_constant":
                prm.gate = a[1]
            elif a:
                prm.builtin = a[0]
        params.append(prm)
    return params


def analyze(ast: dict) -> Analysis:
    kernels: dict[str, Kernel] = {}
    constants: dict[str, Constant] = {}
    functions: dict[str, Function] = {}
    violations: list[str] = []
    previous: dict[str, str] = {}  # redeclaration id -> the declaration it follows

    def where(node, fn):
        ctx = f" in {fn.name}" if fn else ""
        name = node.get("name")
        return f"{node.get('kind')}{' ' + name if name else ''}{ctx}"

    def check_type(node, fn, declaration: bool):
        # Declarations may not have function-pointer types either; for
        # expressions that would flag every call (function-to-pointer decay).
        t = node.get("type", {})
        for q in (t.get("qualType", ""), t.get("desugaredQualType", "")):
            m = (_FORBIDDEN_TYPES if declaration else _FORBIDDEN_SCALARS).search(q)
            if m:
                what = "function pointers are" if "(" in m.group(0) else f"{m.group(0)} is"
                violations.append(f"type {q!r} ({what} not in Metal): {where(node, fn)}")
                return

    def visit(node, fn: Function | None):
        kind = node.get("kind", "")
        if node.get("isImplicit"):
            return  # compiler-made declarations (builtin typedefs, special members)
        if kind in _FORBIDDEN_KINDS:
            violations.append(f"{_FORBIDDEN_KINDS[kind]}: {where(node, fn)}")
        if kind in _FUNCTION_KINDS:
            if node.get("previousDecl"):
                previous[node["id"]] = node["previousDecl"]
            if node.get("virtual"):
                violations.append(f"virtual function: {where(node, fn)}")
            if node.get("variadic"):
                violations.append(f"variadic function: {where(node, fn)}")
            if any(c.get("kind") == "CompoundStmt" for c in node.get("inner", [])):
                f = Function(node.get("name", "?"), node["id"], set(), set())
                functions[node["id"]] = f
                if ["kernel"] in _annotations(node):
                    kernels[f.name] = Kernel(f.name, _params(node), node["id"])
                for c in node.get("inner", []):
                    visit(c, f)
                return
        if kind == "VarDecl":
            check_type(node, fn, True)
            fc = [a for a in _annotations(node) if a and a[0] == "function_constant"]
            t = node.get("type", {})
            if fn is None:
                if "address_space(2)" not in t.get("desugaredQualType", t.get("qualType", "")):
                    violations.append("program-scope variable outside the constant address space: "
                                      f"{node.get('name')}")
                if fc:
                    qt = t.get("qualType", "")
                    base = "bool" if re.search(r"\bbool\b", qt) else (
                        "int" if re.search(r"\bint\b", qt) else qt)
                    constants[node["name"]] = Constant(node["name"], int(fc[0][1]), base, node["id"])
            elif node.get("storageClass") in ("static", "extern"):
                violations.append(f"{node['storageClass']} local variable: {where(node, fn)}")
            if node.get("tls"):
                violations.append(f"thread_local variable: {where(node, fn)}")
        elif kind in ("ParmVarDecl", "FieldDecl", "TypedefDecl", "TypeAliasDecl"):
            check_type(node, fn, True)
        elif kind.endswith("Literal") or kind.endswith("CastExpr"):
            check_type(node, fn, False)
        elif kind == "DeclRefExpr" and fn is not None:
            ref = node.get("referencedDecl", {})
            if ref.get("kind") in _FUNCTION_KINDS:
                fn.callees.add(ref["id"])
            elif ref.get("kind") == "VarDecl":
                fn.var_refs.add(ref["id"])
        elif kind == "MemberExpr" and fn is not None and node.get("referencedMemberDecl"):
            fn.callees.add(node["referencedMemberDecl"])
        for c in node.get("inner", []):
            visit(c, fn)

    visit(ast, None)

    # A call may name a forward declaration: resolve every declaration of a
    # function to the one with the body.
    canonical: dict[str, str] = {}
    for fid in functions:
        d = fid
        while d in previous:
            d = previous[d]
            canonical[d] = fid
    for f in functions.values():
        f.callees = {canonical.get(c, c) for c in f.callees}

    # Recursion: a cycle in the call graph (Metal has no call stack).
    state: dict[str, int] = {}

    def dfs(f: str, path: list[str]):
        state[f] = 1
        for g in functions[f].callees:
            if g not in functions:
                continue
            if state.get(g) == 1:
                cyc = path[path.index(g):] + [g] if g in path else [f, g]
                violations.append("recursion: " + " -> ".join(functions[x].name for x in cyc))
            elif g not in state:
                dfs(g, path + [g])
        state[f] = 2

    for f in list(functions):
        if f not in state:
            dfs(f, [f])
    return Analysis(kernels, constants, functions, violations)


# --------------------------------------------------------------------------
# Checks on the kernel signatures themselves
# --------------------------------------------------------------------------

BUILTINS = {"thread_position_in_grid"}  # what the emulator supplies


def signature_problems(a: Analysis) -> list[str]:
    """Kernel arguments Metal would reject or the emulator cannot bind."""
    out = []
    for k in a.kernels.values():
        seen: dict[int, str] = {}
        builtins = 0
        for p in k.params:
            if p.builtin is not None:
                builtins += 1
                if p.builtin not in BUILTINS:
                    out.append(f"{k.name}({p.name}): built-in [[{p.builtin}]] is not modelled by the shim")
                if p.buffer is not None or p.is_pointer_or_reference:
                    out.append(f"{k.name}({p.name}): a built-in is a plain value")
                continue
            if p.buffer is None:
                out.append(f"{k.name}({p.name}): kernel argument without [[buffer(n)]] or a built-in")
                continue
            if p.buffer in seen:
                out.append(f"{k.name}: [[buffer({p.buffer})]] on both {seen[p.buffer]} and {p.name}")
            seen[p.buffer] = p.name
            if not 0 <= p.buffer <= 30:
                out.append(f"{k.name}({p.name}): buffer index {p.buffer} outside Metal's 0..30")
            if not p.is_pointer_or_reference:
                out.append(f"{k.name}({p.name}): a buffer argument is a device/constant pointer or "
                           "constant reference")
            elif p.address_space not in (1, 2):
                out.append(f"{k.name}({p.name}): pointer argument without the device or constant "
                           "address space")
            elif p.desugared.rstrip().endswith("&") and p.address_space != 2:
                out.append(f"{k.name}({p.name}): by-reference arguments must be `constant T&`")
            if p.gate is not None and p.gate not in a.constants:
                out.append(f"{k.name}({p.name}): gated by {p.gate}, which is no [[function_constant]]")
            if p.gate is not None and a.constants.get(p.gate) and a.constants[p.gate].type != "bool":
                out.append(f"{k.name}({p.name}): gate {p.gate} is not a bool function constant")
        if builtins != 1:
            out.append(f"{k.name}: needs exactly one [[thread_position_in_grid]] argument")
    idx = {}
    for c in a.constants.values():
        if c.index in idx:
            out.append(f"[[function_constant({c.index})]] on both {idx[c.index]} and {c.name}")
        idx[c.index] = c.name
        if c.type not in ("bool", "int"):
            out.append(f"function constant {c.name} has type {c.type}; the plans set bool or int")
    return out


# --------------------------------------------------------------------------
# Text checks on the sources
# --------------------------------------------------------------------------

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_STRING = re.compile(r'"(?:\\.|[^"\\\n])*"')


def strip_comments(text: str) -> str:
    return _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), _STRING.sub('""', text))


def lint_text(metal_path: Path, inlined: str) -> list[str]:
    """What the AST cannot see: preprocessor-level rules."""
    out = []
    raw = metal_path.read_text()
    if not re.search(r"^\s*#\s*pragma\s+METAL\s+fp\s+contract\s*\(\s*off\s*\)", raw, re.M):
        out.append(f"{metal_path.name}: missing `#pragma METAL fp contract(off)` (Metal contracts "
                   "a*b+c into an FMA even in safe math mode)")
    code = strip_comments(inlined)
    for m in re.finditer(r"\bstd\s*::", code):
        line = code[:m.start()].count("\n") + 1
        out.append(f"{metal_path.name}: `std::` in the inlined source (line {line}); Metal has no "
                   "standard library")
    if re.search(r"template\s*\[\[\s*host_name", code):
        out.append(f"{metal_path.name}: `template [[host_name(..)]]` instantiation: clang cannot "
                   "compile it, so the emulator could not check it; use a concrete [[kernel]] wrapper")
    if re.search(r"(?<![\w\[])kernel\s+void\b", code):
        out.append(f"{metal_path.name}: the `kernel` keyword form; write [[kernel]] so that the "
                   "shim can see it")
    return out


def lint(path: str | Path) -> list[str]:
    """Every reason `path` (a .metal file) is outside the Metal subset that the
    shim models, or is not valid Metal as far as clang can tell."""
    path = Path(path)
    embed = load_embed()
    try:
        # a file outside the repository (a test's example) includes only its neighbours
        root = REPO if path.resolve().is_relative_to(REPO) else path.resolve().parent
        text = embed.inline(path, root=root)
    except embed.EmbedError as e:
        return [str(e)]
    problems = lint_text(path, text)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / (path.stem + ".inlined.metal")
        src.write_text(text)
        r = typecheck(src)
    problems += [str(e) for e in r.errors]
    if r.ast is not None:
        a = analyze(r.ast)
        problems += a.violations + signature_problems(a)
    return problems
