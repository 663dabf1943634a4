"""Tests can observe what a student's function did besides returning
(issue 15): whether it modified an argument in place, and whether a returned
tensor stays in the autograd graph."""
import dataclasses

import pytest

from autograder.grade import grade_cells
from autograder.package import load_zip
from autograder.records import Assignment, Question, TestCase

pytestmark = pytest.mark.timeout(300)

STUDENT = """
import numpy as np, torch

def scale_copy(x):
    return 2 * x

def scale_in_place(x):
    x *= 2
    return x

def residual_kept(w, x):
    return (w * x).sum(-1)

def residual_detached(w, x):
    return (w * x).sum(-1).detach()
"""

NOT_MUTATED = """
import numpy as np
x = np.arange(4.0)
out = {f}(x)
assert {f}.last_call.mutated == (), "do not modify the input"
"""

IN_GRAPH = """
import torch
w = torch.ones(3, dtype=torch.float64, requires_grad=True)
r = {f}(w, torch.arange(6.0, dtype=torch.float64).reshape(2, 3))
assert r.requires_grad, "the residual must stay in the graph"
"""

SEES_CHANGE = """
import numpy as np
x = np.arange(4.0)
{f}(x)
assert x[1] == 1.0, "the input is unchanged"
"""


def _grade(packaged, tests: list[tuple[str, bool]]):
    cases = tuple(TestCase("q", i, code, hidden, 1.0) for i, (code, hidden) in enumerate(tests))
    a = Assignment("obs", "observation", (Question("q", float(len(cases)), cases),), "visible", False,
                   student_names=("scale_copy", "scale_in_place", "residual_kept", "residual_detached"))
    packaged = dataclasses.replace(packaged, assignment=a, mutants=(), key_cells=())
    result = grade_cells(packaged, [STUDENT], "obs", diagnose_mistakes=False)
    return [o.passed for o in result.questions[0].outcomes]


@pytest.fixture(scope="module")
def packaged(toy_zip):
    return load_zip(toy_zip)


def test_in_place_changes_and_the_graph_are_observable(packaged):
    verdicts = _grade(packaged, [
        (NOT_MUTATED.format(f="scale_copy"), True),
        (NOT_MUTATED.format(f="scale_in_place"), True),
        (IN_GRAPH.format(f="residual_kept"), True),
        (IN_GRAPH.format(f="residual_detached"), True),
    ])
    assert verdicts == [True, False, True, False]


def test_public_tests_see_in_place_changes_as_under_otter_hidden_tests_never(packaged):
    """A public test runs as the student's kernel runs it (otter's
    grader.check sees the array changed); a hidden test's own arrays never
    take values from the sandbox, so a reference computed from them after
    the call cannot be steered by the student."""
    verdicts = _grade(packaged, [
        (SEES_CHANGE.format(f="scale_in_place"), False),
        (SEES_CHANGE.format(f="scale_in_place"), True),
        (SEES_CHANGE.format(f="scale_copy"), False),
    ])
    assert verdicts == [False, True, True]
