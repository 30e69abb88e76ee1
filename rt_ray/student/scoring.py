"""Evaluation metrics over saved predictions: plain functions, no model needed."""

from __future__ import annotations

from collections import defaultdict

from rt_ray.tasks.answers import FT_COT_PREFIX, extract_answer, is_correct


def judge_generation(text: str, gold: str, answer_type: str, choices: list[str] | None, expects_prefix: bool) -> dict:
    predicted = extract_answer(text, answer_type, prefix=FT_COT_PREFIX if expects_prefix else None, choices=choices)
    return {
        "predicted": predicted,
        "correct": is_correct(predicted, gold, answer_type),
        "correct_format": (FT_COT_PREFIX in text) if expects_prefix else True,
    }


def accuracy_report(predictions: list[dict]) -> dict:
    """Accuracy overall and per answer type, and the share of well-formed outputs."""
    if not predictions:
        return {"accuracy": 0.0, "n": 0, "correct_format": 0.0}
    by_type: dict[str, list[bool]] = defaultdict(list)
    for p in predictions:
        by_type[p["answer_type"]].append(bool(p["correct"]))
    report = {
        "accuracy": sum(bool(p["correct"]) for p in predictions) / len(predictions),
        "n": len(predictions),
        "correct_format": sum(bool(p["correct_format"]) for p in predictions) / len(predictions),
    }
    report.update({f"accuracy_{kind}": sum(v) / len(v) for kind, v in sorted(by_type.items())})
    return report
