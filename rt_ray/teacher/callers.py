"""``TeacherCaller``: the Ray Data actor that runs the teacher step for a block of questions.

Each actor runs one asyncio loop; Ray Data feeds it several blocks at once and the client's
semaphore keeps ``max_concurrency / num_callers`` requests in flight across them, so a slow
question never idles the other slots.
"""

from __future__ import annotations

import asyncio

import orjson
import pyarrow as pa
from pydantic import SecretStr

from rt_ray.config import TeacherConfig
from rt_ray.tasks.base import Sample
from rt_ray.teacher.accounting import CALL_STATS_FIELDS
from rt_ray.teacher.client import TeacherClient
from rt_ray.teacher.filtering import is_kept, question_fields
from rt_ray.teacher.parts import part_entry
from rt_ray.teacher.teach import SamplingPlan, teach_question


def question_entry(row: dict, outcome: dict, kept: list[bool]) -> bytes:
    """A question as its part stores it (``rt_ray.teacher.parts.part_entry``): built here, in parallel
    across callers, so that the driver only writes it and its work per question stays a few counters."""
    return part_entry(int(row["index"]), outcome["status"], outcome["error"], kept, orjson.dumps(question_fields(row)),
                      [orjson.dumps(s) for s in outcome["samples"]], failure=outcome["failure"])  # fmt: skip


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
        self.client.import_sdk_in_background()

    async def __call__(self, batch: pa.Table) -> pa.Table:
        # Arrow in and out: pandas' conversions cost 35 us a question, a sixth of a cached question's work.
        rows = batch.to_pylist()
        outcomes = await asyncio.gather(*(teach_question(self.client, Sample.from_row(r), self.plan) for r in rows))
        kept = [[is_kept(s) for s in o["samples"]] for o in outcomes]  # judged once: counted and stored
        columns = {
            "index": batch["index"],
            "status": [o["status"] for o in outcomes],
            "records": [len(flags) for flags in kept],
            "kept": [sum(flags) for flags in kept],
            "entry": pa.array([question_entry(r, o, k) for r, o, k in zip(rows, outcomes, kept)], pa.binary()),
        }
        # The call counters as numeric columns: the driver sums a block's in one step.
        columns.update({name: [o["stats"][name] for o in outcomes] for name in CALL_STATS_FIELDS})
        return pa.table(columns)
