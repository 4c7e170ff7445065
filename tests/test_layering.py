"""The import graph of flaggems/ and benchmarks/ has no cycle, and no subpackage imports the package root.

Every import statement counts, at module level or inside a function: a function-level import that closes a
cycle is still a cycle in the design (it only moves the failure from import time to call time).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("flaggems", "benchmarks")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            mods[_module_name(path)] = path
    return mods


def _is_extension(name: str) -> bool:
    folder = ROOT.joinpath(*name.split(".")[:-1])
    leaf = name.split(".")[-1]
    return any(folder.glob(f"{leaf}.*.so")) or any(folder.glob(f"{leaf}.*.pyd")) or leaf == "_C"


def _resolve(mod: str, is_pkg: bool, level: int, target: str) -> str:
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _edges(mods):
    """module -> set of project modules it imports (``from p import x`` -> p.x when x is a module, else p)."""
    graph = {}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        out = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                src = _resolve(mod, is_pkg, node.level, node.module or "") if node.level else (node.module or "")
                names = []
                for a in node.names:
                    sub = f"{src}.{a.name}"
                    if sub in mods:
                        names.append(sub)
                    elif not _is_extension(sub):   # flaggems._C is a compiled submodule, not the package
                        names.append(src)
            else:
                continue
            for n in names:
                # `import a.b.c` names a.b.c; attribute imports resolve to the closest project module
                while n and n not in mods:
                    n = n.rpartition(".")[0]
                if n and n != mod:
                    out.add(n)
        graph[mod] = out
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return comps


@pytest.fixture(scope="module")
def graph():
    return _edges(_modules())


def test_no_import_cycle(graph):
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(
        " <-> ".join(c) + "\n    " + "\n    ".join(f"{a} -> {sorted(graph[a] & set(c))}" for a in c)
        for c in cycles)


def test_no_subpackage_imports_the_root(graph):
    bad = sorted(f"{m} imports {root}" for m, deps in graph.items() for root in PACKAGES
                 if root in deps and m.count(".") >= 2 or (root in deps and m.startswith(root + ".")
                                                            and (ROOT / m.replace(".", "/")).is_dir()))
    # modules inside a subpackage (flaggems.x.y) or a subpackage itself (flaggems.x/__init__) must import
    # downward, never the package root that imports them
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_cycle(tmp_path):
    """The walker resolves relative, absolute and function-level imports (so a real cycle cannot hide)."""
    graph = {"p": set(), "p.a": {"p.b"}, "p.b": {"p.a"}, "p.c": set()}
    assert _cycles(graph) == [["p.a", "p.b"]]
    assert _resolve("flaggems.ops.mm", False, 2, "vendors") == "flaggems.vendors"
    assert _resolve("flaggems.ops", True, 1, "mm") == "flaggems.ops.mm"
