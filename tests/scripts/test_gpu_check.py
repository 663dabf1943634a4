"""The GPU check's verdicts and report, with made-up runs (the CUDA half cannot run without a GPU)."""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check  # its dataclasses look their module up there
spec.loader.exec_module(gpu_check)
WeekResult, WeekRun = gpu_check.WeekResult, gpu_check.WeekRun

HONEST = {"correct": "3/3", "blank": "0/3", "partly_wrong": "1/3"}


def test_identical_scores_on_both_devices_pass():
    w = WeekResult("week01", {"cpu": WeekRun(HONEST, 2.0), "cuda": WeekRun(dict(HONEST), 1.0)})
    assert gpu_check.problems(w) == []


def test_a_score_that_differs_on_cuda_fails():
    w = WeekResult("week01", {"cpu": WeekRun(HONEST, 2.0), "cuda": WeekRun({**HONEST, "partly_wrong": "2/3"}, 1.0)})
    assert gpu_check.problems(w) == ["week01: devices disagree"]


def test_a_correct_sample_without_full_marks_fails():
    w = WeekResult("week01", {"cpu": WeekRun({**HONEST, "correct": "2/3"}, 2.0)})
    assert gpu_check.problems(w) == ["week01 on cpu: correct 2/3, blank 0/3"]


def test_report_with_and_without_a_gpu(tmp_path):
    both = [WeekResult("week01", {"cpu": WeekRun(HONEST, 2.0), "cuda": WeekRun(dict(HONEST), 1.5)})]
    gpu_check.write_report(tmp_path / "gpu.md", "NVIDIA H100", [("t::cuda_oom", "passed")], both, 100)
    text = (tmp_path / "gpu.md").read_text()
    assert "still to be made" not in text
    assert "| week01 | 3/3 0/3 1/3 | 3/3 0/3 1/3 | yes | 2.0 | 1.5 |" in text
    cpu_only = [WeekResult("week01", {"cpu": WeekRun(HONEST, 2.0)})]
    gpu_check.write_report(tmp_path / "cpu.md", None, [("t::cuda_oom", "skipped: no GPU")], cpu_only, 100)
    text = (tmp_path / "cpu.md").read_text()
    assert "still to be made" in text and "| week01 | 3/3 0/3 1/3 | no GPU | - | 2.0 | - |" in text
