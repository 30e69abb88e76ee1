"""Fine-tune-CoT's teacher step for one question: D rationales, an answer for each, judged on gold.

    result = await teach_question(client, sample, degree=8, temperature=0.7, ...)
"""

from __future__ import annotations

from dataclasses import dataclass

from rt_ray.config import GenerationConfig, TaskConfig
from rt_ray.tasks.answers import extract_answer, is_correct
from rt_ray.tasks.base import Sample
from rt_ray.teacher.accounting import CallStats
from rt_ray.teacher.client import BudgetExhausted, TeacherClient, TeacherRequestFailed
from rt_ray.prompts import ANSWER_TRIGGER, PromptStyle, prompt_style


@dataclass(frozen=True)
class SamplingPlan:
    degree: int
    temperature: float
    max_tokens_rationale: int
    max_tokens_answer: int
    answer_from: str = "second_call"
    instructions: str = ""
    answer_trigger: str = ANSWER_TRIGGER

    @classmethod
    def from_config(cls, cfg: GenerationConfig, task: TaskConfig) -> SamplingPlan:
        style = prompt_style(task)
        return cls(cfg.degree, cfg.temperature, cfg.max_tokens_rationale, cfg.max_tokens_answer, cfg.answer_from,
                   style.instructions, style.answer_trigger)  # fmt: skip

    @property
    def style(self) -> PromptStyle:
        return PromptStyle(self.instructions, self.answer_trigger)

    @property
    def rationale_temperature(self) -> float:
        # Plain Fine-tune-CoT (D=1) takes the greedy rationale; diverse reasoning samples.
        return 0.0 if self.degree == 1 else self.temperature


# Where a rationale states its own answer ("... so the answer is yes."); without it, its last candidate.
RATIONALE_ANSWER_PREFIX = "answer is"


def judge_rationale(sample: Sample, index: int, rationale: dict, answer: dict | None) -> dict:
    """One rationale judged on gold; ``answer`` is step 2's reply, or None to read the rationale's own answer."""
    if answer is None:
        predicted = extract_answer(rationale["text"], sample.answer_type, RATIONALE_ANSWER_PREFIX, sample.choices or None)
    else:
        predicted = extract_answer(answer["text"], sample.answer_type, choices=sample.choices or None)
    return {
        "sample_index": index,
        "rationale": rationale["text"].strip(),
        "rationale_finish_reason": rationale.get("finish_reason"),
        "teacher_answer": answer["text"].strip() if answer is not None else "",
        "predicted": predicted,
        "correct": is_correct(predicted, sample.answer, sample.answer_type),
    }


async def teach_question(client: TeacherClient, sample: Sample, plan: SamplingPlan) -> dict:
    """One question's outcome: status ok | failed | budget, its judged samples and its call counters.
    Only the teacher's failures (TeacherRequestFailed, with its kind) make a question failed; any
    other error is a fault in rt-ray and goes on, to fail the run."""
    stats = CallStats()
    outcome = {"status": "ok", "error": "", "failure": "", "samples": []}
    try:
        prompt = plan.style.rationale(sample.question)
        rationales = await client.samples(
            prompt, plan.degree, plan.rationale_temperature, plan.max_tokens_rationale, stats
        )
        if plan.answer_from == "rationale":  # no second call: the answer the rationale itself states
            answers: list = [None] * len(rationales)
        else:  # step 2 is greedy: it only reads off the answer the rationale reached
            prompts = [plan.style.answer(sample.question, r["text"]) for r in rationales]
            answers = await client.one_each(prompts, 0.0, plan.max_tokens_answer, stats)
        outcome["samples"] = [
            judge_rationale(sample, index, rationale, answer)
            for index, (rationale, answer) in enumerate(zip(rationales, answers))
        ]
    except BudgetExhausted as error:
        outcome.update(status="budget", error=str(error))
    except TeacherRequestFailed as error:
        outcome.update(status="failed", error=str(error), failure=error.kind)
    outcome["stats"] = stats.as_dict()
    return outcome
