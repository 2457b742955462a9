"""The import graph of the deepbatch package, read from the source with ``ast`` (nothing is imported).

``python tools/import_graph.py`` prints one line per module, ``module -> the package modules it imports``, counting
imports inside functions too (they form cycles all the same, only later), but not those under
``if TYPE_CHECKING:`` (they never run). It exits 1 when the graph has a cycle, printing each one, or when a module
imports a private name (``_name``) from another module of the package; ``--private-ok PREFIX`` leaves the modules
under ``PREFIX`` out of that second check. ``--quiet`` prints only the problems.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "deepbatch"

Graph = Dict[str, Set[str]]


def module_names(root: Path = ROOT, package: str = PACKAGE) -> Dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file of the package (``pkg.__init__`` is ``pkg``)."""
    names = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> List[ast.AST]:
    """Every import statement of ``tree`` at any depth, except the bodies of ``if TYPE_CHECKING:``."""
    found: List[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
            continue
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> Optional[str]:
    """The absolute module a ``from ... import`` statement names."""
    if not node.level:
        return node.module
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def read_graph(root: Path = ROOT, package: str = PACKAGE) -> Tuple[Graph, List[Tuple[str, str, str]]]:
    """``(graph, private)``: module -> package modules it imports, and ``(module, imported from, name)`` for each
    private name imported from another module of the package."""
    names = module_names(root, package)
    graph: Graph = {name: set() for name in names}
    private = []
    for module, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                assert isinstance(node, ast.ImportFrom)
                base = _base(module, path.name == "__init__.py", node)
                if base is None:
                    continue
                targets = []
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in names:  # ``from . import errors``: the submodule itself
                        targets.append(sub)
                        continue
                    targets.append(base)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and base in names \
                            and base != module:
                        private.append((module, base, alias.name))
            for target in targets:
                if target in names and target != module:
                    graph[module].add(target)
    return graph, private


def cycles(graph: Graph) -> List[List[str]]:
    """The strongly connected components of more than one module (each one holds at least one cycle), sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="print only the cycles and private imports")
    parser.add_argument("--private-ok", action="append", default=[], metavar="PREFIX",
                        help="modules under PREFIX may import private names (repeatable)")
    args = parser.parse_args(argv)
    graph, private = read_graph()
    if not args.quiet:
        for module in sorted(graph):
            print(f"{module} -> {', '.join(sorted(graph[module])) or '(nothing)'}")
    problems = 0
    for component in cycles(graph):
        problems += 1
        print(f"cycle among: {', '.join(component)}", file=sys.stderr)
    for module, base, name in private:
        if any(module == p or module.startswith(p + ".") for p in args.private_ok):
            continue
        problems += 1
        print(f"private name: {module} imports {name} from {base}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
