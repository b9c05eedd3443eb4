"""Print the import graph of engagebot's packages: arrows between parts, the ones running upward,
circles, and imports hidden inside function bodies.

    python tools/import_graph.py            # summary
    python tools/import_graph.py --arrows   # every arrow between parts, with the modules behind it
    python tools/import_graph.py --dot      # Graphviz, for docs/architecture.md

Parts and their rank (lower may not import higher) follow docs/architecture.md.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Rank of each part, read from the layers contract in pyproject.toml (the one list of layers): an
# import from a part to one of a higher rank runs upward. ``bot`` itself (bot/__init__.py, the public
# API for handlers) sits just under the handlers.
def _ranks() -> list[tuple[str, int]]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c.get("id") == "layers")
    layers = contract["layers"]
    ranks: list[tuple[str, int]] = []
    for depth, layer in enumerate(layers):
        for name in layer.replace("|", ":").split(":"):
            ranks.append((name.strip(), len(layers) - depth))
    handlers_rank = dict(ranks)["handlers"]
    ranks.append(("bot", handlers_rank))
    return ranks


RANKS = _ranks()


def part_of(module: str) -> str | None:
    best = None
    for prefix, _rank in RANKS:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best):
                best = prefix
    return best


def rank(part: str) -> int:
    return dict(RANKS)[part]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, bool, int]]:
    """(imported module, inside a function body?, line) for each import of ours in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path)
    is_package = path.name == "__init__.py"
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, in_function: bool, in_type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            fn = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            tc = in_type_checking
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                tc = True
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if not tc:
                        found.append((alias.name, in_function, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                if tc:
                    continue
                if child.level:
                    base = package.split(".") if is_package else package.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                for alias in child.names:
                    candidate = f"{target}.{alias.name}"
                    found.append((candidate if (ROOT / (candidate.replace('.', '/') + '.py')).exists()
                                  or (ROOT / candidate.replace('.', '/')).is_dir() else target,
                                  in_function, child.lineno))
            visit(child, fn, tc)

    visit(tree, False, False)
    return [(m, f, line) for m, f, line in found if m.split(".")[0] in ("bot", "handlers")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrows", action="store_true")
    parser.add_argument("--dot", action="store_true")
    args = parser.parse_args()

    files = sorted(p for d in ("bot", "handlers") for p in (ROOT / d).rglob("*.py")
                   if "migrations" not in p.parts)
    arrows: dict[tuple[str, str], set[str]] = defaultdict(set)
    module_edges: dict[str, set[str]] = defaultdict(set)
    body_imports: list[str] = []
    for path in files:
        source = module_name(path)
        src_part = part_of(source)
        for target, in_function, line in imports_of(path):
            if in_function:
                entry = f"{path.relative_to(ROOT)}:{line}"
                if entry not in body_imports:
                    body_imports.append(entry)
            module_edges[source].add(target)
            dst_part = part_of(target)
            if src_part and dst_part and src_part != dst_part:
                arrows[(src_part, dst_part)].add(f"{source} -> {target}")

    upward = {k: v for k, v in arrows.items() if rank(k[1]) > rank(k[0])}
    # Circles between parts: strongly connected components of the part graph.
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in arrows:
        graph[a].add(b)
    circles = strongly_connected(graph)

    if args.dot:
        print("digraph engagebot {\n  rankdir=TB; node [shape=box, fontname=monospace];")
        for (a, b) in sorted(arrows):
            style = ' [color=red]' if (a, b) in upward else ""
            print(f'  "{a}" -> "{b}"{style};')
        print("}")
        return 0
    if args.arrows:
        for (a, b), why in sorted(arrows.items()):
            mark = "UP " if (a, b) in upward else "   "
            print(f"{mark}{a} -> {b}")
            for line in sorted(why):
                print(f"       {line}")
    print(f"arrows between parts: {len(arrows)}")
    print(f"running upward: {len(upward)}")
    for (a, b), why in sorted(upward.items()):
        print(f"  {a} -> {b}: {', '.join(sorted(why))}")
    print(f"circles: {len(circles)}")
    for circle in circles:
        print("  " + " <-> ".join(sorted(circle)))
    print(f"import statements inside function bodies: {len(body_imports)}")
    for line in body_imports:
        print("  " + line)
    return 0


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[set[str]] = []
    counter = [0]

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                result.append(component)

    for node in list(graph):
        if node not in index:
            connect(node)
    return result


if __name__ == "__main__":
    sys.exit(main())
