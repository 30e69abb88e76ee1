"""``TeacherCaller``: the Ray Data actor that runs the teacher step for a block of questions.

Each actor runs one asyncio loop; Ray Data feeds it several blocks at once and the client's
semaphore keeps ``max_concurrency / num_callers`` requests in flight across them, so a slow
question never idles the other slots.
"""

from __future__ import annotations

import asyncio
import json

import pandas as pd
from pydantic import SecretStr

from rt_ray.config import TeacherConfig
from rt_ray.tasks.base import Sample
from rt_ray.teacher.client import TeacherClient
from rt_ray.teacher.filtering import is_kept, sample_records
from rt_ray.teacher.teach import SamplingPlan, teach_question

QUESTION_FIELDS = ("id", "question", "answer", "answer_type", "choices")


def question_entry(row: dict, outcome: dict) -> dict:
    """A question as the parts store it (``rt_ray.teacher.parts``): its index, status and fields, and its
    records as the output files' lines (serialized once, here) with whether each was kept."""
    question = {key: row[key] for key in QUESTION_FIELDS}
    records = sample_records(row, outcome)
    return {"index": int(row["index"]), "status": outcome["status"], "error": outcome["error"], "row": question,
            "lines": [json.dumps(r) for r in records], "kept": [is_kept(r) for r in records]}  # fmt: skip


class TeacherCaller:
    def __init__(self, teacher: dict, plan: dict, api_key: SecretStr | None, governor=None, cache_only: str | None = None):
        # Settings arrive as plain dicts (not module globals), so the actor runs the same on any node.
        self.client = TeacherClient(
            TeacherConfig.model_validate(teacher),
            api_key.get_secret_value() if api_key else None,
            governor=governor,
            cache_only=cache_only,
        )
        self.plan = SamplingPlan(**plan)

    async def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = batch.to_dict("records")
        outcomes = await asyncio.gather(*(teach_question(self.client, Sample.from_row(r), self.plan) for r in rows))
        # The part file's line is built here, in parallel across callers, so that the driver only
        # writes it: the driver's work per question stays a few counters, whatever the run's size.
        entries = [question_entry(r, o) for r, o in zip(rows, outcomes)]
        return pd.DataFrame({
            "index": [e["index"] for e in entries],
            "status": [e["status"] for e in entries],
            "records": [len(e["lines"]) for e in entries],
            "kept": [sum(e["kept"]) for e in entries],
            "stats_json": [json.dumps(o["stats"]) for o in outcomes],
            "entry_json": [json.dumps(e) for e in entries],
        })  # fmt: skip
