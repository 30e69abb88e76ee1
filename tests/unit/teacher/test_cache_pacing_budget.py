import hashlib
import json
import random

import httpx
import openai

from rt_ray.teacher.cache import ResponseCache, sample_key, sample_keys
from rt_ray.teacher.client import backoff_delay, retry_after_seconds
from rt_ray.teacher.pacing import Budget, RequestPacer

PARAMS = {"api": "completions", "temperature": 0.7, "max_tokens": 128}


def test_sample_keys_hash_the_documented_material_so_old_caches_still_hit():
    material = json.dumps({"model": "m", "prompt": 'p "q"', "params": PARAMS, "sample_index": 12}, sort_keys=True)
    assert sample_key("m", 'p "q"', PARAMS, 12) == hashlib.sha256(material.encode()).hexdigest()
    assert sample_keys("m", "p", PARAMS, [0, 1, 2]) == [sample_key("m", "p", PARAMS, i) for i in range(3)]


def test_sample_key_depends_on_every_part():
    base = sample_key("m", "p", PARAMS, 0)
    assert base == sample_key("m", "p", dict(PARAMS), 0)
    assert base != sample_key("m2", "p", PARAMS, 0)
    assert base != sample_key("m", "p2", PARAMS, 0)
    assert base != sample_key("m", "p", {**PARAMS, "temperature": 0.0}, 0)
    assert base != sample_key("m", "p", PARAMS, 1)


def test_cache_round_trips_and_survives_a_new_instance(tmp_path):
    key = sample_key("m", "p", PARAMS, 3)
    ResponseCache(tmp_path).put(key, {"text": "hi"})
    again = ResponseCache(tmp_path)
    assert again.get(key) == {"text": "hi"}
    assert again.get(sample_key("m", "p", PARAMS, 4)) is None
    assert len(again) == 1
    assert [p.suffix for p in tmp_path.rglob("*") if p.is_file()] == [".log"], "one segment file, nothing else"


def test_pacer_spaces_requests_by_rpm():
    pacer = RequestPacer(rpm=120)
    starts = [pacer.reserve(now=0.0, tokens=10) for _ in range(5)]
    assert starts == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert pacer.reserve(now=10.0, tokens=10) == 10.0  # no burst credit builds up while idle
    assert pacer.reserve(now=10.0, tokens=10) == 10.5


def test_pacer_spaces_requests_by_tokens_per_minute():
    pacer = RequestPacer(tpm=600)
    assert pacer.reserve(0.0, 100) == 0.0
    assert pacer.reserve(0.0, 100) == 10.0  # 100 tokens at 10 tokens/s


def test_budget_refuses_what_could_pass_the_cap_and_everything_after():
    budget = Budget(cap_usd=1.0)
    first = budget.reserve(0.6)
    assert first is not None
    assert budget.reserve(0.6) is None  # 0.6 reserved + 0.6 > 1.0
    budget.settle(first, 0.1)
    assert budget.reserve(0.1) is None  # once refused, the run stops cleanly
    assert budget.spent_usd == 0.1 and budget.exhausted


def test_backoff_grows_with_jitter_and_honours_retry_after():
    rng = random.Random(0)
    delays = [backoff_delay(attempt, 0.5, 30.0, None, rng) for attempt in range(6)]
    for attempt, delay in enumerate(delays):
        ceiling = min(30.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(0, 0.5, 30.0, 7.0, rng) == 7.0
    assert backoff_delay(20, 0.5, 30.0, None, rng) <= 30.0


def _status_error(headers):
    request = httpx.Request("POST", "http://x/v1/completions")
    response = httpx.Response(429, headers=headers, request=request)
    return openai.RateLimitError("slow down", response=response, body=None)


def test_retry_after_is_read_from_ms_or_seconds_headers():
    assert retry_after_seconds(_status_error({"retry-after-ms": "250"})) == 0.25
    assert retry_after_seconds(_status_error({"retry-after": "3"})) == 3.0
    assert retry_after_seconds(_status_error({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) is None
    assert retry_after_seconds(ValueError("no response")) is None
