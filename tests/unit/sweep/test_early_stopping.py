"""sweep.scheduler asha: its settings, its checks and its report (the stopping itself is in tests/integration)."""

import pytest

from rt_ray.config import ConfigError, parse_config
from rt_ray.sweep.space import search_space
from rt_ray.sweep.tuner import _scheduler, stopped_markdown


def test_asha_needs_validation_reports_and_selects_on_validation_accuracy():
    with pytest.raises(ConfigError, match="sweep.report_every_steps"):
        parse_config({"sweep": {"scheduler": "asha"}})
    with pytest.raises(ConfigError, match="sweep.metric"):
        parse_config({"sweep": {"scheduler": "asha", "report_every_steps": 10, "metric": "test_accuracy"}})


def test_asha_counts_training_steps_up_to_the_largest_budget_and_fifo_has_no_scheduler():
    cfg = parse_config({"train": {"max_steps": 100}, "sweep": {"scheduler": "asha", "report_every_steps": 20,
                        "asha_reduction_factor": 3, "max_steps": [60, 200]}})  # fmt: skip
    scheduler = _scheduler(cfg, search_space(cfg.sweep))
    assert scheduler._time_attr == "validated_step" and scheduler._max_t == 200
    rungs = sorted(milestone for milestone, _ in scheduler._brackets[0]._rungs)
    assert rungs == [20, 60, 180], "first rung after one report (the default grace), then x3 each"
    assert _scheduler(parse_config({}), search_space(parse_config({}).sweep)) is None


def test_the_report_lists_stopped_trials_and_the_steps_they_saved():
    stopped = [{"params": {"degree": 1, "lr": 1e-6}, "step": 10, "steps_saved": 30, "validation_accuracy": 0.0},
               {"params": {"degree": 2, "lr": 1e-6}, "step": 20, "steps_saved": 20, "validation_accuracy": 0.1}]  # fmt: skip
    text = stopped_markdown(stopped, ["lr"])
    assert "2 trials, 50 training steps saved" in text
    assert "| 1 | 1e-06 | 10 | 0.000 | 30 |" in text and "| 2 | 1e-06 | 20 | 0.100 | 20 |" in text
    assert stopped_markdown([], ["lr"]) == ""
