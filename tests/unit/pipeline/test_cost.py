"""The cost case's arithmetic against figures worked out by hand."""

from dataclasses import replace

import pytest

from rt_ray.pipeline.cost import CostCase, Distillation, ServedStudent, TeacherOnTest, break_even, percentile
from rt_ray.pipeline.report import PipelineReport, report_markdown
from rt_ray.results import Champion, Score


def case(requests_per_s: float = 20.0, student_accuracy: float = 0.90) -> CostCase:
    return CostCase(TeacherOnTest(accuracy=0.95, questions=150, cost_usd=0.30),
                    ServedStudent(student_accuracy, requests=64, concurrency=16, requests_per_s=requests_per_s, p50_ms=700.0,
                                  p99_ms=900.0, usd_per_hour=0.36),
                    Distillation(teacher_usd=1.20, training_s=600.0, usd_per_hour=0.36))  # fmt: skip


def test_costs_per_thousand_answers_distillation_and_break_even_by_hand():
    c = case()
    assert c.teacher_usd_per_1k == pytest.approx(2.00)  # $0.30 for 150 answers
    assert c.student_usd_per_1k == pytest.approx(0.005)  # 1,000 answers at 20/s = 50 s at $0.36/h
    assert c.distill_usd == pytest.approx(1.26)  # $1.20 of rationales + 600 s at $0.36/h
    assert c.break_even_answers == pytest.approx(1.26 / (0.002 - 0.000005))  # 631.6 answers
    first, second = c.sentences()
    assert "400x less" in first and "after 632 answers" in first
    assert second == "The student is 5.0 points less accurate than the teacher on the test split (0.900 against 0.950)."


def test_a_student_no_cheaper_than_its_teacher_never_breaks_even_and_says_so():
    assert break_even(1.0, 0.001, 0.001) is None and break_even(1.0, 0.001, 0.002) is None
    c = case(requests_per_s=0.001, student_accuracy=0.97)
    assert c.break_even_answers is None
    assert c.sentences() == ["The student costs no less per answer than the teacher here, so distilling never pays for itself."]


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(10, 0, -1)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 0.1)) == (5.0, 10.0, 1.0)


def test_the_report_shows_the_cost_case_table_and_its_sentences():
    c = case()
    report = PipelineReport("r", "custom", 1.0, {"teacher_simulated": True}, Champion("m", "D=1", "ft_cot", Score(0.9, 150)), cost=c)
    text = report_markdown(report)
    assert "The teacher's rationales were simulated (rt-ray teacher-sim)" in text
    assert "simulated" not in report_markdown(replace(report, teacher={"teacher_simulated": False})).split("## What")[0]
    assert "## What the student saves" in text and "| cost per 1,000 answers | $2 | $0.005 |" in text
    assert "| break-even |  | 632 answers |" in text and c.sentences()[1] in text
