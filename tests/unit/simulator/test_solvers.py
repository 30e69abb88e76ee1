import random

import pytest

from rt_ray.config import TaskConfig
from rt_ray.tasks import get_task, load_task_data
from rt_ray.prompts import answer_prompt, rationale_prompt
from rt_ray.simulator.solvers import complete, read_prompt


def teacher_answer(question: str, rationale: str) -> str:
    return complete(answer_prompt(question, rationale), 1, random.Random(0), 0.0)[0]


def accuracy(task_name: str, samples, wrong_rate: float) -> float:
    task, rng, right = get_task(task_name), random.Random(1), 0
    for sample in samples:
        rationale = complete(rationale_prompt(sample.question), 1, rng, wrong_rate)[0]
        predicted = task.parse(teacher_answer(sample.question, rationale), choices=sample.choices or None)
        right += task.judge(predicted, sample.answer)
    return right / len(samples)


@pytest.mark.parametrize("task_name", ["coin_flip", "last_letter_concatenation"])
def test_simulator_solves_generated_tasks_when_told_never_to_err(task_name):
    samples = load_task_data(TaskConfig(name=task_name, num_examples=60)).train
    assert accuracy(task_name, samples, wrong_rate=0.0) == 1.0
    assert accuracy(task_name, samples, wrong_rate=1.0) == 0.0


def test_simulator_solves_every_bigbench_shuffled_objects_question(bigbench_dir):
    data = load_task_data(TaskConfig(name="tracking_shuffled_objects", bigbench_dir=bigbench_dir))
    samples = data.train + data.test
    assert accuracy("tracking_shuffled_objects", samples, wrong_rate=0.0) == 1.0
    assert accuracy("tracking_shuffled_objects", samples[:100], wrong_rate=1.0) == 0.0


def test_wrong_rate_is_roughly_honoured():
    samples = load_task_data(TaskConfig(name="coin_flip", num_examples=400)).train
    assert 0.7 <= accuracy("coin_flip", samples, wrong_rate=0.2) <= 0.9


def test_n_rationales_are_distinct():
    question = load_task_data(TaskConfig(name="coin_flip")).train[0].question
    rationales = complete(rationale_prompt(question), 8, random.Random(0), 0.0)
    assert len(set(rationales)) == 8


def test_unsolvable_task_gets_a_guess_in_the_right_answer_type():
    question = "Is a pear heavier than water?"
    rationale = complete(rationale_prompt(question), 1, random.Random(0), 0.0)[0]
    assert get_task("strategy_qa").parse(teacher_answer(question, rationale)) in {"yes", "no"}


def test_read_prompt_tells_the_two_steps_apart():
    assert read_prompt(rationale_prompt("Q1")).kind == "rationale"
    step = read_prompt(answer_prompt("Q1", " because."))
    assert (step.kind, step.question, step.rationale) == ("answer", "Q1", " because.")
