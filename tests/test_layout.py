"""The layout's rules, read from the source: the runtime (bus/) stands on nothing above
it, no modules import each other in a circle, and no source file outgrows a sitting."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("bus", "stages", "voxkey", "bench", "tests")
MAX_LINES = 450


def sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py"))


def module_of(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project's modules a file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_of(path): path for path in sources()}
    known = set(files)
    return {module: imports_of(path, known) - {module} for module, path in files.items()}


def test_the_runtime_imports_nothing_from_the_stages_the_command_or_the_tests():
    above = ("stages", "voxkey", "bench", "tests")
    wrong = {
        module: sorted(name for name in imported if name.split(".")[0] in above)
        for module, imported in graph().items()
        if module.split(".")[0] == "bus"
    }
    assert not {module: names for module, names in wrong.items() if names}


def test_no_modules_import_each_other_in_a_circle():
    edges = graph()
    # A package's __init__ is imported on the way to each of its modules: not an edge.
    edges = {module: {name for name in names if not module.startswith(name + ".")} for module, names in edges.items()}
    circles, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            circles.append(path[path.index(module) :] + [module])
            return
        if module in done:
            return
        for name in sorted(edges.get(module, ())):
            visit(name, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])
    assert not circles


def test_no_source_file_is_longer_than_one_sitting():
    lengths = {str(path.relative_to(REPO)): len(path.read_text().splitlines()) for path in sources()}
    long = {path: n for path, n in lengths.items() if n > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_every_stage_is_a_process_of_its_own():
    from bus.wiring import STAGES

    for stage in STAGES:
        module = REPO / "stages" / f"{stage}.py"
        package = REPO / "stages" / stage / "__main__.py"
        assert module.is_file() != package.is_file(), f"stages/{stage}: one module or one package with __main__"
