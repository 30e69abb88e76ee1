"""Evaluation: batched greedy generation over the test split on a pool of model replicas (Ray Data).

    report, predictions = evaluate_student(cfg, {"path": "runs/x/student/model"}, mode="ft_cot")

Modes: ``ft_cot`` (prompt ``question ###``, answer after ``-->``), ``vanilla`` (same prompt, answer
alone) and ``zero_shot`` (``Q: question\\n\\nA:``, the untrained student's own answer).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rt_ray.config import RtRayConfig, StudentConfig
from rt_ray.devices import replica_device
from rt_ray.progress import bar
from rt_ray.student.formats import student_input, zero_shot_prompt
from rt_ray.student.generation import generate_texts
from rt_ray.student.scoring import accuracy_report, judge_generation
from rt_ray.tasks import load_task_data
from rt_ray.tasks.base import Sample
from rt_ray.artifacts import write_jsonl


def prompt_for(question: str, arch: str, mode: str) -> str:
    return zero_shot_prompt(question, arch) if mode == "zero_shot" else student_input(question, arch)


def answer_and_judge(model, tokenizer, arch: str, mode: str, samples: list[Sample], max_new_tokens: int) -> list[tuple[str, dict]]:
    """Greedy answers to ``samples`` in one batch, each with its judgement: (generated text, judged)."""
    outputs = generate_texts(model, tokenizer, arch, [prompt_for(s.question, arch, mode) for s in samples], max_new_tokens)
    return [(o.text, judge_generation(o.text, s.answer, s.answer_type, s.choices or None, mode == "ft_cot"))
            for o, s in zip(outputs, samples)]  # fmt: skip


class StudentPredictor:
    """One model replica; Ray Data sends it batches of test questions."""

    def __init__(self, source: dict, mode: str, max_new_tokens: int, threads: int | None = None, device: str = "cpu"):
        import torch

        from rt_ray.artifacts import load_student
        from rt_ray.student.models import build_student

        if threads:
            torch.set_num_threads(threads)
        if "path" in source:
            self.model, self.tokenizer, meta = load_student(source["path"])
            self.arch = meta["arch"]
        else:
            self.model, self.tokenizer = build_student(source["spec"], seed=source.get("seed", 0))
            self.arch = source["spec"]["arch"]
        self.model.to(device)  # rt_ray.devices.replica_device: what Ray gave it, not what it sees
        self.model.eval()
        self.mode, self.max_new_tokens = mode, max_new_tokens

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = batch.to_dict("records")
        samples = [Sample.from_row(r) for r in rows]
        out = []
        for row, sample, (text, judged) in zip(rows, samples, answer_and_judge(self.model, self.tokenizer, self.arch, self.mode, samples, self.max_new_tokens)):
            out.append({"split": row["split"], "id": sample.id, "question": sample.question, "answer": sample.answer,
                        "answer_type": sample.answer_type, "generated": text, **judged})  # fmt: skip
        return pd.DataFrame(out)


def replica_resources(student: StudentConfig) -> dict:
    """What each evaluation replica asks Ray for (student.eval_cpus, student.eval_gpus)."""
    return {"num_cpus": student.eval_cpus, **({"num_gpus": student.eval_gpus} if student.eval_gpus else {})}


def replica_settings(student: StudentConfig) -> dict:
    """How a replica runs on what it was given: its torch threads and its device."""
    return {"threads": max(1, int(student.eval_cpus)), "device": replica_device(student.eval_gpus)}


def evaluate_student(
    cfg: RtRayConfig, source: dict, mode: str, predictions_path: Path | None = None, samples: list[Sample] | None = None
):
    """(accuracy report, predictions) over the test split (or ``samples``); predictions also as JSONL."""
    test = samples if samples is not None else load_task_data(cfg.task).test
    return evaluate_splits(cfg, source, mode, {"test": (test, predictions_path)})["test"]


def evaluate_splits(cfg: RtRayConfig, source: dict, mode: str, splits: dict[str, tuple[list[Sample], Path | None]]) -> dict:
    """{split: (accuracy report, predictions)} for several question sets (a sweep trial's validation and
    test questions) in one Ray Data run: one pool of model replicas, started once."""
    import ray

    from rt_ray.cluster import configure_ray_data, ensure_ray

    ensure_ray(cfg.ray)
    configure_ray_data()  # the rich bar below instead; a map's error as it is
    student = cfg.student
    items = [{**s.to_row(), "split": name} for name, (questions, _) in splits.items() for s in questions]
    ds = ray.data.from_items(items, override_num_blocks=max(1, student.eval_replicas * 2))
    predicted = ds.map_batches(
        StudentPredictor,
        batch_size=student.eval_batch_size,
        batch_format="pandas",
        fn_constructor_kwargs={"source": source, "mode": mode, "max_new_tokens": student.max_new_tokens, **replica_settings(student)},
        compute=ray.data.ActorPoolStrategy(size=student.eval_replicas),
        **replica_resources(student),
    )
    rows = []
    with bar(f"evaluating {mode}", total=len(items)) as progress:
        for batch in predicted.iter_batches(batch_size=None, batch_format="pandas"):
            rows.extend(batch.to_dict("records"))
            progress.update(completed=len(rows))
    results = {}
    for name, (questions, predictions_path) in splits.items():
        order = {s.id: index for index, s in enumerate(questions)}
        predictions = sorted((r for r in rows if r["split"] == name), key=lambda p: order[p["id"]])
        predictions = [{k: (bool(v) if k in ("correct", "correct_format") else v) for k, v in p.items() if k != "split"}
                       for p in predictions]  # fmt: skip
        if predictions_path is not None:
            predictions_path.parent.mkdir(parents=True, exist_ok=True)
            write_jsonl(predictions_path, predictions)
        results[name] = accuracy_report(predictions), predictions
    return results
