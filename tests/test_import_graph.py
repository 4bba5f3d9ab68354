"""The package's import graph: no cycles, and no lower layer importing a higher one.

Every ``import`` / ``from … import`` in ``driftd/`` is read from the source (function-level
and ``TYPE_CHECKING`` imports included: a lazy import is still a dependency). The layers are
the ones docs/architecture.md describes; a module may import its own layer or lower ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "driftd"

# Lowest first. A key is a module or a package (all its modules).
LAYERS: list[tuple[str, ...]] = [
    ("driftd._version", "driftd.types", "driftd.errors", "driftd.arrays"),
    ("driftd.config", "driftd.state"),
    ("driftd.kernels",),
    ("driftd.sources", "driftd.ingest", "driftd.io"),
    ("driftd.reference",),
    ("driftd.stats",),
    ("driftd.windows",),
    ("driftd.detectors", "driftd.performance"),
    ("driftd.policy",),
    ("driftd.monitor",),
    ("driftd.actions",),
    ("driftd.metrics",),
    ("driftd.runtime", "driftd.demo", "driftd.report", "driftd.api"),
    ("driftd.cli", "driftd.__main__", "driftd"),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """driftd modules ``name`` imports (``from pkg import mod`` resolves to ``pkg.mod``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "driftd":
                    out.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "driftd":
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.add(sub if sub in known else mod)
    out.discard(name)
    return {m for m in out if m in known}


def layer_of(mod: str) -> int:
    best, rank = -1, -1
    for i, keys in enumerate(LAYERS):
        for key in keys:
            if (mod == key or mod.startswith(key + ".")) and len(key) > best:
                best, rank = len(key), i
    assert rank >= 0, f"{mod} is in no layer: add it to LAYERS and docs/architecture.md"
    return rank


GRAPH = {n: imports_of(n, p, set(modules())) for n, p in modules().items()}


def test_every_module_has_a_layer() -> None:
    for mod in GRAPH:
        layer_of(mod)


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{mod} (layer {layer_of(mod)}) imports {dep} (layer {layer_of(dep)})"
        for mod, deps in sorted(GRAPH.items())
        for dep in sorted(deps)
        if layer_of(dep) > layer_of(mod)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles() -> None:
    # Tarjan's strongly connected components; a package importing its own submodules (its
    # __init__ re-exporting them) is not a cycle unless a submodule imports the package back.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
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
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("mod", ["driftd.metrics", "driftd.runtime.http"])
def test_read_views_do_not_reach_into_state(mod: str) -> None:
    """Metrics and HTTP read the published status, not the stages' internals."""
    deps = GRAPH[mod]
    assert not deps & {"driftd.monitor.stage", "driftd.monitor.version", "driftd.runtime.pipeline"}


def test_no_module_is_over_the_size_budget() -> None:
    """A module over ~450 lines is usually two ideas (docs/architecture.md)."""
    long = {
        n: len(p.read_text().splitlines())
        for n, p in modules().items()
        if len(p.read_text().splitlines()) > 480
    }
    assert long.keys() <= KNOWN_LONG, long


# Modules that were long before the engine rebuild and are not part of it: kernels and
# calibration with their long derivations, the config models, the performance join tables.
KNOWN_LONG = {
    "driftd.kernels.special",
    "driftd.stats.calibrate",
    "driftd.config",
    "driftd.performance.table",
    "driftd.performance.kernels",
    "driftd.performance.join",
}
