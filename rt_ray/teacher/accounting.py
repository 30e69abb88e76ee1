"""Token estimates and cost, from the price table in the config."""

from __future__ import annotations

from dataclasses import dataclass, fields

from rt_ray.config import Price


def estimate_prompt_tokens(prompt: str) -> int:
    # An upper-side estimate (BPE averages ~4 characters a token in English) so that the budget's
    # worst case errs towards stopping early, never towards passing the cap.
    return len(prompt) // 3 + 16


def cost_usd(prompt_tokens: int, completion_tokens: int, price: Price | None) -> float:
    if price is None:
        return 0.0
    return (prompt_tokens * price.input_per_1m + completion_tokens * price.output_per_1m) / 1e6


@dataclass
class CallStats:
    """Counters one caller keeps; the driver adds them up across callers."""

    requests: int = 0
    prompts_sent: int = 0  # a completions request may carry several prompts (teacher.prompts_per_request)
    retries: int = 0
    cache_hits: int = 0
    failed_requests: int = 0
    budget_refusals: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict:
        # Not dataclasses.asdict, which deep-copies: this runs once a question, 70 us against 1.
        return {name: getattr(self, name) for name in CALL_STATS_FIELDS}

    def add(self, other: "CallStats | dict") -> None:
        values = other if isinstance(other, dict) else other.as_dict()
        for name in CALL_STATS_FIELDS:
            mine = getattr(self, name)
            # type(mine): sums of a block's numpy or Arrow columns stay plain ints and floats (JSON, MLflow)
            setattr(self, name, type(mine)(mine + values.get(name, 0)))


CALL_STATS_FIELDS = tuple(f.name for f in fields(CallStats))
