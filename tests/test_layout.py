"""The package's layout keeps its promises: short modules, no import cycle, private things stay private.

These read the source (no import needed), so they name the file and line that broke a rule.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cdp_tutorial"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 420  # "no module over ~400 lines"
# Keras' and TensorFlow's private API: allowed in one adapter only, so an upgrade breaks one file.
PRIVATE_API = re.compile(r"_inbound_nodes|_outbound_nodes|_keras_history|keras\.src\b|tensorflow\.python\b")
ADAPTER = PACKAGE / "keras_internals.py"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


NAMES = {module_name(p): p for p in MODULES}


def imported_modules(path: Path):
    """(line, module) for every import of a cdp_tutorial module in ``path``, lazy ones included."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "cdp_tutorial":
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base.split(".")[0] == "cdp_tutorial":
                yield node.lineno, base, [alias.name for alias in node.names]


def dependencies(path: Path) -> set[str]:
    found = set()
    for _, module, names in imported_modules(path):
        submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in NAMES]
        found.update(submodules or [module])
    return {m for m in found if m in NAMES} - {module_name(path)}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_is_short(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it by idea (limit ~400)"


def test_no_import_cycle():
    graph = {name: dependencies(path) for name, path in NAMES.items()}
    # a package's __init__ importing its own submodules is how re-exports work, not a cycle
    graph = {name: {d for d in deps if not (NAMES[name].name == "__init__.py" and d.startswith(name + "."))}
             for name, deps in graph.items()}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_no_private_name_is_imported_across_modules():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name} from {module}"
                 for path in MODULES for line, module, names in imported_modules(path)
                 for name in names if name.startswith("_") and not name.startswith("__")]
    assert not offenders, "make it public (with a docstring) or keep it in its module:\n" + "\n".join(offenders)


def test_private_keras_api_only_in_the_adapter():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{i}: {line.strip()}"
                 for path in MODULES if path != ADAPTER
                 for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                 if PRIVATE_API.search(line)]
    assert not offenders, "use cdp_tutorial.keras_internals instead:\n" + "\n".join(offenders)
