"""Which names of a notebook the hidden tests may take from the student, decided at build time.

A test cell is instructor code that reads free names: the student's
functions (``softmax``), builtins (``range``), the grader's ``seed`` and
``device``, and modules under the notebook's alias (``np``). Issue 13: when
these were resolved against whatever the student's namespace held, a
student's top-level ``range``, ``abs`` or ``seed = 1234`` became the
test's, and a notebook that implemented nothing scored 8.5 / 15. So the
binding is decided here, from the answer key, never from the submission:

- :func:`declared_names`: the top-level names the key's graded cells
  define or assign (functions, classes, values; every question's and the
  cells around them, since tests use names from earlier questions), minus
  builtins, grader names and imports. Only these are ever fetched from a
  student.
- :func:`module_aliases`: the key's top-level imports, alias -> module (the
  master's ``import numpy as np``); the trusted side imports these itself.

Pure ``ast`` work: building a zip imports this module, never the grading
runtime.
"""
from __future__ import annotations

import ast
import builtins

from autograder.submission import strip_magics

# Names the grader binds in every test's namespace (``trusted._run_test``).
GRADER_NAMES = frozenset({"seed", "device", "grader", "otter", "__builtins__", "__name__"})
BUILTIN_NAMES = frozenset(dir(builtins))


def _targets(node: ast.AST) -> list[str]:
    """The names an assignment target binds (``a, (b, c) = ...``, ``*d``)."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [n for elt in node.elts for n in _targets(elt)]
    if isinstance(node, ast.Starred):
        return _targets(node.value)
    return []  # attributes and subscripts bind no name


def _bound_at_top(tree: ast.Module) -> tuple[list[str], dict[str, str]]:
    """(names assigned or defined, alias -> module imported) by a module's
    top-level statements, including those nested in top-level ``if``,
    ``for``, ``while``, ``with`` and ``try`` blocks (they run at top level)."""
    names: list[str] = []
    modules: dict[str, str] = {}

    def visit(stmts):
        for node in stmts:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(node.name)
            elif isinstance(node, ast.Assign):
                names.extend(n for t in node.targets for n in _targets(t))
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                names.extend(_targets(node.target))
            elif isinstance(node, (ast.For, ast.AsyncFor)):
                names.extend(_targets(node.target))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        modules[a.asname] = a.name
                    else:  # ``import a.b`` binds ``a``
                        top = a.name.split(".")[0]
                        modules[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name != "*":
                        modules[a.asname or a.name] = f"{node.module}:{a.name}"
            if isinstance(node, (ast.With, ast.AsyncWith)):
                names.extend(n for item in node.items if item.optional_vars for n in _targets(item.optional_vars))
            for field in ("body", "orelse", "finalbody"):
                if isinstance(node, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try)):
                    visit(getattr(node, field, []))
            if isinstance(node, ast.Try):
                for h in node.handlers:
                    visit(h.body)
    visit(tree.body)
    for node in ast.walk(tree):  # walrus targets bind at top level too
        if isinstance(node, ast.NamedExpr):
            names.extend(_targets(node.target))
    return names, modules


def _parsed(cells: list[str]):
    for src in cells:
        try:
            yield ast.parse(strip_magics(src))
        except SyntaxError:
            continue


def declared_names(key_cells: list[str]) -> tuple[str, ...]:
    """The names a test may take from a student: what the answer key's
    graded cells define or assign at top level, minus builtins, grader
    names, private names and module aliases. Sorted, for a stable zip."""
    found: set[str] = set()
    imported: set[str] = set()
    for tree in _parsed(key_cells):
        names, modules = _bound_at_top(tree)
        found.update(names)
        imported.update(modules)
    return tuple(sorted(n for n in found - imported - BUILTIN_NAMES - GRADER_NAMES if not n.startswith("_")))


def module_aliases(key_cells: list[str]) -> tuple[tuple[str, str], ...]:
    """The answer key's top-level imports as (alias, what) pairs: ``what`` is
    a module name (``numpy``), or ``module:attribute`` for a ``from`` import.
    The trusted side imports these by the master's names; the student's
    aliases and module objects are never consulted."""
    out: dict[str, str] = {}
    for tree in _parsed(key_cells):
        _, modules = _bound_at_top(tree)
        for alias, what in modules.items():
            if alias not in GRADER_NAMES and what.split(".")[0].split(":")[0] not in ("otter", "autograder"):
                out.setdefault(alias, what)
    return tuple(sorted(out.items()))


def test_reads(code: str) -> frozenset[str]:
    """The free names a test cell reads before it binds them itself: only
    these may be resolved from outside the test. A name the test assigns,
    defines or imports before reading it is the test's own."""
    tree = ast.parse(code)
    first_bound: dict[str, tuple[int, int]] = {}
    for stmt in tree.body:
        names, modules = _bound_at_top(ast.Module(body=[stmt], type_ignores=[]))
        end = (stmt.end_lineno or stmt.lineno, stmt.end_col_offset or 0)
        for n in [*names, *modules]:
            first_bound.setdefault(n, end)
    reads: set[str] = set()

    def visit(node: ast.AST, local: frozenset[str]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            params = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if x]
            stored = [n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
            local = local | frozenset(params) | frozenset(stored)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            local = local | frozenset(n for g in node.generators for n in _targets(g.target))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in local:
            bound = first_bound.get(node.id)
            if bound is None or (node.lineno, node.col_offset) < bound:
                reads.add(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child, local)

    visit(tree, frozenset())
    return frozenset(reads)
