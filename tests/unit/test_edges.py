"""The code's edges, checked from the source: no import cycles, bot/ uses only public names of
handlers/ and services/, no ``type: ignore`` in handlers/, every callback pattern made by
``handlers.callbacks.pattern``, and SQL only in services/repos (and services/db.py's
impersonation, and the SQLite outbox's own file)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "services")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _runtime_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported: its top level, without ``if
    TYPE_CHECKING:`` blocks (imports inside functions run later, when called)."""
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If | ast.Try) and not (
            isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        ):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    yield inner


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                assert node.level == 0, f"{name}: relative import"
                base = node.module or ""
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    graph = _graph()
    assert "handlers.onboarding" in graph["handlers.basic"]  # /start asks the first question
    assert not _cycles(graph)


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_bot_uses_only_public_names_of_handlers_and_services() -> None:
    private = []
    for name, path in _modules().items():
        if not name.startswith("bot"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported: set[str] = set()  # names bound to modules of handlers/services
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
                "handlers",
                "services",
            ):
                for alias in node.names:
                    if alias.name.startswith("_"):
                        private.append(f"{name}: {node.module}.{alias.name}")
                    imported.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in ("handlers", "services"):
                        imported.add((alias.asname or alias.name).split(".")[0])
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in imported
            ):
                private.append(f"{name}: {node.value.id}.{node.attr}")
    assert not private


def test_no_type_ignore_in_handlers() -> None:
    found = [
        f"{path.name}:{n}"
        for path in sorted((ROOT / "handlers").rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "type: ignore" in line
    ]
    assert not found


def test_every_callback_pattern_is_made_by_the_codec() -> None:
    raw = [
        f"{path.name}:{n}"
        for path in sorted((ROOT / "handlers").rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"pattern\s*=\s*r?[\"']", line)
    ]
    assert not raw


#: A statement's first words, as the code spells its SQL (lower case).
_SQL = re.compile(
    r"[\"'](?:with \w+ as \(|select [\w*(]|insert into |update \w+ set |delete from )"
)


def test_sql_lives_in_services_repos() -> None:
    allowed = {"services/db.py", "services/outbox.py"}  # the impersonation; SQLite's own file
    found = []
    for path in _modules().values():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(("services/repos/", "bot/local_api/")) or relative in allowed:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _SQL.search(line):
                found.append(f"{relative}:{n}: {line.strip()}")
    assert not found
