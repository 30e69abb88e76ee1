"""Request pacing and the spending cap, as plain state machines (the Ray actor wraps them).

The pacer spaces request starts evenly (GCRA with no burst): in any window of T seconds at most
T * rpm / 60 requests start, so the observed rate never exceeds the configured RPM, whichever
worker sends. Tokens per minute are paced the same way by each request's token estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RequestPacer:
    rpm: int | None = None
    tpm: int | None = None
    _next_request_at: float = 0.0
    _next_tokens_at: float = 0.0

    def reserve(self, now: float, tokens: int) -> float:
        """The time at which this request may start; later callers queue behind it."""
        start = max(now, self._next_request_at, self._next_tokens_at)
        if self.rpm:
            self._next_request_at = start + 60.0 / self.rpm
        if self.tpm:
            self._next_tokens_at = start + 60.0 * tokens / self.tpm
        return start


@dataclass
class Budget:
    """Worst-case cost is reserved before a request and settled to the real cost after it."""

    cap_usd: float | None = None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    refused: int = 0
    _open: dict[int, float] = field(default_factory=dict)
    _next_id: int = 0

    def reserve(self, worst_cost_usd: float) -> int | None:
        # Once one request is refused, all later ones are too: the run stops cleanly, not raggedly.
        over = self.cap_usd is not None and self.spent_usd + self.reserved_usd + worst_cost_usd > self.cap_usd
        if self.refused or over:
            self.refused += 1
            return None
        self._next_id += 1
        self._open[self._next_id] = worst_cost_usd
        self.reserved_usd += worst_cost_usd
        return self._next_id

    def settle(self, reservation: int, actual_cost_usd: float) -> None:
        self.reserved_usd -= self._open.pop(reservation, 0.0)
        self.spent_usd += actual_cost_usd

    @property
    def exhausted(self) -> bool:
        return self.refused > 0
