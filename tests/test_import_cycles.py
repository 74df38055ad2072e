"""No import cycles inside the elign package, counting imports written inside functions.

import-linter's layer contract checks imports between the layers (cli, stages, rl, ...) but not between the
modules of one package, and an import placed inside a function hides a cycle from Python itself. This test
parses every module with ``ast``, takes every ``import`` / ``from ... import`` wherever it is written
(module level, functions, classes, ``if TYPE_CHECKING`` blocks), resolves relative imports and
``from pkg import submodule``, builds the module graph and fails listing each cycle: a strongly connected
component of more than one module, or a module that imports itself.

Imports of a string at run time (``importlib.import_module``, as the data-source registry does) are not
seen. A package's ``__init__`` is a module of its own (``elign.stages``): an import of ``elign.stages.sample``
runs ``elign/stages/__init__.py`` first, so it counts as an edge to the package as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "elign"


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``package_dir`` (the package's own name first)."""
    root = package_dir.name
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join([root, *parts])] = path
    return modules


def _resolve_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from X import ...`` names, resolving ``level`` dots against ``module``."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _parents(name: str, modules: dict[str, Path]) -> set[str]:
    """The packages above ``name`` that are in ``modules`` (importing a.b.c runs a and a.b first)."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))} & modules.keys()


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that ``module`` imports anywhere in its source.

    A module's own enclosing packages are left out where they are only run on the way to a submodule
    (they have already run when ``module`` runs); they count where a name is taken from them
    (``from elign.stages import something_defined_in_init``), and so does a module naming itself.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    own = _parents(module, modules) | {module}
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found |= _parents(alias.name, modules) - own
                if alias.name in modules:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve_from(node, module, is_package)
            found |= _parents(target, modules) - own
            submodules = {f"{target}.{alias.name}" for alias in node.names} & modules.keys()
            found |= submodules  # ``from pkg import submodule``
            takes_names = len(submodules) < len(node.names)
            if target in modules and (takes_names or target not in own):
                found.add(target)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the modules of the package that it imports."""
    modules = module_files(package_dir)
    return {module: imported_modules(module, path, modules) for module, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph`` (iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
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
            if child is None:
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
                    components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def import_cycles(package_dir: Path) -> list[list[str]]:
    """Every cycle: components of more than one module, and modules that import themselves."""
    graph = import_graph(package_dir)
    return [c for c in strongly_connected(graph) if len(c) > 1 or c[0] in graph[c[0]]]


def test_elign_has_no_import_cycles():
    cycles = import_cycles(PACKAGE_DIR)
    assert not cycles, "import cycles (counting imports inside functions):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_graph_sees_the_package_modules():
    """The checker reads the real package: known edges are in the graph (guards against an empty graph)."""
    graph = import_graph(PACKAGE_DIR)
    assert len(graph) > 100
    assert "elign.stages" in graph and "elign.cli.main" in graph
    assert "elign.config" in graph["elign.cli.main"]
    assert "elign.diffusion.en_diffusion" in graph["elign.diffusion.factory"]


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    """a -> b at module level, b -> a inside a function (relative import): one cycle {a, b}."""
    pkg = _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "a.py": "from pkg.b import g\n\ndef f():\n    return g()\n",
            "b.py": "def g():\n    from .a import f\n    return f\n",
            "c.py": "import pkg.a\n",
        },
    )
    assert import_cycles(pkg) == [["pkg.a", "pkg.b"]]


def test_checker_finds_from_package_import_submodule_and_self_import(tmp_path):
    """``from pkg.sub import mod`` names a module; a module importing itself is a cycle of one."""
    pkg = _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "sub/__init__.py": "",
            "sub/x.py": "def h():\n    from .. import y\n",
            "y.py": "from pkg.sub import x\n",
            "z.py": "def k():\n    import pkg.z\n",
        },
    )
    cycles = import_cycles(pkg)
    assert ["pkg.sub.x", "pkg.y"] in cycles
    assert ["pkg.z"] in cycles
    assert len(cycles) == 2


def test_checker_counts_package_init_and_accepts_a_tree(tmp_path):
    """An __init__ importing its child and the child importing a sibling is fine; a child importing
    a module that imports the package's __init__ which imports the child is a cycle."""
    pkg = _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "sub/__init__.py": "from .p import P\n",
            "sub/p.py": "from pkg import q\n",
            "q.py": "X = 1\n",
        },
    )
    assert import_cycles(pkg) == []
    (pkg / "q.py").write_text("def f():\n    from pkg.sub import P\n")
    assert import_cycles(pkg) == [["pkg.q", "pkg.sub", "pkg.sub.p"]]


@pytest.mark.parametrize(
    ("source", "module", "is_package", "expected"),
    [
        ("from . import a", "pkg.sub.m", False, "pkg.sub"),
        ("from .. import a", "pkg.sub.m", False, "pkg"),
        ("from .x import a", "pkg.sub", True, "pkg.sub.x"),
        ("from ..x import a", "pkg.sub.m", False, "pkg.x"),
        ("from pkg.x import a", "pkg.sub.m", False, "pkg.x"),
    ],
)
def test_relative_imports_resolve(source, module, is_package, expected):
    node = ast.parse(source).body[0]
    assert _resolve_from(node, module, is_package) == expected
