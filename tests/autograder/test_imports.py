"""The package's shape: no import circle, a light ``build``, and every
harness file saying which process runs it."""
import ast
import subprocess
import sys
from pathlib import Path

import autograder

PACKAGE = Path(autograder.__file__).resolve().parent
ENTRY_POINTS = {"autograder.__main__", "autograder.fork_server"}  # importing them runs them


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """autograder modules that ``path`` imports anywhere (at the top, in a
    function, or for type checking): a circle through a lazy import is
    still a circle for a reader."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m in known and m != _module_name(path)}


def test_no_import_circle_in_autograder():
    modules = _modules()
    graph = {m: _imports(p, set(modules)) for m, p in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m, path):
        state[m] = 1
        for dep in sorted(graph[m]):
            assert state.get(dep) != 1, "import circle: " + " -> ".join(path + [m, dep])
            if dep not in state:
                visit(dep, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def _fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_build_stays_light_and_every_module_imports():
    names = sorted(set(_modules()) - ENTRY_POINTS)
    out = _fresh(
        "import importlib, subprocess, sys\n"
        "import autograder.build\n"
        "runtime = {'autograder.grade', 'autograder.batch', 'autograder.week_check', 'autograder.diagnosis'}\n"
        "heavy = sorted(m for m in sys.modules if m.startswith('autograder.harness') or m in runtime)\n"
        "print('heavy:', ' '.join(heavy))\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
    )
    assert out.strip() == "heavy:", out


def test_each_harness_file_says_which_process_runs_it():
    for path in sorted((PACKAGE / "harness").glob("*.py")):
        if path.name == "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert doc.startswith("Runs in: "), f"{path.name}: first docstring line should say 'Runs in: ...'"
