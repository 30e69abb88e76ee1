"""``TeacherGovernor``: one actor per run that every ``TeacherCaller`` asks before each request,
so the rate limit and the spending cap hold for the run as a whole, not per worker."""

from __future__ import annotations

import time

import ray

from rt_ray.teacher.pacing import Budget, RequestPacer


@ray.remote(num_cpus=0)
class TeacherGovernor:
    def __init__(self, rpm: int | None, tpm: int | None, cap_usd: float | None):
        self.pacer = RequestPacer(rpm=rpm, tpm=tpm)
        self.budget = Budget(cap_usd=cap_usd)

    def reserve(self, tokens: int, worst_cost_usd: float) -> tuple[float | None, int | None]:
        """(seconds to wait before sending, reservation id), or (None, None) when over budget."""
        reservation = self.budget.reserve(worst_cost_usd)
        if reservation is None:
            return None, None
        now = time.monotonic()
        return self.pacer.reserve(now, tokens) - now, reservation

    def settle(self, reservation: int, cost_usd: float) -> None:
        self.budget.settle(reservation, cost_usd)

    def summary(self) -> dict:
        return {"spent_usd": self.budget.spent_usd, "budget_exhausted": self.budget.exhausted}
