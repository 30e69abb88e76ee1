"""Answer filtering and the run's statistics: plain functions over the per-question outcomes."""

from __future__ import annotations

from collections import Counter

from rt_ray.teacher.accounting import CallStats


def sample_records(row: dict, outcome: dict) -> list[dict]:
    """One record per rationale, carrying its question and gold answer."""
    base = {
        "question_id": row["id"],
        "question": row["question"],
        "answer": row["answer"],
        "answer_type": row["answer_type"],
        "choices": row["choices"],
    }
    return [{**base, **sample} for sample in outcome["samples"]]


def keep_correct(records: list[dict]) -> list[dict]:
    """The paper's filter: each sample judged on its own, kept when the teacher's answer is right."""
    return [record for record in records if record["correct"]]


def summarize(records: list[dict], outcomes: list[dict], totals: CallStats, degree: int, wall_s: float) -> dict:
    statuses = Counter(outcome["status"] for outcome in outcomes)
    kept = keep_correct(records)
    kept_per_question = Counter(record["question_id"] for record in kept)
    answered = statuses.get("ok", 0)
    status = "complete"
    if statuses.get("budget"):
        status = "stopped_budget"
    elif statuses.get("failed"):
        status = "complete_with_failures"
    return {
        "status": status,
        "degree": degree,
        "questions": len(outcomes),
        "questions_answered": answered,
        "questions_failed": statuses.get("failed", 0),
        "questions_not_sent_budget": statuses.get("budget", 0),
        "rationales": len(records),
        "rationales_kept": len(kept),
        "teacher_accuracy": (sum(r["correct"] for r in records) / len(records)) if records else 0.0,
        "yield_per_question": (len(kept) / answered) if answered else 0.0,
        "questions_with_a_kept_rationale": len(kept_per_question),
        "kept_per_question_histogram": dict(sorted(Counter(kept_per_question.values()).items())),
        "requests_sent": totals.requests,
        "prompts_sent": totals.prompts_sent,
        "requests_per_question": round(totals.requests / len(outcomes), 3) if outcomes else 0.0,
        "cache_hits": totals.cache_hits,
        "retries": totals.retries,
        "failed_requests": totals.failed_requests,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "cost_usd": round(totals.cost_usd, 6),
        "cost_per_kept_rationale_usd": round(totals.cost_usd / len(kept), 8) if kept else None,
        "wall_s": round(wall_s, 3),
    }
