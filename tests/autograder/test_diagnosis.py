"""The mistake diagnosis (``diagnosis.diagnose``) says when its replay did
not finish, so ``sodl check`` never reads a failure of the machinery as
"the mutant's outputs match no mutant"."""
import time

from autograder.diagnosis import diagnose
from autograder.harness.proxy import RecordedCall
from autograder.harness.sandbox_handle import GraderFailure
from autograder.mutants import Mutant


class _SandboxThatCannotStart:
    def start(self, deadline):
        raise GraderFailure("the sandbox process did not start")

    def close(self):
        self.closed = True


def test_a_replay_that_cannot_start_is_reported_not_read_as_no_match():
    sandbox = _SandboxThatCannotStart()
    calls = {"q1": [RecordedCall({"op": "call", "name": "f"}, [], value=1.0)]}
    found, unfinished = diagnose(sandbox, calls, [Mutant("q1", "off_by_one", "", "def f(): pass")], 1.0,
                                 time.monotonic() + 30)
    assert found == {} and "did not start" in unfinished and sandbox.closed


def test_nothing_to_replay_is_a_finished_diagnosis():
    calls = {"q1": [RecordedCall({"op": "call", "name": "f"}, [], value=None)]}  # an unanswered question
    assert diagnose(_SandboxThatCannotStart(), calls, [Mutant("q1", "m", "", "")], 1.0, time.monotonic()) == ({}, "")
