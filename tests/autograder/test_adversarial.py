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


def grade_with(fast, key_notebook, attack: str, device: str = "cpu"):
    res = grade_cells(fast, grading_cells(key_notebook) + [attack], "attack", device=device)
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


def _through_gradescope(toy_zip, key_notebook, tmp_path, attack) -> dict:
    """The results.json the zip's run_autograder writes for the key with
    ``attack`` appended, in the Gradescope layout (within the time limit)."""
    sub = write_nb(tmp_path / "sub" / "week01.ipynb", with_extra_cell(key_notebook, attack)).parent
    t0 = time.monotonic()
    data = json.loads(reproduce(toy_zip, sub, tmp_path / "gs").read_text())
    assert time.monotonic() - t0 < 120
    return data


@pytest.mark.parametrize("name, attack, expected", TAMPERING, ids=[t[0] for t in TAMPERING])
def test_attack_through_the_gradescope_layout(toy_zip, key_notebook, tmp_path, name, attack, expected):
    """The same attacks through the zip's run_autograder: a schema-valid
    results.json with the honest grade, within the limits."""
    data = _through_gradescope(toy_zip, key_notebook, tmp_path, attack)
    assert validate_results(data) == [] and data["score"] == sum(expected.values()), data


def _in_one_parallel_batch(fast, toy_zip, key_notebook, tmp_path, cases) -> dict:
    """Each case's per-question scores from one ``grade_batch --jobs 2``
    (within the time limit) over the key with the case's cell appended."""
    fast_zip = _fast_zip(fast, toy_zip, tmp_path / "fast.zip")
    subs = [write_nb(tmp_path / "subs" / name / "week01.ipynb", with_extra_cell(key_notebook, attack)).parent
            for name, attack, _ in cases]
    t0 = time.monotonic()
    book = grade_batch(fast_zip, subs, tmp_path / "grades", jobs=2, progress=False)
    assert time.monotonic() - t0 < 240
    rows = {r["name"]: r for r in csv.DictReader(book.open())}
    return {name: {q: float(rows[name][q]) for q in FULL} for name, _, _ in cases}


def test_every_attack_in_one_parallel_batch(fast, toy_zip, key_notebook, tmp_path):
    """The same attacks through ``grade_batch --jobs 2``: workers forked from
    the fork server, each with the zygote it forked from itself. Each
    submission gets the honest grade, and nothing else in the batch is hurt."""
    cases = TAMPERING + [("honest", "pass", FULL)]
    if AS_ROOT:
        cases += [(f"probe_{what}", probe_attack(what, toy_zip), WRONG_SQUARE) for what in PROBES]
    got = _in_one_parallel_batch(fast, toy_zip, key_notebook, tmp_path, cases)
    assert got == {name: expected for name, _, expected in cases}
    assert toy_zip.exists()


# GPU attacks, graded with device="cuda" (the jail then exposes /dev/nvidia*).
# Run by `make gpu-check` on a GPU machine; skipped on CPU-only ones. Where an
# attack leaves a function alone, that function computes on the GPU, so the
# honest grade also proves that CUDA works inside the sandbox.
GPU_SQUARE = "def square(x):\n    return (torch.as_tensor(np.asarray(x, dtype=float), device='cuda') ** 2).cpu().numpy()\n"
GPU_MEAN = "def mean(x):\n    return float(torch.as_tensor(np.asarray(x, dtype=float), device='cuda').mean())\n"
GPU_ATTACKS = [
    # an out-of-memory error in student code costs that function only
    ("cuda_oom_in_function", "import torch\n" + GPU_MEAN + "def square(x):\n    torch.empty(1 << 50, device='cuda')\n"
                             "    return np.asarray(x, dtype=float) ** 2", WRONG_SQUARE),
    ("cuda_oom_in_cell", "import torch\nhog = torch.empty(1 << 50, device='cuda')", FULL),
    # a kernel that never returns: the question's timeout kills the sandbox, and its GPU context with it
    ("cuda_kernel_never_returns", "import torch\n" + GPU_SQUARE + "def mean(x):\n    torch.cuda._sleep(1 << 62)\n"
                                  "    torch.cuda.synchronize()\n    return float(np.mean(x))", WRONG_MEAN),
]

GPU_SECRET = 1234.5678


@pytest.mark.cuda
@pytest.mark.parametrize("name, attack, expected", GPU_ATTACKS, ids=[t[0] for t in GPU_ATTACKS])
def test_gpu_attack_gets_the_honest_grade(fast, key_notebook, name, attack, expected):
    t0 = time.monotonic()
    scores, _ = grade_with(fast, key_notebook, attack, device="cuda")
    assert scores == expected
    assert time.monotonic() - t0 < 60
    # the GPU is still usable by the next submission
    assert grade_with(fast, key_notebook, "import torch\n" + GPU_SQUARE + GPU_MEAN, device="cuda")[0] == FULL


@pytest.mark.cuda
def test_gpu_memory_of_another_sandbox_is_out_of_reach(fast, key_notebook):
    """One sandbox fills GPU memory with a secret and ends; the next sandbox
    allocates without initialising and looks for it. ``square`` is right only
    if it found the secret, so the honest grade is WRONG_SQUARE (``mean``, on
    the GPU, proves the reader had one)."""
    writer = (f"import torch\nSECRET = torch.full((1 << 26,), {GPU_SECRET}, device='cuda')\n"
              "torch.cuda.synchronize()\n" + GPU_SQUARE)
    assert grade_with(fast, key_notebook, writer, device="cuda")[0] == FULL
    reader = ("import torch\nblocks = [torch.empty(1 << 26, device='cuda') for _ in range(4)]\n"
              f"LEAK = any(bool((b == {GPU_SECRET}).any()) for b in blocks)\n" + GPU_MEAN +
              "def square(x):\n    return np.asarray(x, dtype=float) ** 2 if LEAK else np.zeros(np.shape(x))")
    assert grade_with(fast, key_notebook, reader, device="cuda")[0] == WRONG_SQUARE


# --- process side (issue 13) ---
# Attacks on what runs around the grading: the submission's files, the
# sandbox's reach when namespaces are unavailable (``make adversarial-nocap``
# runs this file without CAP_SYS_ADMIN), the grader and its workers. Each
# states the honest grade, and goes through ``sodl grade`` (one submission,
# graded in the grader), the Gradescope layout and a ``--jobs 2`` batch.
import csv  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import zipfile  # noqa: E402

from autograder.batch import BatchIncomplete, GRADER_FAILURE_MESSAGE, grade_batch  # noqa: E402
from autograder.gradescope import validate_results  # noqa: E402
from autograder.gradescope_env import reproduce  # noqa: E402
from autograder.package import ASSIGNMENT_FILE  # noqa: E402

from .conftest import with_extra_cell, write_nb  # noqa: E402

VICTIM_TOTAL = 3.0  # another student's notebook: the key, full marks


def _victim(tmp_path, key_notebook) -> Path:
    return write_nb(tmp_path / "victim" / "week01.ipynb", key_notebook)


def _own_wrong_mean(folder: Path, key_notebook) -> None:
    write_nb(folder / "mine.ipynb", with_extra_cell(key_notebook, "def mean(x):\n    return 0.0"))


# name, what to put in the (empty) submission folder given the victim's
# notebook, and the honest grade: nothing of another student counts.
FILE_ATTACKS = [
    ("symlink_to_other_notebook", lambda d, v, key: (d / "week01.ipynb").symlink_to(v), 0.0),
    ("symlink_to_other_folder", lambda d, v, key: (d / "work").symlink_to(v.parent, target_is_directory=True), 0.0),
    ("hardlink_to_other_notebook", lambda d, v, key: os.link(v, d / "week01.ipynb"), 0.0),
    ("fifo_notebook", lambda d, v, key: os.mkfifo(d / "week01.ipynb"), 0.0),
    ("symlink_beside_own_notebook", lambda d, v, key: (_own_wrong_mean(d, key),
                                                        (d / "week01.ipynb").symlink_to(v)), 2.0),
]


def _file_submission(folder: Path, make, victim: Path, key_notebook) -> Path:
    folder.mkdir(parents=True)
    make(folder, victim, key_notebook)
    return folder


def _score(results: Path) -> float:
    data = json.loads(results.read_text())
    assert validate_results(data) == []
    return data["score"]


@pytest.mark.parametrize("name, make, expected", FILE_ATTACKS, ids=[a[0] for a in FILE_ATTACKS])
def test_submission_file_attack_through_sodl_grade(toy_zip, key_notebook, tmp_path, name, make, expected):
    victim = _victim(tmp_path, key_notebook)
    sub = _file_submission(tmp_path / "subs" / name, make, victim, key_notebook)
    t0 = time.monotonic()
    grade_batch(toy_zip, [sub], tmp_path / "grades", progress=False)
    assert time.monotonic() - t0 < 60  # a FIFO must not block the grader
    results = tmp_path / "grades" / name / "results.json"
    assert _score(results) == expected
    output = json.loads(results.read_text())["output"]
    assert ("link" in output or "not a regular file" in output), output  # the student is told why


@pytest.mark.parametrize("name, make, expected", FILE_ATTACKS, ids=[a[0] for a in FILE_ATTACKS])
def test_submission_file_attack_through_the_gradescope_layout(toy_zip, key_notebook, tmp_path, name, make,
                                                              expected):
    """Gradescope unzips what the student uploaded: links stay links. The
    layout is made with an empty submission, then the hostile files are
    put in its submission folder and the zip's run_autograder runs again."""
    victim = _victim(tmp_path, key_notebook)
    (tmp_path / "empty").mkdir()
    results = reproduce(toy_zip, tmp_path / "empty", tmp_path / "gs")
    ag = results.parent.parent
    make(ag / "submission", victim, key_notebook)
    results.unlink()
    env = dict(os.environ, AUTOGRADER_ROOT=str(ag), SODL_PYTHON=sys.executable)
    subprocess.run(["bash", str(ag / "run_autograder")], env=env, cwd=ag, check=False, timeout=120)
    assert _score(results) == expected


def test_submission_file_attacks_in_one_parallel_batch(toy_zip, key_notebook, tmp_path):
    # The graded victim is the target of the links; a hard link has no
    # direction (both names are the same file, both are refused), so its
    # target here is a copy outside the batch.
    victim = _victim(tmp_path, key_notebook)
    outside = write_nb(tmp_path / "outside" / "week01.ipynb", key_notebook)
    subs = [_file_submission(tmp_path / "subs" / name, make, outside if "hardlink" in name else victim, key_notebook)
            for name, make, _ in FILE_ATTACKS]
    subs.append(victim.parent)
    book = grade_batch(toy_zip, subs, tmp_path / "grades", jobs=2, progress=False)
    rows = {r["name"]: float(r["score"]) for r in csv.DictReader(book.open())}
    assert rows == {**{name: expected for name, _, expected in FILE_ATTACKS}, "victim": VICTIM_TOTAL}


# Notebook files no Jupyter writes: each is graded, or refused with the
# student told why, never a grader failure (which records no grade).
NOTEBOOK_ATTACKS = [
    # JSON nested past Python's recursion limit: not a notebook
    ("deeply_nested_json", lambda key: "[" * 100_000 + "]" * 100_000, 0.0),
    # a lone surrogate, escaped in JSON, in a comment of the key: hashing and seeding encode the cells as UTF-8
    ("lone_surrogate_in_source", lambda key: json.dumps(with_extra_cell(key, "x = 1  # \ud800")), VICTIM_TOTAL),
]


def _notebook_submission(folder: Path, make, key_notebook) -> Path:
    folder.mkdir(parents=True)
    (folder / "week01.ipynb").write_text(make(key_notebook))
    return folder


@pytest.mark.parametrize("name, make, expected", NOTEBOOK_ATTACKS, ids=[a[0] for a in NOTEBOOK_ATTACKS])
def test_notebook_attack_through_sodl_grade(toy_zip, key_notebook, tmp_path, name, make, expected):
    sub = _notebook_submission(tmp_path / "subs" / name, make, key_notebook)
    grade_batch(toy_zip, [sub], tmp_path / "grades", progress=False)  # a grader failure raises BatchIncomplete
    assert _score(tmp_path / "grades" / name / "results.json") == expected


@pytest.mark.parametrize("name, make, expected", NOTEBOOK_ATTACKS, ids=[a[0] for a in NOTEBOOK_ATTACKS])
def test_notebook_attack_through_the_gradescope_layout(toy_zip, key_notebook, tmp_path, name, make, expected):
    sub = _notebook_submission(tmp_path / "subs" / name, make, key_notebook)
    results = reproduce(toy_zip, sub, tmp_path / "gs")
    assert _score(results) == expected
    assert "autograder failed" not in json.loads(results.read_text())["output"]


def test_notebook_attacks_in_one_parallel_batch(toy_zip, key_notebook, tmp_path):
    subs = [_notebook_submission(tmp_path / "subs" / name, make, key_notebook) for name, make, _ in NOTEBOOK_ATTACKS]
    subs.append(_victim(tmp_path, key_notebook).parent)
    book = grade_batch(toy_zip, subs, tmp_path / "grades", jobs=2, progress=False)
    rows = {r["name"]: float(r["score"]) for r in csv.DictReader(book.open())}
    assert rows == {**{name: expected for name, _, expected in NOTEBOOK_ATTACKS}, "victim": VICTIM_TOTAL}


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_submission_name_that_is_not_utf8_gets_its_row(toy_zip, key_notebook, tmp_path, jobs):
    """A file name's bytes are the student's where staff grade files as they
    were uploaded: one that is not UTF-8 made the gradebook unwritable, after
    the whole batch was graded (UnicodeEncodeError, no gradebook)."""
    odd = write_nb(tmp_path / "subs" / os.fsdecode(b"stud\xff") / "week01.ipynb", key_notebook).parent
    subs = [odd] + ([_victim(tmp_path, key_notebook).parent] if jobs > 1 else [])
    book = grade_batch(toy_zip, subs, tmp_path / "grades", jobs=jobs, progress=False)
    rows = {r["name"]: float(r["score"]) for r in csv.DictReader(book.open(encoding="utf-8"))}
    assert rows == {"stud\ufffd": VICTIM_TOTAL, **({"victim": VICTIM_TOTAL} if jobs > 1 else {})}


@pytest.fixture(scope="module")
def listener():
    """A TCP port that accepts: a connection succeeds unless something stops it."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


def reach_attack(what: str, toy_zip: Path, port: int, secret: Path) -> str:
    """A cell that tries to reach past the sandbox without namespaces;
    ``square`` is right only if it succeeded: honest grade WRONG_SQUARE."""
    grader = os.getpid()  # the process running the tests: the grader, or its parent
    probe = {
        "read_hidden_tests_in_zip": f"import zipfile\nzipfile.ZipFile({str(toy_zip)!r}).read({ASSIGNMENT_FILE!r})",
        "read_sodl_ref_package": f"import os\nos.listdir({str(SODL_REF.parent)!r})",
        "read_other_submission": f"open({str(secret)!r}).read()",
        "write_next_to_zip": f"open({str(toy_zip.parent / 'planted.json')!r}, 'w').write('x')",
        # tmpfs: memory outside RLIMIT_AS that outlives the sandbox (no /dev/shm in the jail either)
        "write_shared_memory": "open('/dev/shm/sodl-probe', 'wb').write(b'x' * (16 << 20))",
        "tcp_connect_to_listener": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)",
        "udp_send": "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 53))",
        "signal_the_grader": f"import os\nos.kill({grader}, 0)",
        "ptrace_the_grader": f"import ctypes\nassert ctypes.CDLL(None).ptrace(16, {grader}, 0, 0) == 0",
    }[what]
    return ("LEAK = False\ntry:\n" + "".join(f"    {ln}\n" for ln in probe.splitlines())
            + "    LEAK = True\nexcept BaseException:\n    pass\n"
            "def square(x):\n    return np.asarray(x, dtype=float) ** 2 if LEAK else np.zeros(np.shape(x))")


REACH = ["read_hidden_tests_in_zip", "read_sodl_ref_package", "read_other_submission", "write_next_to_zip",
         "write_shared_memory",
         "tcp_connect_to_listener", "udp_send", "signal_the_grader", "ptrace_the_grader"]


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "other-student" / "week01.ipynb"
    path.parent.mkdir()
    path.write_text("{}")
    return path


@pytest.mark.parametrize("what", REACH)
def test_sandbox_reach_with_or_without_namespaces(fast, key_notebook, toy_zip, listener, secret, what):
    """Run as root and as root without CAP_SYS_ADMIN (``make
    adversarial-nocap``): the same outcome, the jail or Landlock and
    seccomp standing in for it."""
    scores, res = grade_with(fast, key_notebook, reach_attack(what, toy_zip, listener, secret))
    assert scores == WRONG_SQUARE, res.protection
    assert not (toy_zip.parent / "planted.json").exists()
    assert not os.path.exists("/dev/shm/sodl-probe")
    assert any(p.startswith("landlock: active") for p in res.protection), res.protection
    assert any(p.startswith("seccomp: active") for p in res.protection), res.protection


@pytest.mark.parametrize("what", REACH)
def test_sandbox_reach_through_the_gradescope_layout(toy_zip, key_notebook, tmp_path, listener, secret, what):
    data = _through_gradescope(toy_zip, key_notebook, tmp_path, reach_attack(what, toy_zip, listener, secret))
    assert validate_results(data) == [] and data["score"] == sum(WRONG_SQUARE.values()), data
    assert not (toy_zip.parent / "planted.json").exists()


def _fast_zip(fast, toy_zip: Path, path: Path) -> Path:
    with zipfile.ZipFile(toy_zip) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, fast.to_json() if item.filename == ASSIGNMENT_FILE else src.read(item))
    return path


def test_sandbox_reach_in_one_parallel_batch(fast, toy_zip, key_notebook, tmp_path, listener, secret):
    cases = [(what, reach_attack(what, toy_zip, listener, secret), WRONG_SQUARE) for what in REACH]
    rows = _in_one_parallel_batch(fast, toy_zip, key_notebook, tmp_path, cases + [("honest", "pass", FULL)])
    assert rows == {**{what: WRONG_SQUARE for what in REACH}, "honest": FULL}
    protection = json.loads((tmp_path / "grades" / "honest" / "grading.json").read_text())["protection"]
    assert any(p.startswith("landlock: active") for p in protection), protection


HANG_CELL = "while True:\n    pass"  # with a watchdog shorter than the cell limit, the grader looks stuck


def _hanging_batch(fast, toy_zip, key_notebook, tmp_path, jobs: int) -> tuple[dict, dict]:
    """A batch where one submission outlives the watchdog (set below its
    cell limit, so that from the batch's view the grader itself is stuck),
    run three times: each run ends in time, the others are graded honestly,
    the gradebook is written, the stuck one is left for the next run. Returns
    the stuck one's results.json and gradebook row after the second run."""
    slow = dataclasses.replace(fast, grading=dataclasses.replace(fast.grading, cell_timeout=60.0))
    zip_path = _fast_zip(slow, toy_zip, tmp_path / "slow.zip")
    subs = [write_nb(tmp_path / "subs" / "stuck" / "week01.ipynb", with_extra_cell(key_notebook, HANG_CELL)).parent]
    if jobs > 1:
        subs += [write_nb(tmp_path / "subs" / f"honest{i}" / "week01.ipynb", key_notebook).parent for i in range(3)]
    out = tmp_path / "grades"
    for attempt in (1, 2):
        t0 = time.monotonic()
        with pytest.raises(BatchIncomplete) as failed:
            grade_batch(zip_path, subs, out, jobs=jobs, progress=False, watchdog_s=6)
        assert time.monotonic() - t0 < (90 if jobs > 1 else 30)  # one submission: graded here, stopped by a signal
        assert failed.value.book.exists()
        rows = {r["name"]: r for r in csv.DictReader(failed.value.book.open())}
        assert all(float(rows[f"honest{i}"]["score"]) == 3.0 for i in range(3) if jobs > 1)
        assert ("stuck" in rows) == (attempt == 2)
    data = json.loads((out / "stuck" / "results.json").read_text())
    grade_batch(zip_path, subs, out, jobs=jobs, progress=False, watchdog_s=6)  # a third run: nothing left, no raise
    return data, rows["stuck"]


def test_a_stuck_grader_never_hangs_a_parallel_batch(fast, toy_zip, key_notebook, tmp_path):
    """After two grader failures the stuck submission is graded 0, flagged."""
    data, row = _hanging_batch(fast, toy_zip, key_notebook, tmp_path, jobs=2)
    assert validate_results(data) == [] and data["score"] == 0 and GRADER_FAILURE_MESSAGE in data["output"]
    assert "grader failure" in row["flags"]


def test_a_stuck_grader_never_hangs_sodl_grade(fast, toy_zip, key_notebook, tmp_path):
    data, row = _hanging_batch(fast, toy_zip, key_notebook, tmp_path, jobs=1)
    assert validate_results(data) == [] and data["score"] == 0 and GRADER_FAILURE_MESSAGE in data["output"]
    assert "grader failure" in row["flags"]


def test_a_stuck_grader_never_hangs_the_gradescope_layout(fast, toy_zip, key_notebook, tmp_path):
    """Gradescope ends a run past its time limit with no results.json at
    all: run_autograder has the batch's watchdog too (here shorter than the
    cell limit, so that the grader looks stuck) and writes a valid one."""
    from autograder.run_autograder import run_autograder

    slow = dataclasses.replace(fast, grading=dataclasses.replace(fast.grading, cell_timeout=60.0))
    sub = write_nb(tmp_path / "sub" / "week01.ipynb", with_extra_cell(key_notebook, HANG_CELL)).parent
    results = reproduce(_fast_zip(fast, toy_zip, tmp_path / "fast.zip"), sub, tmp_path / "gs")  # the layout
    (results.parent.parent / "source" / ASSIGNMENT_FILE).write_bytes(slow.to_json())
    t0 = time.monotonic()
    run_autograder(results.parent.parent, watchdog_s=6)
    assert time.monotonic() - t0 < 30  # the watchdog's signal interrupts the 60 s wait for the cell
    data = json.loads(results.read_text())
    assert validate_results(data) == [] and data["score"] == 0 and "took longer" in data["output"]


@pytest.mark.parametrize("function", ["cross_entropy", "softmax"])
def test_a_loop_costs_only_the_tests_that_call_it(function):
    """Week 1's q3 tests softmax, log_softmax and cross_entropy: a loop in
    one of them must grade as the same function raising (the honest grade:
    the tests that call it fail, the others pass). It used to stop the
    whole question at the first timeout (13 where raising gets 14)."""
    from autograder import course
    from autograder.build import prepare

    week = next(w for w in course.weeks(Path(__file__).resolve().parents[2]) if w.name == "week01")
    built = prepare(week)
    packaged = dataclasses.replace(built.packaged, grading=dataclasses.replace(
        built.packaged.grading, question_timeout=3.0))
    key = grading_cells(built.key)

    def scores(body: str) -> dict:
        res = grade_cells(packaged, key + [f"def {function}(*args, **kwargs):\n    {body}"], "loop",
                          diagnose_mistakes=False)
        return {q.question.name: q.score for q in res.questions}

    raising = scores("raise RuntimeError('wrong')")
    assert sum(raising.values()) < packaged.assignment.total_points
    assert scores("while True:\n        pass") == raising

# --- trusted side (issue 13) ---
# Attacks on what the trusted side takes from the sandbox: the names a test
# sees, the modules it imports, the dtypes, sizes and strings of replies.
# Each runs directly, through the Gradescope layout and in a --jobs 2 batch
# (the table's own tests, reused), and must not beat the honest grade.

_WIRE = "import sys\n_w = sys.modules['autograder.harness.wire']\n"
_SERVER = ("import gc, sys\n_s = sys.modules['autograder.harness.sandbox_server']\n"
           "_srv = next(o for o in gc.get_objects() if type(o) is _s.Server)\n")
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
    # events written to the grader's pipe by student code (the sandbox's own
    # ``Server.send``): the cell that writes one is stopped and skipped, and no
    # event moves a deadline (a flood kept the grader waiting forever), names
    # a cell, fakes a set-up failure (a grader failure, no grade) or rewrites
    # the protection record
    ("event_flood", _SERVER + "import time\nwhile True:\n    _srv.send({'event': 'cell_start', 'index': 0})\n"
                    "    time.sleep(0.05)", FULL),
    ("forged_cell_index", _SERVER + "_srv.send({'event': 'cell_start', 'index': 'x'})", FULL),
    ("forged_fatal", _SERVER + "_srv.send({'event': 'fatal', 'error': 'x'})", FULL),
    ("forged_protection", _SERVER + "_srv.send({'event': 'started', 'layers': [{'name': 'landlock', 'active': True, "
                          "'detail': 'forged'}]})", FULL),
    # the process dies after its last cell, before it says it is ready
    ("exit_after_last_cell", "import os, sys\n_s = sys.modules['autograder.harness.sandbox_server']\n"
                             "_s.Server.names = lambda self: os._exit(1)", FULL),
    # a table whose 1000 columns all name one 256 KB blob (see test_a_table_reply_costs_...)
    ("table_shared_blob", "import sys, numpy as _np\n_s = sys.modules['autograder.harness.sandbox_server']\n"
                          "_col = {'__t__': 'ndarray', 'blob': 0, 'dtype': '<f8', 'shape': [32768]}\n"
                          "_frame = {'__t__': 'dataframe', 'index': {'range': [0, 32768, 1], 'name': None}, "
                          "'columns': list(range(1000)), 'data': [_col] * 1000}\n_orig = _s.Server.reply_value\n"
                          "def _reply(self, value, seconds=0.0):\n    if type(value) is str and value == 'frame':\n"
                          "        return self.send({'ok': _frame, 'seconds': 0.0}, [_np.zeros(32768)])\n"
                          "    return _orig(self, value, seconds)\n_s.Server.reply_value = _reply\n"
                          "def square(x):\n    return 'frame'", WRONG_SQUARE),
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
    assert res.protection and "forged" not in " ".join(res.protection), res.protection
    if name in SHADOWING:
        assert any("tests always use the real ones" in m for m in res.messages)


@pytest.mark.parametrize("name, attack, expected", TRUSTED_SIDE, ids=[t[0] for t in TRUSTED_SIDE])
def test_trusted_side_attack_through_the_gradescope_layout(toy_zip, key_notebook, tmp_path, name, attack, expected):
    data = _through_gradescope(toy_zip, key_notebook, tmp_path, attack)
    assert validate_results(data) == [] and data["score"] == sum(expected.values()), data


def test_every_trusted_side_attack_in_one_parallel_batch(fast, toy_zip, key_notebook, tmp_path):
    cases = TRUSTED_SIDE + [("honest", "pass", FULL)]
    got = _in_one_parallel_batch(fast, toy_zip, key_notebook, tmp_path, cases)
    assert got == {name: expected for name, _, expected in cases}


@pytest.mark.parametrize("cell", ["globals()[1] = 2", "import types\nclass _M(types.ModuleType):\n"
                                  "    __name__ = property(lambda s: 1 / 0)\nm = _M('m')"],
                         ids=["key_not_a_string", "module_name_raises"])
def test_an_odd_global_early_in_the_notebook_costs_nothing(fast, key_notebook, cell):
    """Legal Python early in the notebook that the sandbox's list of names
    (after the last cell) choked on: the process died, so later cells, which
    did nothing wrong, were blamed and skipped one by one (0 points; before
    events were checked, a grader failure)."""
    cells = grading_cells(key_notebook)
    res = grade_cells(fast, cells[:1] + [cell] + cells[1:], "attack")
    assert {q.question.name: q.score for q in res.questions} == FULL, res.messages


def test_a_table_reply_costs_the_grader_at_most_what_was_sent(fast, key_notebook):
    """A table's columns all naming one blob: pandas copied the blob once per
    column (256 KB sent, over 500 MB traced in the grader, which on
    Gradescope's 768 MB machine is an OOM kill and no results.json); a blob
    backs one column only, as it backs one array."""
    import tracemalloc

    attack = dict((n, a) for n, a, _ in TRUSTED_SIDE)["table_shared_blob"]
    tracemalloc.start()
    try:
        scores, _ = grade_with(fast, key_notebook, attack)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scores == WRONG_SQUARE
    assert peak < 32 << 20, f"{peak / 2**20:.0f} MB"


def test_recordings_for_the_diagnosis_do_not_add_up_across_questions(fast):
    """Each question may receive four reply budgets; the calls of every
    question that lost points were kept, values and all, until the diagnosis
    after the last one: eight questions of two 20 MB answers held 320 MB in
    the grader, and a week of many questions more than Gradescope's 768 MB.
    All recordings together now hold at most one reply budget."""
    import tracemalloc

    from autograder.records import Assignment, Question, TestCase

    questions = tuple(Question(f"q{i}", 1.0, (TestCase(f"q{i}", 0, "big(1)\nbig(2)\nassert False, 'wrong'", True,
                                                       1.0),)) for i in range(8))
    packaged = dataclasses.replace(
        fast, assignment=Assignment("big", "big answers", questions, "visible", False, student_names=("big",)),
        grading=dataclasses.replace(fast.grading, memory_mb=200), mutants=(), key_cells=())  # reply budget: 50 MB
    tracemalloc.start()
    try:
        res = grade_cells(packaged, ["import numpy as np\ndef big(i):\n    return np.full(20 << 17, float(i))"], "big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [q.score for q in res.questions] == [0.0] * 8
    assert all("wrong" in o.message for q in res.questions for o in q.outcomes)
    assert peak < 160 << 20, f"{peak / 2**20:.0f} MB"


def test_the_question_deadline_bounds_the_graders_own_work():
    """Work on the trusted side (here a test that never ends, standing for a
    slow decode or comparison) is cut at the question's deadline: the
    test fails with the time-limit note, the sandbox is closed, and (as for
    a test that hangs in the sandbox) restarted for the question's next
    test, which gets the limit afresh."""
    from autograder.harness.protocol import SandboxLimits
    from autograder.harness.proxy import Session
    from autograder.harness.trusted import grade_question
    from autograder.records import Question, TestCase

    class StubSandbox:
        limits, names, closed, restarts, running = SandboxLimits(), {}, False, 0, True

        def close(self):
            self.closed, self.running = True, False

        def restart(self, deadline):
            self.restarts, self.running = self.restarts + 1, True

    tests = (TestCase("q", 0, "while True:\n    pass", True, 1.0), TestCase("q", 1, "pass", True, 1.0))
    sandbox = StubSandbox()
    t0 = time.monotonic()
    res = grade_question(Question("q", 2.0, tests), Session(sandbox), seed=0, timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert [o.passed for o in res.outcomes] == [False, True] and "time limit" in res.outcomes[0].message
    assert sandbox.closed and sandbox.restarts == 1
