"""The structure of src/hone in figures: module and function sizes, complexity, ``Any`` in
signatures, the busiest module's fan-in and fan-out, and import cycles between modules.

Run it on two commits to compare (the closing note of issue 34 has the table):

    python bench/structure.py            # this checkout
    git stash; git checkout OLD; python bench/structure.py; git checkout -; git stash pop

Function-level imports count as arrows (grimp reads every import statement of a module).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted((ROOT / "hone").rglob("*.py")):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _signature_has_any(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    a = fn.args
    anns = [x.annotation for x in [*a.posonlyargs, *a.args, *a.kwonlyargs] if x.annotation is not None]
    anns += [x.annotation for x in (a.vararg, a.kwarg) if x is not None and x.annotation is not None]
    if fn.returns is not None:
        anns.append(fn.returns)
    return any("Any" in ast.unparse(n) for n in anns)


def main() -> None:
    import mccabe

    mods = _modules()
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in mods.items()}
    funcs: list[tuple[int, str]] = []
    complexity: list[tuple[int, str]] = []
    n_sig = n_any = 0
    for m, p in mods.items():
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                funcs.append((node.end_lineno - node.lineno + 1, f"{m}.{node.name}"))  # type: ignore[operator]
                n_sig += 1
                n_any += _signature_has_any(node)
        visitor = mccabe.PathGraphingAstVisitor()
        visitor.preorder(tree, visitor)
        complexity += [(g.complexity(), f"{m}.{g.entity}") for g in visitor.graphs.values()]
    import grimp

    graph = grimp.build_graph("hone", include_external_packages=False)
    fan = {m: (len(graph.find_modules_that_directly_import(m)), len(graph.find_modules_directly_imported_by(m)))
           for m in graph.modules}
    busiest = max(fan, key=lambda m: sum(fan[m]))
    cycles = _cycles({m: graph.find_modules_directly_imported_by(m) for m in graph.modules})
    funcs.sort(reverse=True)
    complexity.sort(reverse=True)
    largest = max(sizes, key=sizes.__getitem__)
    print(f"python {sys.version.split()[0]}; {len(mods)} modules, {sum(sizes.values())} lines, "
          f"median module {sorted(sizes.values())[len(sizes) // 2]} lines")
    print(f"largest module:        {largest} ({sizes[largest]} lines)")
    print(f"longest function:      {funcs[0][1]} ({funcs[0][0]} lines)")
    print(f"most complex function: {complexity[0][1]} (cyclomatic {complexity[0][0]})")
    print(
        f"functions above 10:    {sum(c > 10 for c, _ in complexity)}; above 15: {sum(c > 15 for c, _ in complexity)}"
    )
    print(f"signatures with Any:   {n_any} of {n_sig} ({100 * n_any / n_sig:.0f} %)")
    print(f"busiest module:        {busiest} (imported by {fan[busiest][0]}, imports {fan[busiest][1]})")
    for m in sorted(fan, key=lambda m: -fan[m][1])[:3]:
        print(f"largest fan-out:       {m} (imported by {fan[m][0]}, imports {fan[m][1]} hone modules)")
    print(f"import cycles:         {len(cycles)} strongly connected group(s) of modules"
          + (": " + "; ".join(" <-> ".join(sorted(c)[:4]) + (" ..." if len(c) > 4 else "") for c in cycles[:5])
             if cycles else ""))


def _cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected groups of two or more modules (Tarjan), ignoring a package's arrows to its
    own ``__init__`` (a parent package importing its children is not an upward arrow)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w == v or v.startswith(w + "."):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(group)

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    main()
