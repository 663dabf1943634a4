"""Smoke test of the benchmarks (``make bench``) at tiny sizes: the
functions run, the ways of computing each kernel agree, and the report
renders. No timing assertions; no otter zip needed."""
import json
import sys

import numpy as np
import pytest
import torch

from bench import grading, nngp, ntk, run
from bench.common import run_cmd
from sodl_ref import kernels


def test_empirical_ntk_three_ways_agree():
    r = ntk.run(d=7, width=16, depth=3, n=5, repeats=1, slow_repeats=1, mm_size=64)
    assert r["params"] == 7 * 16 + 16 + 2 * (16 * 16 + 16) + 16 + 1
    assert r["agree_vmap"] and r["agree_loop"]
    assert r["err_vmap"] < 1e-4 and r["err_loop"] < 1e-4
    assert r["gflops_peak"] > 0 and 0 < r["floor"] < r["floor_as_run"]


def test_empirical_ntk_float64_matches_autodiff():
    model = ntk.make_mlp(4, 8, 2, dtype=torch.float64)
    x1, x2 = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    ref = ntk.ntk_loop(model, x1, x2)
    torch.testing.assert_close(ntk.ntk_sodl(model, x1, x2), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ntk.ntk_vmap_jacrev(model, x1, x2), ref, rtol=1e-10, atol=1e-12)


def test_flop_count_by_hand():
    # sizes 3 -> 4 -> 1, 2 rows forward, Gram 2 x 2:
    # forward 2*2*(12+4) = 64, backward 2*2*4 = 16, grams 2*2*2*((3+4) + (4+1)) = 96
    f = ntk.per_layer_flops([3, 4, 1], 2, 2, 2)
    assert (f["forward"], f["backward"], f["gram"], f["total"]) == (64, 16, 96, 176)


@pytest.mark.parametrize("depth", [1, 3])
def test_nngp_ntk_numpy_matches_sodl_ref(depth):
    rng = np.random.default_rng(depth)
    x1, x2 = rng.normal(size=(20, 6)), rng.normal(size=(15, 6))
    k, theta = nngp.relu_kernels_numpy(x1, x2, depth)
    np.testing.assert_allclose(k, kernels.nngp(x1, x2, depth).numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(theta, kernels.ntk(x1, x2, depth).numpy(), rtol=1e-10, atol=1e-12)


def test_nngp_run_small():
    r = nngp.run(n=30, d=5, depth=2, repeats=1)
    assert r["nngp"]["agree"] and r["ntk"]["agree"]
    assert r["ntk"]["offdiag_rel_err"] < 1e-12


def test_otter_copy_of_master(tmp_path):
    changes = grading.otter_notebook(grading.MASTER, tmp_path / "week01.ipynb")
    nb = json.loads((tmp_path / "week01.ipynb").read_text())
    config = "".join(nb["cells"][0]["source"])
    assert config.startswith("# ASSIGNMENT CONFIG") and "title" not in config
    assert any("seed" in c for c in changes)
    tests = ["".join(c["source"]) for c in nb["cells"] if "# END TEST CONFIG" in "".join(c["source"])]
    assert all(f"seed = {grading.OTTER_SEED}" in t for t in tests if "rng(seed)" in t or "(seed)" in t)


def test_batch_and_student_compute(tmp_path, monkeypatch):
    cells = [
        {"cell_type": "code", "metadata": {}, "source": 'import otter\ngrader = otter.Notebook("w.ipynb")'},
        {"cell_type": "code", "metadata": {}, "source": "total = sum(range(1000))"},
        {"cell_type": "code", "metadata": {}, "source": 'grader.check("q1")'},
        {"cell_type": "code", "metadata": {"tags": ["otter_ignore"]}, "source": "raise SystemExit"},
        {"cell_type": "code", "metadata": {}, "source": "1 / 0"},
    ]
    samples = {}
    for kind in grading.KINDS:
        d = tmp_path / kind
        d.mkdir()
        (d / "week01.ipynb").write_text(json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 5,
                                                    "metadata": {}}))
        samples[kind] = d
    before = sys.modules.get("otter")
    t = grading.student_compute(samples["correct"] / "week01.ipynb", repeats=1)
    assert 0 <= t < 5 and sys.modules.get("otter") is before
    monkeypatch.setattr(grading, "WORK", tmp_path)
    subs = grading.make_batch(samples, 7, tmp_path / "batch")
    names = [p.name for p, _ in subs]
    assert len(set(names)) == 7 and [k for _, k in subs][:3] == list(grading.KINDS)
    assert all((p / "week01.ipynb").exists() for p, _ in subs)


def test_tree_memory_sampler():
    code = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
            "'import time; b = bytearray(80 << 20); time.sleep(0.6)'])")
    r = run_cmd([sys.executable, "-c", code], sample_memory=True)
    assert r.rc == 0 and r.peak_rss_mb >= 80 and r.peak_pss_mb >= 60


def test_report_renders():
    res = {
        "machine": {"cpu": "x", "cores": 2, "cores_usable": 2, "torch_threads": 2, "memory_gb": 1.0,
                    "python": "3", "torch": "t", "numpy": "n", "platform": "p", "date": "today",
                    "load": (1.0, 1.0, 1.0), "load_end": (1.0, 1.0, 1.0), "omp_num_threads": "(unset)"},
        "git": "`abc`", "errors": {}, "total_s": 1.0, "otter_changes": ["dropped title"],
        "single": {"t_sodl": [1.0, 1.1], "t_otter": [5.0, 5.1], "sodl": 1.05, "otter": 5.05, "ratio": 0.21,
                   "score_sodl": 15.0, "score_otter": 15.0},
        "startup": {"python": 0.02, "preload": 2.0, "trusted": 1.5, "otter": 1.0,
                    "preload_modules": ["numpy", "torch"]},
        "batch": {"n": 6, "jobs": 2, "n_otter": 3, "counts": {"correct": 2, "partly_wrong": 2, "blank": 2},
                  "t_sodl": 3.0, "t_otter_measured": 15.0, "t_otter_n": 30.0,
                  "t_otter_runs": {"correct": [5.0], "partly_wrong": [5.0], "blank": [5.0]},
                  "throughput_sodl": 2.0, "throughput_otter": 0.2, "ratio": 10.0,
                  "sodl_scores": {"correct": [15.0], "partly_wrong": [8.0], "blank": [0.0]},
                  "otter_scores": {"correct": [15.0], "partly_wrong": [15.0], "blank": [0.0]},
                  "compute": {"correct": 0.001, "partly_wrong": 0.001, "blank": 0.001}, "compute_mean": 0.001,
                  "student": {"correct": 0.1, "partly_wrong": 0.1, "blank": 0.0}, "student_mean": 0.07,
                  "per_sub_wall": 0.5, "per_sub_core": 1.0, "overhead": 0.999,
                  "steady": {"correct": 0.5, "partly_wrong": 0.6, "blank": 1.0}, "steady_mean": 0.7,
                  "overhead_steady": 0.699},
        "ntk": ntk.run(d=5, width=8, depth=3, n=4, repeats=1, slow_repeats=1, mm_size=32),
        "nngp": nngp.run(n=10, d=3, depth=2, repeats=1),
        "weeks": {"gradescope_mb": 768, "checks_in_build": True, "full": {"week": "week01", "s": 30.0, "rc": 0},
                  "rows": [
            {"week": "week01", "title": "t", "questions": 6, "build_noexec_s": 1.0, "grade_s": 5.0, "grade_rc": 0,
             "ru_maxrss_mb": 40.0, "peak_rss_mb": 900.0, "peak_pss_mb": 600.0, "score": 15.0, "max_score": 15.0,
             "build_s": 12.0, "solution_s": 11.0},
            {"week": "week02", "title": "t", "questions": 5, "build_noexec_s": 1.0, "grade_s": 5.0, "grade_rc": 0,
             "ru_maxrss_mb": float("nan"), "peak_rss_mb": 1900.0, "peak_pss_mb": 800.0, "score": 12.0,
             "max_score": 12.0, "exec_skipped": True},
            {"week": "week03", "title": "t", "questions": 5, "build_noexec_s": 1.0, "error": "build failed"},
            {"week": "week04", "title": "t", "questions": 5, "cheap_skipped": True},
        ]},
    }
    text = run.report(res)
    assert "## Summary" in text and "week04" in text and "not run (budget)" in text
    assert "complete `sodl build week01`" in text
    assert text.count("**yes**") >= 3
