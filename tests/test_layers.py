"""The package's layers, checked on its source: dependencies point one way and nothing cycles.

The rule (see docs/internals.md), lowest first:

0. vocabulary: events, exceptions, journal, typing, hooks, ``_stage``, ``_context``, ``_version``;
1. the engine, ``dualwrite._core``: no AWS-service knowledge;
2. one package per service, ``dualwrite._s3`` and ``dualwrite._dynamodb``, which never import
   each other;
3. the registry (``_services``), ``wrap`` (``_wrap``) and the offline operations
   (``dualwrite._offline``: repair, backfill, check, follow), which never import each other;
4. the ``DualWriter`` facade (``_writer``, the package's ``__init__``);
5. the CLI and the optional extras (``otel``, ``sessions``, ``testing``, ...).

A module imports only from its own layer or lower ones. Every import counts, including imports
inside functions (a cycle hidden in a function is still a cycle at run time); imports under
``if TYPE_CHECKING:`` do not (annotations only). The graph is read with :mod:`ast`, so the test
needs no third-party tool.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import dualwrite

PACKAGE = Path(dualwrite.__file__).parent

VOCABULARY = {
    "dualwrite.events",
    "dualwrite.exceptions",
    "dualwrite.journal",
    "dualwrite.typing",
    "dualwrite.hooks",
    "dualwrite._stage",
    "dualwrite._context",
    "dualwrite._version",
}
SERVICES = ("dualwrite._s3", "dualwrite._dynamodb")
OFFLINE_OPERATIONS = ("repair", "backfill", "check", "follow")


def layer(module: str) -> int:
    """The layer of a module of the package (see the module docstring)."""
    if module in VOCABULARY or module.startswith(tuple(f"{v}." for v in VOCABULARY)):
        return 0
    if module.startswith("dualwrite._core"):
        return 1
    if module.startswith(SERVICES):
        return 2
    if module in ("dualwrite._services", "dualwrite._wrap") or module.startswith(
        "dualwrite._offline"
    ):
        return 3
    if module in ("dualwrite", "dualwrite._writer"):
        return 4
    return 5


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """The ``dualwrite`` modules a module's code imports (outside ``if TYPE_CHECKING:``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".")
                    if not is_package:
                        anchor = anchor[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base]) if base else ".".join(anchor)
                yield base
                # ``from dualwrite._s3 import handlers`` imports the submodule too.
                for alias in child.names:
                    yield f"{base}.{alias.name}"
            else:
                stack.append(child)


def import_graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module -> the package modules it imports, from ``{module: (source, is_package)}``."""
    known = set(sources)
    graph: dict[str, set[str]] = {}
    for module, (source, is_package) in sources.items():
        targets = set()
        for imported in _imports(ast.parse(source), module, is_package):
            # The longest known prefix: ``dualwrite._s3.handlers.Options`` -> the module.
            name = imported
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module and name.startswith("dualwrite"):
                targets.add(name)
        graph[module] = targets
    return graph


def violations(graph: Mapping[str, set[str]]) -> list[str]:
    """Every import against the layers of the module docstring."""
    out = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if target == "dualwrite" and module.startswith("dualwrite."):
                # ``from dualwrite import events`` names a vocabulary module, not the facade;
                # the submodule itself is in the graph too.
                continue
            if layer(target) > layer(module):
                out.append(
                    f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})"
                )
            for one, other in (SERVICES, SERVICES[::-1]):
                if module.startswith(one) and target.startswith(other):
                    out.append(f"{module} imports the other service's {target}")
            mine, theirs = _operation(module), _operation(target)
            if mine and theirs and mine != theirs:
                out.append(f"offline operation {module} imports offline operation {target}")
    return out


def _operation(module: str) -> str | None:
    """The offline operation a module belongs to (``follow`` for ``follow_s3``), or ``None``
    for a module the operations share (``progress``)."""
    if not module.startswith("dualwrite._offline."):
        return None
    name = module.split(".")[2]
    for operation in OFFLINE_OPERATIONS:
        if name == operation or name.startswith(f"{operation}_"):
            return operation
    return None


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (one path per strongly connected component)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package_sources() -> dict[str, tuple[str, bool]]:
    return {
        _module_name(path): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _without_facade(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """The graph without edges to the package's ``__init__`` from inside: every ``from dualwrite
    import x`` names it, which is not a dependency on the facade's own code."""
    return {m: {t for t in ts if t != "dualwrite"} for m, ts in graph.items()}


def test_every_import_points_down_the_layers() -> None:
    assert violations(import_graph(_package_sources())) == []


def test_no_import_cycle() -> None:
    assert cycles(_without_facade(import_graph(_package_sources()))) == []


def test_the_checks_catch_what_they_are_for() -> None:
    """The rules above fail on a bad graph (so that they cannot pass by reading nothing)."""
    sources = {
        "dualwrite._core.mirror": ("def f():\n    from dualwrite._offline import repair\n", False),
        "dualwrite._offline": ("", True),
        "dualwrite._offline.repair": ("from dualwrite._core import mirror\n", False),
        "dualwrite._offline.check": ("from dualwrite._offline.repair import x\n", False),
        "dualwrite._s3.handlers": ("from dualwrite._dynamodb.handlers import y\n", False),
        "dualwrite._dynamodb.handlers": (
            (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from dualwrite._writer import DualWriter\n"
            ),
            False,
        ),
        "dualwrite._writer": ("", False),
        "dualwrite._core": ("", True),
    }
    graph = import_graph(sources)
    assert graph["dualwrite._dynamodb.handlers"] == set()  # annotations only
    found = violations(graph)
    assert any("dualwrite._core.mirror (layer 1) imports dualwrite._offline" in v for v in found)
    assert any("imports the other service's" in v for v in found)
    assert any("offline operation dualwrite._offline.check imports" in v for v in found)
    assert cycles(graph) == [["dualwrite._core.mirror", "dualwrite._offline.repair"]]


def test_the_package_is_read() -> None:
    graph = import_graph(_package_sources())
    assert {"dualwrite._core.mirror", "dualwrite._s3.service", "dualwrite._writer"} <= set(graph)
    assert "dualwrite._core.runtime" in graph["dualwrite._writer"]


@pytest.mark.parametrize("module", ["dualwrite", "dualwrite.events", "dualwrite.journal"])
def test_importing_the_package_loads_no_boto3_and_no_service(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'boto3' "
        "or m.startswith(('dualwrite._s3', 'dualwrite._dynamodb')))\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
