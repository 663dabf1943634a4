"""Configuration: declared keys only, the notebook's values win."""
import pytest

from autograder.config import ConfigError, assignment_config, load_course_defaults


def test_notebook_values_win_over_course_defaults():
    cfg = assignment_config({"show_stdout": False, "grading": {"question_timeout": 30, "memory_mb": 500}},
                            {"name": "week01", "grading": {"question_timeout": 5}}, "nb")
    assert cfg.grading.question_timeout == 5 and cfg.grading.memory_mb == 500 and cfg.name == "week01"


def test_unknown_key_fails_loudly_with_valid_keys():
    with pytest.raises(ConfigError, match="unknown key.*qustion_timeout.*valid keys"):
        assignment_config({}, {"grading": {"qustion_timeout": 3}}, "nb")


def test_wrong_type_and_visibility_rejected():
    with pytest.raises(ConfigError, match="must be a number"):
        assignment_config({}, {"grading": {"memory_mb": "lots"}}, "nb")
    with pytest.raises(ConfigError, match="hidden_visibility"):
        assignment_config({}, {"hidden_visibility": "sometimes"}, "nb")


def test_repository_otter_config_is_valid():
    from pathlib import Path

    data = load_course_defaults(Path(__file__).resolve().parents[2] / "otter_config.yml")
    assert data["grading"]["memory_mb"] <= 768
