"""Fine-tune-CoT's teacher step for one question: D rationales, an answer for each, judged on gold.

    result = await teach_question(client, sample, degree=8, temperature=0.7, ...)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rt_ray.config import GenerationConfig
from rt_ray.tasks.answers import extract_answer, is_correct
from rt_ray.tasks.base import Sample
from rt_ray.teacher.accounting import CallStats
from rt_ray.teacher.client import BudgetExhausted, TeacherClient, TeacherRequestFailed
from rt_ray.teacher.prompts import answer_prompt, rationale_prompt


@dataclass(frozen=True)
class SamplingPlan:
    degree: int
    temperature: float
    max_tokens_rationale: int
    max_tokens_answer: int

    @classmethod
    def from_config(cls, cfg: GenerationConfig) -> SamplingPlan:
        return cls(cfg.degree, cfg.temperature, cfg.max_tokens_rationale, cfg.max_tokens_answer)

    @property
    def rationale_temperature(self) -> float:
        # Plain Fine-tune-CoT (D=1) takes the greedy rationale; diverse reasoning samples.
        return 0.0 if self.degree == 1 else self.temperature


def judge_rationale(sample: Sample, index: int, rationale: dict, answer: dict) -> dict:
    predicted = extract_answer(answer["text"], sample.answer_type, choices=sample.choices or None)
    return {
        "sample_index": index,
        "rationale": rationale["text"].strip(),
        "rationale_finish_reason": rationale.get("finish_reason"),
        "teacher_answer": answer["text"].strip(),
        "predicted": predicted,
        "correct": is_correct(predicted, sample.answer, sample.answer_type),
    }


async def teach_question(client: TeacherClient, sample: Sample, plan: SamplingPlan) -> dict:
    """One question's outcome: status ok | failed | budget, its judged samples and its call counters."""
    stats = CallStats()
    outcome = {"status": "ok", "error": "", "samples": []}
    try:
        prompt = rationale_prompt(sample.question)
        rationales = await client.samples(
            prompt, plan.degree, plan.rationale_temperature, plan.max_tokens_rationale, stats
        )
        # Step 2 is greedy: it only reads off the answer the rationale reached.
        answers = await asyncio.gather(
            *(
                client.samples(answer_prompt(sample.question, r["text"]), 1, 0.0, plan.max_tokens_answer, stats)
                for r in rationales
            )
        )
        outcome["samples"] = [
            judge_rationale(sample, index, rationale, answer[0])
            for index, (rationale, answer) in enumerate(zip(rationales, answers))
        ]
    except BudgetExhausted as error:
        outcome.update(status="budget", error=str(error))
    except TeacherRequestFailed as error:
        outcome.update(status="failed", error=str(error))
    outcome["stats"] = stats.as_dict()
    return outcome
