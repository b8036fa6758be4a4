"""The shape ARCHITECTURE.md draws: layers import only downward, no import circle (lazy imports
inside functions count), the format package depends on nothing but errors, no module is huge."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "capsa"
# Lowest first. A top-level package may import itself and anything before it.
LAYERS = [
    "errors",
    "_version",
    "format",
    "_internal",
    "storage",
    "signing",
    "bundle",
    "containers",
    "compare",
    "recording",
    "replay",
    "views",
    "export",
    "cli",
]
ENTRY_POINTS = {"capsa", "capsa.__main__", "capsa.schema"}  # the facade and `python -m` modules
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = p.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every capsa module ``name`` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import submodule` imports the submodule.
            targets = [
                f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names
            ]
        found.update(t for t in targets if t == "capsa" or t.startswith("capsa."))
    found.discard(name)
    return {t for t in found if t in modules}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    top = module.split(".")[1]
    return LAYERS.index(top)


def test_every_package_is_in_a_layer() -> None:
    tops = {m.split(".")[1] for m in _modules() if m not in ENTRY_POINTS}
    assert tops <= set(LAYERS), f"add {sorted(tops - set(LAYERS))} to LAYERS and ARCHITECTURE.md"


def test_layers_import_only_downward() -> None:
    wrong = [
        f"{m} imports {t}"
        for m, targets in _graph().items()
        if m not in ENTRY_POINTS
        for t in targets
        # Only the command line (the top) may use the public facade `capsa` itself.
        if (t in ENTRY_POINTS and not m.startswith("capsa.cli."))
        or (t not in ENTRY_POINTS and _layer(t) > _layer(m))
    ]
    assert wrong == []


def test_the_format_package_imports_only_errors() -> None:
    wrong = [
        f"{m} imports {t}"
        for m, targets in _graph().items()
        if m.startswith("capsa.format")
        for t in targets
        if not (t.startswith("capsa.format") or t == "capsa.errors")
    ]
    assert wrong == []


def test_no_import_circle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_no_module_is_huge() -> None:
    big = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}


def test_the_graph_sees_lazy_imports() -> None:
    """The checks above would pass vacuously if function-level imports were missed."""
    graph = _graph()
    assert "capsa.compare.registry" in graph["capsa.compare.hdf5.diff"]  # inside compare()
    assert "capsa.format.zip64" in graph["capsa.bundle.reader"]
