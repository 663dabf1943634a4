"""Tell a student which mistake their answer shows.

Each week's ``mutants.yml`` is a catalogue of likely mistakes with a
student-facing diagnosis. When a question loses points, the calls the
tests made to the student's functions (arguments exactly as sent, results
as received) are replayed on the answer key with each of that question's
mutants swapped in. A mutant whose outputs match the student's on every
call (values, whether a tensor stays in the graph, which arguments were
changed in place) is the diagnosis; none matching means the generic message. The
replay runs in its own sandbox after the student's is gone; it never
sees expected values, and its feedback never reveals them.
"""
from __future__ import annotations

import math
import time

import numpy as np

from autograder.harness.protocol import Op
from autograder.harness.sandbox_handle import GraderFailure, Sandbox, SandboxDied, SandboxTimeout, StudentError
from autograder.harness.proxy import RecordedCall, Session
from autograder.mutants import Mutant

RTOL, ATOL = 1e-6, 1e-9


def same_output(a, b) -> bool:
    """Whether two decoded outputs agree (structure, shapes, values within tolerance)."""
    try:
        return _same(a, b, 0)
    except Exception:  # noqa: BLE001 - anything odd is simply "not the same"
        return False


def _numeric(x):
    if type(x) in (int, float) or isinstance(x, np.generic) and x.dtype.kind in "biuf":
        return np.asarray(x, dtype=np.float64)
    if type(x) is np.ndarray and x.dtype.kind in "biuf":
        return x.astype(np.float64)
    if type(x).__name__ == "Tensor" and type(x).__module__.startswith("torch") and not x.is_complex():
        return x.detach().cpu().double().numpy()
    return None


def _same(a, b, depth: int) -> bool:
    if depth > 50:
        return False
    if type(a) is int and type(b) is int:  # exact, and of any size
        return a == b
    na, nb = _numeric(a), _numeric(b)
    if na is not None and nb is not None:
        if getattr(a, "requires_grad", False) != getattr(b, "requires_grad", False):
            return False  # one stays in the autograd graph, the other does not
        return na.shape == nb.shape and bool(np.allclose(na, nb, rtol=RTOL, atol=ATOL, equal_nan=True))
    if type(a) in (list, tuple) and type(b) in (list, tuple):
        return len(a) == len(b) and all(_same(x, y, depth + 1) for x, y in zip(a, b))
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k], depth + 1) for k in a)
    if type(a) is complex and type(b) is complex:
        return math.isclose(a.real, b.real, rel_tol=RTOL, abs_tol=ATOL) and \
            math.isclose(a.imag, b.imag, rel_tol=RTOL, abs_tol=ATOL)
    if a is None or b is None or a is Ellipsis or b is Ellipsis or type(a) in (str, bytes, bool):
        return type(a) is type(b) and a == b
    return False


def diagnose(sandbox: Sandbox, recordings: dict[str, list[RecordedCall]], mutants: list[Mutant],
             timeout: float, deadline: float) -> tuple[dict[str, Mutant], str]:
    """Replay each question's recorded calls on the key with each mutant.

    ``sandbox`` is configured with the answer key's cells (not started).
    Returns the matching mutant per question (questions with no match are
    absent) and why the replay stopped early ("" when it ran to the end:
    a failure of the sandbox machinery, or the submission's deadline), so
    ``sodl check`` tells "the diagnosis did not finish" from "no mutant
    matches". Never raises for a misbehaving replay: it just finds nothing.
    """
    # an unanswered question (every call returned None or ...) matches no mistake
    recordings = {q: calls for q, calls in recordings.items()
                  if any(c.error is None and c.value is not None and c.value is not Ellipsis for c in calls)}
    by_question = {q: [m for m in mutants if m.question == q] for q in recordings}
    if not any(calls and by_question[q] for q, calls in recordings.items()):
        return {}, ""
    found, unfinished = {}, ""
    try:
        sandbox.start(deadline)
        session = Session(sandbox)
        for question, calls in recordings.items():
            for mutant in by_question[question]:
                if not calls:
                    break
                if time.monotonic() > deadline:
                    unfinished = "the submission's time limit ran out"
                    break
                session.deadline = time.monotonic() + timeout
                try:
                    session.request({"op": Op.FORK_VARIANT, "code": mutant.code})
                    matched = all(_replay_matches(session, call) for call in calls)
                    session.request({"op": Op.BYE})  # the variant ends; the key serves again
                except (SandboxTimeout, SandboxDied):
                    sandbox.restart(deadline)
                    session = Session(sandbox)
                    continue
                except StudentError:
                    continue
                if matched:
                    found[question] = mutant
                    break
    except (GraderFailure, SandboxDied, SandboxTimeout) as e:
        unfinished = f"the replay sandbox failed ({type(e).__name__}: {str(e)[:200]})"
    finally:
        sandbox.close()
    return found, unfinished


def _replay_matches(session: Session, call: RecordedCall) -> bool:
    try:
        value, seen = session.exchange(dict(call.msg), call.blobs)
    except StudentError as e:
        return call.error is not None and call.error == str(e.info.get("type"))
    return call.error is None and set(seen.mutated) == set(call.mutated) and same_output(value, call.value)
