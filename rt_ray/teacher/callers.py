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
from rt_ray.teacher.teach import SamplingPlan, teach_question


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
        for row, outcome in zip(rows, outcomes):
            row["status"] = outcome["status"]
            row["error"] = outcome["error"]
            row["samples_json"] = json.dumps(outcome["samples"])
            row["stats_json"] = json.dumps(outcome["stats"])
        return pd.DataFrame(rows)
