"""The package layout's rules, checked on the source: dependencies point one way and no module
imports itself back through another (issue 11)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "flightsim", "hil", "search")
#: Which package may import which (search -> hil -> flightsim -> runtime).
ALLOWED = {"runtime": {"runtime"}, "flightsim": {"flightsim", "runtime"}, "hil": {"hil", "flightsim", "runtime"},
           "search": {"search", "hil", "flightsim", "runtime"}}


def _imports() -> dict[str, set[str]]:
    """module -> project modules it imports anywhere (module level or inside functions)."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            found = set()
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
                found |= {n for n in names if n.split(".")[0] in PACKAGES}
            graph[module] = found
    return graph


def test_dependencies_point_one_way() -> None:
    wrong = [(m, i) for m, deps in _imports().items() for i in deps if i.split(".")[0] not in ALLOWED[m.split(".")[0]]]
    assert not wrong, wrong


def test_no_import_cycle_between_modules() -> None:
    graph = _imports()
    modules = set(graph)

    def resolve(name: str) -> str | None:  # "runtime.device" or a symbol of it: the module
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges = {m: {r for d in deps if (r := resolve(d)) and r != m} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                cycles.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_openvino_is_imported_only_through_ov_api() -> None:
    """Two OpenVINO APIs meet the payload (2022.3's ``openvino.runtime`` for the MYRIAD plugin, the
    modern ``openvino``): one module bridges them, so nothing else imports OpenVINO itself."""
    offenders = []
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if path == REPO / "runtime" / "ov_api.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] == "openvino"]
    assert not offenders, offenders


#: Modules may be longer than this only with the reason written at their top.
MAX_LINES = 400


def test_long_modules_say_why_they_are_long() -> None:
    """Short modules, one question each: a module over MAX_LINES lines says in its docstring, in a
    paragraph starting "Length:", why it is one module."""
    unexplained = []
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text()
            docstring = "\n" + (ast.get_docstring(ast.parse(text)) or "")
            if text.count("\n") > MAX_LINES and "\nLength: " not in docstring:
                unexplained.append(f"{path.relative_to(REPO)} ({text.count(chr(10))} lines)")
    assert not unexplained, unexplained
