"""The adversarial suite: every attack gets the honest grade of the same answers.

Each case appends hostile code to the toy week's correct notebook (honest
grade: q1_square 2, q2_mean 1) and states the grade the same answers earn
without the attack. Grow this file with every exploit found.
"""
import dataclasses
import os
import time
from pathlib import Path

import pytest

import sodl_ref
from autograder.grade import grade_cells
from autograder.harness.accounts import ensure_user
from autograder.package import load_zip
from autograder.submission import grading_cells

pytestmark = pytest.mark.timeout(300)
AS_ROOT = os.geteuid() == 0
SODL_REF = Path(sodl_ref.__file__).resolve()
FULL = {"q1_square": 2.0, "q2_mean": 1.0}
WRONG_MEAN = {"q1_square": 2.0, "q2_mean": 0.0}
WRONG_SQUARE = {"q1_square": 0.0, "q2_mean": 1.0}


@pytest.fixture(scope="module")
def fast(toy_zip):
    p = load_zip(toy_zip)
    g = dataclasses.replace(p.grading, question_timeout=3.0, cell_timeout=4.0, total_timeout=90.0)
    return dataclasses.replace(p, grading=g)


def grade_with(fast, key_notebook, attack: str):
    res = grade_cells(fast, grading_cells(key_notebook) + [attack], "attack")
    return {q.question.name: q.score for q in res.questions}, res


TAMPERING = [
    # comparison functions patched in the student's process do not exist on the trusted side
    ("patch_numpy", "np.allclose = lambda *a, **k: True\nnp.isclose = lambda *a, **k: True\n"
                    "np.testing.assert_allclose = lambda *a, **k: None\ndef mean(x):\n    return 0.0", WRONG_MEAN),
    # patching builtins breaks the sandbox's own reply encoding: the cell
    # counts as crashed and is skipped, so the wrong mean it defines never
    # counts either (the grade of the notebook without that cell)
    ("patch_builtins", "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.isinstance = lambda *a: True\n"
                       "def mean(x):\n    return 0.0", FULL),
    ("patch_builtins_abs", "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.all = lambda x: True\n"
                           "def mean(x):\n    return 0.0", WRONG_MEAN),
    ("patch_math_torch", "import math, torch\nmath.isclose = lambda *a, **k: True\ntorch.allclose = lambda *a, **k: True\n"
                         "torch.equal = lambda *a: True\ndef mean(x):\n    return 0.0", WRONG_MEAN),
    ("patch_checker", "import sys, types\nm = types.ModuleType('autograder.checks')\n"
                      "m.expect_close = lambda *a, **k: None\nsys.modules['autograder.checks'] = m\n"
                      "def mean(x):\n    return 0.0", WRONG_MEAN),
    # lying numeric types
    ("float_subclass", "class F(float):\n    def __eq__(s, o): return True\n    def __sub__(s, o): return 0.0\n"
                       "    def __rsub__(s, o): return 0.0\n    def __abs__(s): return 0.0\n    __hash__ = float.__hash__\n"
                       "def mean(x):\n    return F(1e9)", WRONG_MEAN),
    ("ndarray_subclass", "class A(np.ndarray):\n    def __eq__(s, o): return np.ones(np.shape(s), bool)\n"
                         "    def __array_ufunc__(s, *a, **k): return np.zeros(s.shape)\n"
                         "def square(x):\n    return np.zeros(np.shape(x)).view(A)", WRONG_SQUARE),
    ("tensor_subclass", "import torch\nclass T(torch.Tensor):\n    @classmethod\n"
                        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                        "        return torch.tensor(0.0)\n"
                        "def square(x):\n    return torch.zeros(np.shape(x)).as_subclass(T)", WRONG_SQUARE),
    ("nan_answer", "def mean(x):\n    return float('nan')", WRONG_MEAN),
    ("inf_answer", "def square(x):\n    return np.full(np.shape(x), np.inf)", WRONG_SQUARE),
    # exits and exceptions, in a cell (the cell is reported and skipped) or in a graded function
    ("sys_exit_in_cell", "import sys\nsys.exit(0)", FULL),
    ("keyboard_interrupt_in_cell", "raise KeyboardInterrupt", FULL),
    ("os_exit_in_cell", "import os\nos._exit(1)", FULL),
    ("sys_exit_in_function", "import sys\ndef mean(x):\n    sys.exit(0)", WRONG_MEAN),
    ("base_exception_in_function", "class B(BaseException):\n    pass\ndef mean(x):\n    raise B()", WRONG_MEAN),
    ("os_exit_in_function", "import os\ndef square(x):\n    os._exit(0)", WRONG_SQUARE),
    ("detached_child", "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                       "        time.sleep(30)\n        os._exit(0)\n    os._exit(0)\ntime.sleep(0.2)", FULL),
    ("kill_parent", "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept Exception:\n    pass\n"
                    "try:\n    os.kill(-1, signal.SIGKILL)\nexcept Exception:\n    pass", FULL),
    ("print_fake_results", "print('{\"score\": 1000, \"tests\": []}')", FULL),
    # resources
    ("memory_hog_cell", "x = bytearray(8 << 30)", FULL),
    ("memory_hog_function", "def square(x):\n    return np.ones((1 << 28, 64))", WRONG_SQUARE),
    ("fork_bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", FULL),
    ("stdout_flood", "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 1_000_000)", FULL),
    ("infinite_loop_in_cell", "while True:\n    pass", FULL),
    ("infinite_loop_sigterm_ignored_in_cell",
     "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass", FULL),
    ("infinite_loop_in_function", "def square(x):\n    while True:\n        pass", WRONG_SQUARE),
    ("infinite_loop_sigterm_ignored_in_function",
     "import signal\ndef mean(x):\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n    while True:\n        pass", WRONG_MEAN),
    ("deep_nesting", "def mean(x):\n    v = []\n    for _ in range(10000):\n        v = [v]\n    return v", WRONG_MEAN),
]


@pytest.mark.parametrize("name, attack, expected", TAMPERING, ids=[t[0] for t in TAMPERING])
def test_attack_gets_the_honest_grade(fast, key_notebook, name, attack, expected):
    t0 = time.monotonic()
    scores, res = grade_with(fast, key_notebook, attack)
    assert scores == expected
    assert time.monotonic() - t0 < 60
    assert len(res.stdout) <= fast.grading.max_output_kb * 1024 + 100


PROBES = ["sodl_ref_source", "import_sodl_ref", "zip", "delete_files", "socket"]


def probe_attack(what: str, toy_zip: Path) -> str:
    """A cell that tries to reach ``what``; ``square`` is right only if it
    succeeded, so the honest grade is q1 = 0 (WRONG_SQUARE)."""
    probe = {
        "sodl_ref_source": f"open({str(SODL_REF)!r}).read()",
        "import_sodl_ref": "import sodl_ref.foundations",
        "zip": f"open({str(toy_zip)!r}, 'rb').read(10)",
        "delete_files": f"import shutil\nshutil.rmtree({str(toy_zip.parent)!r})",
        "socket": "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)",
    }[what]
    return ("LEAK = False\ntry:\n" + "".join(f"    {ln}\n" for ln in probe.splitlines())
            + "    LEAK = True\nexcept BaseException:\n    pass\n"
            "def square(x):\n    return np.asarray(x, dtype=float) ** 2 if LEAK else np.zeros(np.shape(x))")


@pytest.mark.skipif(not AS_ROOT, reason="file isolation needs root (chroot + unprivileged user)")
@pytest.mark.parametrize("what", PROBES)
def test_files_network_and_reference_are_out_of_reach(fast, key_notebook, toy_zip, what):
    scores, _ = grade_with(fast, key_notebook, probe_attack(what, toy_zip))
    assert scores == WRONG_SQUARE
    assert toy_zip.exists()


@pytest.mark.skipif(not AS_ROOT, reason="process clean-up by account needs root")
def test_detached_children_are_gone_when_grading_ends(fast, key_notebook, tmp_path):
    attack = dict((name, code) for name, code, _ in TAMPERING)["detached_child"]
    scores, _ = grade_with(fast, key_notebook, attack)
    assert scores == FULL
    uid = ensure_user(fast.grading.sandbox_user, 0).uid
    left = [p for p in os.listdir("/proc") if p.isdigit() and _uid(p) == uid]
    assert left == []


def _uid(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


@pytest.mark.parametrize("name, attack, expected", TAMPERING, ids=[t[0] for t in TAMPERING])
def test_attack_through_the_gradescope_layout(toy_zip, key_notebook, tmp_path, name, attack, expected):
    """The same attacks through the zip's run_autograder: a schema-valid
    results.json with the honest grade, within the limits."""
    import json

    from autograder.gradescope import validate_results
    from autograder.gradescope_env import reproduce

    from .conftest import with_extra_cell, write_nb

    sub = write_nb(tmp_path / "sub" / "week01.ipynb", with_extra_cell(key_notebook, attack)).parent
    t0 = time.monotonic()
    data = json.loads(reproduce(toy_zip, sub, tmp_path / "gs").read_text())
    assert validate_results(data) == []
    assert data["score"] == sum(expected.values())
    assert time.monotonic() - t0 < 120


def test_every_attack_in_one_parallel_batch(fast, toy_zip, key_notebook, tmp_path):
    """The same attacks through ``grade_batch --jobs 2``: workers forked from
    the fork server, each with the zygote it forked from itself. Each
    submission gets the honest grade, and nothing else in the batch is hurt."""
    import csv
    import zipfile

    from autograder.batch import grade_batch
    from autograder.package import ASSIGNMENT_FILE

    from .conftest import with_extra_cell, write_nb

    fast_zip = tmp_path / "fast.zip"
    with zipfile.ZipFile(toy_zip) as src, zipfile.ZipFile(fast_zip, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, fast.to_json() if item.filename == ASSIGNMENT_FILE else src.read(item))
    cases = TAMPERING + [("honest", "pass", FULL)]
    if AS_ROOT:
        cases += [(f"probe_{what}", probe_attack(what, toy_zip), WRONG_SQUARE) for what in PROBES]
    subs = [write_nb(tmp_path / "subs" / name / "week01.ipynb", with_extra_cell(key_notebook, attack)).parent
            for name, attack, _ in cases]
    t0 = time.monotonic()
    book = grade_batch(fast_zip, subs, tmp_path / "grades", jobs=2, progress=False)
    assert time.monotonic() - t0 < 240
    rows = {r["name"]: r for r in csv.DictReader(book.open())}
    got = {name: {q: float(rows[name][q]) for q in FULL} for name, _, _ in cases}
    assert got == {name: expected for name, _, expected in cases}
    assert toy_zip.exists()


# --- trusted side (issue 13) ---
# Attacks on what the trusted side takes from the sandbox: the names a test
# sees, the modules it imports, the dtypes, sizes and strings of replies.
# Each runs directly, through the Gradescope layout and in a --jobs 2 batch
# (the table's own tests, reused), and must not beat the honest grade.

_WIRE = "import sys\n_w = sys.modules['autograder.harness.wire']\n"
TRUSTED_SIDE = [
    # builtins a test uses (float) bound to the student's own: the test saw the student's float
    ("shadow_builtins", "_float = float\ndef square(x):\n    return np.asarray(x, dtype=_float) ** 2\n"
                        "float = lambda x: 0.0\nabs = lambda x: 0\nrange = lambda *a: []\nisinstance = lambda *a: True\n"
                        "def mean(x):\n    return 0.0", WRONG_MEAN),
    # a top-level seed chose the hidden inputs
    ("seed_override", "seed = 1234\n_x = np.random.default_rng(1234).normal(size=(3, 4))\n"
                      "def square(x):\n    return _x * _x", WRONG_SQUARE),
    ("shadow_module_alias", "_np = np\nclass _Yes:\n    def __getattr__(self, name):\n        return lambda *a, **k: True\n"
                            "np = _Yes()\ndef square(x):\n    return _np.zeros(_np.shape(x))\n"
                            "def mean(x):\n    return float(_np.mean(x))", WRONG_SQUARE),
    # a module whose __name__ names a submodule that ends the process on import
    ("module_name_lies", "import types\nx = types.ModuleType('numpy.f2py.__main__')\n"
                         "expect_close = types.ModuleType('numpy.f2py.__main__')\ndef mean(x):\n    return 0.0", WRONG_MEAN),
    ("lying_tensor_dtype", _WIRE + "import torch\n_orig = _w.Encoder._tensor\n"
                           "def _lie(self, torch, x):\n    tree = _orig(self, torch, x)\n    tree['torch_dtype'] = 'complex128'\n"
                           "    return tree\n_w.Encoder._tensor = _lie\n"
                           "def square(x):\n    return torch.zeros(1 << 22, dtype=torch.bool)", WRONG_SQUARE),
    ("bool_bytes_not_0_or_1", "def square(x):\n    return np.frombuffer(bytes([2] * 12), dtype=bool).reshape(3, 4)",
     WRONG_SQUARE),
    ("giant_reply", "def square(x):\n    return np.zeros(200 << 17)", WRONG_SQUARE),
    ("deep_json_reply", _WIRE + "import os\n_orig = _w.write_message\n"
                        "def _deep(fd, obj, blobs=None):\n"
                        "    if obj.get('ok') == {'__t__': 'float', 'v': '-1.0'}:\n"
                        "        head = b'{\"msg\": {\"ok\": ' + b'[' * 200000 + b']' * 200000 + b'}, \"blobs\": []}'\n"
                        "        data = memoryview(len(head).to_bytes(8, 'big') + head)\n"
                        "        while data:\n            data = data[os.write(fd, data):]\n        return\n"
                        "    return _orig(fd, obj, blobs)\n_w.write_message = _deep\n"
                        "def mean(x):\n    return -1.0", WRONG_MEAN),
    ("surrogates_in_exception", "def mean(x):\n    raise ValueError('\\ud800 \\x00\\x1b[2J' + '\\udfff' * 3)\n"
                                "raise RuntimeError('\\ud800\\x07 in a cell')", WRONG_MEAN),
    ("surrogates_in_output", "import sys\nsys.stdout.flush()\nsys.stdout.buffer.write(b'\\xed\\xa0\\x80 \\xff\\x00\\x1b[31m')\n"
                             "sys.stdout.flush()\nprint('\\x00\\x07')", FULL),
    ("exploding_exception_str", "class _E(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\n"
                                "    __repr__ = __str__\ndef mean(x):\n    raise _E()", WRONG_MEAN),
    ("looping_exception_str", "class _E(Exception):\n    def __str__(self):\n        while True:\n            pass\n"
                              "def mean(x):\n    raise _E()", WRONG_MEAN),
    ("exploding_repr_value", "class _R:\n    def __repr__(self):\n        raise RuntimeError('no')\n    __str__ = __repr__\n"
                             "    def __float__(self):\n        return 0.0\ndef mean(x):\n    return _R()", WRONG_MEAN),
    ("forged_handle", _WIRE + "def mean(x):\n    return _w.Handle(0, 'builtins.float')", WRONG_MEAN),
    ("hostile_error_record", "import sys\n_s = sys.modules['autograder.harness.sandbox_server']\n"
                             "_s.describe_exception = lambda e: {'type': {'a': '\\ud800'}, 'message': ['x'] * 9, "
                             "'traceback': 12}\ndef mean(x):\n    raise ValueError()", WRONG_MEAN),
]
SHADOWING = {"shadow_builtins": {"float", "abs", "range", "isinstance"}, "seed_override": {"seed"},
             "shadow_module_alias": {"np"}}


@pytest.mark.parametrize("name, attack, expected", TRUSTED_SIDE, ids=[t[0] for t in TRUSTED_SIDE])
def test_trusted_side_attack_gets_the_honest_grade(fast, key_notebook, name, attack, expected):
    """Directly, plus what the student and the TA are told: a results.json
    and a feedback that validate and are UTF-8, and a flag for shadowing."""
    import json

    from autograder.gradescope import results_json, validate_results
    from autograder.report import feedback_markdown

    scores, res = grade_with(fast, key_notebook, attack)
    assert scores == expected
    data = results_json(res)
    assert validate_results(data) == []
    json.dumps(data, ensure_ascii=False).encode("utf-8")
    feedback_markdown(res).encode("utf-8")
    flagged = " ".join(res.flags)
    assert all(n in flagged for n in SHADOWING.get(name, ())), res.flags
    if name in SHADOWING:
        assert any("tests always use the real ones" in m for m in res.messages)


@pytest.mark.parametrize("name, attack, expected", TRUSTED_SIDE, ids=[t[0] for t in TRUSTED_SIDE])
def test_trusted_side_attack_through_the_gradescope_layout(toy_zip, key_notebook, tmp_path, name, attack, expected):
    test_attack_through_the_gradescope_layout(toy_zip, key_notebook, tmp_path, name, attack, expected)


def test_every_trusted_side_attack_in_one_parallel_batch(fast, toy_zip, key_notebook, tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "TAMPERING", TRUSTED_SIDE)
    test_every_attack_in_one_parallel_batch(fast, toy_zip, key_notebook, tmp_path)


def test_the_question_deadline_bounds_the_graders_own_work():
    """Work on the trusted side (here a test that never ends, standing for a
    slow decode or comparison) is cut at the question's deadline: the
    question fails with the time-limit note, the sandbox is restarted."""
    from autograder.harness.protocol import SandboxLimits
    from autograder.harness.proxy import Session
    from autograder.harness.trusted import grade_question
    from autograder.records import Question, TestCase

    class StubSandbox:
        limits, names, closed = SandboxLimits(), {}, False

        def close(self):
            self.closed = True

    tests = (TestCase("q", 0, "while True:\n    pass", True, 1.0), TestCase("q", 1, "pass", True, 1.0))
    sandbox = StubSandbox()
    t0 = time.monotonic()
    res = grade_question(Question("q", 2.0, tests), Session(sandbox), seed=0, timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert res.score == 0 and "time limit" in res.note and sandbox.closed
