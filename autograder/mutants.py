"""The catalogue of likely mistakes: ``solutions/weekNN-*/mutants.yml``.

Per question, a list of wrong answers (code executed after the solution's
graded cells) with a student-facing diagnosis. ``sodl check`` proves each
one loses points.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from autograder.errors import UserError


class MutantFormatError(UserError):
    """``mutants.yml`` is malformed."""


@dataclass(frozen=True)
class Mutant:
    """A deliberately wrong answer to one question.

    Attributes:
        question: the question it answers wrongly.
        name: a short identifier (``no_bias_correction``).
        diagnosis: what the student is told when their answer behaves like this one.
        code: Python that redefines the answer wrongly.
    """

    question: str
    name: str
    diagnosis: str
    code: str

    def to_dict(self) -> dict:
        return {"question": self.question, "name": self.name, "diagnosis": self.diagnosis, "code": self.code}

    @classmethod
    def from_dict(cls, d: dict) -> "Mutant":
        return cls(str(d["question"]), str(d["name"]), str(d["diagnosis"]), str(d["code"]))


def load_mutants(path: Path, questions: list[str]) -> list[Mutant]:
    """Read and validate a week's mutants."""
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise MutantFormatError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise MutantFormatError(f"{path}: expected a mapping from question name to a list of mutants")
    out = []
    for q, items in data.items():
        if q not in questions:
            raise MutantFormatError(f"{path}: {q!r} is not a question of this week ({', '.join(questions)})")
        if not isinstance(items, list):
            raise MutantFormatError(f"{path}: {q}: expected a list of mutants")
        seen = set()
        for i, m in enumerate(items):
            where = f"{path.name}: {q}[{i}]"
            if not isinstance(m, dict) or set(m) - {"name", "diagnosis", "code"} or not {"name", "code"} <= set(m):
                raise MutantFormatError(f"{where}: needs 'name', 'diagnosis' and 'code' (and nothing else)")
            if m["name"] in seen:
                raise MutantFormatError(f"{where}: duplicate mutant name {m['name']!r}")
            seen.add(m["name"])
            try:
                compile(m["code"], where, "exec")
            except SyntaxError as e:
                raise MutantFormatError(f"{where}: code does not compile: {e.msg} (line {e.lineno})") from None
            out.append(Mutant(q, str(m["name"]), str(m.get("diagnosis", "")).strip(), m["code"]))
    return out
