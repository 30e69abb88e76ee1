"""The one HTTP path to the teacher: the official ``openai`` SDK against any OpenAI-compatible base_url.

    client = TeacherClient(cfg.teacher, api_key="sk-...", governor=None)
    samples = await client.samples(prompt, count=8, temperature=0.7, max_tokens=128, stats=stats)
    answers = await client.one_each(prompts, temperature=0.0, max_tokens=32, stats=stats)  # several prompts a request

Around each request: the response cache (hits are free), the shared pacer and budget (through the
governor actor), a concurrency limit, a per-request timeout, and retries with exponential backoff
and full jitter that honour Retry-After. The SDK's own retries are off so that ours are the only ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import importlib
import random
import ssl
import sys
import threading
from typing import TYPE_CHECKING, Any

from rt_ray.errors import UserError
from rt_ray.config import TeacherConfig
from rt_ray.prompts import chat_messages
from rt_ray.teacher.accounting import CallStats, cost_usd, estimate_prompt_tokens
from rt_ray.teacher.cache import ResponseCache, sample_key, sample_keys, sampling_params

if TYPE_CHECKING:
    import openai

CONNECTIONS_PER_POOL = 16  # requests in flight per HTTP connection pool (see TeacherClient._connect)

# Statuses that no retry can fix and that doom every later request too (bad key, model or URL).
FATAL_STATUSES = {401, 403, 404}
# Statuses that doom this request only (a prompt the endpoint rejects).
REJECTED_STATUSES = {400, 413, 422}


class TeacherFatalError(UserError, RuntimeError):
    """The endpoint refuses the run as configured (bad key, model or URL)."""


class TeacherRequestFailed(RuntimeError):
    """One request failed on the teacher's side: its ``kind`` says how (stats.json counts each)."""

    KINDS = ("retries_exhausted", "rejected", "batch_undelivered")

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind

    def __reduce__(self):  # across Ray's processes with its kind
        return type(self), (str(self), self.kind)


class BudgetExhausted(RuntimeError):
    """The next request could pass ``teacher.max_cost_usd``; nothing more is sent."""


class MalformedResponse(ValueError):
    """The endpoint answered, but the body lacks what a completion has (choices, their text)."""


def provider_errors(openai_module) -> tuple[type[BaseException], ...]:
    """What the provider or the network can cause, and so what a retry may fix: the SDK's errors
    (HTTP statuses, timeouts, refused or dropped connections), a body cut short (its JSON does not
    parse) or without a completion's fields. Anything else is a fault in rt-ray or the SDK: retrying
    it would only mark the question failed and hide the bug, so it fails the run at once."""
    return (openai_module.APIError, json.JSONDecodeError, UnicodeDecodeError, MalformedResponse, TimeoutError)


def retry_after_seconds(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    if response is None:
        return None
    headers = response.headers
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue  # an HTTP date; the backoff applies instead
    return None


def backoff_delay(attempt: int, base_s: float, max_s: float, retry_after: float | None, rng: random.Random) -> float:
    ceiling = min(max_s, base_s * 2**attempt)
    delay = rng.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after) if retry_after is not None else delay


def sdk_ssl_context(openai_module) -> ssl.SSLContext | bool:
    """The SSL context the SDK's HTTP library (httpx, or the fork newer SDKs ship) builds by default:
    certifi's bundle and SSL_CERT_FILE as it reads them, so several pools verify as one client would."""
    httpx = sys.modules[openai_module.DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0]]
    create = getattr(httpx, "create_ssl_context", None)
    return create() if create is not None else True


class TeacherClient:
    def __init__(self, cfg: TeacherConfig, api_key: str | None, governor: Any = None, seed: int = 0,
                 cache_only: str | None = None, connections_per_pool: int = CONNECTIONS_PER_POOL):  # fmt: skip
        self.cfg = cfg
        # Batch mode's final pass reads what the batches delivered and sends nothing: a sample still
        # missing is a failed question ("failed") or one the budget stopped ("budget").
        self.cache_only = cache_only
        self.cache = ResponseCache(cfg.cache_dir)
        self.governor = governor
        self.price = cfg.prices.get(cfg.model)
        self._rng = random.Random(seed)
        self._api_key = api_key or "no-key"  # local endpoints take any key; the SDK insists on one
        self.connections_per_pool = connections_per_pool
        self._pools: list[openai.AsyncOpenAI] | None = None
        self._turn = 0
        self._semaphore: asyncio.Semaphore | None = None
        self._concurrency = max(1, -(-cfg.max_concurrency // cfg.num_callers))

    def import_sdk_in_background(self) -> None:
        """Import the SDK (0.7 s) on a thread now, so that it is loaded by the time a caller gets its first
        questions (0.1-0.5 s after it starts on a new cluster) instead of after them. Skipped when the
        cache holds samples: it may answer every call (a rerun), and then the import is only a cost."""
        if self.cache_only is None and not self.cache.indexed():
            threading.Thread(target=importlib.import_module, args=("openai",), daemon=True).start()

    def _connect(self) -> openai.AsyncOpenAI:
        """The next connection pool's client, in turn. Created lazily, inside the event loop that will
        use them; the SDK is imported here too: a caller that the cache answers never loads it (0.7 s of
        every caller's start-up). Why several pools: httpcore scans every connection of its pool when it
        assigns and releases a request (a socket probe for each idle one), so one pool of N connections
        costs O(N) per request: at 256 in flight, 5.5 ms of CPU a request with one pool against 3.2 ms
        with pools of CONNECTIONS_PER_POOL (2026-11-28, this machine)."""
        if self._pools is None:
            import openai

            count = max(1, -(-self._concurrency // self.connections_per_pool))
            verify = sdk_ssl_context(openai)  # the CA bundle loaded once (~35 ms), not once a pool
            self._pools = [
                openai.AsyncOpenAI(
                    base_url=self.cfg.base_url,
                    api_key=self._api_key,
                    max_retries=0,
                    timeout=self.cfg.request_timeout_s,
                    http_client=openai.DefaultAsyncHttpxClient(verify=verify),
                )
                for _ in range(count)
            ]
            self._semaphore = asyncio.Semaphore(self._concurrency)
        self._turn = (self._turn + 1) % len(self._pools)
        return self._pools[self._turn]

    async def samples(
        self, prompt: str, count: int, temperature: float, max_tokens: int, stats: CallStats
    ) -> list[dict]:
        """``count`` samples of one prompt, indexes 0..count-1 of its pool, from cache where stored."""
        params = sampling_params(self.cfg.api, temperature, max_tokens)
        keys = sample_keys(self.cfg.model, prompt, params, range(count))
        found: list[dict | None] = [self.cache.get(key) for key in keys]
        missing = [index for index, hit in enumerate(found) if hit is None]
        stats.cache_hits += count - len(missing)
        if not missing:
            return found  # type: ignore[return-value]
        prompt_sha = hashlib.sha256(prompt.encode()).hexdigest()
        groups = [missing] if self.cfg.supports_n else [[index] for index in missing]
        results = await asyncio.gather(
            *(self._request([prompt], len(group), temperature, max_tokens, stats) for group in groups),
            return_exceptions=True,
        )
        return self._store(found, keys, groups, results, lambda index: prompt_sha)

    async def one_each(self, prompts: list[str], temperature: float, max_tokens: int, stats: CallStats) -> list[dict]:
        """One sample (index 0 of its pool) of each prompt, from cache where stored; on the completions
        API the missing ones go up to ``teacher.prompts_per_request`` to a request, and each choice is
        matched back to its prompt by ``index``. Cache entries are per prompt, as ``samples`` stores them."""
        params = sampling_params(self.cfg.api, temperature, max_tokens)
        keys = [sample_key(self.cfg.model, prompt, params, 0) for prompt in prompts]
        found: list[dict | None] = [self.cache.get(key) for key in keys]
        missing = [index for index, hit in enumerate(found) if hit is None]
        stats.cache_hits += len(prompts) - len(missing)
        size = self.cfg.prompts_per_request if self.cfg.api == "completions" else 1  # chat: one conversation a request
        groups = [missing[start : start + size] for start in range(0, len(missing), size)]
        results = await asyncio.gather(
            *(self._request([prompts[i] for i in group], 1, temperature, max_tokens, stats) for group in groups),
            return_exceptions=True,
        )
        return self._store(found, keys, groups, results, lambda index: hashlib.sha256(prompts[index].encode()).hexdigest())

    def _store(self, found: list, keys: list[str], groups: list[list[int]], results: list, prompt_sha_of) -> list[dict]:
        """Each request's samples into the cache and their slots; the first failed request's error
        is raised after the others' samples are kept."""
        errors = []
        for group, result in zip(groups, results):
            if isinstance(result, BaseException):
                errors.append(result)
                continue
            for index, sample in zip(group, result):
                # Stored the moment it arrives: a crash after this line costs nothing to resume.
                sample["prompt_sha256"] = prompt_sha_of(index)
                self.cache.put(keys[index], sample)
                found[index] = sample
        if errors:
            # A fault in rt-ray outranks the teacher's failures beside it: it must fail the run, not the question.
            raise next((e for e in errors if not isinstance(e, (TeacherRequestFailed, BudgetExhausted))), errors[0])
        return found

    async def _request(
        self, prompts: list[str], n: int, temperature: float, max_tokens: int, stats: CallStats
    ) -> list[dict]:
        """One request: ``n`` choices of each prompt, in prompt order (a list of prompts only on completions)."""
        if self.cache_only == "budget":
            raise BudgetExhausted(f"teacher.max_cost_usd={self.cfg.max_cost_usd} reached before this batch was submitted")
        if self.cache_only is not None:
            raise TeacherRequestFailed("the batches did not deliver it within teacher.max_retries resubmissions", "batch_undelivered")
        client = self._connect()
        assert self._semaphore is not None
        import openai  # loaded by _connect; the name is needed for the errors below
        prompt_estimate = sum(estimate_prompt_tokens(prompt) for prompt in prompts)
        estimated_tokens = prompt_estimate + len(prompts) * n * max_tokens
        worst_cost = cost_usd(prompt_estimate, len(prompts) * n * max_tokens, self.price)
        last_error: Exception | None = None
        for attempt in range(self.cfg.max_retries + 1):
            retry_after = None
            async with self._semaphore:
                reservation = await self._wait_for_turn(estimated_tokens, worst_cost, stats)
                stats.requests += 1
                stats.prompts_sent += len(prompts)
                try:
                    response = await self._create(client, prompts, n, temperature, max_tokens)
                    texts = self._texts(response, len(prompts) * n)
                except openai.APIStatusError as error:
                    await self._settle(reservation, 0.0)
                    if error.status_code in FATAL_STATUSES:
                        raise TeacherFatalError(
                            f"teacher at {self.cfg.base_url} refused model {self.cfg.model!r}: "
                            f"HTTP {error.status_code} {type(error).__name__}"
                        ) from None
                    if error.status_code in REJECTED_STATUSES:
                        stats.failed_requests += 1
                        raise TeacherRequestFailed(f"HTTP {error.status_code}: request rejected", "rejected") from None
                    last_error, retry_after = error, retry_after_seconds(error)
                except provider_errors(openai) as error:
                    await self._settle(reservation, 0.0)
                    last_error = error
                except BaseException:  # a fault in rt-ray, or Ctrl-C: the reservation is settled, the error goes on
                    await self._settle(reservation, 0.0)
                    raise
                else:
                    usage = getattr(response, "usage", None)
                    prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
                    completion_tokens = getattr(usage, "completion_tokens", 0) or 0
                    cost = cost_usd(prompt_tokens, completion_tokens, self.price)
                    await self._settle(reservation, cost)
                    stats.prompt_tokens += prompt_tokens
                    stats.completion_tokens += completion_tokens
                    stats.cost_usd += cost
                    return texts
            if attempt < self.cfg.max_retries:
                stats.retries += 1
                await asyncio.sleep(
                    backoff_delay(attempt, self.cfg.backoff_base_s, self.cfg.backoff_max_s, retry_after, self._rng)
                )
        stats.failed_requests += 1
        raise TeacherRequestFailed(f"{type(last_error).__name__} after {self.cfg.max_retries} retries: {last_error}", "retries_exhausted")

    async def _create(self, client: openai.AsyncOpenAI, prompts: list[str], n: int, temperature: float, max_tokens: int):
        common = dict(model=self.cfg.model, n=n, temperature=temperature, max_tokens=max_tokens)
        if self.cfg.api == "chat":
            (prompt,) = prompts
            return await client.chat.completions.create(messages=chat_messages(prompt), **common)
        return await client.completions.create(prompt=prompts if len(prompts) > 1 else prompts[0], **common)

    def _texts(self, response: Any, expected: int) -> list[dict]:
        # The SDK builds its response objects without validating them, so a field the endpoint left
        # out is a missing attribute: read with getattr, it is the endpoint's fault (MalformedResponse).
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or len(choices) != expected:
            raise MalformedResponse(f"asked for {expected} choices, got {len(choices) if isinstance(choices, list) else choices!r}")
        # OpenAI orders a list of prompts' choices by index: prompt i's n choices are i*n .. i*n+n-1.
        if any(not isinstance(getattr(choice, "index", None), int) for choice in choices):
            raise MalformedResponse("a choice came back without its index")
        samples = []
        for choice in sorted(choices, key=lambda choice: choice.index):
            holder = getattr(choice, "message", None) if self.cfg.api == "chat" else choice
            text = getattr(holder, "content" if self.cfg.api == "chat" else "text", None)
            if not isinstance(text, str):
                raise MalformedResponse("a choice came back without text")
            samples.append({"text": text, "finish_reason": getattr(choice, "finish_reason", None)})
        return samples

    async def _wait_for_turn(self, tokens: int, worst_cost: float, stats: CallStats) -> int | None:
        if self.governor is None:
            return None
        delay, reservation = await self.governor.reserve.remote(tokens, worst_cost)
        if delay is None:
            stats.budget_refusals += 1
            raise BudgetExhausted(f"teacher.max_cost_usd={self.cfg.max_cost_usd} reached")
        if delay > 0:
            await asyncio.sleep(delay)
        return reservation

    async def _settle(self, reservation: int | None, cost: float) -> None:
        if self.governor is not None and reservation is not None:
            await self.governor.settle.remote(reservation, cost)
