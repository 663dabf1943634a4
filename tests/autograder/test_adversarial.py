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


# GPU attacks, graded with SODL_DEVICE=cuda (the jail then exposes /dev/nvidia*).
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
def test_gpu_attack_gets_the_honest_grade(fast, key_notebook, monkeypatch, name, attack, expected):
    monkeypatch.setenv("SODL_DEVICE", "cuda")
    t0 = time.monotonic()
    scores, _ = grade_with(fast, key_notebook, attack)
    assert scores == expected
    assert time.monotonic() - t0 < 60
    # the GPU is still usable by the next submission
    assert grade_with(fast, key_notebook, "import torch\n" + GPU_SQUARE + GPU_MEAN)[0] == FULL


@pytest.mark.cuda
def test_gpu_memory_of_another_sandbox_is_out_of_reach(fast, key_notebook, monkeypatch):
    """One sandbox fills GPU memory with a secret and ends; the next sandbox
    allocates without initialising and looks for it. ``square`` is right only
    if it found the secret, so the honest grade is WRONG_SQUARE (``mean``, on
    the GPU, proves the reader had one)."""
    monkeypatch.setenv("SODL_DEVICE", "cuda")
    writer = (f"import torch\nSECRET = torch.full((1 << 26,), {GPU_SECRET}, device='cuda')\n"
              "torch.cuda.synchronize()\n" + GPU_SQUARE)
    assert grade_with(fast, key_notebook, writer)[0] == FULL
    reader = ("import torch\nblocks = [torch.empty(1 << 26, device='cuda') for _ in range(4)]\n"
              f"LEAK = any(bool((b == {GPU_SECRET}).any()) for b in blocks)\n" + GPU_MEAN +
              "def square(x):\n    return np.asarray(x, dtype=float) ** 2 if LEAK else np.zeros(np.shape(x))")
    assert grade_with(fast, key_notebook, reader)[0] == WRONG_SQUARE
