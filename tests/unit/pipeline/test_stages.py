import pytest

from rt_ray.config import parse_config
from rt_ray.pipeline.stages import STAGES, baselines_fingerprint, reruns, student_fingerprint


@pytest.mark.parametrize(
    "rerun_from, expected",
    [(None, []), ("teacher", list(STAGES)), ("student", ["student", "baselines", "deploy"]), ("deploy", ["deploy"])],
)
def test_from_a_stage_reruns_it_and_every_stage_after(rerun_from, expected):
    assert [stage for stage in STAGES if reruns(stage, rerun_from)] == expected


def test_a_changed_teacher_makes_the_student_and_baselines_stale():
    cfg = parse_config({})
    student = student_fingerprint(cfg, "teacher-a")
    assert student_fingerprint(cfg, "teacher-b") != student
    assert baselines_fingerprint(cfg, student) != baselines_fingerprint(cfg, student_fingerprint(cfg, "teacher-b"))


def test_the_sweep_section_matters_only_when_the_pipeline_sweeps():
    one_train = parse_config({"pipeline": {"sweep": False}})
    assert student_fingerprint(one_train, "t") == student_fingerprint(one_train.with_values(sweep={"degrees": [8]}), "t")
    sweeping = parse_config({"pipeline": {"sweep": True}})
    assert student_fingerprint(sweeping, "t") != student_fingerprint(sweeping.with_values(sweep={"degrees": [8]}), "t")
