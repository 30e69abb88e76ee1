from rt_ray.config import GenerationConfig, TaskConfig
from rt_ray.teacher.teach import SamplingPlan


def test_sampling_plan_takes_the_generation_section():
    cfg = GenerationConfig(degree=8, temperature=0.9, max_tokens_rationale=200, max_tokens_answer=20)
    plan = SamplingPlan.from_config(cfg, TaskConfig())
    assert plan == SamplingPlan(degree=8, temperature=0.9, max_tokens_rationale=200, max_tokens_answer=20)
    assert plan.rationale_temperature == 0.9


def test_plain_fine_tune_cot_takes_the_greedy_rationale():
    plan = SamplingPlan.from_config(GenerationConfig(degree=1, temperature=0.9), TaskConfig())
    assert plan.rationale_temperature == 0.0
